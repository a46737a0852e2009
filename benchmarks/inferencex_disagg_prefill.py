"""Measured prefill throughput of InferenceX's disaggregated points against the simulator's prefill capacity.

A disaggregated point publishes its input tokens/s per prefill GPU (`input_tok_s_per_gpu`; the multinode schema's
notes verify out x n_decode + in x n_prefill == total x n_gpus). Where its median TTFT says the prefill pool was
saturated (prompts queued), that rate is the pool's capacity. The simulator's capacity of the same prefill worker is
its step budget of prompt tokens over the price of that step (StepTimeModel, the harness's stack), per GPU.

    python benchmarks/inferencex_disagg_prefill.py [--saturated-ttft-x 10] [--csv OUT.csv]
    python benchmarks/inferencex_disagg_prefill.py --grid 1 0.9 0.8 [--hardware gb200_nvl72 ...]
    python benchmarks/inferencex_disagg_prefill.py --prompt-grid 0 0.005 0.015
    python benchmarks/inferencex_disagg_prefill.py --grid 1 0.8 0.6 --rounds 3 --csv grid.csv; ... --scores grid.csv
    python benchmarks/inferencex_disagg_prefill.py --decode-side --rounds 3

Prints, per hardware and framework, the median measured / simulated capacity over all disaggregated points and
over the saturated ones (median TTFT at least `--saturated-ttft-x` times the simulated time of one prompt's prefill
step on an idle worker). With --grid, scores the disaggregated points (validate's way) with each prefill efficiency
of their prefill workers (inferencex_harness.DYNAMO_PREFILL_EFFICIENCY) and prints median |error| (signed) per
quantity, in sample and with the factor picked (lowest median |error| of TTFT and tokens/s/GPU, summed) without each
hardware and without each month, then the same with a factor per framework and prompt length (1k or 8k; the measured
rate over the simulated one is 0.27-0.47 at 1k prompts and 0.47-0.97 at 8k). With --prompt-grid, the same with a
cost per prompt of each prefill step instead (seconds added to the prefill workers' seq_overhead_s, the profile's
speed otherwise). With --decode-side, where the simulated prompts wait, by framework and clients: the prefill queue,
the prefill, and the decode side between the KV's arrival and the first decode step (a decode side that admits only
into free KV makes prompts wait there), with the decode KV cache's fill were every client's whole context in it.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from factory_sim.fidelity import inferencex
from factory_sim.fidelity.deployments import Skip
from factory_sim.fidelity.inferencex import RANDOM_RANGE_RATIO, filter_points, load_points, point_deployment
from factory_sim.perf.memory import plan_memory
from factory_sim.perf.steptime import StepTimeModel
from factory_sim.sim.engine import simulate


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
CLIENT_BANDS = ((1, 16), (17, 256), (257, 10**9))


def decode_side(p: dict, rounds: int) -> dict | None:
    """Where point p's simulated prompts wait: the median time (of the rounds after the first) in the prefill
    queue, prefilling, and on the decode side between the KV's arrival and the first decode step; and how full the
    decode pool's KV cache would be with every client's whole context in it (the most it holds)."""
    try:
        dep, _ = point_deployment(p)
    except Skip:
        return None
    c, n = dep.concurrency, rounds * dep.concurrency
    rng = np.random.default_rng(0)
    tokens_in, tokens_out = inferencex.benchmark_lengths(dep.isl, n, rng), inferencex.benchmark_lengths(dep.osl, n, rng)
    tr = simulate(dep.fleet, tokens_in, tokens_out, concurrency=c, seed=0).trace
    steady = slice(c, n)
    decode = next(q for q in dep.fleet.pools if q.role == "decode")
    mem = plan_memory(decode.shape)
    context = float(np.mean(tokens_in + tokens_out))
    return {"point_id": p["point_id"], "hardware": p["hardware"], "framework": p["framework"], "isl": p["isl"],
            "concurrency": c, "measured_ttft_ms": float(p["ttft_ms"]),
            "sim_ttft_ms": 1e3 * float(np.median((tr.first_token_s - tr.arrival_s)[steady])),
            "prefill_queue_ms": 1e3 * float(np.median((tr.prefill_start_s - tr.arrival_s)[steady])),
            "prefill_ms": 1e3 * float(np.median((tr.prefill_end_s - tr.prefill_start_s)[steady])),
            "decode_wait_ms": 1e3 * float(np.median((tr.decode_start_s - tr.prefill_end_s - tr.kv_transfer_s)[steady])),
            "decode_wait_p90_ms": 1e3 * float(np.quantile((tr.decode_start_s - tr.prefill_end_s
                                                           - tr.kv_transfer_s)[steady], 0.9)),
            "decode_kv_full": c * context * mem.kv_bytes_per_token / (decode.replicas * mem.kv_capacity_bytes)}


def print_decode_side(points: pd.DataFrame, rounds: int) -> pd.DataFrame:
    rows = [r for p in points[points.ttft_ms.notna()].to_dict("records") if (r := decode_side(p, rounds))]
    df = pd.DataFrame(rows)
    df["band"] = pd.cut(df.concurrency, [lo - 0.5 for lo, _ in CLIENT_BANDS] + [np.inf],
                        labels=[f"{lo}-{hi}" if hi < 10**9 else f"{lo}+" for lo, hi in CLIENT_BANDS])
    df["measured/sim"] = df.measured_ttft_ms / df.sim_ttft_ms
    cols = ["measured/sim", "sim_ttft_ms", "prefill_queue_ms", "prefill_ms", "decode_wait_ms", "decode_wait_p90_ms",
            "decode_kv_full"]
    pd.set_option("display.width", 200)
    print(f"{len(df)} disaggregated points that publish TTFT, {rounds} requests per client; medians:")
    print(df.groupby(["framework", "band"], observed=True)[cols].median().round(3).to_string())
    print(df.groupby(["framework", "band"], observed=True).size().rename("points").to_string())
    return df


def _per_prompt(prompt_s: float):
    """A slower_prefill that leaves the speed and adds `prompt_s` per prompt of a step (seq_overhead_s)."""
    def prefill_stack(stack, factor):
        return stack.model_copy(update={"seq_overhead_s": stack.seq_overhead_s + prompt_s})
    return prefill_stack


def score_grid(points: pd.DataFrame, factors: list[float], per_prompt: bool = False,
               rounds: int = inferencex.SIM_ROUNDS, headroom: bool = False) -> pd.DataFrame:
    """validate_inferencex's rows for every factor (column `factor`), scored rows only; `per_prompt`: the factors
    are seconds per prompt of a prefill step instead of speed factors; `headroom`: they are the clients per decode
    slot of the decode side's batch cap (inferencex_harness.DYNAMO_DECODE_HEADROOM; 0: no cap)."""
    frames = []
    shipped = (inferencex.DYNAMO_DECODE_HEADROOM if headroom
               else 0.0 if per_prompt else inferencex.DYNAMO_PREFILL_EFFICIENCY)
    for f in factors:
        if headroom:
            inferencex.DYNAMO_DECODE_HEADROOM = f
        elif per_prompt:  # point_deployment calls slower_prefill when the efficiency is not 1
            inferencex.slower_prefill, inferencex.DYNAMO_PREFILL_EFFICIENCY = _per_prompt(f), -1.0
        else:
            inferencex.DYNAMO_PREFILL_EFFICIENCY = f  # point_deployment reads it per call
        df = inferencex.validate_inferencex(points, jobs=1, rounds=rounds)
        df = df[df.rel_error.notna()].copy()
        df["factor"], df["month"], df["as_shipped"] = f, df.date.astype(str).str[:7], f == shipped
        df["group"] = df.framework.astype(str) + " " + np.where(df.isl.astype(int) >= 4096, "8k", "1k")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _cell(g: pd.DataFrame) -> str:
    return f"{g.rel_error.abs().median():6.1%} ({g.rel_error.median():+.1%}) n={len(g)}"


