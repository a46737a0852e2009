"""The experiment file: one validated YAML that says what to simulate and what to report.

Everything a user can misspell is checked here, with the YAML path of the mistake, before
any simulation starts: unknown keys, wrong types, impossible values, unknown hardware,
model, stack or workload names, precisions the hardware lacks, and fleets whose weights
do not fit in memory.
"""

from __future__ import annotations

from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from factory_sim.cost import CostSpec, usd_per_gpu_hour
from factory_sim.errors import ConfigError, from_validation_error
from factory_sim.hardware import FaultRate, HardwareProfile, load_hardware
from factory_sim.metrics import SloTarget
from factory_sim.models import ModelSpec, load_model
from factory_sim.perf.memory import plan_memory
from factory_sim.perf.replica import ReplicaShape
from factory_sim.perf.stacks import load_stack, override_stack
from factory_sim.sim.autoscaler import AutoscalePlan
from factory_sim.sim.engine import FleetPlan, PoolPlan
from factory_sim.sim.faults import FAULT_KINDS, FaultPlan, FaultRates, Injection
from factory_sim.sim.prefix_cache import PrefixCachePlan
from factory_sim.sim.replica import AGGREGATED, DECODE, PREFILL
from factory_sim.sim.router import ROUTER_POLICIES
from factory_sim.uncertainty import UncertaintySpec
from factory_sim.workload import WorkloadSpec, load_workload
from factory_sim.yamlio import read_mapping

_STRICT = ConfigDict(extra="forbid")


class MtpSpec(BaseModel):
    """Multi-token prediction: the model's MTP module drafts tokens the main model verifies."""

    model_config = _STRICT
    draft_tokens: int = Field(default=1, ge=1, le=8)
    # chance a drafted token is accepted given the one before it was; DeepSeek reports 85-90%
    # for its second-token prediction (DeepSeek-V3 Technical Report, arXiv:2412.19437, sec. 5.4.3)
    acceptance_rate: float = Field(default=0.85, ge=0, lt=1)


class AutoscaleSpec(BaseModel):
    """Scale a pool between bounds from its observed latency and queue (sim/autoscaler.py);
    the pool's `replicas` is where it starts."""

    model_config = _STRICT
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(ge=1)
    interval_s: float = Field(default=30.0, gt=0, description="how often the planner looks")
    # default: engine start plus loading the weights, as after a failure (faults.engine_start_s,
    # faults.weight_load_gb_per_s)
    scale_up_delay_s: float | None = Field(default=None, ge=0)
    cooldown_s: float = Field(default=300.0, ge=0, description="no scale-down this soon after a change")
    up_threshold: float = Field(default=0.8, gt=0, description="scale up when p90 latency / SLO passes this")
    down_threshold: float = Field(default=0.4, ge=0, description="scale down when it stays below this")
    step_fraction: float = Field(default=0.25, gt=0, le=1)
    target_occupancy: float = Field(default=0.6, gt=0, le=1,
                                    description="batch-slot use one replica fewer must stay under to scale down")

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})")
        if self.down_threshold >= self.up_threshold:
            raise ValueError("down_threshold must be below up_threshold, or the planner would oscillate")
        return self


