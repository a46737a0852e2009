"""Uncertain inputs: distributions over numeric experiment fields (drawn in studies/uncertainty.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory_sim.config.bounds import Real, Seed, within

_STRICT = ConfigDict(extra="forbid", defer_build=True)


class UniformDist(BaseModel):
    model_config = _STRICT
    kind: Literal["uniform"]
    low: Real
    high: Real

    @model_validator(mode="after")
    def _order(self):
        if not self.high > self.low:
            raise ValueError("high must be greater than low")
        return self

    def frozen(self):
        from scipy import stats  # imported here: scipy.stats costs every run 0.5 s of start-up

        return stats.uniform(loc=self.low, scale=self.high - self.low)


class TriangularDist(BaseModel):
    model_config = _STRICT
    kind: Literal["triangular"]
    low: Real
    mode: Real
    high: Real

    @model_validator(mode="after")
    def _order(self):
        if not (self.low <= self.mode <= self.high and self.high > self.low):
            raise ValueError("need low <= mode <= high and low < high")
        return self

    def frozen(self):
        from scipy import stats

        return stats.triang(c=(self.mode - self.low) / (self.high - self.low), loc=self.low,
                            scale=self.high - self.low)


class NormalDist(BaseModel):
    """A normal distribution cut to [low, high] (defaults: mean -+ 3 sd)."""

    model_config = _STRICT
    kind: Literal["normal"]
    mean: Real
    sd: Annotated[float, within(0, 1e15, "a standard deviation", above=True)]
    low: Real | None = None
    high: Real | None = None

    def frozen(self):
        from scipy import stats

        low = self.mean - 3 * self.sd if self.low is None else self.low
        high = self.mean + 3 * self.sd if self.high is None else self.high
        return stats.truncnorm((low - self.mean) / self.sd, (high - self.mean) / self.sd, loc=self.mean,
                               scale=self.sd)


class LognormalDist(BaseModel):
    """Median and log-space sigma: for positive quantities such as prices."""

    model_config = _STRICT
    kind: Literal["lognormal"]
    median: Annotated[float, within(0, 1e15, "a positive median", above=True)]
    sigma: Annotated[float, within(0, 5, "log-space spread; at 5 the p95 is 3,700x the median", above=True)]

    def frozen(self):
        from scipy import stats

        return stats.lognorm(s=self.sigma, scale=self.median)


Distribution = Annotated[UniformDist | TriangularDist | NormalDist | LognormalDist, Field(discriminator="kind")]


class UncertaintySpec(BaseModel):
    model_config = _STRICT
    samples: Annotated[int, within(0, 100_000, "draws; each is a whole experiment run")] = Field(
        default=0, description="draws to run; 0 runs only the nominal experiment")
    seed: Seed = 0
    inputs: dict[str, Distribution] = Field(default_factory=dict)
    integer_inputs: list[str] = Field(default_factory=list, description="paths whose draws are rounded")
