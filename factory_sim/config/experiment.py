"""The experiment file: one validated YAML that says what to simulate and what to report.

Everything a user can misspell is checked here, with the YAML path of the mistake: unknown
keys, wrong types, impossible values, unknown hardware, model, stack or workload names.
What needs the simulator's models (weights that do not fit in memory, faults on hardware no
fleet uses) is checked by studies/assemble.py, still before any simulation starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factory_sim.config.bounds import (
    DAY_S,
    MAX_FLEET_GPUS,
    MAX_REQUESTS,
    REQUESTS,
    Degree,
    Fraction,
    PositiveFraction,
    PositiveSeconds,
    Rate,
    Replicas,
    Seconds,
    Seed,
    SimSeconds,
    within,
)
from factory_sim.config.cost import CostSpec
from factory_sim.config.hardware import FaultRate, HardwareProfile, load_hardware
from factory_sim.config.model import ModelSpec, load_model
from factory_sim.config.uncertainty import UncertaintySpec
from factory_sim.config.workload import WorkloadSpec, load_workload
from factory_sim.errors import ConfigError

# Pool roles: prefill and decode pools (disaggregated) or aggregated pools that do both.
PREFILL, DECODE, AGGREGATED = "prefill", "decode", "aggregated"
ROUTER_POLICIES = ("round_robin", "least_outstanding_tokens", "least_loaded", "power_of_two", "slo_aware",
                   "cost_aware", "kv_aware")
FAULT_KINDS = ("gpu", "node", "switch", "rack")


@dataclass(frozen=True)
class SloTarget:
    """Latency targets of one SLO class; `math.inf` switches a target off."""

    ttft_s: float
    tpot_s: float
    name: str = "slo"

    def __post_init__(self) -> None:
        for key in ("ttft_s", "tpot_s"):
            value = getattr(self, key)
            if not value > 0:  # also rejects NaN
                raise ConfigError(
                    f"slo.{key}",
                    f"SLO '{self.name}': {key} must be a positive number of seconds "
                    f"(use {math.inf!r} for no target), got {value!r}",
                )


_STRICT = ConfigDict(extra="forbid", defer_build=True)
_LATENCY_RATIO = "p90 latency over its SLO target"
_BatchSequences = Annotated[int, within(1, 2**20, "sequences per replica step; each is a row of the step's arrays")]
# engines default to 2,048-16,384 (vLLM max_num_batched_tokens, SGLang chunked_prefill_size)
_BatchTokens = Annotated[int, within(64, 2**24, "tokens per step; under 64 a long prompt takes hundreds of thousands "
                                                "of steps, over 16.8 million no memory holds them")]
# An SLO longer than a day is no latency target; give 86400 to leave one out.
SloSeconds = Annotated[float, within(0, DAY_S, "seconds; above 0 and at most a day (86400 leaves a target out)",
                                     above=True)]


# DeepSeek reports 85-90% acceptance for its second-token prediction (DeepSeek-V3 Technical
# Report, arXiv:2412.19437, sec. 5.4.3): the acceptance where neither the experiment nor the
# stack gives one
DEFAULT_MTP_ACCEPTANCE = 0.85


class MtpSpec(BaseModel):
    """Multi-token prediction: the model's MTP module drafts tokens the main model verifies."""

    model_config = _STRICT
    # DeepSeek-V3 trains one MTP module (one draft token); engines chain it a few times
    draft_tokens: Annotated[int, within(1, 8, "drafted tokens per step; past a few, acceptance decays to nothing")] = 1
    acceptance_rate: Annotated[float, within(0, 1, "a probability; 1 would accept every draft forever",
                                             below=True)] | None = Field(
        default=None, description="chance a drafted token is accepted given the one before it was; null: the "
                                  "software stack's mtp_acceptance (fitted to measured MTP runs), else 0.85")

    acceptance_sd: Annotated[float, within(0, 0.5, "a standard deviation of a probability; 0 gives every "
                                                   "request the same acceptance", below=True)] | None = Field(
        default=None, description="standard deviation of the acceptance across requests (each request draws its "
                                  "own from a Beta distribution, perf/mtp_spread.py); null: the software stack's "
                                  "mtp_acceptance_sd, else 0 (one acceptance for every request)")

    def acceptance_sd_for(self, stack_sd: float | None) -> float:
        """The spread of acceptance across requests: this spec's, else its stack's, else none."""
        if self.acceptance_sd is not None:
            return self.acceptance_sd
        return stack_sd if stack_sd is not None else 0.0

    def acceptance_for(self, stack_acceptance: float | None) -> float:
        """The acceptance a pool drafts with: this spec's, else its stack's fitted one, else the default."""
        if self.acceptance_rate is not None:
            return self.acceptance_rate
        return stack_acceptance if stack_acceptance is not None else DEFAULT_MTP_ACCEPTANCE


