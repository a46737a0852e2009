"""Capacity plans: the cheapest fleet that serves a demand at an SLO.

A plan names the demand, one SLO, and candidate building blocks (a unit: one NVL72 rack, or
a group of HGX nodes, with its prefill:decode split and parallelism). Planning runs in
three steps:
1. prune: simulate one unit of each candidate and find the most load it serves at the
   attainment target (the same search `factory-sim run` uses);
2. size: units needed = demand / unit capacity, rounded up; rank by $/hour;
3. confirm: simulate the best candidates at full scale at the demand, adding a unit until
   the attainment target holds.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ConfigDict

from factory_sim.catalog import check_kind, parse, read_mapping
from factory_sim.config.plan import PlanSpec
from factory_sim.progress import emit
from factory_sim.studies.assemble import fleet_layouts, parse_experiment
from factory_sim.studies.run import mean_lengths, run_experiment
from factory_sim.studies.uncertainty import draw
from factory_sim.studies.workers import map_jobs

_STRICT = ConfigDict(extra="forbid")

PLAN_COLUMNS = ("rank", "candidate", "hardware", "units", "purchase_units", "gpus", "power_mw", "usd_per_hour",
                "usd_per_m_output_tokens", "unit_capacity_req_per_s", "capacity_req_per_s", "headroom",
                "demand_req_per_s", "slo_attainment", "confirmed", "within_power_budget", "note")


def _experiment_raw(spec: PlanSpec, fleets: list[dict], load: dict) -> dict:
    raw = {"name": spec.name, "model": spec.model, "seed": spec.seed, "workload": spec.workload,
           "slo_tiers": [spec.slo.model_dump()], "fleets": fleets, "load": load}
    if spec.requests is not None:
        raw["requests"] = spec.requests
    if spec.cost:
        raw["cost"] = spec.cost
    return raw


def _scaled(fleet: dict, units: int) -> dict:
    f = copy.deepcopy(fleet)
    for role in ("prefill", "decode", "aggregated"):
        if f.get(role):
            f[role]["replicas"] = f[role].get("replicas", 1) * units
    return f


def load_plan(path: str | Path) -> PlanSpec:
    raw = read_mapping(path, "plan", "a mapping (model, workload, demand, slo, candidates)")
    check_kind(raw, PlanSpec, str(path), "plan")
    spec = parse(PlanSpec, raw, str(path))
    # every candidate must be a valid, fitting fleet before anything runs
    parse_experiment(_experiment_raw(spec, [c.model_dump(exclude_none=True) for c in spec.candidates],
                                     {"mode": "max_goodput"}), source=str(path))
    return spec


def make_plan(spec: PlanSpec, *, jobs: int | None = None, progress=None) -> pd.DataFrame:
    """Ranked candidate fleets for the demand; see the module docstring for the method."""
    fleets = [c.model_dump(exclude_none=True) for c in spec.candidates]
    unit_exp = parse_experiment(_experiment_raw(spec, fleets, {"mode": "max_goodput",
                                                               "target_attainment": spec.target_attainment}))
    mean_in, mean_out = mean_lengths(unit_exp)
    demand = spec.demand.rate_per_s or spec.demand.output_tokens_per_s / mean_out
    units_summary = run_experiment(unit_exp, jobs=jobs, progress=progress).summary.set_index("fleet")

    rows = []
    for fleet, plan in zip(fleets, fleet_layouts(unit_exp), strict=True):
        s = units_summary.loc[fleet["name"]]
        row = {"candidate": fleet["name"], "hardware": s["hardware"], "demand_req_per_s": demand,
               "unit_gpus": plan.gpus, "unit_usd_per_hour": s["usd_per_hour"], "unit_kw": s["power_kw"],
               "unit_gpus_by_hardware": [(hw.gpus_per_purchase_unit, g) for hw, g in plan.gpus_by_hardware()],
               "confirmed": False, "note": ""}
        if not s["feasible"]:
            rows.append({**row, "units": math.nan, "unit_capacity_req_per_s": 0.0, "note": s["note"]})
            continue
        cap = float(s["offered_req_per_s"])
        rows.append({**row, "units": math.ceil(demand / cap - 1e-9), "unit_capacity_req_per_s": cap})
    df = pd.DataFrame(rows)
    df["slo_attainment"] = math.nan
    df["usd_per_m_output_tokens"] = math.nan
    _size(df, spec)

    # confirm the cheapest feasible candidates at full scale, adding units until they hold
    order = df[df["units"].notna()].sort_values("usd_per_hour").index[: spec.confirm_top]
    for _attempt in range(3):
        todo = [i for i in order if not df.at[i, "confirmed"]]
        if not todo:
            break
        scaled = [_scaled(fleets[i], int(df.at[i, "units"])) for i in todo]
        exp = parse_experiment(_experiment_raw(spec, scaled, {"mode": "fixed", "rate_per_s": demand}))
        summary = run_experiment(exp, jobs=jobs).summary.set_index("fleet")
        for i in todo:
            att = float(summary.loc[df.at[i, "candidate"], "slo_attainment"])
            df.at[i, "slo_attainment"] = att
            df.at[i, "usd_per_m_output_tokens"] = float(summary.loc[df.at[i, "candidate"], "usd_per_m_output_tokens"])
            if att >= spec.target_attainment:
                df.at[i, "confirmed"] = True
            else:
                df.at[i, "note"] = f"one unit added: {int(df.at[i, 'units'])} units met {att:.1%} at full scale"
                df.at[i, "units"] += 1
        _size(df, spec)
    # cheapest first; fleets over the power budget, then candidates that cannot serve, last
    df = df.assign(_over=~df["within_power_budget"], _never=df["units"].isna())
    df = df.sort_values(["_never", "_over", "usd_per_hour"]).reset_index(drop=True)
    df["rank"] = range(1, len(df) + 1)
    for col in PLAN_COLUMNS:
        if col not in df:
            df[col] = math.nan
    return df[list(PLAN_COLUMNS)]


def _size(df: pd.DataFrame, spec: PlanSpec) -> None:
    df["gpus"] = df["units"] * df["unit_gpus"]
    # whole racks / nodes of each hardware kind in the fleet
    df["purchase_units"] = [
        sum(math.ceil(units * gpus / per_unit - 1e-9) for per_unit, gpus in by_hw) if units == units else math.nan
        for units, by_hw in zip(df["units"], df["unit_gpus_by_hardware"], strict=True)
    ]
    df["usd_per_hour"] = df["units"] * df["unit_usd_per_hour"]
    df["power_mw"] = df["units"] * df["unit_kw"] / 1000.0
    df["capacity_req_per_s"] = df["units"] * df["unit_capacity_req_per_s"]
    df["headroom"] = df["capacity_req_per_s"] / df["demand_req_per_s"] - 1.0
    budget = spec.power_budget_mw
    df["within_power_budget"] = df["units"].notna() & ((df["power_mw"] <= budget) if budget else True)


def budget_capacity(plan: pd.DataFrame, spec: PlanSpec) -> pd.DataFrame:
    """Under the power budget: the most demand each candidate serves with whole units."""
    if spec.power_budget_mw is None:
        return pd.DataFrame()
    df = plan[plan["units"].notna()].copy()
    unit_mw = df["power_mw"] / df["units"]
    df["units_in_budget"] = (spec.power_budget_mw / unit_mw).apply(math.floor)
    df["max_demand_req_per_s"] = df["units_in_budget"] * df["unit_capacity_req_per_s"]
    return df[["candidate", "hardware", "units_in_budget", "max_demand_req_per_s"]].sort_values(
        "max_demand_req_per_s", ascending=False)


def _plan_sample(args) -> pd.DataFrame:
    from factory_sim.studies.sweep import set_field

    index, raw, overrides = args
    raw = copy.deepcopy(raw)
    for path, value in overrides.items():
        set_field(raw, path, value)
    spec = parse(PlanSpec, raw, f"sample {index}")
    plan = make_plan(spec.model_copy(update={"confirm_top": 0}), jobs=1)
    emit("draw", "uncertainty draws")
    plan.insert(0, "sample", index)
    return plan


def plan_bands(raw: dict, spec: PlanSpec, samples: int, *,
               jobs: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each draw sized (without the full-scale confirmation) and p5/p50/p95 of units, GPUs, MW and $/hour.

    Returns (every draw's rows, bands per candidate).
    """
    base = {k: v for k, v in raw.items() if k != "uncertainty"}
    args = [(i, base, d) for i, d in enumerate(draw(spec.uncertainty, samples))]
    rows = pd.concat(map_jobs(_plan_sample, args, jobs), ignore_index=True)
    bands = []
    for candidate, g in rows.groupby("candidate", sort=False):
        row = {"candidate": candidate, "samples": len(g), "feasible_share": float(g["units"].notna().mean())}
        for col in ("units", "gpus", "power_mw", "usd_per_hour"):
            v = g[col].dropna().to_numpy(dtype=float)
            for q in (5, 50, 95):
                row[f"{col}_p{q}"] = float(np.percentile(v, q)) if len(v) else math.nan
        bands.append(row)
    return rows, pd.DataFrame(bands).sort_values("usd_per_hour_p50")
