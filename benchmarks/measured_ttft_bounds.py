"""How low could measured TTFT go with a correction per group? Bounds from validate's output.

Every prediction of a group of measured rows is scaled by that group's median ratio of
measured to predicted TTFT: the best a single constant per group could do for the median
|error| (near enough: the median ratio centres the group's errors). Groups are keyed by
framework, client band, prompt length, system or model. Scored three ways:

  in sample    each group's scale fitted to its own rows (what tuning to the scored rows gives)
  by system    each system's rows scored with scales fitted without that system's rows
  by model     the same, holding out each model

A group with no rows left after holding out keeps the prediction as it is (scale 1).

    factory-sim validate --out DIR --jobs 1          # writes DIR/validation.csv (2 min)
    python benchmarks/measured_ttft_bounds.py DIR/validation.csv

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

CLIENT_BANDS = [0, 4, 16, 64, 256, np.inf]
PROMPT_CLASSES = [0, 1500, 5000, np.inf]  # about 1k, about 4k, 8k and longer
GROUPINGS = (("framework",), ("framework", "clients"), ("framework", "clients", "prompt"),
             ("framework", "model"), ("framework", "system", "model"))


def ttft_rows(path: str) -> pd.DataFrame:
    df = pd.read_csv(path, keep_default_na=False)
    rows = df[(df["quantity"] == "ttft_ms") & (df["skipped"] == "")].copy()
    for col in ("predicted", "published", "concurrency", "isl"):
        rows[col] = pd.to_numeric(rows[col])
    rows["framework"] = rows["backend"]
    rows["clients"] = pd.cut(rows["concurrency"], CLIENT_BANDS).astype(str)
    rows["prompt"] = pd.cut(rows["isl"], PROMPT_CLASSES).astype(str)
    rows["ratio"] = rows["published"] / rows["predicted"]
    return rows


def scaled_error(part: pd.DataFrame, fitted_on: pd.DataFrame, keys: list[str]) -> np.ndarray:
    scales = fitted_on.groupby(keys)["ratio"].median()
    s = scales.reindex(pd.MultiIndex.from_frame(part[keys])).fillna(1.0).to_numpy()
    return np.abs(part["predicted"].to_numpy() * s / part["published"].to_numpy() - 1.0)


def held_out(rows: pd.DataFrame, keys: list[str], by: str) -> float:
    errors = [scaled_error(part, rows[rows[by] != name], keys) for name, part in rows.groupby(by)]
    return float(np.median(np.concatenate(errors)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("validation_csv", help="validation.csv written by `factory-sim validate --out DIR`")
    args = ap.parse_args()
    rows = ttft_rows(args.validation_csv)
    as_is = float(np.median(np.abs(rows["predicted"] / rows["published"] - 1.0)))
    print(f"measured TTFT, {len(rows):,} rows: median |error| as predicted {as_is:.1%}")
    print(f"{'scale per':<28} {'groups':>6} {'in sample':>10} {'by system':>10} {'by model':>10}")
    for keys in map(list, GROUPINGS):
        in_sample = float(np.median(scaled_error(rows, rows, keys)))
        print(f"{' x '.join(keys):<28} {rows.groupby(keys).ngroups:>6} {in_sample:>10.1%} "
              f"{held_out(rows, keys, 'system'):>10.1%} {held_out(rows, keys, 'model'):>10.1%}")


if __name__ == "__main__":
    main()
