"""The spread of MTP acceptance across requests (perf/mtp_spread.py), fitted without the MLPerf
rows: from the InferenceX DeepSeek-R1 points, which give per run both the median
interactivity (1 / median per-request TPOT) and the mean of the per-request interactivity.

For a per-request TPOT spread lognormally with log-variance s^2, mean(1 / TPOT) over
1 / median(TPOT) is exp(s^2 / 2), so s^2 = 2 ln(mean / median). An MTP run's s^2 less that of
its twins without MTP (same framework, hardware and lengths; the median over them) is what
acceptance adds; with the run's drafts (1 with attention DP, 3 without:
inferencex.MTP_DRAFTS_WITH(OUT)_ATTENTION_DP) and its stack's acceptance, that is the variance of
log tokens per pass, which a Beta of one standard deviation gives (`mtp_spread`). Caveats:
InferenceX prompts are random tokens, whose answers may accept differently from real text, and
the lognormal reading of a mean over a median is an estimate.

    python benchmarks/mtp_acceptance_spread.py            # the fit, point by point
    python benchmarks/mtp_acceptance_spread.py --logged 0.1 # the logged MLPerf v6.0 DeepSeek-R1
                                                            # Interactive run at its rate, sd 0.1

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

from factory_sim.config.stack import load_stack
from factory_sim.fidelity.inferencex import (
    MTP_DRAFTS_WITH_ATTENTION_DP,
    MTP_DRAFTS_WITHOUT_ATTENTION_DP,
    load_points,
)
from factory_sim.perf.mtp_spread import max_sd, steps_per_token

NVIDIA = ("b200", "b300", "h100", "h200", "gb200_nvl72", "gb300_nvl72")
_Q = (np.arange(2000) + 0.5) / 2000


def log_tpp_variance(acceptance: float, drafts: int, sd: float) -> float:
    """Variance of log tokens per pass across requests at this spread."""
    if sd <= 0:
        return 0.0
    return float(np.var(np.log(steps_per_token(acceptance, drafts, sd, _Q))))


def sd_for(acceptance: float, drafts: int, variance: float) -> float:
    """The standard deviation whose log-tokens-per-pass variance is `variance` (0 below none, nan beyond reach)."""
    if variance <= 0:
        return 0.0
    top = 0.75 * max_sd(acceptance)
    if log_tpp_variance(acceptance, drafts, top) < variance:
        return float("nan")
    return float(optimize.brentq(lambda s: log_tpp_variance(acceptance, drafts, s) - variance, 1e-3, top, xtol=1e-4))


def _stack_acceptance(framework: str, hardware: str) -> float:
    hopper = hardware.startswith("h")
    name = ("trtllm_hopper" if hopper else "trtllm_blackwell") if "trt" in framework else \
        ("sglang_hopper" if hopper else "sglang_blackwell")
    return float(load_stack(name).mtp_acceptance)


def fit(points: pd.DataFrame) -> pd.DataFrame:
    d = points[points["model"].str.contains("deepseek", case=False) & points["hardware"].isin(NVIDIA)]
    d = d[d["interactivity_stat"].str.startswith("median")].dropna(subset=["mean_intvty"]).copy()
    d["s2"] = 2.0 * np.log(d["mean_intvty"] / d["interactivity_tok_s_user"])
    keys = ["framework", "hardware", "isl", "osl"]
    twins = d[~d["mtp_or_spec"].astype(bool)].groupby(keys)["s2"].median().rename("s2_twins")
    mtp = d[d["mtp_or_spec"].astype(bool)].join(twins, on=keys).dropna(subset=["s2_twins"])
    rows = []
    for _, r in mtp.iterrows():
        dp = str(r["dp_attention"]).lower() not in ("false", "1", "nan", "none")
        drafts = MTP_DRAFTS_WITH_ATTENTION_DP if dp else MTP_DRAFTS_WITHOUT_ATTENTION_DP
        a = _stack_acceptance(r["framework"], r["hardware"])
        excess = float(r["s2"] - r["s2_twins"])
        rows.append({"point": r["point_id"], "framework": r["framework"], "hardware": r["hardware"],
                     "isl": r["isl"], "osl": r["osl"], "concurrency": r["concurrency"], "drafts": drafts,
                     "acceptance": a, "excess_log_var": excess, "sd": sd_for(a, drafts, excess)})
    return pd.DataFrame(rows)


def logged_run(sd: float, drafts: int) -> None:
    """The GigaComputing DeepSeek-R1 Interactive run (CAL-055's system) at its logged rate with this spread."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import mlperf_interactive_logs as logs

    from factory_sim.fidelity import mlperf
    from factory_sim.fidelity.deployments import read_reference_csv

    rows = read_reference_csv(mlperf.builtin_calibration_path())
    run = next(r for r in logs.RUNS if r.row == "CAL-055")
    saved_b, saved_d = mlperf.benchmark, mlperf.MTP_DRAFT_TOKENS

    def with_spread(row, **kw):
        b = saved_b(row, **kw)
        return replace(b, stack=b.stack.model_copy(update={"mtp_acceptance_sd": sd or None}))

    mlperf.benchmark, mlperf.MTP_DRAFT_TOKENS = with_spread, drafts  # the row states no deployment: the search's
    try:
        config = run.config.replace("MTP1", f"MTP{drafts}")
        s = logs.simulate_run(replace(run, config=config), rows, 0.0, False)
    finally:
        mlperf.benchmark, mlperf.MTP_DRAFT_TOKENS = saved_b, saved_d
    _, p50, p99 = s["tpot"]
    print(f"sd {sd:.3f}, {drafts} draft(s): TPOT p50 {p50:.1f} / p99 {p99:.1f} ms (p99/p50 {p99 / p50:.2f}); "
          f"logged {run.tpot_ms[1]:.1f} / {run.tpot_ms[2]:.1f} ({run.tpot_ms[2] / run.tpot_ms[1]:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logged", type=float, default=None, metavar="SD",
                    help="simulate the logged DeepSeek-R1 Interactive run at this spread instead")
    ap.add_argument("--drafts", type=int, default=1, help="with --logged: MTP drafts (the run used 3)")
    args = ap.parse_args()
    if args.logged is not None:
        logged_run(args.logged, args.drafts)
        return
    f = fit(load_points())
    pd.set_option("display.width", 200)
    print(f.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    ok = f["sd"].dropna()
    print(f"\n{len(f)} MTP points with twins ({len(ok)} within reach); per-request acceptance sd: "
          f"median {ok.median():.3f}, quartiles {ok.quantile(0.25):.3f}-{ok.quantile(0.75):.3f}; "
          f"median excess log-variance {f['excess_log_var'].median():.4f}")
    by = f.groupby("drafts")["sd"].median()
    print("median sd by drafts: " + ", ".join(f"{k}: {v:.3f}" for k, v in by.items()))


if __name__ == "__main__":
    main()
