"""Uncertain inputs: distributions over numeric experiment fields (drawn in studies/uncertainty.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_STRICT = ConfigDict(extra="forbid")


class UniformDist(BaseModel):
    model_config = _STRICT
    kind: Literal["uniform"]
    low: float
    high: float

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
    low: float
    mode: float
    high: float

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
    mean: float
    sd: float = Field(gt=0)
    low: float | None = None
    high: float | None = None

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
    median: float = Field(gt=0)
    sigma: float = Field(gt=0)

    def frozen(self):
        from scipy import stats

        return stats.lognorm(s=self.sigma, scale=self.median)


Distribution = Annotated[UniformDist | TriangularDist | NormalDist | LognormalDist, Field(discriminator="kind")]


class UncertaintySpec(BaseModel):
    model_config = _STRICT
    samples: int = Field(default=0, ge=0, description="draws to run; 0 runs only the nominal experiment")
    seed: int = 0
    inputs: dict[str, Distribution] = Field(default_factory=dict)
    integer_inputs: list[str] = Field(default_factory=list, description="paths whose draws are rounded")
