"""The trace as the event loop writes it: one request's cell at a time, millions of times a run.

Indexing a NumPy array with a Python int costs a NumPy scalar's conversion each way (about
100-200 ns); the event loop writes about ten cells per request and reads a few. Here the
float columns are memoryviews of the trace's own arrays (written through, about a third of
the cost, and a read gives a Python float), and the integer columns are Python lists (about
10 ns) copied into the trace's arrays once the clock stops (`flush`). The values stored are
the same: a Python float is a float64, and the integers fit their columns. The columns only
faults, prefix caches and refusals write become lists when the loop first reads or writes
them, so that a run without them neither makes nor copies them back (about 1.5 ms each way
per 100,000 requests); the others are made with the trace. Those three are cached properties,
not a `__getattr__`: a class with `__getattr__` makes CPython 3.11 look every attribute of its
instances up the slow way (about 450 machine instructions a read where a plain instance's
takes tens: some 4% of the peer benchmark, which reads a column about ten times per request).
"""

from __future__ import annotations

from functools import cached_property

from factory_sim.results.trace import FLOAT_COLUMNS, Trace

# the integer columns the event loop writes per request; the last three only with faults,
# prefix caches or refused requests
_LIST_COLUMNS = ("prefill_replica", "decode_replica", "pool", "hardware", "outcome", "cached_tokens", "retries",
                 "reason")
_EVERY_RUN = 5


class LiveTrace:
    """The columns of `arrays` (a Trace) by the same names; `flush()` completes the Trace."""

    def __init__(self, arrays: Trace, input_tokens: list[int], output_tokens: list[int]):
        self.arrays = arrays
        for name in FLOAT_COLUMNS:
            setattr(self, name, memoryview(getattr(arrays, name)))
        for name in _LIST_COLUMNS[:_EVERY_RUN]:
            setattr(self, name, getattr(arrays, name).tolist())
        self.input_tokens, self.output_tokens = input_tokens, output_tokens  # read only: the replicas' lists

    # the columns only faults, prefix caches and refusals write: a list at their first use, kept in
    # the instance's dict (where `flush` finds it)
    @cached_property
    def cached_tokens(self) -> list[int]:
        return self.arrays.cached_tokens.tolist()

    @cached_property
    def retries(self) -> list[int]:
        return self.arrays.retries.tolist()

    @cached_property
    def reason(self) -> list[int]:
        return self.arrays.reason.tolist()

    def __len__(self) -> int:
        return len(self.arrays)

    def flush(self) -> Trace:
        """Copy the list columns the loop used into the trace's arrays (the float columns are written already)."""
        for name in _LIST_COLUMNS:
            column = self.__dict__.get(name)
            if column is not None:
                getattr(self.arrays, name)[:] = column
        return self.arrays
