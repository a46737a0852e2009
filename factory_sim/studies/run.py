"""Run an experiment: simulate each fleet, find its load, and report the table users read.

For `load.mode: max_goodput` each fleet is simulated at a handful of loads (the same seed
at every load, so arrivals only stretch in time) and, per SLO tier, the highest load whose
SLO attainment stays at or above the target is kept. A simulation answers every tier at
once, so the tiers share runs. Fleets run in parallel processes.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from factory_sim.config.experiment import Experiment
from factory_sim.config.workload import ClosedLoopArrivals
from factory_sim.perf.estimate import capacity_req_per_s
from factory_sim.perf.step_backends import step_time_model
from factory_sim.perf.steptime import prefill_attention_pairs
from factory_sim.progress import emit
from factory_sim.results.cost import (
    fleet_power_kw,
    fleet_usd_per_hour,
    tokens_per_s_per_mw,
    usd_per_million_token_columns,
    usd_per_million_tokens,
)
from factory_sim.results.metrics import summarize, summarize_by
from factory_sim.results.trace import DONE, FAILED, PENDING, REASON_NAMES, REJECTED, TIMED_OUT, Trace
from factory_sim.sim.engine import FleetLayout, SimResult, simulate
from factory_sim.studies.assemble import fault_settings, fleet_layouts, unpriced_sampling_stacks
from factory_sim.studies.load_search import LoadSearch
from factory_sim.studies.workers import map_jobs, worker_count
from factory_sim.workload.generate import generate_requests
from factory_sim.workload.lengths import mean_length

if TYPE_CHECKING:  # pandas is imported where a frame is built: a simulation alone never needs it
    import pandas as pd

SUMMARY_COLUMNS = (
    "fleet",
    "tier",
    "hardware",
    "gpus",
    "offered_req_per_s",
    "concurrency",
    "tokens_per_s_per_gpu",
    "tokens_per_s_per_user_p50",
    "ttft_p50_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p99_s",
    "slo_attainment",
    "goodput_tokens_per_s",
    "output_tokens_per_s",
    "power_kw",
    "usd_per_hour",
    "usd_per_m_output_tokens",
    "usd_per_m_goodput_tokens",
    "usd_per_m_input_tokens",
    "usd_per_m_total_tokens",
    "tokens_per_s_per_mw",
    "cost_ratio_to_reference",
    "reference_fleet",
    "requests_measured",
    # 0 when the fleet did not keep up with the load: rates are then over the served interval
    "steady_state",
    # what became of every request of the reported run (offered = the others added up)
    "requests_offered",
    "requests_served",
    "requests_rejected",
    "requests_timed_out",
    "requests_unfinished",
    "served_share",
    "rejected_share",
    "timed_out_share",
    "failed_share",
    "unfinished_share",
    "lost_share",  # refused, timed out or failed: demand the fleet turned away
    "feasible",
    "note",
    "prefix_hit_rate",
    "prefill_tokens_saved_per_s",
    # with autoscaling: what was held and billed (usd_per_hour is then the run's average)
    "gpus_held_mean",
    "gpu_hours_billed",
    "scale_events",
    # with faults on: what they cost, against the same fleet and load without faults
    "availability",
    "availability_long_run",
    "faults_in_run",
    "requests_retried",
    "requests_failed",
    "goodput_tokens_per_s_no_faults",
    "goodput_lost_fraction",
    "usd_per_m_goodput_tokens_no_faults",
)


@dataclass
class Point:
    """One simulation of one fleet at one load, with its summary per SLO tier."""

    fleet: str
    load: float
    sim: SimResult
    summaries: dict[str, dict[str, float]]
    fault_free: Point | None = None  # with faults on: the same fleet, load and requests without them

    @property
    def e2e_p50_s(self) -> float:
        tr = self.sim.trace
        done = tr.done
        return float(np.median(tr.finish_s[done] - tr.arrival_s[done])) if done.any() else 0.0


@dataclass
class RunResult:
    rows: list[dict]  # one summary row per fleet x tier, as `run_fleet` reports them
    reference: str  # the fleet whose cost the others are compared with
    points: dict[tuple[str, str], Point] = field(default_factory=dict)  # (fleet, tier) -> reported point
    simulations: int = 0

    @functools.cached_property
    def summary(self) -> pd.DataFrame:
        """The table users read, built when first asked for: a run that only simulates (a
        benchmark, a worker) never imports pandas."""
        import pandas as pd

        df = pd.DataFrame(self.rows)
        for col in SUMMARY_COLUMNS:
            if col not in df:
                df[col] = np.nan
        ref_cost = df[df["fleet"] == self.reference].set_index("tier")["usd_per_m_goodput_tokens"]
        df["reference_fleet"] = self.reference
        df["cost_ratio_to_reference"] = df["usd_per_m_goodput_tokens"] / df["tier"].map(ref_cost)
        return df[list(SUMMARY_COLUMNS)]

    def traces_frame(self) -> pd.DataFrame:
        """Per-request traces of the reported points, with fleet and tier columns."""
        import pandas as pd

        frames = []
        for (fleet, tier), point in self.points.items():
            df = point.sim.trace.to_frame()
            df.insert(0, "tier", tier)
            df.insert(0, "fleet", fleet)
            df.insert(2, "load", point.load)
            frames.append(df)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def scaling_frame(self, bins: int = 96) -> pd.DataFrame:
        """For autoscaled fleets: replicas held per pool at every change, and the offered load in
        `bins` intervals of the run, as (fleet, tier, series, t_s, value) rows."""
        import pandas as pd

        rows = []
        for (fleet, tier), point in self.points.items():
            sim = point.sim
            if sim.scaling is None:
                continue
            for pool_index, steps in sim.scaling.held.items():
                series = f"{sim.fleet.pools[pool_index].name} replicas held"
                rows += [(fleet, tier, series, t, float(n)) for t, n in steps]
            arrival = sim.trace.arrival_s[np.isfinite(sim.trace.arrival_s)]
            if arrival.size:
                counts, edges = np.histogram(arrival, bins=bins, range=(0.0, float(sim.sim_end_s)))
                width = edges[1] - edges[0]
                rows += [(fleet, tier, "offered req/s", float(t), float(c / width))
                         for t, c in zip(edges[:-1] + width / 2, counts, strict=True)]
        return pd.DataFrame(rows, columns=["fleet", "tier", "series", "t_s", "value"])

    def faults_frame(self) -> pd.DataFrame:
        """For runs with faults: every unit failure, with the replicas it hit."""
        import pandas as pd

        rows = [(fleet, tier, t, hw, kind, unit, hit)
                for (fleet, tier), point in self.points.items() if point.sim.faults is not None
                for t, hw, kind, unit, hit in point.sim.faults.events]
        return pd.DataFrame(rows, columns=["fleet", "tier", "t_s", "hardware", "kind", "unit", "replicas_hit"])


def _closed_loop(exp: Experiment) -> bool:
    return isinstance(exp.workload_spec.arrivals, ClosedLoopArrivals)


def simulate_point(exp: Experiment, plan: FleetLayout, load: float, *, cap_overload: bool = True,
                   e2e_hint_s: float | None = None, faults: bool = True) -> Point:
    """Simulate `plan` at `load` (req/s open loop, clients closed loop) and summarize every tier.

    The run is long enough that its arrival span covers `min_span_latencies` median
    end-to-end latencies (see MeasurementSpec): sized up front from `e2e_hint_s` (a nearby
    load's latency) when given, and re-run once if the run itself shows it was too short.
    With `cap_overload`, the clock stops when no request still in flight could meet any
    tier's SLO any more, so an overloaded fleet is not simulated draining.
    """
    m = exp.measurement
    n = exp.workload_spec.requests
    if e2e_hint_s and not _closed_loop(exp):
        n = max(n, min(m.max_requests, int(math.ceil(load * m.min_span_latencies * e2e_hint_s * 1.1))))
    point = _simulate_once(exp, plan, load, n, cap_overload, faults)
    if point.e2e_p50_s > 0 and n < m.max_requests:
        span = _arrival_span(point.sim.trace)
        needed = m.min_span_latencies * point.e2e_p50_s
        if span < needed:
            n_more = min(m.max_requests, int(math.ceil(n * needed / max(span, 1e-9) * 1.1)))
            if n_more > n:
                point = _simulate_once(exp, plan, load, n_more, cap_overload, faults)
    return point


def _arrival_span(trace) -> float:
    arrivals = trace.arrival_s[np.isfinite(trace.arrival_s)]
    return float(arrivals.max() - arrivals.min()) if arrivals.size else 0.0


def _simulate_once(exp: Experiment, plan: FleetLayout, load: float, n: int, cap_overload: bool,
                   faults: bool = True) -> Point:
    spec = exp.workload_spec
    rng = np.random.default_rng(exp.seed)
    classes = {}
    if exp.traffic_classes:  # each request drawn into a class, independently of its arrival and lengths
        draw = np.random.default_rng([exp.seed, 7]).choice(len(exp.traffic_classes), size=n, p=exp.class_shares())
        classes = {"slo_class": draw, "latency_critical": exp.latency_critical_classes(),
                   "slo_class_names": [c.name for c in exp.traffic_classes]}
    if faults and exp.faults_on:
        classes["faults"] = fault_settings(exp, plan)
    if _closed_loop(exp):
        batch = generate_requests(spec, rng, n=n)
        sim = simulate(plan, batch.input_tokens, batch.output_tokens, concurrency=int(load),
                       think_time_s=spec.arrivals.think_time_s, seed=exp.seed, **classes)
    else:
        batch = generate_requests(spec, rng, rate_per_s=load, n=n)
        classes |= _prefix_and_sessions(batch)
        until = None
        if cap_overload and "next_turn" not in classes:  # (a session's later turns have no arrival time yet)
            # a request still running this long after the last arrival misses every tier
            longest = int(batch.output_tokens.max()) - 1
            slack = max(t.ttft_s + longest * t.tpot_s for t in (exp.traffic_classes or exp.slo_tiers))
            until = float(batch.arrival_s[-1]) + slack
        sim = simulate(plan, batch.input_tokens, batch.output_tokens, arrival_s=batch.arrival_s,
                       seed=exp.seed, until_s=until, **classes)
    trims = measurement_trims(exp, sim.trace)
    summaries = {
        name: summarize(sim.trace, slo, gpus=plan.gpus, warmup_s=trims[0], cooldown_s=trims[1])
        for name, slo in exp.slo_evaluations
    }
    return Point(fleet=plan.name, load=load, sim=sim, summaries=summaries)


def measurement_trims(exp: Experiment, trace) -> tuple[float, float]:
    """Seconds of warm-up and drain left out of the measurement (the experiment's fractions of
    the arrival span). A run so short that no request arrives between them (a handful of
    requests) is measured on the request that arrived nearest the middle of that window."""
    arrival = trace.arrival_s[np.isfinite(trace.arrival_s)]
    if not arrival.size:
        return 0.0, 0.0
    first, last = float(arrival.min()), float(arrival.max())
    span = last - first
    m = exp.measurement
    warmup_s, cooldown_s = m.warmup_fraction * span, m.cooldown_fraction * span
    start, end = first + warmup_s, last - cooldown_s
    if np.any((arrival >= start) & (arrival <= end)):
        return warmup_s, cooldown_s
    middle = float(arrival[np.argmin(np.abs(arrival - (start + end) / 2))])
    shrink = 1.0 - 1e-9  # so that rounding keeps `middle` inside [first + warm-up, last - drain]
    return (middle - first) * shrink, (last - middle) * shrink


def _prefix_and_sessions(batch) -> dict:
    """What the engine needs of a batch beyond lengths and times: block hashes and session links."""
    out = {}
    if batch.block_hashes is not None:
        out |= {"block_hashes": batch.block_hashes, "block_tokens": batch.block_tokens}
    if batch.next_turn is not None:
        out |= {"next_turn": batch.next_turn, "think_s": batch.think_s}
    return out


def mean_lengths(exp: Experiment) -> tuple[float, float]:
    """Mean input and output tokens of the experiment's workload (drawn once for traces and
    sessions, whose prompts grow turn by turn)."""
    spec = exp.workload_spec
    if spec.input_tokens is not None and spec.output_tokens is not None and spec.arrivals.kind != "sessions":
        return mean_length(spec.input_tokens), mean_length(spec.output_tokens)
    batch = generate_requests(spec, np.random.default_rng(exp.seed))
    return float(batch.input_tokens.mean()), float(batch.output_tokens.mean())


def _lowest_latencies(plan: FleetLayout, mean_in: float, mean_out: float) -> tuple[float, float]:
    """Fastest TPOT (batch of one, at the mean context) and TTFT (one mean prompt alone)."""
    exit_role = "decode" if plan.disaggregated else "aggregated"
    entry_role = "prefill" if plan.disaggregated else "aggregated"
    tpot = min(
        step_time_model(p.shape).min_decode_step_s(mean_in + mean_out / 2) for p in plan.pools if p.role == exit_role)
    ttft = min(
        float(step_time_model(p.shape).step_time_s(
            prefill_tokens=min(mean_in, p.max_batch_tokens),
            prefill_attn_pairs=prefill_attention_pairs(p.shape, min(mean_in, p.max_batch_tokens), 0.0),
            prefill_seqs=1.0)) * math.ceil(mean_in / p.max_batch_tokens)
        for p in plan.pools if p.role == entry_role)
    return tpot, ttft


def _infeasible_note(exp: Experiment, plan: FleetLayout, tier, best: Point | None) -> str:
    mean_in, mean_out = mean_lengths(exp)
    tpot, ttft = _lowest_latencies(plan, mean_in, mean_out)
    if tpot > tier.tpot_s:
        return (f"cannot meet TPOT {tier.tpot_s * 1e3:g} ms at any load: lowest reachable TPOT is "
                f"{tpot * 1e3:.1f} ms (one sequence per step)")
    if ttft > tier.ttft_s:
        return (f"cannot meet TTFT {tier.ttft_s:g} s at any load: one mean prompt alone takes {ttft:.2f} s")
    att = best.summaries[tier.name]["slo_attainment"] if best else float("nan")
    best_text = f"best {att:.0%}" if math.isfinite(att) else "no request measured"
    return (f"attainment stays below {exp.load.target_attainment:.0%} at every load tried "
            f"({best_text}); lowest reachable TPOT {tpot * 1e3:.1f} ms, TTFT {ttft:.2f} s")


def _sampling_note(exp: Experiment, index: int) -> str:
    """Said under a fleet's rows when the workload samples but a stack of the fleet prices it as free."""
    unpriced = unpriced_sampling_stacks(exp, index)
    if not unpriced:
        return ""
    return (f"the workload samples, but {', '.join(unpriced)} price{'s' if len(unpriced) == 1 else ''} no cost of "
            "sampling (stochastic_sampling_step_s 0: no sampling run measured), so these steps are priced as "
            "greedy ones")