class AutoscaleSpec(BaseModel):
    """Scale a pool between bounds from its observed latency and queue (sim/autoscaler.py);
    the pool's `replicas` is where it starts."""

    model_config = _STRICT
    min_replicas: Replicas = 1
    max_replicas: Replicas
    # Kubernetes' Horizontal Pod Autoscaler looks every 15 s by default (its sync period)
    interval_s: Annotated[float, within(1, DAY_S, "seconds between looks; a planner looking more often than every "
                                                  "second is not one")] = Field(
        default=30.0, description="how often the planner looks")
    # default: engine start plus loading the weights, as after a failure (faults.engine_start_s,
    # faults.weight_load_gb_per_s)
    scale_up_delay_s: Seconds | None = None
    cooldown_s: Seconds = Field(default=300.0, description="no scale-down this soon after a change")
    up_threshold: Annotated[float, within(0, 100, _LATENCY_RATIO, above=True)] = Field(
        default=0.8, description="scale up when p90 latency / SLO passes this")
    down_threshold: Annotated[float, within(0, 100, _LATENCY_RATIO)] = Field(
        default=0.4, description="scale down when it stays below this")
    step_fraction: PositiveFraction = 0.25
    target_occupancy: PositiveFraction = Field(
        default=0.6, description="batch-slot use one replica fewer must stay under to scale down")

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
    replicas: Replicas
    tp: Degree = 1
    dp_attention: Degree = 1
    ep: Degree | None = Field(default=None, description="default: all GPUs of a stage for MoE, 1 for dense")
    pp: Degree = 1
    max_batch: _BatchSequences = Field(default=256, description="most sequences a replica runs at once")
    max_batch_tokens: _BatchTokens = Field(default=8192, description="token budget of one step (prefill chunk size)")
    # Overload control, for the pools requests enter (prefill or aggregated): refuse a request
    # when this many wait for admission at its replica; drop one that waited longer.
    max_queue: Annotated[int, within(0, MAX_REQUESTS, REQUESTS)] | None = Field(
        default=None, description="waiting requests per replica before refusing")
    queue_timeout_s: PositiveSeconds | None = Field(
        default=None, description="longest wait in a replica's queue for admission (after the request latency)")
    autoscale: AutoscaleSpec | None = None

    @model_validator(mode="after")
    def _fleet_size(self):
        gpus = self.replicas * self.tp * self.dp_attention * self.pp
        if gpus > MAX_FLEET_GPUS:
            raise ValueError(f"replicas x tp x dp_attention x pp is {gpus:,} GPUs; one pool may have at most "
                             f"{MAX_FLEET_GPUS:,} (5x the largest cluster announced, 200,000 GPUs)")
        return self

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
    hbm_fraction: Fraction = Field(default=1.0, description="share of unreserved KV memory it may hold")
    # a Grace CPU holds 480 GB of LPDDR5X for its GPUs (NVIDIA GB200 NVL72 product page)
    host_gb_per_gpu: Annotated[float, within(0, 100_000, "GB of host memory per GPU; 200x a Grace CPU's 480 GB")] = (
        Field(default=0.0, description="host-memory tier per GPU (0: none)"))
    # NVLink-C2C: 900 GB/s between Grace and its GPUs (NVIDIA GB200 NVL72 product page)
    host_gb_per_s: Annotated[float, within(0, 100_000, "GB/s; 100x NVLink-C2C's 900 GB/s", above=True)] | None = (
        Field(default=None, description="host -> GPU bandwidth per GPU"))

    @model_validator(mode="after")
    def _host_needs_bandwidth(self):
        if self.host_gb_per_gpu > 0 and self.host_gb_per_s is None:
            raise ValueError("host_gb_per_gpu needs host_gb_per_s (e.g. about 50 for PCIe Gen5 x16, "
                             "about 450 for Grace's NVLink-C2C per direction)")
        return self


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
    ttft_s: SloSeconds
    tpot_s: SloSeconds


