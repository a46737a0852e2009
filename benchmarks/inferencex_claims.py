"""The vendor claims, measured beside simulated, from InferenceX validation results.

Prints, for DeepSeek-R1, the GB200 NVL72 / B200 vs H200 ratios of output tokens/s/GPU and of
$/M output tokens (hyperscaler $/GPU-hour on both sides) at 20..150 tokens/s/user, measured
and simulated, at each interactivity and over +-20% of it (geometric mean), each with the
ratio when the one point that holds up either side's envelope most is removed; and
TensorRT-LLM's $/M output tokens on B200 and GB200 NVL72 per month of the results
("TensorRT-LLM cut cost per token 5x within two months of Blackwell's launch").

    python benchmarks/inferencex_claims.py                          # scores the DeepSeek-R1 points first
    python benchmarks/inferencex_claims.py --results DIR/inferencex_validation.csv
    python benchmarks/inferencex_claims.py --results DIR/inferencex_validation.csv --step   # no interpolation

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
    parser.add_argument("--step", action="store_true",
                        help="read each envelope as the best point at >= each interactivity instead of interpolating "
                             "in log-log between its points (on both sides alike)")
    args = parser.parse_args()
    if args.results:
        results = pd.read_csv(args.results, keep_default_na=False, na_values=[""])
        results["skip_reason"] = results["skip_reason"].fillna("")
    else:
        points = ix.filter_points(ix.load_points(), model=["deepseek_r1"], hardware=["h200", "b200", "gb200_nvl72"])
        results = ix.validate_inferencex(points, jobs=args.jobs, progress=True)
    between = "step" if args.step else "loglog"
    print(claims.format_cost_ratios(claims.cost_ratios(results, between=between), between=between))
    if args.envelope_points:
        print()
        print(claims.format_envelope_points(claims.envelope_points(results)))
    print()
    print(claims.format_cost_over_dates(claims.cost_over_dates(results)))


if __name__ == "__main__":
    main()
