"""Routing policies: which replica of a pool gets a request.

A policy sees only the candidate replicas' public load (`outstanding_tokens`), their shape,
and a seeded random generator, so it can be swapped without touching the replicas.
`least_loaded` divides the outstanding tokens by what the replica processes per second,
so a mixed fleet sends a fast GB300 replica more work than an H200 node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from factory_sim.perf.estimate import replica_tokens_per_s

ROUTER_POLICIES = ("round_robin", "least_outstanding_tokens", "least_loaded", "power_of_two")


class Router:
    def __init__(self, policy: str, rng: np.random.Generator):
        if policy not in ROUTER_POLICIES:
            raise ValueError(f"unknown router policy {policy!r}; use one of {ROUTER_POLICIES}")
        self.policy = policy
        self._rng = rng
        self._next: dict[int, int] = {}
        self._speed: dict[int, float] = {}  # replica index -> tokens/s when full
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
        return min(candidates, key=lambda r: (r.outstanding_tokens, r.index))

    def _drain_s(self, replica) -> float:
        """Seconds the replica needs to finish what it holds."""
        speed = self._speed.get(replica.index)
        if speed is None:
            speed = self._speed[replica.index] = replica_tokens_per_s(
                replica.shape, replica.role, replica.max_batch, replica.max_batch_tokens)
        return replica.outstanding_tokens / speed

    def _least_loaded(self, candidates, group):
        return min(candidates, key=lambda r: (self._drain_s(r), r.index))

    def _power_of_two(self, candidates, group):
        i, j = self._rng.choice(len(candidates), size=2, replace=False)
        a, b = candidates[i], candidates[j]
        return a if (a.outstanding_tokens, a.index) <= (b.outstanding_tokens, b.index) else b
