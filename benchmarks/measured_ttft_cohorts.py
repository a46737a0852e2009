"""Do the measured SGLang points run in lock-step cohorts? Their TTFT under three schedules.

SGLang's scheduler runs a prefill batch whenever prompts can be admitted, apart from the decode
batch (`prefill_steps_alone` in a stack profile), and the harness sends exact output lengths
(`genai-perf ... --extra-inputs ignore_eos:true` with min_tokens = max_tokens, fidelity/measured.py).
Together they keep a closed loop's clients in cohorts: a cohort's prompts are all prefilled before
any of them decodes, they finish together and come back together, so each round starts with a
burst of prompts. The validation spreads output lengths by +-5% (measured.OUTPUT_LENGTH_SPREAD),
which dissolves such cohorts. This scores the measured rows of one framework (aggregated rows)
three ways:

  shipped      the profiles as they are, lengths spread +-5%
  alone        prefill steps alone (decodes wait for them), lengths spread +-5%
  cohorts      prefill steps alone, exact output lengths

and prints median |error| (median signed error) of mean TTFT and mean TPOT, overall, by client
band, and by software version and model (a collection of rows measured together).

    python benchmarks/measured_ttft_cohorts.py [--backend sglang] [--jobs 1]

About 1-2 minutes for the SGLang rows on one core. Benchmarks run on demand; the test suite
never runs them.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from factory_sim.catalog import builtin_names
from factory_sim.config.stack import load_stack
from factory_sim.fidelity import measured
from factory_sim.fidelity.inferencex import load_points as load_inferencex
from factory_sim.fidelity.mtp_runs import label_mtp_runs
from factory_sim.fidelity.report import CLIENT_BAND_LABELS, client_band
from factory_sim.perf.stacks import override_stack


def _score(points: pd.DataFrame, jobs: int, alone: bool, spread: float) -> pd.DataFrame:
    stacks = {name: override_stack(load_stack(name), {"prefill_steps_alone": alone}) for name in builtin_names("stack")}
    scored = measured.validate_points(points, jobs=jobs, stacks=stacks, output_spread=spread)
    return scored[scored["quantity"].isin(["ttft_ms", "tpot_ms"])]


def _fmt(errors: pd.Series) -> str:
    return f"{100 * np.median(np.abs(errors)):.1f}% ({100 * np.median(errors):+.1f}%)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="sglang", help="framework of the rows scored (sglang, trtllm, vllm)")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    points = measured.load_points(None)
    points = points[(points["backend"] == args.backend) & (points["mode"] == "agg")]
    points = label_mtp_runs(points, load_inferencex())
    version = dict(zip(points["id"], points["backend_version"].astype(str), strict=False))
    runs = {"shipped": (False, measured.OUTPUT_LENGTH_SPREAD), "alone": (True, measured.OUTPUT_LENGTH_SPREAD),
            "cohorts": (True, 0.0)}
    results = {name: _score(points, args.jobs, alone, spread) for name, (alone, spread) in runs.items()}
    base = results["shipped"]
    table = base[["id", "quantity", "model", "concurrency"]].copy()
    table["version"] = table["id"].map(version)
    table["clients"] = pd.Categorical(table["concurrency"].map(client_band), categories=CLIENT_BAND_LABELS)
    for name, res in results.items():
        table[name] = res["rel_error"].to_numpy()
    for quantity in ("ttft_ms", "tpot_ms"):
        q = table[table["quantity"] == quantity]
        print(f"\n{quantity}, {len(q)} {args.backend} aggregated rows: median |error| (median signed error)")
        print("all: " + ", ".join(f"{name} {_fmt(q[name])}" for name in runs))
        for keys, label in ((["clients"], "by clients"), (["version", "model"], "by version and model")):
            print(label)
            for key, g in q.groupby(keys, observed=True):
                name = " ".join(map(str, key if isinstance(key, tuple) else (key,)))
                print(f"  {name:52s} {len(g):4d} " + "  ".join(f"{run} {_fmt(g[run]):>16s}" for run in runs))


if __name__ == "__main__":
    main()
