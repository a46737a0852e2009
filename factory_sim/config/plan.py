"""Capacity-plan schema: a demand, one SLO, and candidate building blocks (studies/capacity.py plans it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory_sim.config.experiment import FleetSpec, SloTierSpec
from factory_sim.config.uncertainty import UncertaintySpec

_STRICT = ConfigDict(extra="forbid")


class DemandSpec(BaseModel):
    model_config = _STRICT
    rate_per_s: float | None = Field(default=None, gt=0, description="requests per second")
    output_tokens_per_s: float | None = Field(default=None, gt=0, description="generated tokens per second")

    @model_validator(mode="after")
    def _one(self):
        if (self.rate_per_s is None) == (self.output_tokens_per_s is None):
            raise ValueError("give exactly one of rate_per_s or output_tokens_per_s")
        return self


class PlanSpec(BaseModel):
    model_config = _STRICT
    name: str = "plan"
    description: str = ""
    model: str
    seed: int = 42
    workload: str | dict[str, Any]
    requests: int | None = Field(default=None, ge=1)
    demand: DemandSpec
    slo: SloTierSpec
    target_attainment: float = Field(default=0.9, gt=0, le=1)
    cost: dict[str, Any] = Field(default_factory=dict)
    power_budget_mw: float | None = Field(default=None, gt=0)
    candidates: list[FleetSpec] = Field(min_length=1)
    confirm_top: int = Field(default=3, ge=0, description="candidates confirmed by a full-scale simulation")
    top: int = Field(default=10, ge=1, description="rows printed")
    # distributions over plan fields (demand.rate_per_s, cost.price_scale,
    # candidates[0].stack_overrides.hbm_efficiency, ...): fleet size and cost come with bands
    uncertainty: UncertaintySpec = Field(default_factory=UncertaintySpec)