def _loss(g: pd.DataFrame) -> float:
    return sum(g[g.quantity == q].rel_error.abs().median() for q in ("output_tok_s_per_gpu", "ttft_ms"))


def held_out(df: pd.DataFrame, key: str, per_group: bool = False) -> pd.DataFrame:
    """Each group of `key` scored at the factor that does best without it; `per_group`: a factor per framework and
    prompt length (column `group`, independent fits since no point is in two groups)."""
    if per_group:
        return pd.concat(held_out(g, key) for _, g in df.groupby("group"))
    picked = []
    for value, _ in df.groupby(key):
        rest = df[df[key] != value]
        if rest.empty:  # the group's only value: nothing to pick from, so the factor as shipped
            picked.append(df[(df[key] == value) & df.as_shipped])
            continue
        best = min(rest.factor.unique(), key=lambda f: _loss(rest[rest.factor == f]))
        print(f"  {df.group.iloc[0] if df.group.nunique() == 1 else ''} without {key}={value}: factor {best:g}")
        picked.append(df[(df[key] == value) & (df.factor == best)])
    return pd.concat(picked)


def in_sample_per_group(df: pd.DataFrame) -> pd.DataFrame:
    """Each framework and prompt length at the factor that does best on its own points."""
    picked = []
    for group, g in df.groupby("group"):
        best = min(g.factor.unique(), key=lambda f: _loss(g[g.factor == f]))
        print(f"  {group}: factor {best:g}")
        picked.append(g[g.factor == best])
    return pd.concat(picked)


