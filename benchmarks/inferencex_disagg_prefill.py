"""Measured prefill throughput of InferenceX's disaggregated points against the simulator's prefill capacity.

A disaggregated point publishes its input tokens/s per prefill GPU (`input_tok_s_per_gpu`; the multinode schema's
notes verify out x n_decode + in x n_prefill == total x n_gpus). Where its median TTFT says the prefill pool was
saturated (prompts queued), that rate is the pool's capacity. The simulator's capacity of the same prefill worker is
its step budget of prompt tokens over the price of that step (StepTimeModel, the harness's stack), per GPU.

    python benchmarks/inferencex_disagg_prefill.py [--saturated-ttft-x 10] [--csv OUT.csv]
    python benchmarks/inferencex_disagg_prefill.py --grid 1 0.9 0.8 [--hardware gb200_nvl72 ...]
    python benchmarks/inferencex_disagg_prefill.py --prompt-grid 0 0.005 0.015

Prints, per hardware and framework, the median measured / simulated capacity over all disaggregated points and
over the saturated ones (median TTFT at least `--saturated-ttft-x` times the simulated time of one prompt's prefill
step on an idle worker). With --grid, scores the disaggregated points (validate's way) with each prefill efficiency
of their prefill workers (inferencex_harness.DYNAMO_PREFILL_EFFICIENCY) and prints median |error| (signed) per
quantity, in sample and with the factor picked (lowest median |error| of TTFT and tokens/s/GPU, summed) without each
hardware and without each month. With --prompt-grid, the same with a cost per prompt of each prefill step instead
(seconds added to the prefill workers' seq_overhead_s, the profile's speed otherwise).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from factory_sim.fidelity import inferencex
from factory_sim.fidelity.deployments import Skip
from factory_sim.fidelity.inferencex import RANDOM_RANGE_RATIO, filter_points, load_points, point_deployment
from factory_sim.perf.steptime import StepTimeModel


def prefill_capacity(p: dict) -> dict | None:
    """The simulated prefill worker of point p: capacity (input tokens/s per prefill GPU at a full step budget) and
    the step time of one prompt alone (s), or None when the point is not scoreable."""
    try:
        dep, _ = point_deployment(p)
    except Skip:
        return None
    pool = next((q for q in dep.fleet.pools if q.role == "prefill"), None)
    if pool is None:
        return None
    shape = pool.shape
    model = StepTimeModel(shape)
    prompt = 0.5 * (1.0 + RANDOM_RANGE_RATIO) * dep.isl  # the client's mean prompt length
    prompts = max(1.0, min(float(pool.max_batch), pool.max_batch_tokens / prompt))
    pairs = model.prefill_pairs(prompt, 0.0)
    full_s = model.step_time_s(prompts * prompt, prompts * pairs, prompts, 0.0, 0.0)
    one_s = model.step_time_s(prompt, pairs, 1.0, 0.0, 0.0)
    return {"sim_prefill_tok_s_per_gpu": prompts * prompt / full_s / shape.gpus,
            "sim_full_step_s": full_s, "sim_one_prompt_s": one_s, "prompts_per_step": prompts,
            "prefill_gpus": pool.gpus, "prefill_shape": shape.describe(), "stack": shape.stack.name}


def table(points: pd.DataFrame, saturated_x: float) -> pd.DataFrame:
    rows = []
    for p in points.to_dict("records"):
        cap = prefill_capacity(p)
        measured = p.get("input_tok_s_per_gpu")
        if cap is None or not measured or not np.isfinite(measured):
            continue
        ttft_s = float(p["ttft_ms"]) / 1e3 if np.isfinite(p.get("ttft_ms", np.nan)) else np.nan
        rows.append({"point_id": p["point_id"], "hardware": p["hardware"], "framework": p["framework"],
                     "model": p["model"], "isl": p["isl"], "osl": p["osl"], "concurrency": p["concurrency"],
                     "mtp": bool(p.get("mtp_or_spec")), "measured_prefill_tok_s_per_gpu": float(measured),
                     "measured_ttft_s": ttft_s, **cap})
    df = pd.DataFrame(rows)
    df["measured_over_sim"] = df.measured_prefill_tok_s_per_gpu / df.sim_prefill_tok_s_per_gpu
    df["saturated"] = df.measured_ttft_s >= saturated_x * df.sim_one_prompt_s
    return df


def summary(df: pd.DataFrame) -> pd.DataFrame:
    def agg(g: pd.DataFrame) -> pd.Series:
        s = g[g.saturated]
        return pd.Series({"points": len(g), "median_measured/sim": g.measured_over_sim.median(),
                          "saturated": len(s), "saturated_median_measured/sim": s.measured_over_sim.median(),
                          "saturated_p25": s.measured_over_sim.quantile(0.25),
                          "saturated_p75": s.measured_over_sim.quantile(0.75)})
    return df.groupby(["model", "hardware", "framework", "isl"]).apply(agg, include_groups=False)


QUANTITIES = ("output_tok_s_per_gpu", "interactivity_tok_s_user", "ttft_ms")


def _per_prompt(prompt_s: float):
    """A slower_prefill that leaves the speed and adds `prompt_s` per prompt of a step (seq_overhead_s)."""
    def prefill_stack(stack, factor):
        return stack.model_copy(update={"seq_overhead_s": stack.seq_overhead_s + prompt_s})
    return prefill_stack


def score_grid(points: pd.DataFrame, factors: list[float], per_prompt: bool = False) -> pd.DataFrame:
    """validate_inferencex's rows for every factor (column `factor`), scored rows only; `per_prompt`: the factors
    are seconds per prompt of a prefill step instead of speed factors."""
    frames = []
    for f in factors:
        if per_prompt:  # point_deployment calls slower_prefill when the efficiency is not 1
            inferencex.slower_prefill, inferencex.DYNAMO_PREFILL_EFFICIENCY = _per_prompt(f), -1.0
        else:
            inferencex.DYNAMO_PREFILL_EFFICIENCY = f  # point_deployment reads it per call
        df = inferencex.validate_inferencex(points, jobs=1)
        df = df[df.rel_error.notna()].copy()
        df["factor"], df["month"] = f, df.date.astype(str).str[:7]
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _cell(g: pd.DataFrame) -> str:
    return f"{g.rel_error.abs().median():6.1%} ({g.rel_error.median():+.1%}) n={len(g)}"


def _loss(g: pd.DataFrame) -> float:
    return sum(g[g.quantity == q].rel_error.abs().median() for q in ("output_tok_s_per_gpu", "ttft_ms"))


def held_out(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Each group of `key` scored at the factor that does best without it."""
    picked = []
    for value, _ in df.groupby(key):
        rest = df[df[key] != value]
        best = min(rest.factor.unique(), key=lambda f: _loss(rest[rest.factor == f]))
        print(f"  without {key}={value}: factor {best:g}")
        picked.append(df[(df[key] == value) & (df.factor == best)])
    return pd.concat(picked)


