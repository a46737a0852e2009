"""Does a fitted MTP acceptance lower held-out error on InferenceX's MTP points?

Scores every scoreable MTP point (DeepSeek-R1 with `mtp_or_spec`) at each acceptance of a
grid, then per framework (TensorRT-LLM, SGLang) picks the acceptance with the lowest median
|log error| over output tokens/s/GPU and interactivity, (a) on all its points (in sample)
and (b) without each hardware in turn, predicting that hardware's points at the acceptance
picked from the others (leave-one-hardware-out), and (c) the same without each month.
Prints the median |error| and signed error per quantity at the shipped acceptance and for
(a), (b), (c).

    python benchmarks/inferencex_mtp.py --jobs 2

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd

from factory_sim.fidelity import inferencex as ix
from factory_sim.fidelity.mlperf import MTP_ACCEPTANCE

GRID = (0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
QS = ("output_tok_s_per_gpu", "interactivity_tok_s_user")


def _score(args):
    p, rounds = args
    out = []
    try:
        dep, drafts = ix.point_deployment(p)
    except Exception:  # noqa: BLE001 - unscoreable points are left out, as validate does
        return out
    if not drafts:
        return out
    pub = {q: v for q, (v, _) in ix.published_values(p).items()}
    for a in GRID:
        pools = tuple(replace(pl, shape=replace(pl.shape, mtp_acceptance=a)) if pl.shape.mtp_draft_tokens else pl
                      for pl in dep.fleet.pools)
        try:
            pred = ix.simulate_point(replace(dep, fleet=replace(dep.fleet, pools=pools)), rounds=rounds)
        except Exception:  # noqa: BLE001
            continue
        for q in QS:
            if q in pub:
                out.append({"point_id": p["point_id"], "hardware": p["hardware"], "framework": p["framework"],
                            "month": (ix.point_date(p) or "")[:7], "acceptance": a, "quantity": q,
                            "log_error": float(np.log(pred[q] / pub[q]))})
    return out


def _pick(df: pd.DataFrame) -> float:
    return float(df.groupby("acceptance")["log_error"].apply(lambda e: np.median(np.abs(e))).idxmin())


def _figures(df: pd.DataFrame) -> str:
    parts = []
    for q in QS:
        e = np.exp(df.loc[df["quantity"] == q, "log_error"]) - 1
        parts.append(f"{q} {np.median(np.abs(e)):.1%} ({np.median(e):+.1%}, {len(e)})")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="requests per client simulated (>= 3)")
    args = parser.parse_args()
    pts = ix.load_points()
    pts = pts[pts["mtp_or_spec"].astype(str).str.lower().isin(["true", "1", "1.0"])]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = [r for part in pool.map(_score, [(p, args.rounds) for p in pts.to_dict("records")]) for r in part]
    df = pd.DataFrame(rows)
    df["engine"] = df["framework"].str.replace("dynamo-", "", regex=False)
    shipped = min(GRID, key=lambda a: abs(a - MTP_ACCEPTANCE))
    print(f"MTP points scored: {df['point_id'].nunique()}; requests per client simulated: {args.rounds}")
    for engine, g in df.groupby("engine"):
        print(f"{engine}: {g['point_id'].nunique()} points")
        print(f"  shipped acceptance {shipped:g}: {_figures(g[g['acceptance'] == shipped])}")
        a = _pick(g)
        print(f"  in sample, acceptance {a:g}: {_figures(g[g['acceptance'] == a])}")
        for key, label in (("hardware", "leave-one-hardware-out"), ("month", "leave-one-month-out")):
            held = []
            picks = {}
            for k, gk in g.groupby(key):
                rest = g[g[key] != k]
                ak = _pick(rest) if len(rest) else shipped
                picks[k] = ak
                held.append(gk[gk["acceptance"] == ak])
            print(f"  {label} (acceptance per held-out group {picks}): {_figures(pd.concat(held))}")


if __name__ == "__main__":
    main()
