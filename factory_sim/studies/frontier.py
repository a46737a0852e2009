"""Throughput-interactivity frontiers and the cost curves drawn from them.

Each fleet is simulated as benchmarks drive a server: a closed loop of a fixed number of
clients, each sending its next request when the previous one finishes, at a ladder of
concurrencies. Every concurrency gives one operating point:
output tokens/s per GPU (what the owner sells) against median tokens/s per user (what each
user sees). The upper-right envelope of those points, across all fleets of the same
hardware, is the frontier InferenceMAX-style charts plot; dividing the fleet's price by its
throughput turns it into cost per million output tokens at each interactivity. Comparing
two hardware kinds at the same interactivity is then a ratio of two curves, which is how
vendor claims such as "15x lower cost per token" can be checked: they hold at some
interactivities and not at others.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from factory_sim.catalog import parse
from factory_sim.config.experiment import Experiment
from factory_sim.config.workload import ClosedLoopArrivals
from factory_sim.errors import ConfigError
from factory_sim.progress import emit
from factory_sim.results.cost import (
    fleet_power_kw,
    fleet_usd_per_hour,
    tokens_per_s_per_mw,
    usd_per_million_token_columns,
)
from factory_sim.studies.assemble import fleet_layouts
from factory_sim.studies.run import simulate_point
from factory_sim.studies.workers import map_jobs

REQUESTS_PER_CLIENT = 6  # each client's requests per run; measuring skips the first and last share

FRONTIER_COLUMNS = ("fleet", "hardware", "gpus", "concurrency", "tokens_per_s_per_gpu",
                    "tokens_per_s_per_user_p50", "ttft_p50_s", "tpot_p50_s", "usd_per_hour",
                    "usd_per_m_output_tokens", "tokens_per_s_per_mw", "on_frontier")


def concurrency_ladder(max_concurrency: int, points: int) -> list[int]:
    """Client counts from 1 to `max_concurrency`, evenly spaced in log, without repeats."""
    ladder = np.unique(np.round(np.geomspace(1, max(max_concurrency, 1), points)).astype(int))
    return [int(c) for c in ladder]


def _closed_loop(exp: Experiment, clients: int) -> Experiment:
    spec = exp.workload_spec
    closed = spec.model_copy(update={"arrivals": ClosedLoopArrivals(kind="closed_loop", concurrency=clients),
                                     "requests": max(spec.requests, REQUESTS_PER_CLIENT * clients)})
    raw = exp.model_dump()
    raw["workload"], raw["requests"] = closed.model_dump(), None
    return parse(Experiment, raw, f"{exp.name} at {clients} clients")


def _fleet_points(args) -> list[dict]:
    exp, index, points = args
    plan = fleet_layouts(exp)[index]
    exit_role = "decode" if plan.disaggregated else "aggregated"
    max_clients = sum(p.max_batch * p.replicas for p in plan.pools if p.role == exit_role)
    usd_h = fleet_usd_per_hour(plan.gpus_by_hardware(), exp.cost)
    kw = fleet_power_kw(plan.gpus_by_hardware())
    hardware = "+".join(hw.name for hw, _ in plan.gpus_by_hardware())
    if any(p.shape.mtp_draft_tokens for p in plan.pools):
        hardware += " mtp"  # its own curve: the same hardware with multi-token prediction
    tier = exp.slo_evaluations[0][0]
    rows = []
    ladder = concurrency_ladder(max_clients, points)
    emit("simulation", plan.name, n=0, total=len(ladder))
    for clients in ladder:
        s = simulate_point(_closed_loop(exp, clients), plan, float(clients)).summaries[tier]
        emit("simulation", plan.name, note=f"{clients} clients")
        if not s["tokens_per_s_per_gpu"] > 0 or not math.isfinite(s["tokens_per_s_per_user_p50"]):
            continue
        rows.append({
            "fleet": plan.name, "hardware": hardware, "gpus": plan.gpus, "concurrency": clients,
            "tokens_per_s_per_gpu": s["tokens_per_s_per_gpu"],
            "tokens_per_s_per_user_p50": s["tokens_per_s_per_user_p50"],
            "ttft_p50_s": s["ttft_p50_s"], "tpot_p50_s": s["tpot_p50_s"], "usd_per_hour": usd_h,
            "usd_per_m_output_tokens": usd_per_million_token_columns(usd_h, s)["usd_per_m_output_tokens"],
            "tokens_per_s_per_mw": tokens_per_s_per_mw(s["output_tokens_per_s"], kw),
        })
    return rows


def pareto_mask(throughput: np.ndarray, interactivity: np.ndarray) -> np.ndarray:
    """Points no other point beats on both throughput and interactivity."""
    order = np.argsort(-interactivity, kind="stable")
    keep = np.zeros(len(order), dtype=bool)
    best = -np.inf
    for i in order:
        if throughput[i] > best:
            keep[i] = True
            best = throughput[i]
    return keep


def frontier(exp: Experiment, *, points: int = 12, jobs: int | None = None) -> pd.DataFrame:
    """Operating points of every fleet, with `on_frontier` marking each hardware kind's envelope."""
    if exp.workload_spec.arrivals.kind == "sessions":
        raise ConfigError("workload.arrivals.kind",
                          "the frontier drives a closed loop of independent clients; a sessions workload "
                          "brings its own arrivals and turn structure, which the frontier would drop. Use a "
                          "workload with length distributions (e.g. chat_1k1k), or `factory-sim run` for it")
    parts = map_jobs(_fleet_points, [(exp, i, points) for i in range(len(exp.fleets))], jobs)
    df = pd.DataFrame([r for part in parts for r in part], columns=list(FRONTIER_COLUMNS[:-1]))
    df["on_frontier"] = False
    for _, g in df.groupby("hardware"):
        mask = pareto_mask(g["tokens_per_s_per_gpu"].to_numpy(), g["tokens_per_s_per_user_p50"].to_numpy())
        df.loc[g.index[mask], "on_frontier"] = True
    return df[list(FRONTIER_COLUMNS)]