class PoolSpec(BaseModel):
    """Replicas of one role; GPUs per replica = tp * dp_attention * pp.

    hardware, precision, attention_precision, kv_precision and stack default to the fleet's;
    setting them per pool makes a mixed fleet (e.g. prefill on GB300, decode on H200).
    """

    model_config = _STRICT
    name: str | None = Field(default=None, min_length=1)
    hardware: str | None = None
    precision: str | None = None
    attention_precision: str | None = None
    kv_precision: Literal["fp8", "bf16"] | None = None
    stack: str | None = None
    stack_overrides: dict[str, Any] = Field(default_factory=dict, description="software-stack fields to replace")
    mtp: MtpSpec | None = None
    replicas: int = Field(ge=1)
    tp: int = Field(default=1, ge=1)
    dp_attention: int = Field(default=1, ge=1)
    ep: int | None = Field(default=None, ge=1, description="default: all GPUs of a stage for MoE, 1 for dense")
    pp: int = Field(default=1, ge=1)
    max_batch: int = Field(default=256, ge=1, description="most sequences a replica runs at once")
    max_batch_tokens: int = Field(default=8192, ge=1, description="token budget of one step (prefill chunk size)")
    # Overload control, for the pools requests enter (prefill or aggregated): refuse a request
    # when this many wait for admission at its replica; drop one that waited longer.
    max_queue: int | None = Field(default=None, ge=0, description="waiting requests per replica before refusing")
    queue_timeout_s: float | None = Field(
        default=None, gt=0, description="longest wait in a replica's queue for admission (after the request latency)")
    autoscale: AutoscaleSpec | None = None

    @model_validator(mode="after")
    def _starts_within_bounds(self):
        a = self.autoscale
        if a is not None and not a.min_replicas <= self.replicas <= a.max_replicas:
            raise ValueError(f"replicas ({self.replicas}) is where autoscaling starts and must lie within "
                             f"min_replicas..max_replicas ({a.min_replicas}..{a.max_replicas})")
        return self


class PrefixCacheSpec(BaseModel):
    """Keep prompt KV blocks on prefill (or aggregated) replicas for requests that share the prefix.
    Block size comes from the workload's block hashes (a sessions workload or a trace with hash_ids)."""

    model_config = _STRICT
    enabled: bool = True
    hbm_fraction: float = Field(default=1.0, ge=0, le=1, description="share of unreserved KV memory it may hold")
    host_gb_per_gpu: float = Field(default=0.0, ge=0, description="host-memory tier per GPU (0: none)")
    host_gb_per_s: float | None = Field(default=None, gt=0, description="host -> GPU bandwidth per GPU")

    @model_validator(mode="after")
    def _host_needs_bandwidth(self):
        if self.host_gb_per_gpu > 0 and self.host_gb_per_s is None:
            raise ValueError("host_gb_per_gpu needs host_gb_per_s (e.g. about 50 for PCIe Gen5 x16, "
                             "about 450 for Grace's NVLink-C2C per direction)")
        return self

    def plan(self) -> PrefixCachePlan | None:
        if not self.enabled:
            return None
        return PrefixCachePlan(hbm_fraction=self.hbm_fraction, host_bytes_per_gpu=self.host_gb_per_gpu * 1e9,
                               host_bytes_per_s_per_gpu=(self.host_gb_per_s or 0.0) * 1e9)


