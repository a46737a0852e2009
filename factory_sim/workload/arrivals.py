"""When requests arrive: open-loop processes, closed-loop clients, sessions, or a replayed trace.

Open-loop generators draw unit-rate interarrival gaps and divide by the rate, so one seed
gives the same arrival pattern at every load, only stretched in time. Load searches rely
on this: comparing two rates then compares loads, not two different random draws. The
diurnal process maps the same unit-rate draws through its rate curve, so it keeps this
property too (scaled loads, same draws), though not as a plain stretch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from factory_sim.config.workload import (
    Arrivals,
    ClosedLoopArrivals,
    DiurnalArrivals,
    GammaArrivals,
    PoissonArrivals,
    SessionArrivals,
    TraceArrivals,
)
from factory_sim.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


def arrival_times(
    arr: Arrivals, n: int, rng: np.random.Generator, rate_per_s: float | None = None
) -> np.ndarray:
    """Sorted arrival times in seconds (float64) for `n` requests.

    `rate_per_s` replaces the configured rate; for a trace it rescales time so that the
    trace's mean rate equals it; for a diurnal curve it scales peak and trough alike so that
    the mean rate equals it. Poisson, gamma and diurnal arrivals start after time 0; a
    trace's first request arrives at 0. Closed-loop arrivals and sessions raise ValueError:
    their later requests arrive when earlier ones finish, which the engine decides.
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
    if isinstance(arr, DiurnalArrivals):
        unit_times = np.cumsum(np.maximum(rng.standard_exponential(n), np.finfo(np.float64).tiny))
        scale = 1.0 if rate_per_s is None else rate_per_s / arr.rate_per_s
        return _diurnal_times(arr, unit_times / scale)
    if isinstance(arr, TraceArrivals):
        return trace_requests(arr, n, rate_per_s)["arrival_s"].to_numpy()
    if isinstance(arr, ClosedLoopArrivals):
        raise ValueError(
            "closed-loop arrivals depend on when earlier requests finish; "
            "the simulation engine generates them"
        )
    if isinstance(arr, SessionArrivals):
        raise ValueError(
            "a session's later turns arrive when earlier ones finish; use generate_requests "
            "for the first turns' times and the think times, and let the engine schedule the rest"
        )
    raise TypeError(f"not an arrival process: {type(arr).__name__}")


def mean_rate_per_s(arr: Arrivals) -> float | None:
    """Offered requests per second; None for closed loop, whose rate is an outcome.

    Sessions: sessions per second times the mean turns per session. This is approximate:
    an upper bound when sessions are cut short by max_context_tokens, and reached only
    once the run is long compared with a session.
    """
    if isinstance(arr, (PoissonArrivals, GammaArrivals, DiurnalArrivals)):
        return arr.rate_per_s
    if isinstance(arr, SessionArrivals):
        from factory_sim.workload.sessions import mean_turns  # (sessions and traces: imported when used)

        return arr.rate_per_s * mean_turns(arr)
    if isinstance(arr, TraceArrivals):
        from factory_sim.workload.trace_files import load_trace

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
    from factory_sim.workload.trace_files import load_trace

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


def _diurnal_times(arr: DiurnalArrivals, cumulative: np.ndarray) -> np.ndarray:
    """Time rescaling: the times t at which the expected count Lambda(t) = integral of
    rate(t) from 0 reaches each of `cumulative` (sorted points of a unit-rate Poisson
    process), which makes the t a Poisson process with that rate.

    Lambda(t) = m t - (a / w) (sin(w (t - t0)) + sin(w t0)), with m the mean rate, a half
    the peak-to-trough swing and w = 2 pi / period. It is increasing and within 2 a / w of
    m t, which brackets each root; safeguarded Newton then converges in a few steps.
    """
    mean = arr.rate_per_s
    swing = (arr.peak_rate_per_s - arr.trough_rate_per_s) / 2
    omega = 2 * np.pi / arr.period_s
    if swing == 0 or cumulative.size == 0:
        return cumulative / mean
    offset = np.sin(omega * arr.trough_at_s)
    reach = 2 * swing / omega
    low = np.maximum((cumulative - reach) / mean, 0.0)
    high = (cumulative + reach) / mean
    t = cumulative / mean
    tol_s = 1e-12 * max(arr.period_s, float(high[-1]))
    todo = np.arange(t.size)  # roots not yet converged; near a zero rate Newton is slow
    for _ in range(200):
        tt, lo, hi, target = t[todo], low[todo], high[todo], cumulative[todo]
        phase = omega * (tt - arr.trough_at_s)
        excess = mean * tt - (swing / omega) * (np.sin(phase) + offset) - target
        lo = np.where(excess < 0, tt, lo)
        hi = np.where(excess > 0, tt, hi)
        rate = mean - swing * np.cos(phase)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = tt - excess / rate
        bad = ~((step >= lo) & (step <= hi))  # outside the bracket, or a zero rate
        step = np.where(bad, (lo + hi) / 2, step)
        t[todo], low[todo], high[todo] = step, lo, hi
        moving = np.abs(step - tt) > tol_s
        if not moving.any():
            break
        todo = todo[moving]
    # Roots solved to tol_s may cross by less than tol_s; arrivals stay sorted.
    return np.maximum.accumulate(t)


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
