"""A decode batch's finishing sequences, kept as one list per finishing step (sim/replica.py),
leave in the order one heap of (finishing step, join order, request) popped them: the order
their finishes are handed on (a session's next turn is scheduled in it)."""

from __future__ import annotations

import heapq

import numpy as np

from factory_sim.results.trace import DONE
from factory_sim.sim import engine as engine_module
from factory_sim.sim.engine import simulate
from factory_sim.sim.replica import Replica
from tests.helpers import aggregated_fleet, shape


class _HeapReplica(Replica):
    """The replica with its finishing sequences on one heap of (step, join order, id), as before."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._heap: list[tuple[int, int, int]] = []
        self._joins = 0
        # the general path, which joins every finished prompt through _join_decode (a plain
        # replica joins them inline: the same batch, unseen by the override below)
        self._plain = False

    def _join_decode(self, rid: int, generated: int) -> None:
        left = self._output_tokens[rid] - generated
        if left > 0:
            heapq.heappush(self._heap, (self._step_index + left, self._joins, rid))
            self._joins += 1
        super()._join_decode(rid, generated)

    def _advance_decode(self, steps: int, t: float) -> None:
        order = []
        now_step = self._step_index + steps
        while self._heap and self._heap[0][0] <= now_step:
            order.append(heapq.heappop(self._heap)[2])
        self.heap_order.extend(order)
        super()._advance_decode(steps, t)


def _run(monkeypatch, cls):
    monkeypatch.setattr(cls, "heap_order", [], raising=False)
    finished = []
    original = engine_module._Engine._finish

    def record(self, rep, rid):
        finished.append(rid)
        return original(self, rep, rid)

    monkeypatch.setattr(engine_module, "Replica", cls)
    monkeypatch.setattr(engine_module._Engine, "_finish", record)
    rng = np.random.default_rng(5)
    n = 600
    # few distinct lengths and arrivals in bursts at one instant: many sequences finish at one step
    inp = rng.choice([64, 128, 256], n)
    out = rng.choice([8, 16, 24], n)
    arrival = np.repeat(np.arange(n // 20) * 0.05, 20)
    res = simulate(aggregated_fleet(shape(), replicas=2, max_batch=48, max_batch_tokens=4096), inp, out,
                   arrival_s=arrival, seed=1)
    assert (res.trace.outcome == DONE).all()
    return finished, cls.heap_order


def test_finishing_lists_leave_in_heap_order(monkeypatch):
    finished, heap_order = _run(monkeypatch, _HeapReplica)
    assert len(finished) == 600 and len(heap_order) > 500
    # the sequences that finished in decode steps (not at their prompt's last chunk) left as the heap pops them
    in_heap = set(heap_order)
    assert [rid for rid in finished if rid in in_heap] == heap_order