def _row(exp: Experiment, plan: FleetLayout, tier, point: Point | None, note: str, sampling_note: str = "") -> dict:
    gpus_by_hw = plan.gpus_by_hardware()
    usd_h = fleet_usd_per_hour(gpus_by_hw, exp.cost)
    kw = fleet_power_kw(gpus_by_hw)
    row = {
        "fleet": plan.name,
        "tier": tier.name,
        "hardware": "+".join(hw.name for hw, _ in gpus_by_hw),
        "gpus": plan.gpus,
        "power_kw": kw,
        "usd_per_hour": usd_h,
        "feasible": point is not None,
        "note": note,
    }
    if point is None:
        return row
    s = point.summaries[tier.name]
    if exp.traffic_classes:
        row["note"] = _per_class_note(exp, point)
    row.update(
        offered_req_per_s=s["offered_req_per_s"],
        concurrency=point.load if _closed_loop(exp) else np.nan,
        tokens_per_s_per_gpu=s["tokens_per_s_per_gpu"],
        tokens_per_s_per_user_p50=s["tokens_per_s_per_user_p50"],
        ttft_p50_s=s["ttft_p50_s"],
        ttft_p99_s=s["ttft_p99_s"],
        tpot_p50_s=s["tpot_p50_s"],
        tpot_p99_s=s["tpot_p99_s"],
        slo_attainment=s["slo_attainment"],
        goodput_tokens_per_s=s["goodput_tokens_per_s"],
        output_tokens_per_s=s["output_tokens_per_s"],
        **usd_per_million_token_columns(usd_h, s),
        tokens_per_s_per_mw=tokens_per_s_per_mw(s["output_tokens_per_s"], kw),
        requests_measured=s["requests"],
        prefix_hit_rate=s["prefix_hit_rate"],
        prefill_tokens_saved_per_s=s["prefill_tokens_saved_per_s"],
    )
    row["steady_state"] = bool(s["steady_state"])
    demand, lost_note = demand_columns(point.sim.trace)
    row.update(demand)
    notes = [row["note"], lost_note, "" if s["steady_state"] else _overload_note(s, _arrival_span(point.sim.trace)),
             sampling_note]
    row["note"] = "; ".join(n for n in notes if n)
    if point.sim.scaling is not None:
        row.update(_scaling_columns(exp, plan, point, s))
    if exp.faults_on:
        row.update(_fault_columns(exp, plan, tier, point, usd_h))
    return row


