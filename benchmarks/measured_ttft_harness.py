"""The measured points under their source's own harness: does it explain the TTFT error?

The measured points come from aiconfigurator's silicon sample, whose benchmark script runs
C * 50 requests per concurrency and whose engine configs give an aggregated step max_batch + ISL
+ 1500 tokens (fidelity/measured.py, SOURCE_*). The validation runs 10 requests per client (the
Dynamo recipes) with an 8,192-token prompt budget per step. This scores the measured rows four
ways and prints median |error| (median signed error) of mean TTFT and mean TPOT, overall, in and
out of sample, by framework and client band, and by system:

  shipped   as the validation runs them
  budget    a step of batch + ISL + 1500 tokens
  rounds    50 requests per client
  both      both

    python benchmarks/measured_ttft_harness.py [--runs shipped,budget] [--jobs 1]

About 1.5 minutes per run at 10 requests per client and 7.5 at 50 on one core. Benchmarks run
on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from factory_sim.fidelity import measured
from factory_sim.fidelity.inferencex import load_points as load_inferencex
from factory_sim.fidelity.mtp_runs import label_mtp_runs
from factory_sim.fidelity.report import CLIENT_BAND_LABELS, client_band

RUNS = {"shipped": {}, "budget": {"prompt_headroom_tokens": measured.SOURCE_PROMPT_HEADROOM_TOKENS},
        "rounds": {"requests_per_client": measured.SOURCE_REQUESTS_PER_CLIENT},
        "both": {"prompt_headroom_tokens": measured.SOURCE_PROMPT_HEADROOM_TOKENS,
                 "requests_per_client": measured.SOURCE_REQUESTS_PER_CLIENT}}


def _fmt(errors: pd.Series) -> str:
    return f"{100 * np.median(np.abs(errors)):.1f}% ({100 * np.median(errors):+.1f}%)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of {', '.join(RUNS)}")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    runs = [r for r in args.runs.split(",") if r]
    unknown = sorted(set(runs) - set(RUNS))
    if unknown:
        ap.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    points = label_mtp_runs(measured.load_points(None), load_inferencex())  # as `validate` scores them
    results = {}
    for name in runs:
        scored = measured.validate_points(points, jobs=args.jobs, **RUNS[name])
        results[name] = scored[scored["quantity"].isin(["ttft_ms", "tpot_ms"])].reset_index(drop=True)
    base = results[runs[0]]
    table = base[["id", "quantity", "system", "backend", "concurrency", "sample"]].copy()
    table["clients"] = pd.Categorical(table["concurrency"].map(client_band), categories=CLIENT_BAND_LABELS)
    for name, res in results.items():
        table[name] = res["rel_error"].to_numpy()
    for quantity in ("ttft_ms", "tpot_ms"):
        q = table[table["quantity"] == quantity]
        print(f"\n{quantity}, {len(q)} rows: median |error| (median signed error)")
        print("  all" + "".join(f"  {run} {_fmt(q[run]):>16s}" for run in runs))
        if quantity == "tpot_ms":
            continue
        for keys in (["sample"], ["backend", "clients"], ["system"]):
            for key, g in q.groupby(keys, observed=True):
                name = " ".join(map(str, key if isinstance(key, tuple) else (key,)))
                print(f"  {name:24s} {len(g):4d}" + "".join(f"  {run} {_fmt(g[run]):>16s}" for run in runs))


if __name__ == "__main__":
    main()
