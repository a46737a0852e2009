"""The event loop: generator -> router -> prefill pool -> KV transfer -> decode pool.

SimPy lives here (and in replica.py) only. The engine takes a fleet plan and a batch of
requests (arrays), wires replicas and the router, runs the clock, and returns the trace.
It computes no metric.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from functools import partial
from heapq import heappush
from typing import TYPE_CHECKING

import numpy as np
import simpy
from simpy.events import NORMAL

from factory_sim.config.experiment import AGGREGATED, DECODE, PREFILL
from factory_sim.config.hardware import HardwareProfile
from factory_sim.perf.memory import MemoryBudget, plan_memory, replica_kv_bytes, replica_state_bytes
from factory_sim.perf.shape import ReplicaShape
from factory_sim.perf.step_backends import step_time_model
from factory_sim.results.trace import (
    DONE,
    FAILED,
    REASON_NO_REPLICA_UP,
    REASON_QUEUE_FULL,
    REASON_RETRIES_EXHAUSTED,
    REASON_SESSION_ABANDONED,
    REASON_TIMEOUT,
    REASON_TOO_LONG_FOR_KV,
    REJECTED,
    TIMED_OUT,
    Trace,
)
from factory_sim.sim.clock import run
from factory_sim.sim.frontend import FrontendQueue
from factory_sim.sim.live_trace import LiveTrace
from factory_sim.sim.replica import Replica
from factory_sim.sim.router import Router
from factory_sim.sim.transfer import kv_link
from factory_sim.sim.wake import Wake, wake

if TYPE_CHECKING:  # faults, autoscaling and prefix caches are imported by the runs that have them
    from factory_sim.sim.autoscaler import Autoscaler, AutoscaleSettings, ScaleLog
    from factory_sim.sim.faults import FaultInjector, FaultLog, FaultSettings
    from factory_sim.sim.prefix_cache import PrefixCacheSettings


@dataclass(frozen=True)
class PoolLayout:
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
    prefix_cache: PrefixCacheSettings | None = None  # prefill/aggregated pools: keep prompt KV for reuse
    autoscale: AutoscaleSettings | None = None  # scale between its bounds; `replicas` is where it starts

    @property
    def replica_slots(self) -> int:
        """Replica objects the pool needs: its most replicas."""
        return max(self.replicas, self.autoscale.max_replicas) if self.autoscale else self.replicas

    @property
    def gpus(self) -> int:
        return self.replicas * self.shape.gpus


@dataclass(frozen=True)
class FleetLayout:
    name: str
    pools: tuple[PoolLayout, ...]
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
    fleet: FleetLayout
    events: int
    steps: int
    sim_end_s: float
    replicas_per_pool: list[int] = field(default_factory=list)
    faults: FaultLog | None = None  # what the faults did, when a fault plan was given
    scaling: ScaleLog | None = None  # what the autoscaler did, when a pool scales

    @property
    def availability(self) -> float:
        """Share of the fleet's GPU-seconds in service over the run (1.0 without faults)."""
        if self.faults is None or self.sim_end_s <= 0:
            return 1.0
        return 1.0 - sum(self.faults.lost_gpu_s) / (self.fleet.gpus * self.sim_end_s)