def demand_columns(trace: Trace) -> tuple[dict, str]:
    """What became of every request a run was offered, as counts and shares, and a note naming
    what was lost and why ("" when nothing was).

    A request is offered when it arrived, or when its client gave up before sending it (a
    session's later turn after an unserved one); a closed loop's requests that were never
    sent before the clock stopped were not. Lost are the refused, timed-out and failed ones;
    requests still in flight when a run stopped early (a load search stops a run once no
    request in flight can meet its SLO) are counted apart, as unfinished.
    """
    outcome = trace.outcome
    offered_mask = np.isfinite(trace.arrival_s) | (outcome != PENDING)
    counts = {name: int(np.count_nonzero(offered_mask & (outcome == code)))
              for name, code in (("served", DONE), ("rejected", REJECTED), ("timed_out", TIMED_OUT),
                                 ("failed", FAILED), ("unfinished", PENDING))}
    offered = int(np.count_nonzero(offered_mask))
    lost = counts["rejected"] + counts["timed_out"] + counts["failed"]
    columns: dict = {"requests_offered": offered} | {f"requests_{k}": v for k, v in counts.items()}
    columns |= {f"{k}_share": (v / offered if offered else float("nan")) for k, v in counts.items()}
    columns["lost_share"] = lost / offered if offered else float("nan")
    if not lost:
        return columns, ""
    parts = []
    for name, code in (("rejected", REJECTED), ("timed out", TIMED_OUT), ("failed", FAILED)):
        mask = offered_mask & (outcome == code)
        if mask.any():
            reasons, n = np.unique(trace.reason[mask], return_counts=True)
            why = ", ".join(f"{REASON_NAMES[int(r)]} {c}" for r, c in zip(reasons, n, strict=True)
                            if REASON_NAMES[int(r)])
            parts.append(f"{int(mask.sum())} {name}" + (f" ({why})" if why else ""))
    return columns, f"lost {lost} of {offered} requests ({lost / offered:.1%}): " + ", ".join(parts)