class TrafficClassSpec(BaseModel):
    """A share of the traffic with its own SLO; `latency_critical` classes are what the
    `slo_aware` router sends to the fastest pool (default: the class with the tightest TPOT)."""

    model_config = _STRICT
    name: str = Field(min_length=1)
    share: Annotated[float, within(0, 1e9, "a relative weight; the shares are divided by their sum", above=True)]
    ttft_s: SloSeconds
    tpot_s: SloSeconds
    latency_critical: bool | None = None


CLASS_TIER = "per_class"  # the one tier of a multi-class experiment: each request against its class


class LoadSpec(BaseModel):
    """Fixed load, or the search for the highest load that keeps SLO attainment >= target."""

    model_config = _STRICT
    mode: Literal["max_goodput", "fixed"] = "max_goodput"
    rate_per_s: Rate | None = Field(default=None, description="fixed open-loop rate (overrides the workload's)")
    concurrency: Annotated[int, within(1, MAX_REQUESTS, "clients; each holds a request of the run")] | None = (
        Field(default=None, description="fixed closed-loop clients"))
    target_attainment: PositiveFraction = 0.9
    search_steps: Annotated[int, within(2, 30, "simulations per bisection; 30 halve the range a billion times")] = (
        Field(default=7, description="simulations per bisection"))


class MeasurementSpec(BaseModel):
    """Which requests are measured, and how long a run must be to reach steady state.

    Requests arriving in the first/last fraction of the arrival span are not measured
    (warm-up, drain). A run whose arrival span is shorter than `min_span_latencies` times
    its median end-to-end latency is simulated again with proportionally more requests
    (up to `max_requests`), so batches have filled up before measuring starts.
    """

    model_config = _STRICT
    warmup_fraction: Annotated[float, within(0, 1, "a share of the arrival span", below=True)] = 0.3
    cooldown_fraction: Annotated[float, within(0, 1, "a share of the arrival span", below=True)] = 0.3
    min_span_latencies: Annotated[float, within(0, 1000, "median latencies per run; max_requests caps the run "
                                                         "long before 1000")] = 3.5
    max_requests: Annotated[int, within(1, MAX_REQUESTS, REQUESTS)] = 200_000

    @model_validator(mode="after")
    def _leaves_window(self):
        if self.warmup_fraction + self.cooldown_fraction >= 1:
            raise ValueError("warmup_fraction + cooldown_fraction must be < 1 to leave a measurement window")
        return self


class InjectionSpec(BaseModel):
    """One failure at a chosen time, for a reproducible what-if."""

    model_config = _STRICT
    at_s: SimSeconds
    hardware: str
    kind: Literal["gpu", "node", "switch", "rack"]
    unit: Annotated[int, within(0, MAX_FLEET_GPUS, "a unit index; no fleet has more units than GPUs")] = Field(
        default=0, description="which unit of that kind, counted from 0 over the fleet")
    repair_s: SimSeconds | None = Field(default=None, description="default: the kind's mean time to repair")


