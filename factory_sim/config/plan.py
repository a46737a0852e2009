"""Capacity-plan schema: a demand, one SLO, and candidate building blocks (studies/capacity.py plans it)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory_sim.config.bounds import MAX_REQUESTS, REQUESTS, PositiveFraction, Rate, Seed, within
from factory_sim.config.experiment import FleetSpec, SloTierSpec
from factory_sim.config.uncertainty import UncertaintySpec

_STRICT = ConfigDict(extra="forbid", defer_build=True)


class DemandSpec(BaseModel):
    model_config = _STRICT
    rate_per_s: Rate | None = Field(default=None, description="requests per second")
    output_tokens_per_s: Annotated[float, within(0, 1e12, "tokens per second; 1e12 is beyond the world's "
                                                          "inference traffic", above=True)] | None = Field(
        default=None, description="generated tokens per second")

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
    seed: Seed = 42
    workload: str | dict[str, Any]
    requests: Annotated[int, within(1, MAX_REQUESTS, REQUESTS)] | None = None
    demand: DemandSpec
    slo: SloTierSpec
    target_attainment: PositiveFraction = 0.9
    cost: dict[str, Any] = Field(default_factory=dict)
    # the largest AI campuses announced are of the order of 5 GW
    power_budget_mw: Annotated[float, within(0, 100_000, "MW; 100 GW is 20x the largest campus announced",
                                             above=True)] | None = None
    candidates: list[FleetSpec] = Field(min_length=1)
    confirm_top: Annotated[int, within(0, 1000, "full-scale simulations")] = Field(
        default=3, description="candidates confirmed by a full-scale simulation")
    top: Annotated[int, within(1, 100_000, "rows printed")] = Field(default=10, description="rows printed")
    # distributions over plan fields (demand.rate_per_s, cost.price_scale,
    # candidates[0].stack_overrides.hbm_efficiency, ...): fleet size and cost come with bands
    uncertainty: UncertaintySpec = Field(default_factory=UncertaintySpec)
