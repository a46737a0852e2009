"""Token-length distributions for prompts and generations.

Cost and capacity depend on the whole distribution, not only its mean: a heavy tail of long
generations holds KV cache and batch slots far longer than the average request. Every
sampler returns whole token counts >= 1.
"""

from __future__ import annotations

import numpy as np

from factory_sim.config.workload import (
    EmpiricalLength,
    FixedLength,
    LengthDist,
    LognormalLength,
    NominalLength,
    UniformLength,
)


def sample_lengths(dist: LengthDist, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` token counts (int64, all >= 1) drawn from `dist`."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if isinstance(dist, FixedLength):
        out = np.full(n, dist.tokens, dtype=np.int64)
    elif isinstance(dist, UniformLength):
        out = rng.integers(dist.low, dist.high, size=n, endpoint=True, dtype=np.int64)
    elif isinstance(dist, NominalLength):
        low, high = dist.bounds()
        out = rng.integers(low, high, size=n, endpoint=True, dtype=np.int64)
    elif isinstance(dist, LognormalLength):
        draws = np.rint(rng.lognormal(dist.mu, dist.sigma, size=n))
        if dist.max_tokens is not None:
            draws = np.minimum(draws, dist.max_tokens)
        out = np.maximum(draws, 1).astype(np.int64)
    elif isinstance(dist, EmpiricalLength):
        values = empirical_values(dist)
        out = values[rng.integers(0, values.size, size=n)]
    else:
        raise TypeError(f"not a length distribution: {type(dist).__name__}")
    return out


def mean_length(dist: LengthDist) -> float:
    """Expected tokens per request, for capacity estimates before a simulation runs.

    Lognormal: the analytic mean of the capped distribution (rounding to whole tokens and
    the floor of 1 token are ignored; both move the mean by well under a token).
    """
    if isinstance(dist, FixedLength):
        return float(dist.tokens)
    if isinstance(dist, UniformLength):
        return (dist.low + dist.high) / 2
    if isinstance(dist, NominalLength):
        low, high = dist.bounds()
        return (low + high) / 2
    if isinstance(dist, LognormalLength):
        if dist.max_tokens is None:
            return dist.mean
        from scipy.special import ndtr  # the standard normal CDF, imported here: scipy is slow to import

        # E[min(X, m)] = E[X; X < m] + m * P(X >= m) for X lognormal(mu, sigma).
        log_m = np.log(dist.max_tokens)
        below = dist.mean * ndtr((log_m - dist.mu - dist.sigma**2) / dist.sigma)
        above = dist.max_tokens * ndtr(-(log_m - dist.mu) / dist.sigma)
        return float(below + above)
    if isinstance(dist, EmpiricalLength):
        return float(empirical_values(dist).mean())
    raise TypeError(f"not a length distribution: {type(dist).__name__}")


def empirical_values(dist: EmpiricalLength) -> np.ndarray:
    """The trace's lengths, capped at max_tokens."""
    from factory_sim.workload.trace_files import load_trace  # (a trace's lengths only: imported when used)

    values = load_trace(dist.trace)[f"{dist.column}_tokens"].to_numpy(dtype=np.int64)
    return values if dist.max_tokens is None else np.minimum(values, dist.max_tokens)
