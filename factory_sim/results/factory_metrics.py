"""A factory's metrics from its partitions' sums: by cell, tenant, model, hardware, time window.

The unit of bookkeeping is (cell, window, tenant): every partition's summary gives one row
per tenant in it, and the front door's ledger adds the arrivals it rejected. Every grouping
is a sum over units, so each number below adds up the same requests whichever way it is
cut. Percentiles are exact (results/quantiles.py), drawn from the partitions on demand.

Definitions (docs/DESIGN.md): SLO attainment is the share of *arrivals* (including those
rejected at the front door) whose TTFT and TPOT met their tenant's targets; goodput is the
output tokens per second of those; cost per million tokens is the group's cost over its
tokens; tokens per MW divide output tokens/s by the group's provisioned all-in megawatts.
A tenant's cost is its share of each cell's cost, in proportion to its output tokens there.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import numpy as np
import pandas as pd

from factory_sim.results.partitions import LATENCIES, SUM_COLUMNS
from factory_sim.results.quantiles import Query, exact_percentiles

GROUPINGS = ("factory", "cell", "tenant", "model", "hardware", "window")
PERCENTILES = (50.0, 90.0, 99.0)

METRIC_COLUMNS = (
    "by", "group", "span_s", "arrivals", "served", "rejected_at_front_door", "rejected_at_cells", "timed_out",
    "failed", "unfinished", "failed_over", "retried", "slo_attainment", "goodput_req_per_s",
    "goodput_tokens_per_s", "output_tokens_per_s", "input_tokens_per_s",
    "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s",
    "gpus", "provisioned_mw", "energy_mwh", "energy_usd", "usd", "usd_per_hour", "usd_per_m_output_tokens",
    "usd_per_m_goodput_tokens", "tokens_per_s_per_mw",
)


def factory_metrics(units: pd.DataFrame, costs: pd.DataFrame, cells: pd.DataFrame,
                    windows: list[tuple[float, float]], level0: dict[Hashable, tuple[np.ndarray, np.ndarray]],
                    fetch: Callable[[list[Query]], dict[Query, object]]) -> pd.DataFrame:
    """One row per (grouping, group).

    `units`: one row per (cell, window, tenant) with SUM_COLUMNS and `rejected_at_front_door`;
    `costs`: one row per (cell, window) with usd, energy_mwh, energy_usd; `cells`: indexed by
    cell, with model, hardware, gpus, provisioned_mw; `level0[(cell, window, tenant, latency)]`:
    the first radix histogram of that unit's latencies; `fetch` answers radix queries whose
    unit is such a tuple.
    """
    units = units.copy()
    units["model"] = units["cell"].map(cells["model"])
    units["hardware"] = units["cell"].map(cells["hardware"])
    units["factory"] = "all"
    units = _allocate_costs(units, costs)
    duration_s = windows[-1][1] - windows[0][0] if windows else 0.0
    groups: list[tuple[str, Hashable, pd.DataFrame]] = []
    for by in GROUPINGS:
        for value, part in units.groupby(by, sort=True, observed=True):
            groups.append((by, value, part))
    # exact percentiles for every (group, latency), in one set of passes over the partitions
    units_of, counts = {}, {}
    for by, value, part in groups:
        keys = list(zip(part["cell"], part["window"], part["tenant"], strict=True))
        for latency in LATENCIES:
            units_of[(by, value, latency)] = [(*k, latency) for k in keys]
            counts[(by, value, latency)] = int(part[f"{latency}_count"].sum())
    pct = exact_percentiles(units_of, counts, level0, fetch, PERCENTILES)
    rows = []
    for by, value, part in groups:
        span_s = (windows[value][1] - windows[value][0]) if by == "window" else duration_s
        in_group = cells.loc[sorted(set(part["cell"]))] if by != "tenant" else None
        if by == "window":
            in_group = cells
        rows.append(_row(by, value, part, span_s, in_group, {lat: pct[(by, value, lat)] for lat in LATENCIES}))
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


def _allocate_costs(units: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """Each (cell, window)'s cost and energy shared among its tenants by output tokens
    (by requests when it produced none, equally when it received none)."""
    units = units.merge(costs, on=["cell", "window"], how="left")
    by = units.groupby(["cell", "window"])
    for basis in ("output_tokens_done", "requests"):
        total = by[basis].transform("sum")
        units[f"_{basis}_share"] = np.where(total > 0, units[basis] / total.where(total > 0, 1), np.nan)
    share = units["_output_tokens_done_share"].fillna(units["_requests_share"])
    share = share.fillna(1.0 / by["tenant"].transform("size"))
    for col in ("usd", "energy_mwh", "energy_usd"):
        units[col] = units[col].fillna(0.0) * share
    return units.drop(columns=["_output_tokens_done_share", "_requests_share"])


def _row(by: str, value, part: pd.DataFrame, span_s: float, cells: pd.DataFrame | None,
         pct: dict[str, dict[float, float]]) -> dict:
    s = {c: float(part[c].sum()) for c in (*SUM_COLUMNS, "rejected_at_front_door", "usd", "energy_mwh",
                                           "energy_usd")}
    arrivals = s["requests"] + s["rejected_at_front_door"]
    out_per_s = s["output_tokens_done"] / span_s if span_s > 0 else float("nan")
    good_per_s = s["goodput_tokens"] / span_s if span_s > 0 else float("nan")
    gpus = float(cells["gpus"].sum()) if cells is not None else float("nan")
    mw = float(cells["provisioned_mw"].sum()) if cells is not None else float("nan")
    row = {
        "by": by, "group": value if by != "window" else int(value), "span_s": span_s,
        "arrivals": arrivals, "served": s["done"], "rejected_at_front_door": s["rejected_at_front_door"],
        "rejected_at_cells": s["rejected"], "timed_out": s["timed_out"], "failed": s["failed"],
        "unfinished": s["unfinished"], "failed_over": s["routed_in"], "retried": s["retried"],
        "slo_attainment": s["met_slo"] / arrivals if arrivals else float("nan"),
        "goodput_req_per_s": s["met_slo"] / span_s if span_s > 0 else float("nan"),
        "goodput_tokens_per_s": good_per_s, "output_tokens_per_s": out_per_s,
        "input_tokens_per_s": s["input_tokens_done"] / span_s if span_s > 0 else float("nan"),
        "gpus": gpus, "provisioned_mw": mw, "energy_mwh": s["energy_mwh"], "energy_usd": s["energy_usd"],
        "usd": s["usd"], "usd_per_hour": s["usd"] / (span_s / 3600.0) if span_s > 0 else float("nan"),
        "usd_per_m_output_tokens": _per_million(s["usd"], s["output_tokens_done"]),
        "usd_per_m_goodput_tokens": _per_million(s["usd"], s["goodput_tokens"]),
        "tokens_per_s_per_mw": out_per_s / mw if mw > 0 else float("nan"),
    }
    for latency in LATENCIES:
        stem = latency.removesuffix("_s")
        for p, v in pct[latency].items():
            row[f"{stem}_p{p:g}_s"] = v
    return row


def _per_million(usd: float, tokens: float) -> float:
    return usd / (tokens / 1e6) if tokens > 0 else float("inf")