def _overload_note(s: dict, span_s: float) -> str:
    """Why a run never reached steady state, and what its rates are then."""
    if s["rate_interval_s"] != s["window_s"]:  # fell behind: rates over the served interval
        return (f"never reached steady state: the fleet fell behind, serving {s['served_rate_ratio']:.1%} of the "
                f"output tokens per second its measured requests brought while their time to first token grew "
                f"{s['ttft_growth']:.3g} s per second; throughput, goodput and cost are over the "
                f"{s['rate_interval_s']:.4g} s in which it served them, and latencies grow with the run's length")
    return (f"never reached steady state: its arrivals span {span_s:.3g} s, less than its median request takes "
            f"({s['e2e_p50_s']:.3g} s), so the run ended before the fleet filled; give it more requests")


def _scaling_columns(exp: Experiment, plan: FleetLayout, point: Point, s: dict) -> dict:
    """Cost of an autoscaled fleet: the GPU-hours it held, not its largest size."""
    sim = point.sim
    span_s = sim.sim_end_s
    held: dict[str, list] = {}
    for i, pool in enumerate(plan.pools):
        hw = pool.shape.hardware
        gpu_s = sim.scaling.gpu_s.get(i, pool.gpus * span_s)
        held.setdefault(hw.name, [hw, 0.0])[1] += gpu_s
    gpus_mean = [(hw, gpu_s / span_s) for hw, gpu_s in held.values()] if span_s > 0 else []
    usd_h = fleet_usd_per_hour(gpus_mean, exp.cost)
    mean = sum(g for _, g in gpus_mean)
    return {
        "gpus": sum(p.replica_slots * p.shape.gpus for p in plan.pools),  # the most it may hold
        "tokens_per_s_per_gpu": s["output_tokens_per_s"] / mean if mean > 0 else float("nan"),
        "gpus_held_mean": mean,
        "gpu_hours_billed": sum(gpu_s for _, gpu_s in held.values()) / 3600.0,
        "scale_events": len(sim.scaling.events),
        "usd_per_hour": usd_h,
        "power_kw": fleet_power_kw(gpus_mean),
        **usd_per_million_token_columns(usd_h, s),
    }


