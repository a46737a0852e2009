"""Token-length distributions for prompts and generations.

Cost and capacity depend on the whole distribution, not only its mean: a heavy tail of long
generations holds KV cache and batch slots far longer than the average request. Every
sampler returns whole token counts >= 1.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factory_sim.workload.traces import check_trace_ref, load_trace


class FixedLength(BaseModel):
    """Every request has the same length, as in fixed-ISL/OSL benchmark sweeps."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["fixed"] = "fixed"
    tokens: int = Field(ge=1)


class UniformLength(BaseModel):
    """Whole numbers drawn uniformly from [low, high], both ends included."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["uniform"] = "uniform"
    low: int = Field(ge=1)
    high: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> UniformLength:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class NominalLength(BaseModel):
    """InferenceMAX/InferenceX style: a nominal length with each request drawn uniformly
    from low_fraction..high_fraction of it, so the realised mean is below nominal
    (about 0.9x with the default 80-100%)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["nominal"] = "nominal"
    tokens: int = Field(ge=1)
    low_fraction: float = Field(default=0.8, gt=0, allow_inf_nan=False)
    high_fraction: float = Field(default=1.0, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> NominalLength:
        if self.high_fraction < self.low_fraction:
            raise ValueError(
                f"high_fraction ({self.high_fraction}) must be >= low_fraction ({self.low_fraction})"
            )
        return self

    def bounds(self) -> tuple[int, int]:
        """Inclusive whole-token range the draws come from."""
        low = max(1, round(self.low_fraction * self.tokens))
        high = max(low, round(self.high_fraction * self.tokens))
        return low, high


class LognormalLength(BaseModel):
    """Right-skewed lengths (chat and reasoning outputs). `mean` is the arithmetic mean of
    the uncapped distribution and `sigma` the standard deviation of log(length); draws
    above `max_tokens` are cut to it, as a generation limit does."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["lognormal"] = "lognormal"
    mean: float = Field(gt=0, allow_inf_nan=False)
    sigma: float = Field(gt=0, allow_inf_nan=False)
    max_tokens: int | None = Field(default=None, ge=1)

    @property
    def mu(self) -> float:
        """Location of log(length) that gives the requested arithmetic mean."""
        return float(np.log(self.mean) - self.sigma**2 / 2)


class EmpiricalLength(BaseModel):
    """Resample (with replacement) the lengths of a real trace, keeping its exact shape."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["empirical"] = "empirical"
    trace: str
    column: Literal["input", "output"]
    max_tokens: int | None = Field(default=None, ge=1)

    @field_validator("trace")
    @classmethod
    def _known_trace(cls, value: str) -> str:
        return check_trace_ref(value)

    def values(self) -> np.ndarray:
        """The trace's lengths, capped at max_tokens."""
        values = load_trace(self.trace)[f"{self.column}_tokens"].to_numpy(dtype=np.int64)
        return values if self.max_tokens is None else np.minimum(values, self.max_tokens)


LengthDist = Annotated[
    FixedLength | UniformLength | NominalLength | LognormalLength | EmpiricalLength,
    Field(discriminator="kind"),
]


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
        values = dist.values()
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
        return float(dist.values().mean())
    raise TypeError(f"not a length distribution: {type(dist).__name__}")