def cost_at_interactivity(points: pd.DataFrame, interactivity: np.ndarray,
                          column: str = "usd_per_m_output_tokens") -> pd.DataFrame:
    """$ per million output tokens (or another column of the frontier points, such as
    tokens_per_s_per_mw) of each hardware's frontier when users need >= x tokens/s.

    Between frontier points the value is interpolated linearly in log-log space. Below the
    slowest interactivity a hardware was run at, its cheapest point serves those users too
    (faster than they need); above its fastest, the value is NaN: it cannot serve them.
    """
    x = np.asarray(interactivity, dtype=float)
    out = {"tokens_per_s_per_user": x}
    for hw, g in points[points["on_frontier"]].groupby("hardware"):
        g = g.sort_values("tokens_per_s_per_user_p50")
        xs, ys = np.log(g["tokens_per_s_per_user_p50"].to_numpy()), np.log(g[column].to_numpy())
        value = np.exp(np.interp(np.log(x), xs, ys))  # np.interp holds the end values outside
        value[x > np.exp(xs[-1]) * (1 + 1e-9)] = np.nan
        out[hw] = value
    return pd.DataFrame(out)


def ratio_table(curves: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The cost curves with, per other hardware, how many times its cost the reference's is
    (columns `REFERENCE/HARDWARE`)."""
    table = curves.copy()
    for hw in curves.columns[1:]:
        if hw != reference:
            table[f"{reference}/{hw}"] = curves[reference] / curves[hw]
    return table


def crossings(curves: pd.DataFrame, reference: str, factors=(15.0, 35.0),
              per_mw: pd.DataFrame | None = None) -> pd.DataFrame:
    """For each hardware and factor: the lowest interactivity at which the reference costs >= factor x more,
    and (given the tokens/s-per-MW curves) how many times the reference's tokens per second per
    megawatt the hardware delivers there."""
    rows = []
    x = curves["tokens_per_s_per_user"].to_numpy()
    for hw in curves.columns[1:]:
        if hw == reference:
            continue
        ratio = curves[reference].to_numpy() / curves[hw].to_numpy()
        for factor in factors:
            hit = np.flatnonzero(ratio >= factor)
            finite = ratio[np.isfinite(ratio)]
            mw_ratio = np.nan
            if per_mw is not None and len(hit):
                mw_ratio = float(per_mw[hw].to_numpy()[hit[0]] / per_mw[reference].to_numpy()[hit[0]])
            rows.append({
                "hardware": hw, "factor": factor,
                "from_tokens_per_s_per_user": float(x[hit[0]]) if len(hit) else np.nan,
                "tokens_per_s_per_mw_ratio_there": mw_ratio,
                "max_ratio": float(finite.max()) if len(finite) else np.nan,
                "max_ratio_at_tokens_per_s_per_user": float(x[np.isfinite(ratio)][np.argmax(finite)])
                if len(finite) else np.nan,
            })
    return pd.DataFrame(rows)


def plot_frontier(points: pd.DataFrame, path_png, path_svg=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    for hw, g in points.groupby("hardware"):
        f = g[g["on_frontier"]].sort_values("tokens_per_s_per_user_p50")
        line, = ax1.plot(f["tokens_per_s_per_user_p50"], f["tokens_per_s_per_gpu"], "-o", ms=4, label=hw)
        ax1.scatter(g["tokens_per_s_per_user_p50"], g["tokens_per_s_per_gpu"], s=10, alpha=0.3,
                    color=line.get_color())
        ax2.plot(f["tokens_per_s_per_user_p50"], f["usd_per_m_output_tokens"], "-o", ms=4, label=hw)
    ax1.set_xlabel("interactivity (output tokens/s per user, median)")
    ax1.set_ylabel("throughput (output tokens/s per GPU)")
    ax1.set_title("Throughput vs interactivity")
    ax2.set_xlabel("interactivity (output tokens/s per user, median)")
    ax2.set_ylabel("cost ($ per million output tokens)")
    ax2.set_yscale("log")
    ax2.set_title("Cost per million output tokens")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path_png, dpi=120, format="png")
    if path_svg is not None:
        fig.savefig(path_svg, format="svg")
    plt.close(fig)
