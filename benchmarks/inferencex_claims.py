"""The vendor claims, measured beside simulated, from InferenceX validation results.

Prints, for DeepSeek-R1, the GB200 NVL72 / B200 vs H200 ratios of output tokens/s/GPU and of
$/M output tokens (hyperscaler $/GPU-hour on both sides) at 20..150 tokens/s/user, measured
and simulated, and TensorRT-LLM's $/M output tokens on B200 and GB200 NVL72 per month of the
results ("TensorRT-LLM cut cost per token 5x within two months of Blackwell's launch").

    python benchmarks/inferencex_claims.py                          # scores the DeepSeek-R1 points first
    python benchmarks/inferencex_claims.py --results DIR/inferencex_validation.csv

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse

import pandas as pd

from factory_sim.fidelity import claims
from factory_sim.fidelity import inferencex as ix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", help="an inferencex_validation.csv (default: score the points now)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--envelope-points", action="store_true",
                        help="also list the points that set GB200 NVL72's and H200's envelopes at 50 and 75 "
                             "tokens/s/user, with their errors")
    args = parser.parse_args()
    if args.results:
        results = pd.read_csv(args.results, keep_default_na=False, na_values=[""])
        results["skip_reason"] = results["skip_reason"].fillna("")
    else:
        points = ix.filter_points(ix.load_points(), model=["deepseek_r1"], hardware=["h200", "b200", "gb200_nvl72"])
        results = ix.validate_inferencex(points, jobs=args.jobs, progress=True)
    print(claims.format_cost_ratios(claims.cost_ratios(results)))
    if args.envelope_points:
        print()
        print(claims.format_envelope_points(claims.envelope_points(results)))
    print()
    print(claims.format_cost_over_dates(claims.cost_over_dates(results)))


if __name__ == "__main__":
    main()
