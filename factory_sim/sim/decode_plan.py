"""A replica's macro-step of pure decode, its steps priced in chunks as the clock reaches them.

A replica plans pure decode up to its next finish (at most MACRO_HORIZON_STEPS steps), but an
arrival it can admit cuts the plan at the end of the step in progress. Priced at once, most
of a plan's steps were thrown away that way: in a gpt-oss-120b factory cell (one 60 s window
of `oss_b200`) 82% of the 17.5 million steps priced, a cut plan having priced 32.7 steps on
average and used 1.8. A lazy plan prices its first FIRST_CHUNK_STEPS steps and puts a
placeholder on SimPy's queue at the end of the last step priced; if the clock reaches it (the
plan was not cut), the next chunk (as many steps again as are priced) is priced and the
placeholder re-queued, and once every step is priced the plan's end event takes its place.

Where the plan's end sits in SimPy's order does not move. SimPy pops its queue by (time,
priority, number), the number (`Environment._eid`) counting the events scheduled, so events
at one instant run in the order they were scheduled. A plan takes its number from the counter
when it is made, as its end event scheduled at once would, and every placeholder and then
the end go on the queue under that number: each placeholder's key is at or below the end's
(an earlier or the same time, the same number) and at or above the key being processed when
it is queued, so every other event pops in the same order as beside an end queued at once,
and the count of events scheduled is the same. A cut leaves its placeholder (or end) to pop
unused, its callback removed so that the loop calls nothing for it; the steps up to the cut
are priced on demand when the cut needs them. The chunks give the same floats as one call
(StepPricer.decode_chunks_exact): each chunk's context sums are the same integers, and its
running sum starts from the last step priced.

The replica prices a lazy plan's first chunk and queues its first placeholder itself, keeping
the plan as a tuple with its number; most plans are cut or end within that chunk, and the
DecodePlan is made (under that number, `eid`) only when the clock or a cut reaches past it
(Replica._resume_plan).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from heapq import heappush

import numpy as np
import simpy
from simpy.events import NORMAL

from factory_sim.perf.step_backends import StepPricer
from factory_sim.sim.wake import Wake

# Steps priced when a lazy plan is made; a cut plan used 1.8 steps on average (above), and a
# placeholder event costs about as much as pricing two or three steps.
FIRST_CHUNK_STEPS = 8


class DecodePlan:
    """The end times of a plan's steps (`elapsed`, seconds from `start_s`, as many as priced)."""

    __slots__ = ("start_s", "horizon", "elapsed", "_model", "_n", "_sums", "_env", "_eid")

    def __init__(self, env: simpy.Environment, start_s: float, horizon: int, n_seqs: int, model: StepPricer,
                 sums: Callable[[int, int], Sequence], elapsed: Sequence[float] | None = None,
                 eid: int | None = None):
        """A plan of `horizon` steps from `start_s`: `sums(first, steps)` gives the batch's context
        sums of `steps` steps from step `first` of the plan; `elapsed`, when given, is the ends of
        the steps already priced (every step's, for an eager plan), and `eid` the number the plan
        took when it was made (a plan priced so far without this object: Replica._resume_plan)."""
        self.start_s = start_s
        self.horizon = horizon
        self._model, self._n, self._sums, self._env = model, n_seqs, sums, env
        self._eid = next(env._eid) if eid is None else eid  # the end event's place among events at one instant
        if elapsed is None:
            elapsed = model.decode_elapsed_s(n_seqs, sums(0, min(horizon, FIRST_CHUNK_STEPS)))
        self.elapsed = elapsed.tolist() if isinstance(elapsed, np.ndarray) else elapsed

    @property
    def whole(self) -> bool:
        """Whether every step is priced."""
        return len(self.elapsed) >= self.horizon

    def price_more(self) -> None:
        """Price the next chunk: as many steps again as are priced, up to the horizon."""
        elapsed = self.elapsed
        first = len(elapsed)
        steps = min(first, self.horizon - first)
        more = self._model.decode_elapsed_s(self._n, self._sums(first, steps), elapsed[-1])
        elapsed.extend(more.tolist() if isinstance(more, np.ndarray) else more)

    def price_to(self, steps: int) -> None:
        """Price at least the first `steps` steps."""
        while len(self.elapsed) < steps:
            self.price_more()

    def queue(self, callback: Callable) -> Wake:
        """Put the plan's next event on SimPy's queue, under the plan's number, at the end of the
        last step priced (the plan's end once whole): `callback(event)` runs then."""
        event = Wake()
        event.callbacks = [callback]
        heappush(self._env._queue, (self.start_s + self.elapsed[-1], NORMAL, self._eid, event))
        return event
