"""When requests arrive: open-loop processes, closed-loop clients, or a replayed trace.

Open-loop generators draw unit-rate interarrival gaps and divide by the rate, so one seed
gives the same arrival pattern at every load, only stretched in time. Load searches rely
on this: comparing two rates then compares loads, not two different random draws.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from factory_sim.errors import ConfigError
from factory_sim.workload.traces import check_trace_ref, load_trace


class PoissonArrivals(BaseModel):
    """Independent users: exponential gaps (MLPerf Server's arrival model)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["poisson"] = "poisson"
    rate_per_s: float = Field(gt=0, allow_inf_nan=False)


class GammaArrivals(BaseModel):
    """Bursty traffic: gamma-distributed gaps with coefficient of variation `cv`
    (cv = 1 is Poisson, cv > 1 burstier, cv < 1 more regular)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["gamma"] = "gamma"
    rate_per_s: float = Field(gt=0, allow_inf_nan=False)
    cv: float = Field(gt=0, allow_inf_nan=False)


class ClosedLoopArrivals(BaseModel):
    """A fixed number of clients, each sending its next request `think_time_s` after its
    previous one finished, as benchmark harnesses do. Arrival times depend on the
    simulated latencies, so the simulation engine generates them."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["closed_loop"] = "closed_loop"
    concurrency: int = Field(ge=1)
    think_time_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)


class TraceArrivals(BaseModel):
    """Replay a real trace's timestamps (from its first request), divided by `time_scale`
    (2 = twice as fast). `use_lengths` also takes each request's input/output lengths from
    the trace. `loop` repeats the trace back to back when more requests are asked for than
    it holds, one mean gap apart."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["trace"] = "trace"
    trace: str
    time_scale: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    use_lengths: bool = True
    loop: bool = False

    @field_validator("trace")
    @classmethod
    def _known_trace(cls, value: str) -> str:
        return check_trace_ref(value)


Arrivals = Annotated[
    PoissonArrivals | GammaArrivals | ClosedLoopArrivals | TraceArrivals,
    Field(discriminator="kind"),
]


def arrival_times(
    arr: Arrivals, n: int, rng: np.random.Generator, rate_per_s: float | None = None
) -> np.ndarray:
    """Sorted arrival times in seconds (float64) for `n` requests.

    `rate_per_s` replaces the configured rate; for a trace it rescales time so that the
    trace's mean rate equals it. Poisson and gamma arrivals start after time 0; a trace's
    first request arrives at 0. Closed-loop arrivals raise ValueError: the engine drives them.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if rate_per_s is not None and not (np.isfinite(rate_per_s) and rate_per_s > 0):
        raise ValueError(f"rate_per_s must be a finite number > 0, got {rate_per_s}")
    if isinstance(arr, PoissonArrivals):
        unit_gaps = rng.standard_exponential(n)
        return _times(unit_gaps, rate_per_s or arr.rate_per_s)
    if isinstance(arr, GammaArrivals):
        shape = 1.0 / arr.cv**2
        unit_gaps = rng.gamma(shape, 1.0 / shape, size=n)
        return _times(unit_gaps, rate_per_s or arr.rate_per_s)
    if isinstance(arr, TraceArrivals):
        return trace_requests(arr, n, rate_per_s)["arrival_s"].to_numpy()
    if isinstance(arr, ClosedLoopArrivals):
        raise ValueError(
            "closed-loop arrivals depend on when earlier requests finish; "
            "the simulation engine generates them"
        )
    raise TypeError(f"not an arrival process: {type(arr).__name__}")


def mean_rate_per_s(arr: Arrivals) -> float | None:
    """Offered requests per second; None for closed loop, whose rate is an outcome."""
    if isinstance(arr, (PoissonArrivals, GammaArrivals)):
        return arr.rate_per_s
    if isinstance(arr, TraceArrivals):
        return _native_rate_per_s(load_trace(arr.trace)["arrival_s"].to_numpy(), arr.trace) * arr.time_scale
    if isinstance(arr, ClosedLoopArrivals):
        return None
    raise TypeError(f"not an arrival process: {type(arr).__name__}")


def trace_requests(arr: TraceArrivals, n: int, rate_per_s: float | None = None) -> pd.DataFrame:
    """The first `n` requests of the replay, in load_trace's columns, with `arrival_s`
    already scaled (by `time_scale`, or to `rate_per_s` when given) and the trace repeated
    if `loop` is set.

    Raises ConfigError when `n` exceeds the trace and `loop` is off.
    """
    trace = load_trace(arr.trace)
    rows = len(trace)
    if n > rows and not arr.loop:
        raise ConfigError(
            "workload.requests",
            f"trace {arr.trace!r} holds {rows} requests but {n} were asked for; "
            f"set requests <= {rows} or arrivals.loop: true",
        )
    raw_s = trace["arrival_s"].to_numpy()
    needs_rate = rate_per_s is not None or n > rows
    native = _native_rate_per_s(raw_s, arr.trace) if needs_rate else 0.0
    index = np.arange(n) % rows
    out = trace.iloc[index].reset_index(drop=True)
    times = raw_s[index]
    if n > rows:
        # Each repetition starts one mean gap after the previous one's last request.
        period_s = raw_s[-1] + 1.0 / native
        times = times + (np.arange(n) // rows) * period_s
    if rate_per_s is None:
        out["arrival_s"] = times / arr.time_scale
    else:
        out["arrival_s"] = times * (native / rate_per_s)
    return out


def _times(unit_gaps: np.ndarray, rate_per_s: float) -> np.ndarray:
    # A gamma draw with a small shape can underflow to 0; keep every arrival after time 0.
    unit_gaps = np.maximum(unit_gaps, np.finfo(np.float64).tiny)
    return np.cumsum(unit_gaps) / rate_per_s


def _native_rate_per_s(raw_s: np.ndarray, name: str) -> float:
    """Requests per second of the unscaled trace: (rows - 1) gaps over its time span."""
    span_s = float(raw_s[-1] - raw_s[0])
    if raw_s.size < 2 or span_s <= 0:
        raise ConfigError(
            "workload.arrivals.trace",
            f"trace {name!r} has no time span (all requests at one instant), so it has no "
            "mean rate to rescale or loop; replay it without a rate override and without loop",
        )
    return (raw_s.size - 1) / span_s
