"""The least-loaded replica of a candidate list without a pass over the list per decision.

`min(candidates, key=outstanding_tokens)` costs O(replicas) at every routing decision (320
single-GPU replicas in a factory's gpt-oss cell, 108 GB200 prefill replicas in the fleet
case), while between two decisions only the few replicas that ran a step changed. A
LoadOrder keeps (outstanding tokens, position in the list) on a heap: a replica reports each
change of its load into the sinks it carries (`Replica.load_sinks`, a tuple of (set,
position) pairs), the next decision pushes the changed replicas' current loads, and entries
that no longer match a replica's load are dropped when they reach the top. The top is then
the least (load, position): the replica `min` returns, the first of equal load. Loads are whole
token counts, so an entry is the one integer load x len(candidates) + position, which orders
as (load, position) does and is cheaper for the heap to compare than a tuple.

A DrainOrder answers least_loaded routing over replicas of different speeds (a mixed fleet's
pools): the candidates in runs of equally fast replicas, each run's least-loaded by outstanding
tokens (its LoadOrder, or `min` over a short run), the runs compared by the seconds their
least-loaded needs to drain them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from functools import partial
from operator import attrgetter

_OUTSTANDING = attrgetter("outstanding_tokens")

# Stale entries stay in the heap until they reach its top; past this many per candidate the
# heap is rebuilt from the current loads (O(replicas), amortized over as many changes).
_STALE_PER_CANDIDATE = 4


class LoadOrder:
    def __init__(self, candidates: Sequence):
        self.candidates = candidates
        self._changed: set[int] = set()
        self._sinks = [(self._changed, i) for i in range(len(candidates))]
        for r, sink in zip(candidates, self._sinks, strict=True):
            r.load_sinks = (*r.load_sinks, sink)
        self._limit = _STALE_PER_CANDIDATE * len(candidates) + 16
        self._rebuild()

    def _rebuild(self) -> None:
        m = len(self.candidates)
        self._heap = [r.outstanding_tokens * m + i for i, r in enumerate(self.candidates)]
        heapq.heapify(self._heap)
        self._changed.clear()

    def least(self):
        """The candidate with the fewest outstanding tokens, the first of those on a tie."""
        heap, candidates, changed = self._heap, self.candidates, self._changed
        m = len(candidates)
        if changed:
            if len(heap) + len(changed) > self._limit:
                self._rebuild()
                heap = self._heap
            else:
                push = heapq.heappush
                for i in changed:
                    push(heap, candidates[i].outstanding_tokens * m + i)
                changed.clear()
        while True:
            key = heap[0]
            i = key % m  # the position (0 <= i < m, for negative loads too)
            r = candidates[i]
            if r.outstanding_tokens * m + i == key:
                return r
            heapq.heappop(heap)

    def detach(self) -> None:
        """Stop the candidates reporting to this order (it is no longer used)."""
        for r, sink in zip(self.candidates, self._sinks, strict=True):
            r.load_sinks = tuple(s for s in r.load_sinks if s is not sink)


class DrainOrder:
    """The candidate with the least outstanding tokens over its speed, the first of those on a
    tie: what one `min` over the candidates by drain seconds returns."""

    def __init__(self, runs: Sequence[tuple[float, Sequence]], min_order: int):
        """`runs`: (speed, replicas) in candidate order; a run of `min_order` replicas or more
        keeps a LoadOrder (its replicas report to it), a shorter one is read with `min`."""
        self._orders = [LoadOrder(members) for _, members in runs if len(members) >= min_order]
        orders = iter(self._orders)
        self._runs = [(speed, next(orders).least if len(members) >= min_order
                       else partial(min, members, key=_OUTSTANDING)) for speed, members in runs]

    def least(self):
        # strict < keeps the first run on equal drain times, and each run's least is its first
        # of least load: together the first candidate of least drain time
        best, best_s = None, 0.0
        for speed, least in self._runs:
            r = least()
            drain_s = r.outstanding_tokens / speed
            if best is None or drain_s < best_s:
                best, best_s = r, drain_s
        return best

    def detach(self) -> None:
        for order in self._orders:
            order.detach()