def _line(g: pd.DataFrame) -> str:
    return "; ".join(f"{q} {_cell(g[g.quantity == q])}" for q in QUANTITIES)


def print_grid(df: pd.DataFrame) -> None:
    for f, g in df.groupby("factor"):
        print(f"factor {f:g}: " + _line(g))
        for group, h in g.groupby("group"):
            print(f"    {group}: " + _line(h))
    for key in ("hardware", "month"):
        if df[key].nunique() < 2:
            continue
        print(f"held out by {key}: " + _line(held_out(df, key)))
    print("a factor per framework and prompt length (1k: prompts under 4,096 tokens; 8k: longer):")
    print("in sample: " + _line(in_sample_per_group(df)))
    for key in ("hardware", "month"):
        if df[key].nunique() < 2:
            continue
        print(f"held out by {key}: " + _line(held_out(df, key, per_group=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--saturated-ttft-x", type=float, default=10.0)
    ap.add_argument("--csv", help="write the per-point table here")
    ap.add_argument("--grid", type=float, nargs="+", help="prefill efficiencies to score the points with")
    ap.add_argument("--prompt-grid", type=float, nargs="+", help="seconds per prompt of a prefill step to score with")
    ap.add_argument("--headroom-grid", type=float, nargs="+",
                    help="clients per decode slot of the decode side's batch cap to score with (0: no cap)")
    ap.add_argument("--hardware", action="append", help="only points of this hardware (repeatable)")
    ap.add_argument("--rounds", type=int, default=inferencex.SIM_ROUNDS,
                    help="requests per client simulated with --grid/--prompt-grid (validate's: 10)")
    ap.add_argument("--decode-side", action="store_true",
                    help="where the simulated prompts wait (prefill queue, decode side) and how full the decode KV is")
    ap.add_argument("--scores", help="print the grid of a --csv written by an earlier --grid run, simulating nothing")
    args = ap.parse_args()
    if args.scores:
        print_grid(pd.read_csv(args.scores))
        return
    points = load_points()
    points = filter_points(points[points.disaggregated.astype(str).str.lower() == "true"], hardware=args.hardware)
    if args.decode_side:
        df = print_decode_side(points, args.rounds)
        if args.csv:
            df.to_csv(args.csv, index=False)
        return
    if args.grid or args.prompt_grid or args.headroom_grid:
        grid = score_grid(points, args.grid or args.prompt_grid or args.headroom_grid,
                          per_prompt=bool(args.prompt_grid), rounds=args.rounds, headroom=bool(args.headroom_grid))
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