def place_replicas(fleet: FleetLayout) -> list[int]:
    """First GPU of each replica (in pool order), numbered per hardware kind.

    Replicas are packed into scale-up domains largest first, each into the first domain
    with room, as an operator lays out a rack: a 48-GPU decode instance and six 4-GPU
    prefill instances share one NVL72 instead of a replica straddling two racks. A replica
    larger than a domain takes whole domains of its own.
    """
    sizes = [(p.shape.hardware, p.shape.gpus) for p in fleet.pools for _ in range(p.replica_slots)]
    first = [0] * len(sizes)
    used: dict[str, list[int]] = {}  # per hardware: GPUs taken in each domain so far
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i][1]):
        hw, gpus = sizes[i]
        size = hw.gpus_per_scaleup_domain
        domains = used.setdefault(hw.name, [])
        if gpus <= size:
            d = next((d for d, taken in enumerate(domains) if size - taken >= gpus), None)
            if d is None:
                d = len(domains)
                domains.append(0)
            first[i] = d * size + domains[d]
            domains[d] += gpus
        else:
            d = len(domains)
            whole = -(-gpus // size)
            domains.extend([size] * whole)
            first[i] = d * size
    return first


def _decode_steps_by_pool(fleet: FleetLayout, trace: Trace, seed: int) -> dict[int, list[int]]:
    """The decode steps of each request in the pools whose MTP acceptance differs by request."""
    shapes = {i: p.shape for i, p in enumerate(fleet.pools) if p.role != PREFILL and p.shape.mtp_acceptance_sd > 0}
    if not shapes:
        return {}
    from factory_sim.perf.mtp_spread import decode_steps_by_pool

    return decode_steps_by_pool(shapes, trace.output_tokens, seed)


def _events_scheduled(env: simpy.Environment) -> int:
    """Events the run scheduled: the figure of merit of a macro-stepped simulation.

    SimPy numbers every event it schedules (its tie-breaker, `_eid`), so the next number is
    the count; counting in an override of `schedule` instead costs 5-10% of a run.
    """
    return next(env._eid)


class _Engine:
    # Every attribute, declared: past 30 attributes CPython 3.11 keeps an instance's in a dict,
    # slower to read and write than declared slots (see Replica).
    __slots__ = (
        "env", "fleet", "router", "closed_loop", "think_time_s", "_done_events", "critical", "by_role", "replicas",
        "_pool_replicas", "_fits", "_candidates", "trace", "first_gpu", "_disaggregated", "entry_role",
        "request_latency_s", "_all_fit", "_entry_all_fit", "_max_queue", "_kv_copy_bytes", "_link_cache", "faults",
        "autoscaler", "_trackers", "_service_cache", "all_done", "_terminal", "_max_retries", "_retry_after_s",
        "next_turn", "_block_hashes", "_block_tokens", "think_s", "_next_arrival", "_arrival_rids", "_arrival_times",
        "_sole_entry", "_on_arrivals_due", "_arrivals_n", "_frontend", "_entry_dispatch",
    )

    def __init__(self, fleet: FleetLayout, trace: Trace, seed: int, macro_steps: bool, closed_loop: int | None,
                 think_time_s: float, faults: FaultSettings | None = None,
                 block_hashes: list[tuple[int, ...]] | None = None, block_tokens: int | None = None):
        self.env = simpy.Environment()
        self.fleet = fleet
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
        self.trace = live = LiveTrace(trace, input_tokens, output_tokens)  # what the event loop writes
        self.first_gpu = place_replicas(fleet)
        steps_of = _decode_steps_by_pool(fleet, trace, seed)
        for pool_index, pool in enumerate(fleet.pools):
            memory: MemoryBudget = plan_memory(pool.shape)
            step_model = step_time_model(pool.shape)
            held = trace.input_tokens if pool.role == PREFILL else trace.input_tokens + trace.output_tokens
            kv_need = replica_kv_bytes(pool.shape, held) + memory.state_bytes_per_seq
            self._fits[pool.role].append((pool_index, kv_need <= memory.kv_capacity_bytes))
            self._pool_replicas.append([])
            kv_need_list = kv_need.tolist()
            hw = pool.shape.hardware
            cache_block_bytes = None
            if pool.prefix_cache is not None and pool.role != DECODE and block_hashes is not None:
                from factory_sim.sim.prefix_cache import PrefixCache
                cache_block_bytes = float(replica_kv_bytes(pool.shape, np.array([float(block_tokens)]))[0])
            for _ in range(pool.replica_slots):
                first = self.first_gpu[len(self.replicas)]
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
                    output_tokens=steps_of.get(pool_index, output_tokens),
                    max_batch=pool.max_batch,
                    max_batch_tokens=pool.max_batch_tokens,
                    trace=live,
                    domains=domains,
                    on_prefill_done=self._prefill_done,
                    on_finish=self._finish,
                    on_timeout=self._timed_out,
                    macro_steps=macro_steps,
                    queue_timeout_s=pool.queue_timeout_s,
                    usd_per_hour=pool.usd_per_hour_per_replica,
                    prefix_cache=(PrefixCache(pool.prefix_cache, block_tokens, cache_block_bytes)
                                  if cache_block_bytes is not None else None),
                    block_hashes=block_hashes,
                )
                self.replicas.append(rep)
                self.by_role[pool.role].append(rep)
                self._pool_replicas[pool_index].append(rep)
        self._disaggregated = fleet.disaggregated
        self.entry_role = PREFILL if self._disaggregated else AGGREGATED
        # latency outside the GPU steps before a replica sees a request: the front-end and the
        # MoE prefill set-up (ReplicaShape.request_latency_s), the largest of the entry pools' so
        # that routing never depends on which one it took
        self.request_latency_s = max(p.shape.request_latency_s for p in fleet.pools if p.role == self.entry_role)
        self._frontend = FrontendQueue.of_fleet(fleet, self.entry_role, len(self.by_role[self.entry_role]),
                                                [r for r in self.replicas if r.role != PREFILL])
        self._entry_dispatch = self._dispatch if self._frontend is None else self._enter  # a scheduled arrival's
        self._all_fit = {role: all(ok.all() for _, ok in fits) for role, fits in self._fits.items()}
        # when every request fits every entry (and decode) replica, _dispatch skips the per-request checks
        self._entry_all_fit = self._all_fit[self.entry_role] and (not self._disaggregated or self._all_fit[DECODE])
        self._max_queue = [p.max_queue for p in fleet.pools]
        # one copy of each request's prompt KV (what a transfer moves), per prefill pool (memoryviews
        # index to Python floats)
        self._kv_copy_bytes = {
            i: memoryview(replica_kv_bytes(p.shape, trace.input_tokens + 1) / p.shape.kv_replication
                          + replica_state_bytes(p.shape))
            for i, p in enumerate(fleet.pools) if p.role == PREFILL
        }
        self._link_cache: dict[int, tuple[float, float]] = {}  # prefill index x replicas + decode index -> link
        self.faults: FaultInjector | None = None
        self.autoscaler: Autoscaler | None = None
        self._trackers: list = []  # what takes replicas out of service: faults, the autoscaler
        self._service_cache: dict[int, tuple[list[Replica], int, list[Replica]]] = {}
        self.all_done: simpy.Event | None = None
        self._terminal = 0
        self._max_retries, self._retry_after_s = 0, 0.0  # set by a fault plan
        self.next_turn: list[int] | None = None  # sessions: each request's next turn (-1: none)
        self._block_hashes, self._block_tokens = block_hashes, block_tokens
        self.think_s: list[float] | None = None
        if faults is not None:
            self._setup_faults(faults, seed)
        scaled = {i: (p.autoscale, self._pool_replicas[i], p.replicas)
                  for i, p in enumerate(fleet.pools) if p.autoscale is not None}
        if scaled:
            from factory_sim.sim.autoscaler import Autoscaler

            self.autoscaler = Autoscaler(self.env, scaled, trace, self.request_latency_s)
            self._trackers.append(self.autoscaler)
            if self.all_done is None:  # the planner's clock never runs dry either
                self.all_done = self.env.event()
            self.autoscaler.start()
        # the one entry replica every request goes to, when _dispatch would check nothing else
        entry = self.by_role[self.entry_role]
        self._sole_entry = entry[0] if (len(entry) == 1 and self._entry_all_fit and not self._trackers
                                        and self._frontend is None
                                        and self._max_queue[entry[0].pool_index] is None) else None

    def _setup_faults(self, plan: FaultSettings, seed: int) -> None:
        from factory_sim.sim.faults import FaultInjector

        ranges = [(rep.shape.hardware.name, first, first + rep.shape.gpus)
                  for rep, first in zip(self.replicas, self.first_gpu, strict=True)]
        hardware = {p.shape.hardware.name: p.shape.hardware for p in self.fleet.pools}
        self.faults = FaultInjector(self.env, plan, self.replicas, ranges, hardware, self._lost, seed)
        self._trackers.append(self.faults)
        self._max_retries = plan.max_retries
        self._retry_after_s = plan.retry_after_s
        # with faults the clock never runs dry (units keep failing): stop when every request is settled
        self.all_done = self.env.event()
        self.faults.start()

    def _fitting(self, role: str, rid: int) -> list[Replica]:
        """Replicas of `role` whose KV cache can ever hold request `rid` (cached per pool set)."""
        if self._all_fit[role]:
            return self.by_role[role]
        key = (role,) + tuple(i for i, ok in self._fits[role] if ok[rid])
        cands = self._candidates.get(key)
        if cands is None:
            cands = self._candidates[key] = [r for i in key[1:] for r in self._pool_replicas[i]]
        return cands

    def _in_service(self, replicas: list[Replica]) -> list[Replica]:
        """The replicas that take work now; the same list object until one enters or leaves
        service, so the router's per-list caches keep working."""
        trackers = self._trackers
        if not trackers or not any(t.out_of_service for t in trackers):
            return replicas
        version = sum(t.version for t in trackers)
        entry = self._service_cache.get(id(replicas))
        if entry is None or entry[0] is not replicas or entry[1] != version:
            entry = self._service_cache[id(replicas)] = (replicas, version, [r for r in replicas if r.accepting])
        return entry[2]

    # -- request life cycle ---------------------------------------------------------------
    def arrive(self, rid: int) -> None:
        self.trace.arrival_s[rid] = self.env.now
        if self._frontend is not None:
            self._enter(rid)
        elif self.request_latency_s > 0:
            self.env.timeout(self.request_latency_s, rid).callbacks.append(self._after_request_latency)
        else:
            self._dispatch(rid)

    def _enter(self, rid: int) -> None:
        """Through a front-end that queues new requests behind the stream: its wait and its latency."""
        self.env.timeout(self.request_latency_s + self._frontend.wait_s(), rid).callbacks.append(
            self._after_request_latency)

    def _after_request_latency(self, event: simpy.Event) -> None:
        self._dispatch(event.value)

    def _dispatch(self, rid: int) -> None:
        """Route a request (a new one, or a retry) to an entry replica."""
        tr = self.trace
        if self._entry_all_fit:
            fits = self.by_role[self.entry_role]
        else:
            fits = self._fitting(self.entry_role, rid)
            if self._disaggregated and fits and not self._fitting(DECODE, rid):
                fits = []  # the decode side must be able to hold the whole context too
        if not fits:
            tr.outcome[rid] = REJECTED
            tr.reason[rid] = REASON_TOO_LONG_FOR_KV
            self._notify_done(rid)
            return
        if self._trackers:
            fits = self._in_service(fits)
        if not fits:
            tr.outcome[rid] = REJECTED
            tr.reason[rid] = REASON_NO_REPLICA_UP
            self._notify_done(rid)
            return
        if len(fits) == 1:  # (what the router answers for one candidate, without its call)
            rep = fits[0]
        else:
            critical = self.critical[rid] if self.critical is not None else False
            rep = self.router.choose(fits, group=0, critical=critical, rid=rid)
        tr.prefill_replica[rid] = rep.index
        cap = self._max_queue[rep.pool_index]
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
        if self.autoscaler is not None:
            self.autoscaler.observe(prefill.pool_index, rid)
        if tr.output_tokens[rid] <= 1:  # the prompt's pass produced the only token
            tr.finish_s[rid] = self.env.now
            self._finish(prefill, rid)
            return
        self._send_kv(prefill, rid)

    def _send_kv(self, prefill: Replica, rid: int) -> None:
        """Pick a decode replica for the request and move its prompt's KV there."""
        critical = self.critical[rid] if self.critical is not None else False
        decoders = self.by_role[DECODE] if self._all_fit[DECODE] else self._fitting(DECODE, rid)
        if self._trackers:
            decoders = self._in_service(decoders)
        if not decoders:  # no decode replica can take the KV: the prompt's work is lost
            self._lost([rid])
            return
        dec = self.router.choose(decoders, group=1, critical=critical)
        key = prefill.index * len(self.replicas) + dec.index
        link = self._link_cache.get(key)
        if link is None:
            link = self._link_cache[key] = kv_link(prefill, dec)
        bytes_per_s, latency_s = link
        dt = self._kv_copy_bytes[prefill.pool_index][rid] / bytes_per_s + latency_s
        kv_s = self.trace.kv_transfer_s
        prev = kv_s[rid]
        kv_s[rid] = dt if prev != prev else prev + dt  # NaN until a first transfer; a re-sent one adds up
        event = Wake()  # wake(env, dt, partial(...)), inlined: once per request handed off
        event.callbacks = (partial(self._kv_arrived, prefill, dec, rid),)
        env = self.env
        heappush(env._queue, (env._now + dt, NORMAL, next(env._eid), event))

    def _kv_arrived(self, prefill: Replica, dec: Replica, rid: int, _event: simpy.Event | None = None) -> None:
        if dec.accepting or dec.draining:
            dec.submit(rid)
        elif dec.down:  # the decode replica failed while the KV was on its way
            self._lost([rid])
        else:  # the autoscaler retired it meanwhile: the KV goes to another decode replica
            self._send_kv(prefill, rid)

    def _lost(self, rids: list[int]) -> None:
        """Requests a replica failure lost: sent again after retry_after_s, up to max_retries times."""
        tr = self.trace
        for rid in rids:
            tr.retries[rid] += 1
            if tr.retries[rid] > self._max_retries:
                tr.outcome[rid] = FAILED
                tr.reason[rid] = REASON_RETRIES_EXHAUSTED
                self._notify_done(rid)
                continue
            for column in (tr.prefill_start_s, tr.prefill_end_s, tr.first_token_s, tr.decode_start_s,
                           tr.kv_transfer_s):
                column[rid] = np.nan
            tr.decode_replica[rid] = -1
            self.env.timeout(self._retry_after_s).callbacks.append(lambda _ev, r=rid: self._dispatch(r))

    def _finish(self, rep: Replica, rid: int) -> None:
        """`rep` produced the request's last token."""
        tr = self.trace
        tr.outcome[rid] = DONE
        if self._frontend is not None:
            self._frontend.finished(tr.output_tokens[rid], tr.finish_s[rid] - tr.first_token_s[rid])
        tr.pool[rid] = rep.pool_index
        tr.hardware[rid] = rep.hardware_index
        if self.autoscaler is not None and rep.role != PREFILL:
            self.autoscaler.observe(rep.pool_index, rid)
        if rep.prefix_cache is not None and self.next_turn is not None and self.next_turn[rid] >= 0:
            self._keep_answer(rep, rid, self.next_turn[rid])
        if self._done_events or self.next_turn is not None or self.all_done is not None:  # else it does nothing
            self._notify_done(rid)

    def _keep_answer(self, rep: Replica, rid: int, nxt: int) -> None:
        """An aggregated replica holds the whole context it just generated: its full blocks, named
        as the session's next turn names them, stay in the prefix cache (as vLLM and SGLang keep
        decoded tokens), so that turn recomputes only its new tokens."""
        context = int(self.trace.input_tokens[rid] + self.trace.output_tokens[rid])
        rep.prefix_cache.insert(self._block_hashes[nxt][: context // self._block_tokens])
        rep.prefix_cache.trim(rep.kv_capacity_bytes - rep.kv_reserved_bytes)

    def _notify_done(self, rid: int) -> None:
        ev = self._done_events.pop(rid, None)
        if ev is not None:
            ev.succeed()
        if self.next_turn is not None and self.next_turn[rid] >= 0:
            self._next_turn(rid, self.next_turn[rid])
        if self.all_done is not None:
            self._terminal += 1
            if self._terminal == len(self.trace) and not self.all_done.triggered:
                self.all_done.succeed()

    def _next_turn(self, rid: int, nxt: int) -> None:
        """A session's turn ended: the next one arrives after the think time, if this one was served."""
        if self.trace.outcome[rid] == DONE:
            self.env.timeout(self.think_s[nxt]).callbacks.append(lambda _ev: self.arrive(nxt))
        else:  # the client gives up on the session
            self.trace.outcome[nxt] = REJECTED
            self.trace.reason[nxt] = REASON_SESSION_ABANDONED
            self._notify_done(nxt)

    # -- where requests come from ------------------------------------------------------------
    def open_loop(self, arrival_s: np.ndarray) -> None:
        """Arrivals at given times: a chain of timeouts, each dispatch's event scheduling the next.
        The request latency shifts the whole schedule at once (each request is dispatched that
        much after its arrival, without an event of its own). Requests without a time (a
        session's later turns) arrive when their previous turn ends."""
        scheduled = np.isfinite(arrival_s)
        self.trace.arrays.arrival_s[scheduled] = arrival_s[scheduled]
        due_s = arrival_s + (self.request_latency_s if self._frontend is None else 0.0)  # else _enter adds it
        if scheduled.all():
            self._arrival_rids = None
            self._arrival_times = due_s.tolist()
        else:
            rids = np.flatnonzero(scheduled)
            rids = rids[np.argsort(arrival_s[rids], kind="stable")]
            self._arrival_rids = rids.tolist()
            self._arrival_times = due_s[rids].tolist()
        self._next_arrival = 0
        self._arrivals_n = len(self._arrival_times)
        self._on_arrivals_due = (self._arrivals_due,)  # every arrival event's callbacks (a Wake's are never changed)
        if self._arrival_times:
            wake(self.env, max(self._arrival_times[0], 0.0), self._arrivals_due)

    def _arrivals_due(self, event: Wake) -> None:
        env, times, rids = self.env, self._arrival_times, self._arrival_rids
        i = self._next_arrival
        sole = self._sole_entry
        if sole is not None and rids is None:  # _dispatch to the only entry replica, inlined
            self.trace.prefill_replica[i] = sole.index
            sole.submit(i)
        else:
            self._entry_dispatch(i if rids is None else rids[i])
        i += 1
        now, n = env._now, self._arrivals_n  # (no event runs between these dispatches: the clock stands)
        while i < n and not times[i] > now:  # dispatches at this instant share its event
            self._entry_dispatch(i if rids is None else rids[i])
            i += 1
        self._next_arrival = i
        if i < n:
            # wake(env, times[i] - now, self._arrivals_due), inlined, with the event just processed
            # queued again (the loop is done with it: it cleared its callbacks before this call, and
            # nothing else holds it), one object fewer per arrival
            event.callbacks = self._on_arrivals_due
            heappush(env._queue, (now + (times[i] - now), NORMAL, next(env._eid), event))

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
    fleet: FleetLayout,
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
    faults: FaultSettings | None = None,
    block_hashes: list[tuple[int, ...]] | None = None,
    block_tokens: int | None = None,
    next_turn: np.ndarray | None = None,
    think_s: np.ndarray | None = None,
) -> SimResult:
    """Run the fleet on one batch of requests; open loop (arrival_s) or closed loop (concurrency).

    `until_s` stops the clock early (requests still in flight stay `pending` in the trace).
    `slo_class` gives each request's traffic class and `latency_critical` says, per class,
    which ones an SLO-aware router sends to the fastest replicas. `faults` makes hardware
    fail and get repaired during the run (sim/faults.py); without it nothing fails.
    `block_hashes` (per request, its prompt's block hashes of `block_tokens` tokens each) feed
    the prefix caches of pools that have one. `next_turn` and `think_s` make sessions: a
    request with NaN arrival time arrives `think_s` after the turn pointing to it finishes.
    """
    n = len(input_tokens)
    trace = Trace.allocate(n)
    trace.input_tokens[:] = input_tokens
    trace.output_tokens[:] = np.maximum(output_tokens, 1)
    if slo_class is not None:
        trace.slo_class[:] = slo_class
        trace.slo_class_names = list(slo_class_names or [str(i) for i in range(int(np.max(slo_class)) + 1)])
    if block_hashes is not None and (len(block_hashes) != n or not block_tokens or block_tokens < 1):
        raise ValueError("block_hashes needs one entry per request and block_tokens >= 1")
    eng = _Engine(fleet, trace, seed, macro_steps, concurrency, think_time_s, faults, block_hashes, block_tokens)
    if next_turn is not None:
        if arrival_s is None:
            raise ValueError("sessions (next_turn) need open-loop arrival times for their first turns")
        eng.next_turn = np.asarray(next_turn, dtype=np.int64).tolist()
        eng.think_s = np.zeros(n).tolist() if think_s is None else np.asarray(think_s, dtype=float).tolist()
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
    # one pass of the collector's young generations now moves what the set-up made (the requests'
    # and the trace's lists of n items) to the oldest, which a run rarely collects; else the
    # clock's first collections of the young generations walk those lists twice
    gc.collect(1)
    if eng.all_done is None:
        run(eng.env, until=until_s)
    else:
        if until_s is not None:
            eng.env.timeout(until_s).callbacks.append(
                lambda _ev: None if eng.all_done.triggered else eng.all_done.succeed())
        if n and not eng.all_done.triggered:
            try:
                run(eng.env, until=eng.all_done)
            except RuntimeError:  # nothing left to happen: only injected faults, and they are over
                pass
    eng.trace.flush()
    return SimResult(
        trace=trace,
        fleet=fleet,
        events=_events_scheduled(eng.env),
        steps=sum(r.steps for r in eng.replicas),
        sim_end_s=float(eng.env.now),
        replicas_per_pool=[p.replicas for p in fleet.pools],
        faults=eng.faults.close() if eng.faults is not None else None,
        scaling=eng.autoscaler.close() if eng.autoscaler is not None else None,
    )
