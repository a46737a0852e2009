"""The event loop: generator -> router -> prefill pool -> KV transfer -> decode pool.

SimPy lives here (and in replica.py) only. The engine takes a fleet plan and a batch of
requests (arrays), wires replicas and the router, runs the clock, and returns the trace.
It computes no metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

from factory_sim.hardware import HardwareProfile
from factory_sim.perf.memory import MemoryPlan, plan_memory, replica_kv_bytes
from factory_sim.perf.replica import ReplicaShape
from factory_sim.perf.steptime import StepTimeModel
from factory_sim.sim.replica import AGGREGATED, DECODE, PREFILL, Replica
from factory_sim.sim.router import Router
from factory_sim.sim.transfer import kv_link
from factory_sim.trace import (
    DONE,
    REASON_QUEUE_FULL,
    REASON_TIMEOUT,
    REASON_TOO_LONG_FOR_KV,
    REJECTED,
    TIMED_OUT,
    Trace,
)


@dataclass(frozen=True)
class PoolPlan:
    """`replicas` identical replicas of `shape` serving one role."""

    name: str
    role: str
    shape: ReplicaShape
    replicas: int
    max_batch: int
    max_batch_tokens: int
    # Overload control at the front door (prefill or aggregated pools): a replica refuses a
    # request when this many already wait for admission, and drops one that waited longer
    # than queue_timeout_s. None: unbounded, never.
    max_queue: int | None = None
    queue_timeout_s: float | None = None
    usd_per_hour_per_replica: float = 0.0  # for cost-aware routing

    @property
    def gpus(self) -> int:
        return self.replicas * self.shape.gpus


@dataclass(frozen=True)
class FleetPlan:
    name: str
    pools: tuple[PoolPlan, ...]
    router_policy: str = "least_outstanding_tokens"

    @property
    def disaggregated(self) -> bool:
        return any(p.role == PREFILL for p in self.pools)

    @property
    def gpus(self) -> int:
        return sum(p.gpus for p in self.pools)

    def gpus_by_hardware(self) -> list[tuple[HardwareProfile, int]]:
        """(hardware, GPUs) pairs, one per hardware kind, in pool order."""
        out: dict[str, list] = {}
        for p in self.pools:
            hw = p.shape.hardware
            out.setdefault(hw.name, [hw, 0])[1] += p.gpus
        return [(hw, gpus) for hw, gpus in out.values()]


@dataclass
class SimResult:
    trace: Trace
    fleet: FleetPlan
    events: int
    steps: int
    sim_end_s: float
    replicas_per_pool: list[int] = field(default_factory=list)


def _events_scheduled(env: simpy.Environment) -> int:
    """Events the run scheduled: the figure of merit of a macro-stepped simulation.

    SimPy numbers every event it schedules (its tie-breaker, `_eid`), so the next number is
    the count; counting in an override of `schedule` instead costs 5-10% of a run.
    """
    return next(env._eid)


class _Engine:
    def __init__(self, fleet: FleetPlan, trace: Trace, seed: int, macro_steps: bool, closed_loop: int | None,
                 think_time_s: float):
        self.env = simpy.Environment()
        self.fleet = fleet
        self.trace = trace
        self.router = Router(fleet.router_policy, np.random.default_rng([seed, 1]))
        self.closed_loop = closed_loop
        self.think_time_s = think_time_s
        self._done_events: dict[int, simpy.Event] = {}
        self.critical: list[bool] | None = None  # per request: latency-critical traffic class
        hw_names = sorted({p.shape.hardware.name for p in fleet.pools})
        trace.pool_names = [p.name for p in fleet.pools]
        trace.hardware_names = hw_names
        self.by_role: dict[str, list[Replica]] = {PREFILL: [], DECODE: [], AGGREGATED: []}
        self.replicas: list[Replica] = []
        # per role: pools' replicas and, per request, which pools can ever hold it
        self._pool_replicas: list[list[Replica]] = []
        self._fits: dict[str, list[tuple[int, np.ndarray]]] = {PREFILL: [], DECODE: [], AGGREGATED: []}
        self._candidates: dict[tuple, list[Replica]] = {}
        # the replicas read requests' numbers one at a time: from lists, which index ~10x faster than arrays
        input_tokens, output_tokens = trace.input_tokens.tolist(), trace.output_tokens.tolist()
        gpu_offset: dict[str, int] = {}
        for pool_index, pool in enumerate(fleet.pools):
            memory: MemoryPlan = plan_memory(pool.shape)
            step_model = StepTimeModel(pool.shape)
            held = trace.input_tokens if pool.role == PREFILL else trace.input_tokens + trace.output_tokens
            kv_need = replica_kv_bytes(pool.shape, held)
            self._fits[pool.role].append((pool_index, kv_need <= memory.kv_capacity_bytes))
            self._pool_replicas.append([])
            kv_need_list = kv_need.tolist()
            hw = pool.shape.hardware
            for _ in range(pool.replicas):
                first = gpu_offset.get(hw.name, 0)
                gpu_offset[hw.name] = first + pool.shape.gpus
                domain = hw.gpus_per_scaleup_domain
                domains = frozenset(range(first // domain, (first + pool.shape.gpus - 1) // domain + 1))
                rep = Replica(
                    self.env,
                    index=len(self.replicas),
                    pool_index=pool_index,
                    hardware_index=hw_names.index(hw.name),
                    role=pool.role,
                    shape=pool.shape,
                    step_model=step_model,
                    memory=memory,
                    kv_need_bytes=kv_need_list,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    max_batch=pool.max_batch,
                    max_batch_tokens=pool.max_batch_tokens,
                    trace=trace,
                    domains=domains,
                    on_prefill_done=self._prefill_done,
                    on_finish=self._finish,
                    on_timeout=self._timed_out,
                    macro_steps=macro_steps,
                    queue_timeout_s=pool.queue_timeout_s,
                    usd_per_hour=pool.usd_per_hour_per_replica,
                )
                self.replicas.append(rep)
                self.by_role[pool.role].append(rep)
                self._pool_replicas[pool_index].append(rep)
        self._disaggregated = fleet.disaggregated
        self.entry_role = PREFILL if self._disaggregated else AGGREGATED
        self._all_fit = {role: all(ok.all() for _, ok in fits) for role, fits in self._fits.items()}
        # one copy of each request's prompt KV (what a transfer moves), per prefill pool
        self._kv_copy_bytes = {
            i: replica_kv_bytes(p.shape, trace.input_tokens + 1) / p.shape.kv_replication
            for i, p in enumerate(fleet.pools) if p.role == PREFILL
        }
        self._link_cache: dict[tuple[int, int], tuple[float, float]] = {}

    def _fitting(self, role: str, rid: int) -> list[Replica]:
        """Replicas of `role` whose KV cache can ever hold request `rid` (cached per pool set)."""
        if self._all_fit[role]:
            return self.by_role[role]
        key = (role,) + tuple(i for i, ok in self._fits[role] if ok[rid])
        cands = self._candidates.get(key)
        if cands is None:
            cands = self._candidates[key] = [r for i in key[1:] for r in self._pool_replicas[i]]
        return cands

    # -- request life cycle ---------------------------------------------------------------
    def arrive(self, rid: int) -> None:
        tr = self.trace
        tr.arrival_s[rid] = self.env.now
        fits = self._fitting(self.entry_role, rid)
        if self._disaggregated and fits and not self._fitting(DECODE, rid):
            fits = []  # the decode side must be able to hold the whole context too
        if not fits:
            tr.outcome[rid] = REJECTED
            tr.reason[rid] = REASON_TOO_LONG_FOR_KV
            self._notify_done(rid)
            return
        critical = self.critical[rid] if self.critical is not None else False
        rep = self.router.choose(fits, group=0, critical=critical)
        tr.prefill_replica[rid] = rep.index
        cap = self.fleet.pools[rep.pool_index].max_queue
        if cap is not None and len(rep.queue) >= cap:
            tr.outcome[rid] = REJECTED
            tr.reason[rid] = REASON_QUEUE_FULL
            self._notify_done(rid)
            return
        rep.submit(rid)

    def _timed_out(self, rid: int) -> None:
        self.trace.outcome[rid] = TIMED_OUT
        self.trace.reason[rid] = REASON_TIMEOUT
        self._notify_done(rid)

    def _prefill_done(self, prefill: Replica, rid: int) -> None:
        tr = self.trace
        if tr.output_tokens[rid] <= 1:  # the prompt's pass produced the only token
            tr.finish_s[rid] = self.env.now
            self._finish(prefill, rid)
            return
        critical = self.critical[rid] if self.critical is not None else False
        dec = self.router.choose(self._fitting(DECODE, rid), group=1, critical=critical)
        link = self._link_cache.get((prefill.index, dec.index))
        if link is None:
            link = self._link_cache[(prefill.index, dec.index)] = kv_link(prefill, dec)
        bytes_per_s, latency_s = link
        dt = float(self._kv_copy_bytes[prefill.pool_index][rid]) / bytes_per_s + latency_s
        tr.kv_transfer_s[rid] = dt
        arrived = self.env.timeout(dt)
        arrived.callbacks.append(lambda _ev: dec.submit(rid))

    def _finish(self, rep: Replica, rid: int) -> None:
        """`rep` produced the request's last token."""
        tr = self.trace
        tr.outcome[rid] = DONE
        tr.pool[rid] = rep.pool_index
        tr.hardware[rid] = rep.hardware_index
        self._notify_done(rid)

    def _notify_done(self, rid: int) -> None:
        ev = self._done_events.pop(rid, None)
        if ev is not None:
            ev.succeed()

    # -- where requests come from ------------------------------------------------------------
    def open_loop(self, arrival_s: np.ndarray) -> None:
        """Arrivals at given times: a chain of timeouts, each arrival's event scheduling the next."""
        self._arrival_times = arrival_s.tolist()
        self._next_arrival = 0
        if self._arrival_times:
            self.env.timeout(max(self._arrival_times[0], 0.0)).callbacks.append(self._arrivals_due)

    def _arrivals_due(self, _event: simpy.Event) -> None:
        env, times = self.env, self._arrival_times
        rid = self._next_arrival
        self.arrive(rid)
        rid += 1
        while rid < len(times) and not times[rid] > env.now:  # arrivals at this instant share its event
            self.arrive(rid)
            rid += 1
        self._next_arrival = rid
        if rid < len(times):
            env.timeout(times[rid] - env.now).callbacks.append(self._arrivals_due)

    def closed_loop_clients(self, n_requests: int, concurrency: int):
        counter = iter(range(n_requests))

        def client():
            for rid in counter:
                ev = self.env.event()
                self._done_events[rid] = ev
                self.arrive(rid)
                if not ev.triggered:
                    yield ev
                if self.think_time_s > 0:
                    yield self.env.timeout(self.think_time_s)

        for _ in range(concurrency):
            self.env.process(client())


