"""The live trace: what the event loop writes reaches the trace's arrays, and the columns only
faults, prefix caches and refusals write are made only when used."""

from __future__ import annotations

import math

import numpy as np

from factory_sim.results.trace import REJECTED, Trace
from factory_sim.sim.live_trace import LiveTrace

LAZY = ("cached_tokens", "retries", "reason")


def _live(n: int = 4) -> LiveTrace:
    arrays = Trace.allocate(n)
    return LiveTrace(arrays, [10] * n, [5] * n)


def test_float_columns_write_through_and_int_columns_copy_back():
    live = _live()
    live.first_token_s[2] = 1.25
    assert live.arrays.first_token_s[2] == 1.25  # (a memoryview of the array)
    assert live.first_token_s[2] == 1.25 and math.isnan(live.first_token_s[1])
    live.outcome[1] = REJECTED
    live.decode_replica[3] = 7
    assert live.arrays.outcome[1] != REJECTED  # a list until flushed
    trace = live.flush()
    assert trace is live.arrays
    assert trace.outcome[1] == REJECTED and trace.decode_replica[3] == 7


def test_lazy_columns_are_made_at_first_use_and_flushed_only_then():
    live = _live()
    assert not any(name in vars(live) for name in LAZY)
    before = {name: getattr(live.arrays, name).copy() for name in LAZY}
    live.retries[0] += 2
    live.reason[3] = 4
    assert live.retries[0] == 2 and "retries" in vars(live) and "reason" in vars(live)
    assert "cached_tokens" not in vars(live)
    trace = live.flush()
    assert trace.retries[0] == 2 and trace.reason[3] == 4
    np.testing.assert_array_equal(trace.cached_tokens, before["cached_tokens"])
    assert "cached_tokens" not in vars(live)  # flush did not make it


def test_no_getattr_hook():
    """A class with `__getattr__` makes CPython 3.11 read every attribute of its instances the slow
    way; the event loop reads the trace's columns about ten times per request."""
    assert "__getattr__" not in vars(LiveTrace)
