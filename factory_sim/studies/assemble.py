"""From an experiment to what the simulator runs: fleet layouts with memory checked, fault settings.

The schema (config/experiment.py) checks what a YAML file can say on its own; this module
checks what needs the model, the hardware and the memory model: that every pool's weights
fit, that faults name hardware in use, that a prefix cache has prompt hashes to find. All of
it runs before any simulation, so a mistake costs a second, not an hour.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from factory_sim.catalog import builtin_path, check_kind, parse, read_mapping
from factory_sim.config.bounds import MAX_SIM_S, SIM_TIME
from factory_sim.config.experiment import (
    AGGREGATED,
    DECODE,
    FAULT_KINDS,
    PREFILL,
    Experiment,
    FaultSpec,
    FleetSpec,
    PoolSpec,
    PrefixCacheSpec,
    at_path,
    default_attention_precision,
)
from factory_sim.config.hardware import load_hardware
from factory_sim.config.stack import SoftwareStack, load_stack
from factory_sim.config.workload import ClosedLoopArrivals, TraceArrivals
from factory_sim.errors import ConfigError
from factory_sim.perf.memory import plan_memory
from factory_sim.perf.shape import ReplicaShape
from factory_sim.perf.stacks import override_stack, stack_for_sampling
from factory_sim.results.cost import usd_per_gpu_hour
from factory_sim.sim.engine import FleetLayout, PoolLayout
from factory_sim.workload.arrivals import mean_rate_per_s
from factory_sim.workload.generate import generate_requests

if TYPE_CHECKING:  # imported by the experiments that have them: a run without them starts sooner
    from factory_sim.sim.autoscaler import AutoscaleSettings
    from factory_sim.sim.faults import FaultSettings
    from factory_sim.sim.prefix_cache import PrefixCacheSettings


def fleet_layouts(exp: Experiment) -> list[FleetLayout]:
    """Every fleet as replicas with memory checked; raises ConfigError naming the pool."""
    return [_fleet_layout(exp, i, f) for i, f in enumerate(exp.fleets)]

def _fleet_layout(exp: Experiment, i: int, fleet: FleetSpec) -> FleetLayout:
    model = exp.model_spec
    pools = []
    for role in (PREFILL, DECODE, AGGREGATED):
        for where, spec in fleet.pools_of(role):
            path = f"fleets[{i}].{where}"
            hw = exp.hardware_of(fleet, spec, where)
            stack = stack_for_sampling(_pool_stack(i, fleet, spec, path, hw), exp.workload_spec.sampling)
            precision = spec.precision or fleet.precision
            attention_precision = (spec.attention_precision or fleet.attention_precision
                                   or default_attention_precision(precision))
            ep = spec.ep if spec.ep is not None else (spec.tp * spec.dp_attention if model.is_moe else 1)
            mtp = (spec.mtp or fleet.mtp) if role != PREFILL else None  # drafting speeds up decode only
            shape = ReplicaShape(
                hardware=hw, model=model, stack=stack, precision=precision,
                attention_precision=attention_precision, kv_precision=spec.kv_precision or fleet.kv_precision,
                tp=spec.tp, dp_attention=spec.dp_attention, ep=ep, pp=spec.pp,
                mtp_draft_tokens=mtp.draft_tokens if mtp else 0,
                mtp_acceptance=mtp.acceptance_for(stack.mtp_acceptance) if mtp else 0.0,
                mtp_acceptance_sd=mtp.acceptance_sd_for(stack.mtp_acceptance_sd) if mtp else 0.0,
                path=path,
            )
            plan_memory(shape)  # refuses a shape that does not fit, naming the pool
            label = f"{fleet.name}/{role}" if where == role else f"{fleet.name}/{role}/{spec.name or hw.name}"
            if any(p.name == label for p in pools):
                label = f"{fleet.name}/{where}"
            pools.append(PoolLayout(name=label, role=role, shape=shape, replicas=spec.replicas,
                                  max_batch=spec.max_batch, max_batch_tokens=spec.max_batch_tokens,
                                  max_queue=spec.max_queue, queue_timeout_s=spec.queue_timeout_s,
                                  prefix_cache=(prefix_cache_settings(fleet.prefix_cache)
                                                if fleet.prefix_cache is not None and role != DECODE else None),
                                  autoscale=_autoscale_settings(exp, spec, shape, f"{path}.autoscale"),
                                  usd_per_hour_per_replica=usd_per_gpu_hour(hw, exp.cost) * shape.gpus))
    return FleetLayout(name=fleet.name, pools=tuple(pools), router_policy=fleet.router)


def _pool_stack(i: int, fleet: FleetSpec, spec: PoolSpec, path: str, hw) -> SoftwareStack:
    """The stack profile a pool names (else its fleet's, else its hardware's default), with the
    overrides the experiment gives; errors name the field that set it."""
    stack_name = spec.stack or fleet.stack or hw.default_stack
    stack = at_path(f"{path}.stack" if spec.stack else f"fleets[{i}].stack", lambda n=stack_name: load_stack(n))
    overrides = {**fleet.stack_overrides, **spec.stack_overrides}
    if overrides:
        where_set = f"{path}.stack_overrides" if spec.stack_overrides else f"fleets[{i}].stack_overrides"
        stack = at_path(where_set, lambda st=stack, o=overrides: override_stack(st, o))
    return stack


def unpriced_sampling_stacks(exp: Experiment, index: int) -> list[str]:
    """The stacks of fleet `index` that price no cost of sampling, when the workload samples: their
    steps are priced as greedy ones (no sampling run of theirs measured), which a comparison
    with a fleet whose stack does price it should say."""
    if exp.workload_spec.sampling != "stochastic":
        return []
    fleet = exp.fleets[index]
    stacks = [_pool_stack(index, fleet, spec, f"fleets[{index}].{where}", exp.hardware_of(fleet, spec, where))
              for role in (PREFILL, DECODE, AGGREGATED) for where, spec in fleet.pools_of(role)]
    return list(dict.fromkeys(s.name for s in stacks if not s.stochastic_sampling_step_s))


def _autoscale_settings(exp: Experiment, spec: PoolSpec, shape: ReplicaShape, path: str) -> AutoscaleSettings | None:
    a = spec.autoscale
    if a is None:
        return None
    if exp.faults_on:
        raise ConfigError(path, "autoscaling and faults in one experiment are not modelled together; "
                          "run them as two experiments")
    delay = a.scale_up_delay_s
    if delay is None:
        f = exp.faults or FaultSpec(enabled=False)
        delay = f.engine_start_s + plan_memory(shape).weight_bytes_per_gpu / (f.weight_load_gb_per_s * 1e9)
    targets = exp.traffic_classes or exp.slo_tiers  # the planner keeps the tightest SLO
    from factory_sim.sim.autoscaler import AutoscaleSettings

    return AutoscaleSettings(min_replicas=a.min_replicas, max_replicas=a.max_replicas, interval_s=a.interval_s,
                         scale_up_delay_s=delay, cooldown_s=a.cooldown_s,
                         ttft_slo_s=min(t.ttft_s for t in targets), tpot_slo_s=min(t.tpot_s for t in targets),
                         up_threshold=a.up_threshold, down_threshold=a.down_threshold,
                         step_fraction=a.step_fraction, target_occupancy=a.target_occupancy)


def prefix_cache_settings(spec: PrefixCacheSpec) -> PrefixCacheSettings | None:
    if not spec.enabled:
        return None
    from factory_sim.sim.prefix_cache import PrefixCacheSettings

    return PrefixCacheSettings(hbm_fraction=spec.hbm_fraction, host_bytes_per_gpu=spec.host_gb_per_gpu * 1e9,
                           host_bytes_per_s_per_gpu=(spec.host_gb_per_s or 0.0) * 1e9)


def check_experiment(exp: Experiment) -> Experiment:
    """Resolve every name and fleet now, so errors surface before hours of simulation."""
    _ = exp.model_spec, exp.workload_spec
    _check_time_span(exp)
    layouts = fleet_layouts(exp)
    for layout in layouts:
        _check_fault_count(exp, layout, fault_settings(exp, layout))
    _check_trace_length(exp)
    cached = [i for i, f in enumerate(exp.fleets) if f.prefix_cache is not None and f.prefix_cache.enabled]
    if cached and not _workload_has_block_hashes(exp):
        raise ConfigError(f"fleets[{cached[0]}].prefix_cache",
                          f"workload '{exp.workload_spec.name}' gives no prompt block hashes, so nothing can "
                          "be found in a prefix cache; use a sessions workload (arrivals.kind: sessions) or a "
                          "trace with hash_ids (e.g. mooncake_conversation), or remove prefix_cache")
    if exp.faults_on:
        in_use = {p.shape.hardware.name for layout in layouts for p in layout.pools}
        for j, inj in enumerate(exp.faults.inject):
            name = at_path(f"faults.inject[{j}].hardware", lambda n=inj.hardware: load_hardware(n)).name
            if name not in in_use:
                raise ConfigError(f"faults.inject[{j}].hardware",
                                  f"no fleet uses {name}; the fleets use {', '.join(sorted(in_use))}")
    return exp


def _check_trace_length(exp: Experiment) -> None:
    """A replayed trace must hold the requests asked for (the experiment's `requests`, else the workload's)."""
    spec = exp.workload_spec
    arr = spec.arrivals
    if isinstance(arr, TraceArrivals) and not arr.loop:
        from factory_sim.workload.trace_files import load_trace

        rows = len(load_trace(arr.trace))
        if spec.requests > rows:
            field = "requests" if exp.requests is not None else "workload.requests"
            raise ConfigError(field, f"{spec.requests} requests exceed the {rows} requests in trace {arr.trace!r}; "
                                     f"set {field} <= {rows} or arrivals.loop: true")


def _fixed_span_s(exp: Experiment) -> tuple[float, float] | None:
    """(arrival span in seconds, rate) of a fixed open-loop run; None when the span is not known
    before running (a load search, a closed loop)."""
    spec = exp.workload_spec
    if exp.load.mode != "fixed" or isinstance(spec.arrivals, ClosedLoopArrivals):
        return None
    rate = exp.load.rate_per_s or mean_rate_per_s(spec.arrivals)
    return spec.requests / rate, rate


# Failures one run may simulate: each is events and bookkeeping in the event loop.
MAX_FAULTS_PER_RUN = 1_000_000


def _check_fault_count(exp: Experiment, layout: FleetLayout, plan: FaultSettings | None) -> None:
    """A fixed run whose fault rates would fail units millions of times is refused before it starts."""
    known = _fixed_span_s(exp)
    if plan is None or known is None:
        return
    per_s = 0.0
    for name, rates in plan.rates.items():
        hw = next(p.shape.hardware for p in layout.pools if p.shape.hardware.name == name)
        gpus = sum(p.gpus for p in layout.pools if p.shape.hardware.name == name)
        racks = -(-gpus // hw.gpus_per_scaleup_domain)
        units = {"gpu": gpus, "node": -(-gpus // hw.gpus_per_node), "rack": racks,
                 "switch": racks * plan.switches_per_domain.get(name, 1)}
        per_s += sum(units[r.kind] / r.mtbf_s for r in rates if r.mtbf_s > 0)
    expected = per_s * known[0]
    if expected > MAX_FAULTS_PER_RUN:
        raise ConfigError("faults.rate_multiplier",
                          f"fleet '{layout.name}' would see about {expected:.3g} failures over the run's "
                          f"{known[0]:.3g} s; at most {MAX_FAULTS_PER_RUN:,} are simulated in one run: lower "
                          "rate_multiplier, raise the MTBFs in faults.overrides, or shorten the run")


def _check_time_span(exp: Experiment) -> None:
    """A fixed open-loop run must fit the span simulated time resolves (bounds.MAX_SIM_S)."""
    known = _fixed_span_s(exp)
    if known is None:
        return
    span_s, rate = known
    spec = exp.workload_spec
    if span_s > MAX_SIM_S:
        field = "load.rate_per_s" if exp.load.rate_per_s else "workload"
        raise ConfigError(field, f"{spec.requests} requests at {rate:g} req/s arrive over {span_s:.3g} s; "
                                 f"{SIM_TIME}: raise the rate or lower `requests`")


def _workload_has_block_hashes(exp: Experiment) -> bool:
    batch = generate_requests(exp.workload_spec, np.random.default_rng(exp.seed),
                              n=min(exp.workload_spec.requests, 4))
    return getattr(batch, "block_hashes", None) is not None


def fault_settings(exp: Experiment, layout: FleetLayout) -> FaultSettings | None:
    """The fault plan of one fleet, or None when faults are off (the fault-free engine)."""
    if not exp.faults_on:
        return None
    from factory_sim.sim.faults import FaultRates, FaultSettings, Injection

    f = exp.faults
    fleet_spec = next(fs for fs in exp.fleets if fs.name == layout.name)
    hardware = {p.shape.hardware.name: p.shape.hardware for p in layout.pools}
    for name in f.overrides:
        at_path(f"faults.overrides.{name}", lambda n=name: load_hardware(n))
    rates = {}
    for name, hw in hardware.items():
        per_kind = {k: getattr(hw.reliability, k) for k in FAULT_KINDS}
        per_kind.update(f.overrides.get(name, {}))
        rates[name] = tuple(
            FaultRates(kind, r.mtbf_hours * 3600.0 / f.rate_multiplier, r.mttr_hours * 3600.0)
            for kind, r in per_kind.items() if r is not None) if f.random else ()
    switches = {name: (f.overrides.get(name, {}).get("switch") or hw.reliability.switch).per_domain
                for name, hw in hardware.items()
                if f.overrides.get(name, {}).get("switch") or hw.reliability.switch}
    injections = []
    for j, inj in enumerate(f.inject):
        path = f"faults.inject[{j}]"
        hw = at_path(f"{path}.hardware", lambda n=inj.hardware: load_hardware(n))
        if hw.name not in hardware:
            continue  # an injection into another fleet's hardware
        gpus = sum(p.gpus for p in layout.pools if p.shape.hardware.name == hw.name)
        count = {"gpu": gpus, "node": -(-gpus // hw.gpus_per_node),
                 "rack": -(-gpus // hw.gpus_per_scaleup_domain),
                 "switch": -(-gpus // hw.gpus_per_scaleup_domain) * switches.get(hw.name, 1)}[inj.kind]
        if inj.unit >= count:
            raise ConfigError(f"{path}.unit", f"fleet '{layout.name}' has {count} {inj.kind} unit(s) of {hw.name} "
                              f"(numbered from 0); got {inj.unit}")
        repair = inj.repair_s
        if repair is None:
            rate = getattr(hw.reliability, inj.kind)
            repair = rate.mttr_hours * 3600.0 if rate else 0.0
        injections.append(Injection(inj.at_s, hw.name, inj.kind, inj.unit, repair))
    restart = tuple(
        f.restart_s if f.restart_s is not None
        else f.engine_start_s + plan_memory(p.shape).weight_bytes_per_gpu / (f.weight_load_gb_per_s * 1e9)
        for p in layout.pools)
    return FaultSettings(rates=rates, restart_s=restart, distribution=f.distribution, weibull_shape=f.weibull_shape,
                     domain_policy=fleet_spec.fault_domain_policy or f.domain_policy,
                     max_retries=f.max_retries, retry_after_s=f.retry_after_s,
                     reconfigure_s=f.reconfigure_s, stationary_start=f.stationary_start,
                     injections=tuple(injections), switches_per_domain=switches)


def parse_experiment(raw, source: str = "<experiment>") -> Experiment:
    """Validate an experiment mapping: the schema, then every name, fleet and fault it refers to."""
    if not isinstance(raw, dict):
        raise ConfigError("", "an experiment file must be a YAML mapping of fields (name, model, workload, ...)",
                          source)
    check_kind(raw, Experiment, source, "experiment")
    exp = parse(Experiment, raw, source)
    return check_experiment(exp)


def load_experiment(path: str | Path, **overrides) -> Experiment:
    """Read and validate an experiment file; `overrides` replace top-level fields (e.g. requests)."""
    raw = read_mapping(path, "experiment", "a mapping of fields (name, model, workload, ...)")
    raw.update(overrides)
    return parse_experiment(raw, source=str(path))


def default_experiment_path() -> Path:
    return builtin_path("experiment", "default")


def default_experiment() -> Experiment:
    return load_experiment(default_experiment_path())
