"""Requests of a run, drawn from a workload: arrival times, lengths, sessions, prefix hashes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factory_sim.config.workload import (
    ClosedLoopArrivals,
    LengthDist,
    SessionArrivals,
    TraceArrivals,
    WorkloadSpec,
)
from factory_sim.workload.arrivals import arrival_times, trace_requests
from factory_sim.workload.lengths import mean_length, sample_lengths

# Tokens per KV block behind the Mooncake traces' hash_ids. Source: the traces of Qin et
# al., "Mooncake: Trading More Storage for Less Computation", FAST 2025
# (https://github.com/kvcache-ai/Mooncake, FAST25-release/traces/), whose hash_ids are
# remapped 512-token block hashes; every row of both built-in Mooncake traces has exactly
# ceil(input_length / 512) of them.
MOONCAKE_BLOCK_TOKENS = 512


@dataclass
class RequestBatch:
    """The requests of one run, as columns.

    arrival_s is None for a closed loop. For sessions it holds the first turns' start
    times and NaN for later turns, which arrive think_s after the previous turn of their
    session finishes (next_turn links the turns). block_hashes lists, per request, the
    hashes of its prompt's KV blocks of block_tokens tokens in order (the last one may be
    partly filled); equal hashes mean the same prefix. Fields a workload does not have
    are None.
    """

    arrival_s: np.ndarray | None
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    block_hashes: list[tuple[int, ...]] | None = None
    block_tokens: int | None = None
    next_turn: np.ndarray | None = None
    think_s: np.ndarray | None = None
    session: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.input_tokens.size)


def generate_requests(
    spec: WorkloadSpec,
    rng: np.random.Generator,
    rate_per_s: float | None = None,
    n: int | None = None,
) -> RequestBatch:
    """Draw `n` requests (default `spec.requests`), at `rate_per_s` if given.

    `rate_per_s` is in requests per second for every arrival kind: it sets the workload's
    mean_rate_per_s (for sessions, the session rate becomes rate_per_s / mean turns).
    Arrivals, input lengths and output lengths come from three child generators spawned
    from `rng` (sessions add two more, for turn counts and think times), so changing the
    rate changes only the times, never the lengths. Sessions give `n` turns, the last
    session cut short if needed.
    """
    count = spec.requests if n is None else n
    if count < 0:
        raise ValueError(f"n must be >= 0, got {count}")
    arr = spec.arrivals
    if isinstance(arr, SessionArrivals):
        assert spec.input_tokens is not None and spec.output_tokens is not None
        from factory_sim.workload.sessions import session_requests  # (sessions only: imported when used)

        fields = session_requests(arr, spec.input_tokens, spec.output_tokens, count, tuple(rng.spawn(5)), rate_per_s)
        return RequestBatch(**fields)
    arrival_rng, input_rng, output_rng = rng.spawn(3)
    if isinstance(arr, TraceArrivals) and arr.use_lengths:
        rows = trace_requests(arr, count, rate_per_s)
        hashes = None
        if "hash_ids" in rows.columns:
            hashes = [tuple(ids) for ids in rows["hash_ids"]]
        return RequestBatch(
            arrival_s=rows["arrival_s"].to_numpy(),
            input_tokens=rows["input_tokens"].to_numpy(dtype=np.int64),
            output_tokens=rows["output_tokens"].to_numpy(dtype=np.int64),
            block_hashes=hashes,
            block_tokens=None if hashes is None else MOONCAKE_BLOCK_TOKENS,
        )
    assert spec.input_tokens is not None and spec.output_tokens is not None
    if isinstance(arr, ClosedLoopArrivals):
        times = None
    else:
        times = arrival_times(arr, count, arrival_rng, rate_per_s)
    return RequestBatch(
        arrival_s=times,
        input_tokens=sample_lengths(spec.input_tokens, count, input_rng),
        output_tokens=sample_lengths(spec.output_tokens, count, output_rng),
    )


def mean_input_tokens(spec: WorkloadSpec) -> float:
    """Expected prompt tokens per request."""
    return _mean_tokens(spec, spec.input_tokens, "input_tokens")


def mean_output_tokens(spec: WorkloadSpec) -> float:
    """Expected generated tokens per request."""
    return _mean_tokens(spec, spec.output_tokens, "output_tokens")


def _mean_tokens(spec: WorkloadSpec, dist: LengthDist | None, column: str) -> float:
    if isinstance(spec.arrivals, SessionArrivals):
        # A prompt holds the whole conversation so far, so its mean depends on the turn
        # count, the answers and the context limit: take it from one seeded draw.
        batch = generate_requests(spec, np.random.default_rng(0))
        return float(getattr(batch, column).mean())
    if dist is not None:
        return mean_length(dist)
    assert isinstance(spec.arrivals, TraceArrivals)
    return float(trace_requests(spec.arrivals, spec.requests)[column].mean())