def _fault_columns(exp: Experiment, plan: FleetLayout, tier, point: Point, usd_h: float) -> dict:
    """Availability and what the faults cost, against the same fleet at the same load without them."""
    from factory_sim.sim.faults import long_run_availability  # (runs with faults only)

    fault_plan = fault_settings(exp, plan)
    if point.fault_free is None:  # one twin serves every tier of the point
        point.fault_free = _simulate_once(exp, plan, point.load, len(point.sim.trace),
                                          cap_overload=exp.load.mode != "fixed", faults=False)
    s, s0 = point.summaries[tier.name], point.fault_free.summaries[tier.name]
    pools = list(zip(plan.pools, fault_plan.restart_s, strict=True))
    hardware = {p.shape.hardware.name: p.shape.hardware for p in plan.pools}
    good, good0 = s["goodput_tokens_per_s"], s0["goodput_tokens_per_s"]
    return {
        "availability": point.sim.availability,
        "availability_long_run": (long_run_availability(fault_plan, pools, hardware)
                                  if fault_plan.draws_random_faults() else float("nan")),
        "faults_in_run": len(point.sim.faults.events),
        # over the whole run, like the faults: a failure before the measured window still costs retries
        "requests_retried": int(np.count_nonzero(point.sim.trace.retries)),
        "goodput_tokens_per_s_no_faults": good0,
        "goodput_lost_fraction": 1.0 - good / good0 if good0 > 0 else float("nan"),
        "usd_per_m_goodput_tokens_no_faults": usd_per_million_tokens(usd_h, good0),
    }


