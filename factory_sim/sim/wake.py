"""The cheapest event SimPy's loop can process: one callback, already triggered.

The replicas' step ends, the open-loop arrival chain and KV hand-offs schedule one such
event each, millions per run. A `simpy.Timeout` costs two Python calls more per event
(its constructor and `Environment.schedule` through it) plus the callback list's append;
SimPy's `Environment.step` needs only what this holds (`callbacks`, `_ok`), so these events
are scheduled on the same queue, numbered and ordered exactly as timeouts would be (the queue entry
`Environment.schedule` makes, pushed without that call).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush

import simpy
from simpy.events import NORMAL


class Wake:
    """An event that has succeeded (value None): wake(env, delay, callback) schedules one.

    Its `callbacks` are read by the loop, never appended to or changed in place (a cut sets
    them to `()`), so the hot paths give their events one tuple made once per callback."""

    __slots__ = ("callbacks",)
    _ok = True  # read by Environment.step: a processed Wake never fails
    value = None


def wake(env: simpy.Environment, delay: float, callback: Callable) -> Wake:
    """Call `callback(event)` `delay` seconds from now, as `env.timeout(delay)` with it appended would."""
    event = Wake()
    event.callbacks = [callback]
    # Environment.schedule(event, NORMAL, delay), inlined: the same queue entry
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), event))
    return event