class FaultSpec(BaseModel):
    """Hardware failures during the run. Rates come from each hardware profile's
    `reliability` section; `overrides` replaces them per hardware and kind."""

    model_config = _STRICT
    enabled: bool = True
    random: bool = Field(default=True, description="draw failures from the rates (false: only `inject`)")
    distribution: Literal["exponential", "weibull"] = "exponential"
    weibull_shape: Annotated[float, within(0.1, 10, "below 0.1 a Weibull's mean is over 3 million times its scale, "
                                                     "above 10 failures come like clockwork")] = Field(
        default=1.0, description="< 1: failures cluster early (infant mortality)")
    rate_multiplier: Annotated[float, within(0, 10_000, "x the profile's failure rates; 10,000x makes a "
                                                         "GPU fail every 9 hours", above=True)] = Field(
        default=1.0, description="failures this many times as often (stress test)")
    domain_policy: Literal["drain", "degraded"] = "drain"
    max_retries: Annotated[int, within(0, 100, "re-sends of one request; clients give up long before 100")] = 2
    # estimate: a client or gateway notices the broken stream and re-sends after about a second
    retry_after_s: Seconds = 1.0
    # estimate: re-forming a smaller expert-parallel group (weights of the lost ranks reloaded)
    reconfigure_s: Seconds = 60.0
    # estimate: process start, CUDA graph capture and warm-up of a TensorRT-LLM or SGLang engine
    engine_start_s: Seconds = 120.0
    # estimate: safetensors from local NVMe into HBM, per GPU in parallel
    weight_load_gb_per_s: Annotated[float, within(0, 100_000, "GB/s per GPU; 10x HBM bandwidth", above=True)] = 2.0
    restart_s: Seconds | None = Field(default=None, description="default: engine_start_s + weights/load speed")
    stationary_start: bool = Field(default=True, description="start with units up or down as in the long run")
    overrides: dict[str, dict[Literal["gpu", "node", "switch", "rack"], FaultRate | None]] = Field(
        default_factory=dict)
    inject: list[InjectionSpec] = Field(default_factory=list)


class Experiment(BaseModel):
    model_config = _STRICT
    name: str = "experiment"
    description: str = ""
    model: str
    seed: Seed = 42
    workload: str | WorkloadSpec
    requests: Annotated[int, within(1, MAX_REQUESTS, REQUESTS)] | None = Field(
        default=None, description="overrides workload.requests")
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
        return at_path("model", lambda: load_model(self.model))

    @cached_property
    def workload_spec(self) -> WorkloadSpec:
        spec = self.workload if isinstance(self.workload, WorkloadSpec) else at_path(
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
            return at_path(f"fleets[{i}].{where}.hardware", lambda: load_hardware(pool.hardware))
        return at_path(f"fleets[{i}].hardware", lambda: load_hardware(fleet.hardware))

    @property
    def faults_on(self) -> bool:
        return self.faults is not None and self.faults.enabled

def default_attention_precision(precision: str) -> str:
    # NVFP4/MXFP4 checkpoints quantize the FFN/expert weights and keep attention projections
    # wider (e.g. nvidia/DeepSeek-R1-FP4 model card: FP4 MoE weights, FP8 elsewhere; gpt-oss
    # ships BF16 attention with MXFP4 experts; Kimi K2's INT4 checkpoints quantize only the MoE
    # experts).
    return {"fp4": "fp8", "mxfp4": "bf16", "int4": "bf16"}.get(precision, precision)


def at_path(path: str, load):
    """Run a loader, re-rooting its ConfigError at this YAML path."""
    try:
        return load()
    except ConfigError as exc:
        detail = ": ".join(p for p in (exc.source, exc.path if exc.path not in ("hardware", "model", "stack",
                                                                                  "workload") else "") if p)
        raise ConfigError(path, f"{detail}: {exc.message}" if detail else exc.message) from None