class FleetSpec(BaseModel):
    """A fleet: prefill + decode pools (disaggregated) or aggregated pools.

    Each role takes one pool or a list of pools (a mixed fleet: pools on different hardware
    behind one router).
    """

    model_config = _STRICT
    name: str = Field(min_length=1)
    hardware: str | None = None
    precision: str = "fp8"
    attention_precision: str | None = None
    kv_precision: Literal["fp8", "bf16"] = "fp8"
    stack: str | None = None
    # replace software-stack fields for this fleet, e.g. {hbm_efficiency: 0.8}: "the same GPU,
    # other software" without a new stack file
    stack_overrides: dict[str, Any] = Field(default_factory=dict)
    mtp: MtpSpec | None = Field(default=None, description="multi-token prediction for decode (DeepSeek's MTP)")
    router: str = "least_loaded"
    prefix_cache: PrefixCacheSpec | None = None
    fault_domain_policy: Literal["drain", "degraded"] | None = Field(
        default=None, description="overrides faults.domain_policy for this fleet")
    prefill: PoolSpec | list[PoolSpec] | None = None
    decode: PoolSpec | list[PoolSpec] | None = None
    aggregated: PoolSpec | list[PoolSpec] | None = None

    def pools_of(self, role: str) -> list[tuple[str, PoolSpec]]:
        """(YAML path suffix, pool) of a role, for one pool or a list of them."""
        spec = getattr(self, role)
        if spec is None:
            return []
        if isinstance(spec, PoolSpec):
            return [(role, spec)]
        return [(f"{role}[{j}]", p) for j, p in enumerate(spec)]

    @model_validator(mode="after")
    def _one_mode(self):
        disagg = self.prefill is not None or self.decode is not None
        if disagg and self.aggregated is not None:
            raise ValueError("give either prefill + decode pools (disaggregated) or an aggregated pool, not both")
        if disagg and (self.prefill is None or self.decode is None):
            missing = "decode" if self.decode is None else "prefill"
            raise ValueError(f"a disaggregated fleet needs both pools: add `{missing}:`")
        if not disagg and self.aggregated is None:
            raise ValueError("give prefill + decode pools (disaggregated) or an aggregated pool")
        for role in (PREFILL, DECODE, AGGREGATED):
            if isinstance(getattr(self, role), list) and not getattr(self, role):
                raise ValueError(f"{role}: give at least one pool")
            for where, pool in self.pools_of(role):
                if self.hardware is None and pool.hardware is None:
                    raise ValueError(f"{where}: no hardware; set `hardware:` on the fleet or on this pool")
                if role == DECODE and (pool.max_queue is not None or pool.queue_timeout_s is not None):
                    raise ValueError(f"{where}: max_queue and queue_timeout_s apply where requests enter "
                                     "(the prefill pool); a decode pool takes every request whose KV arrives")
        return self

    @field_validator("router")
    @classmethod
    def _known_router(cls, value: str) -> str:
        if value not in ROUTER_POLICIES:
            raise ValueError(f"unknown router policy; use one of {', '.join(ROUTER_POLICIES)}")
        return value


class SloTierSpec(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1)
    ttft_s: float = Field(gt=0)
    tpot_s: float = Field(gt=0)


class TrafficClassSpec(BaseModel):
    """A share of the traffic with its own SLO; `latency_critical` classes are what the
    `slo_aware` router sends to the fastest pool (default: the class with the tightest TPOT)."""

    model_config = _STRICT
    name: str = Field(min_length=1)
    share: float = Field(gt=0)
    ttft_s: float = Field(gt=0)
    tpot_s: float = Field(gt=0)
    latency_critical: bool | None = None


CLASS_TIER = "per_class"  # the one tier of a multi-class experiment: each request against its class


class LoadSpec(BaseModel):
    """Fixed load, or the search for the highest load that keeps SLO attainment >= target."""

    model_config = _STRICT
    mode: Literal["max_goodput", "fixed"] = "max_goodput"
    rate_per_s: float | None = Field(default=None, gt=0, description="fixed open-loop rate (overrides the workload's)")
    concurrency: int | None = Field(default=None, ge=1, description="fixed closed-loop clients")
    target_attainment: float = Field(default=0.9, gt=0, le=1)
    search_steps: int = Field(default=7, ge=2, le=30, description="simulations per bisection")


class MeasurementSpec(BaseModel):
    """Which requests are measured, and how long a run must be to reach steady state.

    Requests arriving in the first/last fraction of the arrival span are not measured
    (warm-up, drain). A run whose arrival span is shorter than `min_span_latencies` times
    its median end-to-end latency is simulated again with proportionally more requests
    (up to `max_requests`), so batches have filled up before measuring starts.
    """

    model_config = _STRICT
    warmup_fraction: float = Field(default=0.3, ge=0, lt=1)
    cooldown_fraction: float = Field(default=0.3, ge=0, lt=1)
    min_span_latencies: float = Field(default=3.5, ge=0)
    max_requests: int = Field(default=200_000, ge=1)

    @model_validator(mode="after")
    def _leaves_window(self):
        if self.warmup_fraction + self.cooldown_fraction >= 1:
            raise ValueError("warmup_fraction + cooldown_fraction must be < 1 to leave a measurement window")
        return self


class InjectionSpec(BaseModel):
    """One failure at a chosen time, for a reproducible what-if."""

    model_config = _STRICT
    at_s: float = Field(ge=0)
    hardware: str
    kind: Literal["gpu", "node", "switch", "rack"]
    unit: int = Field(default=0, ge=0, description="which unit of that kind, counted from 0 over the fleet")
    repair_s: float | None = Field(default=None, ge=0, description="default: the kind's mean time to repair")


