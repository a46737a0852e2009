"""SimPy's event loop with its step inlined: the same events popped in the same order.

`Environment.run` calls `Environment.step` once per event, a Python call and two attribute
look-ups each; a factory cell processes millions of events. `run` below is `Environment.run`
(SimPy 4.1) with `step`'s body in its loop: the same queue, the same handling of `until` (a
time or an event), of a failed event nobody defused and of the event that stops the run
(rescheduled as SimPy does, so the count of events scheduled is the same).
"""

from __future__ import annotations

from heapq import heappop
from typing import Any

import simpy
from simpy.core import EventPriority, StopSimulation
from simpy.events import URGENT, Event

from factory_sim.sim.wake import Wake


def run(env: simpy.Environment, until: float | Event | None = None) -> Any:
    """`env.run(until)`: process events until `until` (a time, or an event that triggers)."""
    if until is not None:
        if not isinstance(until, Event):
            at = until if isinstance(until, int) else float(until)
            if at <= env.now:
                raise ValueError(f"until ({at}) must be greater than the current simulation time")
            until = Event(env)  # before every regular event at that time
            until._ok = True
            until._value = None
            env.schedule(until, URGENT, at - env.now)
        elif until.callbacks is None:
            return until.value
        until.callbacks.append(StopSimulation.callback)
    queue = env._queue
    while queue:
        env._now, _, _, event = heappop(queue)
        callbacks, event.callbacks = event.callbacks, None
        try:
            for callback in callbacks:
                callback(event)
        except StopSimulation as stop:
            event.callbacks = callbacks[callbacks.index(callback) + 1:]
            env.schedule(event, EventPriority(-1))
            return stop.args[0]
        # (a Wake never fails: its type is checked first, a faster read than its class attribute `_ok`)
        if type(event) is not Wake and not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc
    if until is not None:
        raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {until}')
    return None