def simulate(
    fleet: FleetPlan,
    input_tokens: np.ndarray,
    output_tokens: np.ndarray,
    *,
    arrival_s: np.ndarray | None = None,
    concurrency: int | None = None,
    think_time_s: float = 0.0,
    seed: int = 0,
    until_s: float | None = None,
    macro_steps: bool = True,
    slo_class: np.ndarray | None = None,
    latency_critical: np.ndarray | None = None,
    slo_class_names: list[str] | None = None,
) -> SimResult:
    """Run the fleet on one batch of requests; open loop (arrival_s) or closed loop (concurrency).

    `until_s` stops the clock early (requests still in flight stay `pending` in the trace).
    `slo_class` gives each request's traffic class and `latency_critical` says, per class,
    which ones an SLO-aware router sends to the fastest replicas.
    """
    n = len(input_tokens)
    trace = Trace.allocate(n)
    trace.input_tokens[:] = input_tokens
    trace.output_tokens[:] = np.maximum(output_tokens, 1)
    if slo_class is not None:
        trace.slo_class[:] = slo_class
        trace.slo_class_names = list(slo_class_names or [str(i) for i in range(int(np.max(slo_class)) + 1)])
    eng = _Engine(fleet, trace, seed, macro_steps, concurrency, think_time_s)
    if latency_critical is not None:
        eng.critical = np.asarray(latency_critical, dtype=bool)[trace.slo_class].tolist()
    if arrival_s is not None:
        if len(arrival_s) != n:
            raise ValueError("arrival_s and token arrays differ in length")
        eng.open_loop(np.asarray(arrival_s, dtype=float))
    elif concurrency is not None:
        eng.closed_loop_clients(n, concurrency)
    else:
        raise ValueError("give arrival_s (open loop) or concurrency (closed loop)")
    eng.env.run(until=until_s)
    return SimResult(
        trace=trace,
        fleet=fleet,
        events=_events_scheduled(eng.env),
        steps=sum(r.steps for r in eng.replicas),
        sim_end_s=float(eng.env.now),
        replicas_per_pool=[p.replicas for p in fleet.pools],
    )