def print_grid(df: pd.DataFrame) -> None:
    for f, g in df.groupby("factor"):
        print(f"factor {f:g}: " + "; ".join(f"{q} {_cell(g[g.quantity == q])}" for q in QUANTITIES))
        for fw, h in g.groupby("framework"):
            print(f"    {fw}: " + "; ".join(f"{q} {_cell(h[h.quantity == q])}" for q in QUANTITIES))
    for key in ("hardware", "month"):
        if df[key].nunique() < 2:
            continue
        h = held_out(df, key)
        print(f"held out by {key}: " + "; ".join(f"{q} {_cell(h[h.quantity == q])}" for q in QUANTITIES))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--saturated-ttft-x", type=float, default=10.0)
    ap.add_argument("--csv", help="write the per-point table here")
    ap.add_argument("--grid", type=float, nargs="+", help="prefill efficiencies to score the points with")
    ap.add_argument("--prompt-grid", type=float, nargs="+", help="seconds per prompt of a prefill step to score with")
    ap.add_argument("--hardware", action="append", help="only points of this hardware (repeatable)")
    args = ap.parse_args()
    points = load_points()
    points = filter_points(points[points.disaggregated.astype(str).str.lower() == "true"], hardware=args.hardware)
    if args.grid or args.prompt_grid:
        grid = score_grid(points, args.grid or args.prompt_grid, per_prompt=bool(args.prompt_grid))
        if args.csv:
            grid.to_csv(args.csv, index=False)
        print_grid(grid)
        return
    df = table(points, args.saturated_ttft_x)
    if args.csv:
        df.to_csv(args.csv, index=False)
    pd.set_option("display.width", 200)
    print(f"{len(df)} scoreable disaggregated points; saturated: median TTFT >= {args.saturated_ttft_x:g} x one "
          "prompt's simulated prefill step")
    print(summary(df).round(3).to_string())
    s = df[df.saturated]
    print(f"\nall: median measured/sim {df.measured_over_sim.median():.3f}; saturated ({len(s)}): "
          f"{s.measured_over_sim.median():.3f}")


if __name__ == "__main__":
    main()
