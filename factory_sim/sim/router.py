"""Routing policies: which replica of a pool gets a request.

A policy sees only the candidate replicas' public load (`outstanding_tokens`), their shape,
and a seeded random generator, so it can be swapped without touching the replicas.
`least_loaded` divides the outstanding tokens by what the replica processes per second,
so a mixed fleet sends a fast GB300 replica more work than an H200 node. `slo_aware` sends
latency-critical traffic classes to the replicas with the lowest single-request latency and
other traffic to the rest (spilling over when they fall ROUTER_SLACK_S behind); `cost_aware`
takes the cheapest replica per token unless it is more than ROUTER_SLACK_S behind the
least-loaded one. `kv_aware` weighs a replica's cached prefix of the request against its
load: it picks the replica that would finish the request's prompt soonest, counting the
outstanding tokens plus the prompt tokens its prefix cache would not spare, over its speed
(decode routing, where there is no prefix to reuse, is least_loaded).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from operator import attrgetter

import numpy as np

from factory_sim.config.experiment import ROUTER_POLICIES
from factory_sim.perf.estimate import replica_tokens_per_s
from factory_sim.sim.load_order import DrainOrder, LoadOrder

_OUTSTANDING = attrgetter("outstanding_tokens")


# How far behind the least-loaded replica (seconds of work to drain) a replica may be and
# still be preferred: by cost_aware for a cheaper token, by slo_aware to keep the fastest
# replicas for latency-critical traffic. An estimate; the knob that trades latency for it.
ROUTER_SLACK_S = 1.0

# From this many candidates a least-loaded choice reads a LoadOrder (a heap kept up to date
# by the replicas) instead of a min over the list; at most _MAX_ORDERS lists keep one each,
# the oldest let go (lists made afresh as faults or an autoscaler change what is in service).
_ORDER_MIN_CANDIDATES = 16
_MAX_ORDERS = 8


def _alone_s(replica) -> float:
    """How long one request alone waits on this replica per step: its latency floor."""
    if replica.role == "prefill":
        return replica.step_model.step_time_s(prefill_tokens=1024.0, prefill_attn_pairs=1024.0 * 1025 / 2,
                                              prefill_seqs=1.0)
    return replica.step_model.min_decode_step_s(2048.0)


class Router:
    def __init__(self, policy: str, rng: np.random.Generator):
        if policy not in ROUTER_POLICIES:
            raise ValueError(f"unknown router policy {policy!r}; use one of {ROUTER_POLICIES}")
        self.policy = policy
        self._rng = rng
        self._next: dict[int, int] = {}
        self._speed_of: dict[int, tuple] = {}  # id(candidate list) -> (the list, speeds or None)
        self._fast_of: dict[int, tuple] = {}  # id(candidate list) -> (the list, fastest, the rest)
        self._speed_by_replica: dict[int, float] = {}
        self._runs_of: dict[int, tuple] = {}  # id(candidate list) -> (the list, runs of equal speed or None)
        self._orders: dict[int, tuple] = {}  # id(candidate list) -> (the list, its LoadOrder or None)
        # id(candidate list) -> (the list, its LoadOrder's `least`): under least_outstanding_tokens,
        # or least_loaded over identical replicas, a list's choice is its LoadOrder's top,
        # answered in `choose` without the policy's calls
        self._direct: dict[int, tuple] = {}
        self._direct_ok = policy in ("least_outstanding_tokens", "least_loaded")
        self._choose: Callable = (self._least_outstanding_direct if policy == "least_outstanding_tokens"
                                  else getattr(self, f"_{policy}"))

    def choose(self, candidates: Sequence, group: int = 0, critical: bool = False, rid: int | None = None):
        """Pick one of `candidates` (replicas); `group` keeps separate round-robin cursors;
        `critical` marks latency-critical traffic (used by slo_aware); `rid` is the request
        (used by kv_aware to look up its cached prefix)."""
        if len(candidates) == 1:
            return candidates[0]
        direct = self._direct.get(id(candidates))
        if direct is not None and direct[0] is candidates:
            return direct[1]()
        if self.policy == "slo_aware":
            return self._slo_aware(candidates, critical)
        if self.policy == "kv_aware":
            return self._kv_aware(candidates, group, rid)
        return self._choose(candidates, group)

    def _kv_aware(self, candidates, group, rid):
        if rid is None or group != 0:
            return self._least_loaded(candidates, group)
        speeds = self._speeds(candidates)
        prompt = candidates[0].prompt_tokens(rid)
        best, best_cost = 0, float("inf")
        for i, r in enumerate(candidates):
            cost = (r.outstanding_tokens + prompt - r.cached_prefix_tokens(rid)) / (speeds[i] if speeds else 1.0)
            if cost < best_cost:
                best, best_cost = i, cost
        return candidates[best]

    def _round_robin(self, candidates, group):
        i = self._next.get(group, 0)
        self._next[group] = (i + 1) % len(candidates)
        return candidates[i % len(candidates)]

    def _least_outstanding_tokens(self, candidates, group=0):
        # candidates come in replica-index order and min keeps the first: ties go to the lowest
        # index, as does a LoadOrder
        if len(candidates) < _ORDER_MIN_CANDIDATES:
            return min(candidates, key=_OUTSTANDING)
        entry = self._orders.get(id(candidates))
        if entry is None or entry[0] is not candidates:
            entry = self._new_order(candidates)
        order = entry[1]
        return min(candidates, key=_OUTSTANDING) if order is None else order.least()

    def _least_outstanding_direct(self, candidates, group=0):
        """_least_outstanding_tokens, remembering a LoadOrder's `least` for `choose` to call directly."""
        chosen = self._least_outstanding_tokens(candidates)
        entry = self._orders.get(id(candidates))
        if self._direct_ok and entry is not None and entry[0] is candidates and entry[1] is not None:
            self._direct[id(candidates)] = (candidates, entry[1].least)
        return chosen

    def _new_order(self, candidates, runs: list[tuple[float, list]] | None = None) -> tuple:
        """A LoadOrder over the candidates, or None for replicas that do not report their loads;
        given their runs of equal speed, a DrainOrder (whose runs of such replicas are read
        with `min`)."""
        reporting = all(hasattr(r, "load_sinks") for r in candidates)
        order = None
        if reporting or runs is not None:
            if len(self._orders) >= _MAX_ORDERS:
                oldest = next(iter(self._orders))
                old = self._orders.pop(oldest)[1]
                self._direct.pop(oldest, None)
                if old is not None:
                    old.detach()
            if runs is not None:
                order = DrainOrder(runs, _ORDER_MIN_CANDIDATES if reporting else math.inf)
            else:
                order = LoadOrder(candidates)
        entry = self._orders[id(candidates)] = (candidates, order)
        return entry

    def _speeds(self, candidates) -> list[float] | None:
        """Full-batch tokens/s of each candidate, or None when they are all equal (cached per list)."""
        entry = self._speed_of.get(id(candidates))
        if entry is None or entry[0] is not candidates:
            speeds = [replica_tokens_per_s(r.shape, r.role, r.max_batch, r.max_batch_tokens) for r in candidates]
            entry = self._speed_of[id(candidates)] = (candidates, None if len(set(speeds)) == 1 else speeds)
        return entry[1]

    def _least_loaded(self, candidates, group):
        """Least seconds to drain what a replica holds: outstanding tokens over its speed."""
        entry = self._runs_of.get(id(candidates))
        if entry is None or entry[0] is not candidates:
            speeds = self._speeds(candidates)
            entry = self._runs_of[id(candidates)] = (candidates, speeds and self._speed_runs(candidates, speeds))
        runs = entry[1]
        if runs is None:  # identical replicas: the same order as outstanding tokens
            return self._least_outstanding_direct(candidates)
        # Within a run of equally fast replicas (a pool) the order is that of outstanding
        # tokens, so each run's least-loaded is found without a Python key call per replica
        # (sim/load_order.py's DrainOrder); strict < across runs keeps the first on ties, as
        # one min over all would.
        entry = self._orders.get(id(candidates))
        if entry is None or entry[0] is not candidates or entry[1] is None:
            entry = self._new_order(candidates, runs)
        if self._direct_ok:
            self._direct[id(candidates)] = (candidates, entry[1].least)
        return entry[1].least()

    @staticmethod
    def _speed_runs(candidates, speeds) -> list[tuple[float, list]]:
        """The candidates cut into runs of equal speed, in order."""
        runs: list[tuple[float, list]] = []
        for r, v in zip(candidates, speeds, strict=True):
            if runs and runs[-1][0] == v:
                runs[-1][1].append(r)
            else:
                runs.append((v, [r]))
        return runs

    def _split_by_latency(self, candidates) -> tuple[list, list]:
        """(fastest, the rest): replicas within 5% of the lowest single-request step time (cached per list)."""
        entry = self._fast_of.get(id(candidates))
        if entry is None or entry[0] is not candidates:
            latency = [_alone_s(r) for r in candidates]
            best = min(latency)
            fast = [r for r, t in zip(candidates, latency, strict=True) if t <= best * 1.05]
            rest = [r for r, t in zip(candidates, latency, strict=True) if t > best * 1.05]
            entry = self._fast_of[id(candidates)] = (candidates, fast, rest)
        return entry[1], entry[2]

    def _slo_aware(self, candidates, critical: bool):
        """Latency-critical traffic to the fastest replicas; other traffic to the rest, spilling
        onto the fastest only when the rest are more than ROUTER_SLACK_S further behind."""
        fast, rest = self._split_by_latency(candidates)
        best_fast = fast[0] if len(fast) == 1 else self._least_loaded(fast, 0)
        if critical or not rest:
            return best_fast
        best_rest = rest[0] if len(rest) == 1 else self._least_loaded(rest, 0)
        if self._drain_s(best_rest) > self._drain_s(best_fast) + ROUTER_SLACK_S:
            return best_fast
        return best_rest

    def _drain_s(self, replica) -> float:
        return replica.outstanding_tokens / self._speed_one(replica)

    def _cost_aware(self, candidates, group):
        """The cheapest replica per token among those nearly as free as the least-loaded one."""
        speeds = self._speeds(candidates) or [self._speed_one(candidates[0])] * len(candidates)
        drain = [r.outstanding_tokens / v for r, v in zip(candidates, speeds, strict=True)]
        limit = min(drain) + ROUTER_SLACK_S
        best = min((i for i in range(len(candidates)) if drain[i] <= limit),
                   key=lambda i: (candidates[i].usd_per_hour / speeds[i], drain[i], i))
        return candidates[best]

    def _speed_one(self, r) -> float:
        speed = self._speed_by_replica.get(r.index)
        if speed is None:
            speed = self._speed_by_replica[r.index] = replica_tokens_per_s(r.shape, r.role, r.max_batch,
                                                                           r.max_batch_tokens)
        return speed

    def _power_of_two(self, candidates, group):
        i, j = self._rng.choice(len(candidates), size=2, replace=False)
        a, b = candidates[i], candidates[j]
        return a if (a.outstanding_tokens, a.index) <= (b.outstanding_tokens, b.index) else b
