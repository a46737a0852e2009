"""Which attention-DP rank each request of a replica belongs to, for TensorRT-LLM's balancing.

TensorRT-LLM gives a new request to the attention-DP rank with the fewest active requests (its
queued ones included) and, with attention-DP balancing on, releases queued prompts early only
while some rank runs nothing or when every rank has a prompt queued (pyexecutor
`_balance_adp_requests`). Counted per rank rather than pooled, in a closed loop at the batch
limit a release needs every rank to have had a request finish since the last one: about
dp x H(dp) finishes (22 for 8 ranks) where a pooled count takes dp.
"""

from __future__ import annotations


class DpRanks:
    """Per rank: requests active (queued or running there) and queued."""

    def __init__(self, ranks: int) -> None:
        self.ranks = ranks
        self.clear()

    def clear(self) -> None:
        self._active = [0] * self.ranks
        self._queued = [0] * self.ranks
        self._rank_of: dict[int, int] = {}

    def queued(self, rid: int) -> None:
        """A new request: to the least active rank (the lowest index among equals)."""
        active = self._active
        rank = active.index(min(active))
        self._rank_of[rid] = rank
        active[rank] += 1
        self._queued[rank] += 1

    def admitted(self, rid: int) -> None:
        self._queued[self._rank_of[rid]] -= 1

    def requeued(self, rid: int) -> None:
        """A preempted request back in its rank's queue."""
        self._queued[self._rank_of[rid]] += 1

    def gone(self, rid: int, *, was_queued: bool = False) -> None:
        """The request finished (or, `was_queued`, left the queue unserved)."""
        rank = self._rank_of.pop(rid)
        self._active[rank] -= 1
        if was_queued:
            self._queued[rank] -= 1

    def some_rank_idle(self) -> bool:
        """Whether some rank runs nothing (all its requests, if any, queued)."""
        return any(a == q for a, q in zip(self._active, self._queued, strict=True))

    def every_rank_queued(self) -> bool:
        return min(self._queued) >= 1


class NoRanks(DpRanks):
    """No per-rank accounting (no attention-DP balancing): every call does nothing."""

    def __init__(self) -> None:
        super().__init__(0)

    def clear(self) -> None:
        pass

    def queued(self, rid: int) -> None:
        pass

    def admitted(self, rid: int) -> None:
        pass

    def requeued(self, rid: int) -> None:
        pass

    def gone(self, rid: int, *, was_queued: bool = False) -> None:
        pass