class FaultSpec(BaseModel):
    """Hardware failures during the run. Rates come from each hardware profile's
    `reliability` section; `overrides` replaces them per hardware and kind."""

    model_config = _STRICT
    enabled: bool = True
    random: bool = Field(default=True, description="draw failures from the rates (false: only `inject`)")
    distribution: Literal["exponential", "weibull"] = "exponential"
    weibull_shape: float = Field(default=1.0, gt=0, description="< 1: failures cluster early (infant mortality)")
    rate_multiplier: float = Field(default=1.0, gt=0, description="failures this many times as often (stress test)")
    domain_policy: Literal["drain", "degraded"] = "drain"
    max_retries: int = Field(default=2, ge=0)
    # estimate: a client or gateway notices the broken stream and re-sends after about a second
    retry_after_s: float = Field(default=1.0, ge=0)
    # estimate: re-forming a smaller expert-parallel group (weights of the lost ranks reloaded)
    reconfigure_s: float = Field(default=60.0, ge=0)
    # estimate: process start, CUDA graph capture and warm-up of a TensorRT-LLM or SGLang engine
    engine_start_s: float = Field(default=120.0, ge=0)
    # estimate: safetensors from local NVMe into HBM, per GPU in parallel
    weight_load_gb_per_s: float = Field(default=2.0, gt=0)
    restart_s: float | None = Field(default=None, ge=0, description="default: engine_start_s + weights/load speed")
    stationary_start: bool = Field(default=True, description="start with units up or down as in the long run")
    overrides: dict[str, dict[Literal["gpu", "node", "switch", "rack"], FaultRate | None]] = Field(
        default_factory=dict)
    inject: list[InjectionSpec] = Field(default_factory=list)


