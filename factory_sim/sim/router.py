"""Routing policies: which replica of a pool gets a request.

A policy sees only the candidate replicas' public load (`outstanding_tokens`), their shape,
and a seeded random generator, so it can be swapped without touching the replicas.
`least_loaded` divides the outstanding tokens by what the replica processes per second,
so a mixed fleet sends a fast GB300 replica more work than an H200 node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter

import numpy as np

from factory_sim.perf.estimate import replica_tokens_per_s

_OUTSTANDING = attrgetter("outstanding_tokens")

ROUTER_POLICIES = ("round_robin", "least_outstanding_tokens", "least_loaded", "power_of_two")


class Router:
    def __init__(self, policy: str, rng: np.random.Generator):
        if policy not in ROUTER_POLICIES:
            raise ValueError(f"unknown router policy {policy!r}; use one of {ROUTER_POLICIES}")
        self.policy = policy
        self._rng = rng
        self._next: dict[int, int] = {}
        self._speed_of: dict[int, tuple] = {}  # id(candidate list) -> (the list, speeds or None)
        self._choose: Callable = getattr(self, f"_{policy}")

    def choose(self, candidates: Sequence, group: int = 0):
        """Pick one of `candidates` (replicas); `group` keeps separate round-robin cursors."""
        if len(candidates) == 1:
            return candidates[0]
        return self._choose(candidates, group)

    def _round_robin(self, candidates, group):
        i = self._next.get(group, 0)
        self._next[group] = (i + 1) % len(candidates)
        return candidates[i % len(candidates)]

    @staticmethod
    def _least_outstanding_tokens(candidates, group):
        # candidates come in replica-index order and min keeps the first: ties go to the lowest index
        return min(candidates, key=_OUTSTANDING)

    def _speeds(self, candidates) -> list[float] | None:
        """Full-batch tokens/s of each candidate, or None when they are all equal (cached per list)."""
        entry = self._speed_of.get(id(candidates))
        if entry is None or entry[0] is not candidates:
            speeds = [replica_tokens_per_s(r.shape, r.role, r.max_batch, r.max_batch_tokens) for r in candidates]
            entry = self._speed_of[id(candidates)] = (candidates, None if len(set(speeds)) == 1 else speeds)
        return entry[1]

    def _least_loaded(self, candidates, group):
        """Least seconds to drain what a replica holds: outstanding tokens over its speed."""
        speeds = self._speeds(candidates)
        if speeds is None:  # identical replicas: the same order as outstanding tokens
            return min(candidates, key=_OUTSTANDING)
        best = min(range(len(candidates)), key=lambda i: candidates[i].outstanding_tokens / speeds[i])
        return candidates[best]

    def _power_of_two(self, candidates, group):
        i, j = self._rng.choice(len(candidates), size=2, replace=False)
        a, b = candidates[i], candidates[j]
        return a if (a.outstanding_tokens, a.index) <= (b.outstanding_tokens, b.index) else b
