"""What request-path latency do InferenceX's median TTFTs show, held out by hardware and by date?

The stack profiles' front-end latency (`frontend_latency_s`) and MoE prefill set-up latency
(`prefill_moe_layer_latency_s` per MoE layer, `prefill_moe_latency_s_per_gparam` per MoE layer and
billion routed expert parameters) were fitted to the measured points of another
benchmark harness (aiconfigurator's `silicon_sample.csv`). Both are pure latency on a request's
way to its first token: outside the GPU steps, the same for every request of a point. So each
TTFT-publishing InferenceX point is simulated once with both at zero (the GPU part: queueing,
steps, prefill), and the median TTFT at any request latency L is that median plus L. (In the
benchmark's closed loop L also acts as the clients' think time, lowering the engine's load by
L / end-to-end latency, under 1% for these points; `factory-sim validate` on the points checks
the picked setting without that approximation.)

On a grid of (front-end latency f in ms, share m of the profile's MoE set-up latency), one
setting for every framework (InferenceX drives every engine with the same client), it prints the
median |error| (median signed error) of median TTFT: in sample, and held out: without each
hardware (then each month) in turn, the setting picked from the rest predicts that group's
points. Then the errors by clients, framework and model at the setting picked in sample.
The GPU part carries the rest of the harness (inferencex_harness: SGLang's request polling,
Dynamo's first token, DeepSeek-R1's prefill MoE stall), none of it fitted here.

    python benchmarks/inferencex_ttft.py --jobs 2 [--out gpu_part.csv] [--no-recv-polls]

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd

from factory_sim.fidelity import inferencex as ix

FRONTEND_MS = (0.0, 2.5, 5.0, 10.0, 20.0, 40.0)
MOE_SHARE = (0.0, 0.25, 0.5, 0.75, 1.0)
CLIENT_BANDS = ((1, 4), (5, 16), (17, 64), (65, 256), (257, 10**9))


def _gpu_part(args) -> dict | None:
    """The point's simulated median TTFT without request latency, and the profile's latencies."""
    p, rounds, recv_polls = args
    published = ix.published_values(p).get("ttft_ms")
    if published is None:
        return None
    try:
        dep, _ = ix.point_deployment(p)
    except Exception:  # noqa: BLE001 - unscoreable points are left out, as validate does
        return None
    st = ix.measured_row(p)[1]["stack"]  # the profile as shipped (the deployment carries the harness's)
    model = dep.fleet.pools[0].shape.model
    gparams = model.routed_expert_gparams_per_layer
    moe_layer_s = st.prefill_moe_layer_latency_s + st.prefill_moe_latency_s_per_gparam * gparams
    frontend_ms, moe_ms = st.frontend_latency_s * 1e3, moe_layer_s * model.moe_layers * 1e3
    update = {"frontend_latency_s": 0.0, "prefill_moe_layer_latency_s": 0.0, "prefill_moe_latency_s_per_gparam": 0.0}
    if not recv_polls:
        update["scheduler_recv_interval_steps"] = 0
    pools = tuple(replace(pl, shape=replace(pl.shape, stack=pl.shape.stack.model_copy(update=update)))
                  for pl in dep.fleet.pools)
    try:
        pred = ix.simulate_point(replace(dep, fleet=replace(dep.fleet, pools=pools)), rounds=rounds)
    except Exception:  # noqa: BLE001
        return None
    return {"point_id": p["point_id"], "hardware": p["hardware"], "framework": p["framework"],
            "model": p["model"], "isl": int(p["isl"]), "concurrency": int(p["concurrency"]),
            "month": (ix.point_date(p) or "")[:7], "stack": st.name, "published_ms": published[0],
            "gpu_ms": pred["ttft_ms"], "profile_frontend_ms": frontend_ms, "profile_moe_ms": moe_ms}


def predicted(df: pd.DataFrame, frontend_ms: float, share: float) -> pd.Series:
    return df["gpu_ms"] + frontend_ms + share * df["profile_moe_ms"]


def _abs_err(df: pd.DataFrame, setting: tuple[float, float]) -> float:
    return float(np.median(np.abs(predicted(df, *setting) / df["published_ms"] - 1)))


def _pick(df: pd.DataFrame) -> tuple[float, float]:
    return min(((f, m) for f in FRONTEND_MS for m in MOE_SHARE), key=lambda s: _abs_err(df, s))


def _figures(err: pd.Series) -> str:
    return f"{np.median(np.abs(err)):.1%} ({np.median(err):+.1%}, {len(err)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=ix.SIM_ROUNDS, help="requests per client simulated (>= 3)")
    parser.add_argument("--out", help="write each point's simulated GPU part to this CSV")
    parser.add_argument("--no-recv-polls", action="store_true",
                        help="simulate SGLang polling for requests at every step (inferencex.SGLANG_RECV_INTERVAL off)")
    args = parser.parse_args()
    pts = ix.load_points()
    with ProcessPoolExecutor(args.jobs) as pool:
        tasks = [(p, args.rounds, not args.no_recv_polls) for p in pts.to_dict("records")]
        rows = [r for r in pool.map(_gpu_part, tasks, chunksize=8) if r]
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    print(f"TTFT points scored: {len(df)}; requests per client simulated: {args.rounds}")
    shipped = (df["gpu_ms"] + df["profile_frontend_ms"] + df["profile_moe_ms"]) / df["published_ms"] - 1
    print(f"profiles as shipped (their front-end and MoE set-up latency): {_figures(shipped)}")
    print("median |error| by setting (front-end ms x share of the profiles' MoE set-up latency):")
    print("  f \\ m  " + "".join(f"{m:>9g}" for m in MOE_SHARE))
    for f in FRONTEND_MS:
        print(f"  {f:6g}  " + "".join(f"{_abs_err(df, (f, m)):>9.1%}" for m in MOE_SHARE))
    shipped_setting = (ix.INFERENCEX_FRONTEND_LATENCY_S * 1e3, ix.INFERENCEX_MOE_SETUP_SHARE)
    print(f"InferenceX setting as shipped, f {shipped_setting[0]:g} ms, m {shipped_setting[1]:g}: "
          f"{_figures(predicted(df, *shipped_setting) / df['published_ms'] - 1)}")
    best = _pick(df)
    print(f"in sample, f {best[0]:g} ms, m {best[1]:g}: {_figures(predicted(df, *best) / df['published_ms'] - 1)}")
    for key, label in (("hardware", "leave-one-hardware-out"), ("month", "leave-one-month-out")):
        held, picks = [], {}
        for k, g in df.groupby(key):
            picks[k] = _pick(df[df[key] != k])
            held.append(predicted(g, *picks[k]) / g["published_ms"] - 1)
        print(f"  {label}: {_figures(pd.concat(held))}; settings picked {picks}")
    err = predicted(df, *best) / df["published_ms"] - 1
    band = pd.cut(df["concurrency"], [lo - 0.5 for lo, _ in CLIENT_BANDS] + [CLIENT_BANDS[-1][1]],
                  labels=[f"{lo}-{hi}" if hi < 10**9 else f"{lo}+" for lo, hi in CLIENT_BANDS])
    for name, key in (("clients", band), ("framework", df["framework"]), ("model", df["model"])):
        print(f"by {name} (in-sample setting):")
        for k, e in err.groupby(key, observed=True):
            print(f"  {k!s:<22} {_figures(e)}")


if __name__ == "__main__":
    main()