class Experiment(BaseModel):
    model_config = _STRICT
    name: str = "experiment"
    description: str = ""
    model: str
    seed: int = 42
    workload: str | WorkloadSpec
    requests: int | None = Field(default=None, ge=1, description="overrides workload.requests")
    slo_tiers: list[SloTierSpec] = Field(default_factory=list)
    # instead of tiers: traffic classes, each request drawn into one by share and judged by its SLO
    traffic_classes: list[TrafficClassSpec] = Field(default_factory=list)
    fleets: list[FleetSpec] = Field(min_length=1)
    cost: CostSpec = CostSpec()
    load: LoadSpec = LoadSpec()
    measurement: MeasurementSpec = MeasurementSpec()
    reference_fleet: str | None = Field(default=None, description="cost ratios are to this fleet; default: the first")
    uncertainty: UncertaintySpec = UncertaintySpec()
    faults: FaultSpec | None = None

    @model_validator(mode="after")
    def _tiers_or_classes(self):
        synthetic = [t.name for t in self.slo_tiers] == [CLASS_TIER]
        if self.traffic_classes and self.slo_tiers and not synthetic:
            raise ValueError("give slo_tiers or traffic_classes, not both: with classes every request is judged "
                             "by its own class's SLO")
        if not self.traffic_classes and not self.slo_tiers:
            raise ValueError("give at least one SLO tier under slo_tiers (or traffic_classes)")
        if self.traffic_classes:
            tight = min(self.traffic_classes, key=lambda c: c.tpot_s)
            self.slo_tiers = [SloTierSpec(name=CLASS_TIER, ttft_s=min(c.ttft_s for c in self.traffic_classes),
                                          tpot_s=tight.tpot_s)]
        return self

    @model_validator(mode="after")
    def _unique_names(self):
        for what, names in (("fleets", [f.name for f in self.fleets]), ("slo_tiers", [t.name for t in self.slo_tiers])):
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"{what}: names must be unique, repeated: {', '.join(sorted(dup))}")
        if self.reference_fleet is not None and self.reference_fleet not in [f.name for f in self.fleets]:
            raise ValueError(f"reference_fleet {self.reference_fleet!r} is not one of the fleets")
        return self

    # -- resolved objects (loaded once, errors carry YAML paths) ---------------------------
    @cached_property
    def model_spec(self) -> ModelSpec:
        return _at("model", lambda: load_model(self.model))

    @cached_property
    def workload_spec(self) -> WorkloadSpec:
        spec = self.workload if isinstance(self.workload, WorkloadSpec) else _at(
            "workload", lambda: load_workload(self.workload))
        if self.requests is not None:
            spec = spec.model_copy(update={"requests": self.requests})
        return spec

    @property
    def slo_evaluations(self) -> list[tuple[str, SloTarget | list[SloTarget]]]:
        """(tier name, what requests are judged by): one target per tier, or one per traffic class."""
        if self.traffic_classes:
            return [(CLASS_TIER, [SloTarget(ttft_s=c.ttft_s, tpot_s=c.tpot_s, name=c.name)
                                  for c in self.traffic_classes])]
        return [(t.name, SloTarget(ttft_s=t.ttft_s, tpot_s=t.tpot_s, name=t.name)) for t in self.slo_tiers]

    def class_shares(self) -> np.ndarray:
        shares = np.array([c.share for c in self.traffic_classes], dtype=float)
        return shares / shares.sum()

    def latency_critical_classes(self) -> np.ndarray:
        """Per class: is it latency-critical (explicitly, or by having the tightest TPOT)?"""
        tight = min(c.tpot_s for c in self.traffic_classes)
        return np.array([c.latency_critical if c.latency_critical is not None else c.tpot_s == tight
                         for c in self.traffic_classes], dtype=bool)

    @property
    def reference(self) -> str:
        return self.reference_fleet or self.fleets[0].name

    def hardware_of(self, fleet: FleetSpec, pool: PoolSpec | None = None, where: str = "") -> HardwareProfile:
        """The hardware of a pool (its own, else its fleet's)."""
        i = self.fleets.index(fleet)
        if pool is not None and pool.hardware is not None:
            return _at(f"fleets[{i}].{where}.hardware", lambda: load_hardware(pool.hardware))
        return _at(f"fleets[{i}].hardware", lambda: load_hardware(fleet.hardware))

    def fleet_plans(self) -> list[FleetPlan]:
        """Every fleet as replicas with memory checked; raises ConfigError naming the pool."""
        return [self._fleet_plan(i, f) for i, f in enumerate(self.fleets)]

    def _fleet_plan(self, i: int, fleet: FleetSpec) -> FleetPlan:
        model = self.model_spec
        pools = []
        for role in (PREFILL, DECODE, AGGREGATED):
            for where, spec in fleet.pools_of(role):
                path = f"fleets[{i}].{where}"
                hw = self.hardware_of(fleet, spec, where)
                stack_name = spec.stack or fleet.stack or hw.default_stack
                stack = _at(f"{path}.stack" if spec.stack else f"fleets[{i}].stack", lambda n=stack_name: load_stack(n))
                overrides = {**fleet.stack_overrides, **spec.stack_overrides}
                if overrides:
                    where_set = f"{path}.stack_overrides" if spec.stack_overrides else f"fleets[{i}].stack_overrides"
                    stack = _at(where_set, lambda st=stack, o=overrides: override_stack(st, o))
                precision = spec.precision or fleet.precision
                attention_precision = (spec.attention_precision or fleet.attention_precision
                                       or _default_attention_precision(precision))
                ep = spec.ep if spec.ep is not None else (spec.tp * spec.dp_attention if model.is_moe else 1)
                mtp = (spec.mtp or fleet.mtp) if role != PREFILL else None  # drafting speeds up decode only
                shape = ReplicaShape(
                    hardware=hw, model=model, stack=stack, precision=precision,
                    attention_precision=attention_precision, kv_precision=spec.kv_precision or fleet.kv_precision,
                    tp=spec.tp, dp_attention=spec.dp_attention, ep=ep, pp=spec.pp,
                    mtp_draft_tokens=mtp.draft_tokens if mtp else 0, mtp_acceptance=mtp.acceptance_rate if mtp else 0.0,
                    path=path,
                )
                plan_memory(shape)  # refuses a shape that does not fit, naming the pool
                label = f"{fleet.name}/{role}" if where == role else f"{fleet.name}/{role}/{spec.name or hw.name}"
                if any(p.name == label for p in pools):
                    label = f"{fleet.name}/{where}"
                pools.append(PoolPlan(name=label, role=role, shape=shape, replicas=spec.replicas,
                                      max_batch=spec.max_batch, max_batch_tokens=spec.max_batch_tokens,
                                      max_queue=spec.max_queue, queue_timeout_s=spec.queue_timeout_s,
                                      prefix_cache=(fleet.prefix_cache.plan() if fleet.prefix_cache is not None
                                                    and role != DECODE else None),
                                      autoscale=self._autoscale_plan(spec, shape, f"{path}.autoscale"),
                                      usd_per_hour_per_replica=usd_per_gpu_hour(hw, self.cost) * shape.gpus))
        return FleetPlan(name=fleet.name, pools=tuple(pools), router_policy=fleet.router)

    def _autoscale_plan(self, spec: PoolSpec, shape: ReplicaShape, path: str) -> AutoscalePlan | None:
        a = spec.autoscale
        if a is None:
            return None
        if self.faults_on:
            raise ConfigError(path, "autoscaling and faults in one experiment are not modelled together; "
                              "run them as two experiments")
        delay = a.scale_up_delay_s
        if delay is None:
            f = self.faults or FaultSpec(enabled=False)
            delay = f.engine_start_s + plan_memory(shape).weight_bytes_per_gpu / (f.weight_load_gb_per_s * 1e9)
        targets = self.traffic_classes or self.slo_tiers  # the planner keeps the tightest SLO
        return AutoscalePlan(min_replicas=a.min_replicas, max_replicas=a.max_replicas, interval_s=a.interval_s,
                             scale_up_delay_s=delay, cooldown_s=a.cooldown_s,
                             ttft_slo_s=min(t.ttft_s for t in targets), tpot_slo_s=min(t.tpot_s for t in targets),
                             up_threshold=a.up_threshold, down_threshold=a.down_threshold,
                             step_fraction=a.step_fraction, target_occupancy=a.target_occupancy)

    def validate_all(self) -> Experiment:
        """Resolve every name and fleet now, so errors surface before hours of simulation."""
        _ = self.model_spec, self.workload_spec
        plans = self.fleet_plans()
        for plan in plans:
            self.fault_plan(plan)
        cached = [i for i, f in enumerate(self.fleets) if f.prefix_cache is not None and f.prefix_cache.enabled]
        if cached and not self.workload_has_block_hashes:
            raise ConfigError(f"fleets[{cached[0]}].prefix_cache",
                              f"workload '{self.workload_spec.name}' gives no prompt block hashes, so nothing can "
                              "be found in a prefix cache; use a sessions workload (arrivals.kind: sessions) or a "
                              "trace with hash_ids (e.g. mooncake_conversation), or remove prefix_cache")
        if self.faults_on:
            in_use = {p.shape.hardware.name for plan in plans for p in plan.pools}
            for j, inj in enumerate(self.faults.inject):
                name = _at(f"faults.inject[{j}].hardware", lambda n=inj.hardware: load_hardware(n)).name
                if name not in in_use:
                    raise ConfigError(f"faults.inject[{j}].hardware",
                                      f"no fleet uses {name}; the fleets use {', '.join(sorted(in_use))}")
        return self

    @cached_property
    def workload_has_block_hashes(self) -> bool:
        from factory_sim.workload import generate_requests
        batch = generate_requests(self.workload_spec, np.random.default_rng(self.seed),
                                  n=min(self.workload_spec.requests, 4))
        return getattr(batch, "block_hashes", None) is not None

    @property
    def faults_on(self) -> bool:
        return self.faults is not None and self.faults.enabled

    def fault_plan(self, plan: FleetPlan) -> FaultPlan | None:
        """The fault plan of one fleet, or None when faults are off (the fault-free engine)."""
        if not self.faults_on:
            return None
        f = self.faults
        fleet_spec = next(fs for fs in self.fleets if fs.name == plan.name)
        hardware = {p.shape.hardware.name: p.shape.hardware for p in plan.pools}
        for name in f.overrides:
            _at(f"faults.overrides.{name}", lambda n=name: load_hardware(n))
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
            hw = _at(f"{path}.hardware", lambda n=inj.hardware: load_hardware(n))
            if hw.name not in hardware:
                continue  # an injection into another fleet's hardware
            gpus = sum(p.gpus for p in plan.pools if p.shape.hardware.name == hw.name)
            count = {"gpu": gpus, "node": -(-gpus // hw.gpus_per_node),
                     "rack": -(-gpus // hw.gpus_per_scaleup_domain),
                     "switch": -(-gpus // hw.gpus_per_scaleup_domain) * switches.get(hw.name, 1)}[inj.kind]
            if inj.unit >= count:
                raise ConfigError(f"{path}.unit", f"fleet '{plan.name}' has {count} {inj.kind} unit(s) of {hw.name} "
                                  f"(numbered from 0); got {inj.unit}")
            repair = inj.repair_s
            if repair is None:
                rate = getattr(hw.reliability, inj.kind)
                repair = rate.mttr_hours * 3600.0 if rate else 0.0
            injections.append(Injection(inj.at_s, hw.name, inj.kind, inj.unit, repair))
        restart = tuple(
            f.restart_s if f.restart_s is not None
            else f.engine_start_s + plan_memory(p.shape).weight_bytes_per_gpu / (f.weight_load_gb_per_s * 1e9)
            for p in plan.pools)
        return FaultPlan(rates=rates, restart_s=restart, distribution=f.distribution, weibull_shape=f.weibull_shape,
                         domain_policy=fleet_spec.fault_domain_policy or f.domain_policy,
                         max_retries=f.max_retries, retry_after_s=f.retry_after_s,
                         reconfigure_s=f.reconfigure_s, stationary_start=f.stationary_start,
                         injections=tuple(injections), switches_per_domain=switches)


def _default_attention_precision(precision: str) -> str:
    # NVFP4/MXFP4 checkpoints quantize the FFN/expert weights and keep attention projections
    # wider (e.g. nvidia/DeepSeek-R1-FP4 model card: FP4 MoE weights, FP8 elsewhere; gpt-oss
    # ships BF16 attention with MXFP4 experts; Kimi K2's INT4 checkpoints quantize only the MoE
    # experts).
    return {"fp4": "fp8", "mxfp4": "bf16", "int4": "bf16"}.get(precision, precision)


def _at(path: str, load):
    """Run a loader, re-rooting its ConfigError at this YAML path."""
    try:
        return load()
    except ConfigError as exc:
        detail = ": ".join(p for p in (exc.source, exc.path if exc.path not in ("hardware", "model", "stack",
                                                                                  "workload") else "") if p)
        raise ConfigError(path, f"{detail}: {exc.message}" if detail else exc.message) from None


def parse_experiment(raw, source: str = "<experiment>") -> Experiment:
    if not isinstance(raw, dict):
        raise ConfigError("", "an experiment file must be a YAML mapping of fields (name, model, workload, ...)",
                          source)
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_error(exc, source=source, raw=raw) from None
    return exp.validate_all()


def load_experiment(path: str | Path, **overrides) -> Experiment:
    """Read and validate an experiment file; `overrides` replace top-level fields (e.g. requests)."""
    raw = read_mapping(path, "experiment", "a mapping of fields (name, model, workload, ...)")
    raw.update(overrides)
    return parse_experiment(raw, source=str(path))


def default_experiment_path() -> Path:
    return Path(str(resources.files("factory_sim") / "data" / "experiments" / "default.yaml"))


def default_experiment() -> Experiment:
    return load_experiment(default_experiment_path())
