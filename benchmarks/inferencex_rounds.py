"""How long scoring the InferenceX points takes, and what fewer simulated rounds would cost.

Scores the shipped InferenceX points with SIM_ROUNDS requests per client (the benchmark's
ten) and with `--rounds` (default 3), times both, and prints how far the cheaper predictions
move from the full ones per quantity (median signed shift, median and 90th percentile of the
absolute shift), and the median |error| against the published values of each.

    python benchmarks/inferencex_rounds.py                 # all 5,000 points, 2 processes
    python benchmarks/inferencex_rounds.py --limit 300     # a quick look
    python benchmarks/inferencex_rounds.py --jobs 1 --rounds 5

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from factory_sim.fidelity import inferencex as ix
from factory_sim.fidelity import inferencex_report as ixr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="the cheaper requests per client (>= 3)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N points")
    args = parser.parse_args()
    points = ix.load_points()
    if args.limit:
        points = points.head(args.limit)
    runs = {}
    for rounds in (ix.SIM_ROUNDS, args.rounds):
        started = time.perf_counter()
        runs[rounds] = ix.validate_inferencex(points, jobs=args.jobs, rounds=rounds)
        print(f"{len(points)} points, {rounds} requests per client, {args.jobs} processes: "
              f"{time.perf_counter() - started:.1f} s")
    full, cheap = (ixr.scored(runs[r]) for r in (ix.SIM_ROUNDS, args.rounds))
    both = full.merge(cheap, on=["point_id", "quantity"], suffixes=("_full", "_cheap"))
    n = both["point_id"].nunique()
    print(f"\nshift of {args.rounds} rounds against {ix.SIM_ROUNDS} ({n} points scored by both)")
    print(f"{'quantity':<26} {'median shift':>12} {'median |shift|':>14} {'p90 |shift|':>11} "
          f"{'median |err| full':>17} {'median |err| cheap':>18}")
    for quantity, g in both.groupby("quantity"):
        shift = g["predicted_cheap"] / g["predicted_full"] - 1.0
        print(f"{quantity:<26} {np.median(shift):+12.1%} {np.median(np.abs(shift)):14.1%} "
              f"{np.percentile(np.abs(shift), 90):11.1%} {np.median(np.abs(g['rel_error_full'])):17.1%} "
              f"{np.median(np.abs(g['rel_error_cheap'])):18.1%}")


if __name__ == "__main__":
    main()
