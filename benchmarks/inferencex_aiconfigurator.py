"""The project's step-time model and aiconfigurator-core's, side by side on the same InferenceX points.

Scores the shipped InferenceX points twice, once with every stack's steps priced by the
roofline (`step_time_backend: roofline`, the default) and once by aiconfigurator-core
(`validate --step-time aiconfigurator`), and prints the points each can score, why the back end
skips the ones only it skips, and the median |error| (and median signed error) of output
tokens/s/GPU, interactivity and median TTFT of each on the points both score: overall, by
hardware and by framework. Needs `pip install 'factory-sim[aic]'`.

    python benchmarks/inferencex_aiconfigurator.py --out /tmp/aic        # all 5,000 points, 1 process
    python benchmarks/inferencex_aiconfigurator.py --every 25            # every 25th point: a quick look
    python benchmarks/inferencex_aiconfigurator.py --reuse /tmp/aic      # the tables again from saved results

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from factory_sim.fidelity import inferencex as ix

BACKENDS = ("roofline", "aiconfigurator")


def _scored(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["skip_reason"].fillna("").eq("") & df["rel_error"].notna()]


def _errors(g: pd.DataFrame) -> pd.Series:
    out = {"rows": len(g)}
    for backend in BACKENDS:
        e = g[f"rel_error_{backend}"]
        out[f"{backend} |err|"] = f"{e.abs().median():.1%}"
        out[f"{backend} signed"] = f"{e.median():+.1%}"
    return pd.Series(out)


def compare(runs: dict[str, pd.DataFrame]) -> str:
    lines = []
    for backend, df in runs.items():
        lines.append(f"{backend}: {_scored(df)['point_id'].nunique()} points scored of {df['point_id'].nunique()}")
    roof, aic = runs["roofline"], runs["aiconfigurator"]
    roof_ok = set(_scored(roof)["point_id"])
    only = aic[aic["point_id"].isin(roof_ok) & aic["skip_reason"].fillna("").ne("")].drop_duplicates("point_id")
    if len(only):
        lines.append(f"\nscored by the roofline, not by aiconfigurator ({len(only)} points):")
        reasons = only["skip_reason"].str.replace(r" \(gemm.*?\)", "", regex=True).str.slice(0, 150)
        lines.append(reasons.value_counts().head(10).to_string())
    key = ["point_id", "quantity"]
    both = _scored(roof).merge(_scored(aic)[[*key, "rel_error"]], on=key, suffixes=("_roofline", "_aiconfigurator"))
    lines.append(f"\non the {both['point_id'].nunique()} points both score, median |error| (median signed):")
    for by in (["quantity"], ["hardware", "quantity"], ["framework", "quantity"]):
        table = both.groupby(by).apply(_errors, include_groups=False)
        lines.append("\n" + table.to_string())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="score every Nth point of the file (default: all)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write roofline.csv and aiconfigurator.csv (validation rows) here")
    parser.add_argument("--reuse", type=Path, help="read the two CSVs from here instead of scoring")
    args = parser.parse_args()
    runs = {}
    if args.reuse:
        runs = {b: pd.read_csv(args.reuse / f"{b}.csv") for b in BACKENDS}
    else:
        points = ix.load_points().iloc[::args.every]
        for backend in BACKENDS:
            wall, cpu = time.perf_counter(), time.process_time()
            runs[backend] = ix.validate_inferencex(points, jobs=args.jobs, step_time=backend)
            print(f"{backend}: {len(points)} points in {time.perf_counter() - wall:.0f} s "
                  f"({time.process_time() - cpu:.0f} s CPU in this process)")
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                runs[backend].to_csv(args.out / f"{backend}.csv", index=False)
    print(compare(runs))


if __name__ == "__main__":
    main()
