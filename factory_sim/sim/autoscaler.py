"""A planner that scales each pool between its bounds from what it observes.

Every `interval_s` it looks at one pool: the requests that finished there since its last
look (their TTFT against the SLO for prefill pools, TPOT for decode pools, both for
aggregated ones), the requests queued and the batch slots in use. Pressure above
`up_threshold` of the SLO, or a queue, adds replicas (a quarter more, at least one); they
are billed from the decision but serve only after `scale_up_delay_s` (loading weights and
starting the engine). One replica retires when, for a whole `cooldown_s` and that long
after the last change, pressure stays below `down_threshold`, or one replica fewer is
predicted to stay under 85% of `up_threshold` (the latency above the single-request floor
spread over one replica less) and under `target_occupancy` of its batch slots: it takes
no new work, finishes what it holds, and is released. Prefill and decode pools scale
independently.

Billing is the integral of the replicas held (starting, serving or draining) over time; the
planner keeps the step function of held replicas per pool, so the bill can be checked
against it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import simpy

PARKED, STARTING, ACTIVE, DRAINING = "parked", "starting", "active", "draining"


@dataclass(frozen=True)
class AutoscaleSettings:
    min_replicas: int
    max_replicas: int
    interval_s: float
    scale_up_delay_s: float
    cooldown_s: float
    ttft_slo_s: float
    tpot_slo_s: float
    up_threshold: float = 0.8  # scale up when the p90 latency passes this share of the SLO
    down_threshold: float = 0.4  # scale down when it stays under this share
    step_fraction: float = 0.25  # replicas added per decision, as a share of those serving
    # sequences running / batch slots that one replica fewer must stay under to scale down
    # (the latency signal alone never falls low when the TPOT floor is near the SLO)
    target_occupancy: float = 0.6

    @property
    def down_threshold_after(self) -> float:
        """The pressure one replica fewer may be predicted to reach: well short of scaling back up."""
        return 0.85 * self.up_threshold


@dataclass
class ScaleLog:
    """Per pool: (time, replicas held) at every change, and GPU-seconds held in total."""

    held: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    gpu_s: dict[int, float] = field(default_factory=dict)
    events: list[tuple[float, int, str, int]] = field(default_factory=list)  # (t, pool, "up"/"down", replicas)


class Autoscaler:
    def __init__(self, env: simpy.Environment, pools: dict[int, tuple[AutoscaleSettings, list, int]], trace,
                 request_latency_s: float = 0.0):
        """`pools`: pool index -> (plan, the pool's replicas (max_replicas of them), initial replicas);
        `request_latency_s`: what every request waits outside the GPU steps before routing."""
        self.env, self.trace = env, trace
        self.request_latency_s = request_latency_s
        self._pools = pools
        self.version = 0
        self.out_of_service = 0
        self.log = ScaleLog()
        self._state: dict[int, str] = {}
        self._since: dict[int, float] = {}  # held replicas: when billing started
        self._observed: dict[int, list[int]] = {i: [] for i in pools}
        self._last_change: dict[int, float] = {i: -math.inf for i in pools}
        self._calm_since: dict[int, float] = {i: math.inf for i in pools}  # scale-down condition held since
        for pool_index, (_, replicas, initial) in pools.items():
            self.log.gpu_s[pool_index] = 0.0
            for k, rep in enumerate(replicas):
                if k < initial:
                    self._state[rep.index] = ACTIVE
                    self._since[rep.index] = 0.0
                else:
                    self._state[rep.index] = PARKED
                    rep.accepting = False
                    self.out_of_service += 1
            self.log.held[pool_index] = [(0.0, min(initial, len(replicas)))]

    def start(self) -> None:
        for pool_index in self._pools:
            self.env.process(self._watch(pool_index))

    def observe(self, pool_index: int, rid: int) -> None:
        """A request finished on (or left) a pool the planner watches."""
        obs = self._observed.get(pool_index)
        if obs is not None:
            obs.append(rid)

    # -- the control loop ---------------------------------------------------------------------
    def _watch(self, pool_index: int):
        plan, replicas, _ = self._pools[pool_index]
        while True:
            yield self.env.timeout(plan.interval_s)
            self._decide(pool_index, plan, replicas)

    def _pressure(self, pool_index: int, plan: AutoscaleSettings, replica) -> tuple[float, float]:
        """(p90 latency over the SLO, the floor of that ratio) for the requests seen since the
        last look; (0, 0) if none. The floor is what one request alone would get (for TTFT the
        request latency outside the GPU steps, for TPOT a decode step at their mean context):
        latency above it grows with load, latency at it does not."""
        rids = np.asarray(self._observed[pool_index], dtype=np.int64)
        self._observed[pool_index] = []
        if rids.size == 0:
            return 0.0, 0.0
        tr, role = self.trace, replica.role
        pressure, floor = 0.0, 0.0
        if role in ("prefill", "aggregated"):
            ttft = tr.first_token_s[rids] - tr.arrival_s[rids]
            ttft = ttft[np.isfinite(ttft)]
            if ttft.size:
                pressure = float(np.percentile(ttft, 90)) / plan.ttft_slo_s
                floor = min(self.request_latency_s / plan.ttft_slo_s, pressure)
        if role in ("decode", "aggregated"):
            multi = rids[tr.output_tokens[rids] > 1]
            tpot = (tr.finish_s[multi] - tr.first_token_s[multi]) / (tr.output_tokens[multi] - 1)
            tpot = tpot[np.isfinite(tpot)]
            if tpot.size:
                tpot_ratio = float(np.percentile(tpot, 90)) / plan.tpot_slo_s
                if tpot_ratio > pressure:
                    context = float(np.mean(tr.input_tokens[multi] + tr.output_tokens[multi] / 2))
                    pressure = tpot_ratio
                    floor = min(replica.step_model.min_decode_step_s(context) / plan.tpot_slo_s, pressure)
        return pressure, floor

    def _decide(self, pool_index: int, plan: AutoscaleSettings, replicas: list) -> None:
        pressure, floor = self._pressure(pool_index, plan, replicas[0])
        serving = [r for r in replicas if self._state[r.index] == ACTIVE]
        starting = sum(self._state[r.index] == STARTING for r in replicas)
        queued = sum(len(r.queue) for r in serving)
        running = sum(r.running for r in serving)
        slots = sum(r.max_batch for r in serving)
        n = len(serving)
        now = self.env.now
        if (pressure > plan.up_threshold or queued > n) and n + starting < plan.max_replicas:
            self._calm_since[pool_index] = math.inf
            if starting:  # capacity is already on its way
                return
            add = min(max(1, math.ceil(plan.step_fraction * n)), plan.max_replicas - n)
            parked = [r for r in replicas if self._state[r.index] == PARKED][:add]
            for rep in parked:
                self._start(pool_index, rep, plan.scale_up_delay_s)
            if parked:
                self._last_change[pool_index] = now
                self.log.events.append((now, pool_index, "up", len(parked)))
            return
        # One replica fewer: the load above the floor spreads over n - 1, the batches fill up.
        fewer_pressure = floor + (pressure - floor) * n / (n - 1) if n > 1 else math.inf
        fewer_occupancy = running / (slots - slots / n) if n > 1 else math.inf
        calm = (pressure < plan.down_threshold
                or (fewer_pressure < plan.down_threshold_after and fewer_occupancy < plan.target_occupancy))
        if not (calm and queued == 0 and n > plan.min_replicas and not starting):
            self._calm_since[pool_index] = math.inf
            return
        self._calm_since[pool_index] = calm_since = min(self._calm_since[pool_index], now)
        if now - calm_since >= plan.cooldown_s and now - self._last_change[pool_index] >= plan.cooldown_s:
            rep = min(serving, key=lambda r: (r.outstanding_tokens, -r.index))
            self._state[rep.index] = DRAINING
            self.out_of_service += 1
            self.version += 1
            rep.drain(lambda r, i=pool_index: self._release(i, r))
            self._last_change[pool_index] = now
            self._calm_since[pool_index] = math.inf
            self.log.events.append((now, pool_index, "down", 1))

    def _start(self, pool_index: int, rep, delay_s: float) -> None:
        self._state[rep.index] = STARTING
        self._since[rep.index] = self.env.now
        self._record(pool_index)

        def ready(_event):
            self._state[rep.index] = ACTIVE
            rep.restore()
            self.out_of_service -= 1
            self.version += 1

        self.env.timeout(delay_s).callbacks.append(ready)

    def _release(self, pool_index: int, rep) -> None:
        self._state[rep.index] = PARKED
        self.log.gpu_s[pool_index] += rep.shape.gpus * (self.env.now - self._since.pop(rep.index))
        rep.accepting = False  # parked: out of service until started again
        self.version += 1
        self._record(pool_index)

    def _record(self, pool_index: int) -> None:
        _, replicas, _ = self._pools[pool_index]
        held = sum(self._state[r.index] != PARKED for r in replicas)
        self.log.held[pool_index].append((self.env.now, held))

    def close(self) -> ScaleLog:
        """Bill the replicas still held up to now."""
        now = self.env.now
        for pool_index, (_, replicas, _) in self._pools.items():
            for rep in replicas:
                since = self._since.pop(rep.index, None)
                if since is not None:
                    self.log.gpu_s[pool_index] += rep.shape.gpus * (now - since)
            self.log.held[pool_index].append((now, self.log.held[pool_index][-1][1]))
        return self.log