def _per_class_note(exp: Experiment, point: Point) -> str:
    """SLO attainment of each traffic class, over the measured window."""
    tr = point.sim.trace
    warmup_s, cooldown_s = measurement_trims(exp, tr)
    targets = exp.slo_evaluations[0][1]
    by_class = summarize_by(tr, targets, tr.slo_class, [c.name for c in exp.traffic_classes],
                            gpus=point.sim.fleet.gpus, warmup_s=warmup_s, cooldown_s=cooldown_s)
    return "per class: " + ", ".join(f"{name} {att:.1%}" for name, att in by_class["slo_attainment"].items())


def run_fleet(exp: Experiment, index: int, progress: Callable[[str], None] | None = None):
    """All tiers of one fleet: (rows, {(fleet, tier): point}, simulations run)."""
    plan = fleet_layouts(exp)[index]
    sampling_note = _sampling_note(exp, index)  # once per fleet, for every feasible row
    tiers = exp.slo_tiers
    rows, points = [], {}
    if exp.load.mode == "fixed":
        if _closed_loop(exp):
            load = float(exp.load.concurrency or exp.workload_spec.arrivals.concurrency)
        else:  # None: the workload's own rate (or a trace's own times)
            load = exp.load.rate_per_s
        point = simulate_point(exp, plan, load, cap_overload=False)
        emit("simulation", plan.name, total=1, done=True)
        for tier in tiers:
            rows.append(_row(exp, plan, tier, point, "", sampling_note))
            points[(plan.name, tier.name)] = point
        return rows, points, 1
    search = LoadSearch(exp, plan, progress, simulate_point)
    mean_in, mean_out = mean_lengths(exp)
    cap = capacity_req_per_s(plan, mean_in, mean_out)
    guess, ceiling = (64.0, None) if search.integer else (0.7 * cap, 1.05 * cap)
    for tier in tiers:
        best = search.search(tier.name, guess, ceiling)
        if best is None:
            tried = max(search.cache.values(), key=lambda p: p.summaries[tier.name]["slo_attainment"])
            rows.append(_row(exp, plan, tier, None, _infeasible_note(exp, plan, tier, tried)))
        else:
            point = search.at(best)
            rows.append(_row(exp, plan, tier, point, "", sampling_note))
            points[(plan.name, tier.name)] = point
    emit("simulation", plan.name, n=0, done=True)
    return rows, points, len(search.cache)


def _run_fleet_quiet(args):
    exp, index = args
    return run_fleet(exp, index, None)


def run_experiment(exp: Experiment, *, jobs: int | None = None,
                   progress: Callable[[str], None] | None = None) -> RunResult:
    """Every fleet x tier; fleets in parallel processes when jobs > 1."""
    n = len(exp.fleets)
    if worker_count(jobs, n) > 1:
        results = map_jobs(_run_fleet_quiet, [(exp, i) for i in range(n)], jobs)
        if progress:
            for (rows, _, sims) in results:
                progress(f"{rows[0]['fleet']}: {sims} simulations")
    else:
        results = [run_fleet(exp, i, progress) for i in range(n)]
    rows, points, sims = [], {}, 0
    for r, p, s in results:
        rows.extend(r)
        points.update(p)
        sims += s
    return RunResult(rows=rows, reference=exp.reference, points=points, simulations=sims)


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
