"""A decode batch's layer-averaged context sums under a capped attention (sliding window), kept
incrementally.

With a sliding window a sequence's attention price is a x ctx + b x min(ctx, w): the batch's
sum is not a function of the plain context total, and recomputing it from every sequence's
context at each re-plan (once per arrival or finish) made it O(batch) per event. When a, b
are fractions over a power of two and w is whole (perf.steptime.exact_context_weights), the
sum is an integer over that power of two, exactly the float that NumPy's element-wise
effective_context and row sum give (every partial sum is exact below 2**53), so it can be
kept from integers: the full-context total the replica already keeps, and for the sequences
still below the window the step at which each reaches it (a sorted list).
"""

from __future__ import annotations

from bisect import bisect_left, insort

import numpy as np

from factory_sim.perf.shape import ReplicaShape
from factory_sim.perf.steptime import exact_context_weights

_EXACT_BELOW = 1 << 53  # integers up to here are exact floats
# From this many steps a plan's sums come from NumPy (a fixed cost of some 20 us against about
# 0.6 us a step in the loop; measured on a 2-core Xeon VM, Python 3.11): the few long plans of a
# sparse batch (up to MACRO_HORIZON_STEPS) held most of the steps priced.
_NUMPY_MIN_STEPS = 32


class CappedContextSums:
    """Sequences below the window, as the decode step at which each reaches it.

    A sequence whose context minus the replica's step count is `base` reaches the window
    w at step w - base (its "hit"); it is below the window while the step count is lower.
    The list holds exactly the hits above the current step count (advance() drops the rest).
    """

    def __init__(self, a_num: int, b_num: int, scale: int, window: int):
        self._a, self._b, self._scale, self._w = a_num, b_num, scale, window
        self.hits: list[int] = []  # sorted; one list for good (changed in place), callers may read it
        self._hit_sum = 0

    @classmethod
    def for_shape(cls, shape: ReplicaShape) -> CappedContextSums | None:
        weights = exact_context_weights(shape)
        return None if weights is None else cls(*weights)

    def join(self, base: int, step: int) -> None:
        hit = self._w - base
        if hit > step:
            insort(self.hits, hit)
            self._hit_sum += hit

    def leave(self, base: int, step: int) -> None:
        hit = self._w - base
        if hit > step:
            hits = self.hits
            del hits[bisect_left(hits, hit)]
            self._hit_sum -= hit

    def advance(self, step: int) -> None:
        """The step count is now `step`: sequences that reached the window leave the list."""
        hits = self.hits
        if hits and hits[0] <= step:
            k = bisect_left(hits, step + 1)
            self._hit_sum -= sum(hits[:k])
            del hits[:k]

    def clear(self) -> None:
        self.hits.clear()
        self._hit_sum = 0

    def exact(self, n: int, ctx_total: int, steps: int) -> bool:
        """Whether the sums of the next `steps` steps stay in the range where floats are exact."""
        return self._a * (ctx_total + n * steps) + self._b * n * self._w < _EXACT_BELOW

    def sums(self, n: int, ctx_total: int, step: int, steps: int) -> list[float] | None:
        """The batch's effective context sums for the next `steps` steps (step j prices every
        context + j), from `n` sequences whose contexts add up to `ctx_total` at step count
        `step` (the list may still hold hits at or below it: they count as reached); None when
        the sums could leave the range where floats are exact."""
        a, b, w = self._a, self._b, self._w
        if a * (ctx_total + n * steps) + b * n * w >= _EXACT_BELOW:
            return None
        hits, scale = self.hits, self._scale
        if steps == 1 and (not hits or hits[0] > step):  # the loop's one step (a mixed step's), at once
            return [(a * ctx_total + b * (n * w - self._hit_sum + len(hits) * step)) / scale]
        if steps >= _NUMPY_MIN_STEPS:
            return self._sums_array(n, ctx_total, step, steps)
        g, idx, hit_sum = len(hits), 0, self._hit_sum
        while idx < g and hits[idx] <= step:
            hit_sum -= hits[idx]
            idx += 1
        # sum of min(ctx, w) = n w - sum over the sequences still below it of (hit - t); from one
        # step to the next every context grows by one and the sum of min(ctx, w) by the count
        # below the window, so the numerator grows by a n + b (count below) (exact integers)
        num = a * ctx_total + b * (n * w - hit_sum + (g - idx) * step)
        grow = a * n + b * (g - idx)
        nxt = hits[idx] if idx < g else -1
        out = [num / scale]
        t = step
        for _ in range(steps - 1):
            num += grow
            t += 1
            if t == nxt:  # sequences reach the window at this step
                while idx < g and hits[idx] == t:
                    idx += 1
                    grow -= b
                nxt = hits[idx] if idx < g else -1
            out.append(num / scale)
        return out

    def sum_one(self, n: int, ctx_total: int, step: int) -> float | None:
        """sums(n, ctx_total, step, 1)[0] without the list: a mixed step's decode context sum."""
        a, b, w = self._a, self._b, self._w
        if a * (ctx_total + n) + b * n * w >= _EXACT_BELOW:
            return None
        hits, hit_sum = self.hits, self._hit_sum
        g = len(hits)
        if hits and hits[0] <= step:  # hits the list still holds at or below the step count: reached
            idx = 0
            while idx < g and hits[idx] <= step:
                hit_sum -= hits[idx]
                idx += 1
            g -= idx
        return (a * ctx_total + b * (n * w - hit_sum + g * step)) / self._scale

    def _sums_array(self, n: int, ctx_total: int, step: int, steps: int) -> np.ndarray:
        """sums() for a long plan, from the same integers in int64 (below 2**53, as sums() checked):
        an exact integer over a power of two converts and divides to the float Python's true
        division gives."""
        a, b, w = self._a, self._b, self._w
        hits = np.array(self.hits, dtype=np.int64)
        j = np.arange(steps, dtype=np.int64)
        t = j + step
        idx = np.searchsorted(hits, t, side="right")  # the hits reached by step t
        below_sum = self._hit_sum - np.concatenate(([0], np.cumsum(hits)))[idx]
        num = a * (ctx_total + n * j) + b * (n * w - below_sum + (len(hits) - idx) * t)
        return num / self._scale
