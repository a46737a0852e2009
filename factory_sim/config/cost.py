"""Cost schema: how a fleet is priced (a published $/GPU-hour tier, or ownership cost).

The arithmetic is in results/cost.py.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from factory_sim.config.bounds import UsdPerGpu, within

PriceTier = Literal["hyperscaler", "neocloud", "rental_3yr"]

class TcoSpec(BaseModel):
    """Ownership-cost inputs; the defaults other than the economic life are estimates."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    # None takes the hardware profile's capital cost.
    capex_usd_per_gpu: UsdPerGpu | None = None
    # Economic life. SemiAnalysis prices GPU-hours as the TCO of owning over a 4-year life:
    # SemiAnalysis InferenceX constants.ts (TCO $/GPU-hr)
    # https://github.com/SemiAnalysisAI/InferenceX-app/blob/main/packages/app/src/lib/constants.ts
    years: Annotated[float, within(0.1, 100, "years of economic life")] = 4.0
    cost_of_capital: Annotated[float, within(0, 1, "an annual rate; 1 is 100% a year")] = 0.10  # estimate
    # Power basis: "allin" uses the provisioned all-in kW per GPU, which already includes
    # host, network and facility overhead; "tdp" uses GPU board power times `pue`.
    power_basis: Literal["allin", "tdp"] = "allin"
    # estimate; used only with power_basis "tdp"
    pue: Annotated[float, within(1, 5, "power usage effectiveness; 1 is no overhead, data centers run 1.1-2")] = 1.3
    usd_per_kwh: Annotated[float, within(0, 10, "$ per kWh; 100x typical industrial prices")] = 0.08  # estimate
    # colocation; estimate
    facility_usd_per_kw_month: Annotated[float, within(0, 100_000, "$ per kW-month; 700x a colocation price")] = 130.0


class CostSpec(BaseModel):
    """How the fleet is priced: a published price tier, or ownership cost."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    basis: Literal["tier", "tco"] = "tier"
    tier: PriceTier = "hyperscaler"
    tco: TcoSpec = Field(default_factory=TcoSpec)
    # Multiplies every $/GPU-hour: a negotiated discount, or an uncertain price (see `uncertainty`).
    price_scale: Annotated[float, within(0, 1000, "a multiple of the price", above=True)] = 1.0
