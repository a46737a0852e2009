"""Cost schema: how a fleet is priced (a published $/GPU-hour tier, or ownership cost).

The arithmetic is in results/cost.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PriceTier = Literal["hyperscaler", "neocloud", "rental_3yr"]

class TcoSpec(BaseModel):
    """Ownership-cost inputs; the defaults other than the economic life are estimates."""

    model_config = ConfigDict(extra="forbid")

    # None takes the hardware profile's capital cost.
    capex_usd_per_gpu: float | None = Field(default=None, gt=0)
    # Economic life. SemiAnalysis prices GPU-hours as the TCO of owning over a 4-year life:
    # SemiAnalysis InferenceX constants.ts (TCO $/GPU-hr)
    # https://github.com/SemiAnalysisAI/InferenceX-app/blob/main/packages/app/src/lib/constants.ts
    years: float = Field(default=4.0, gt=0)
    cost_of_capital: float = Field(default=0.10, ge=0)  # annual rate; estimate
    # Power basis: "allin" uses the provisioned all-in kW per GPU, which already includes
    # host, network and facility overhead; "tdp" uses GPU board power times `pue`.
    power_basis: Literal["allin", "tdp"] = "allin"
    pue: float = Field(default=1.3, ge=1)  # estimate; used only with power_basis "tdp"
    usd_per_kwh: float = Field(default=0.08, ge=0)  # electricity price; estimate
    facility_usd_per_kw_month: float = Field(default=130.0, ge=0)  # colocation; estimate


class CostSpec(BaseModel):
    """How the fleet is priced: a published price tier, or ownership cost."""

    model_config = ConfigDict(extra="forbid")

    basis: Literal["tier", "tco"] = "tier"
    tier: PriceTier = "hyperscaler"
    tco: TcoSpec = Field(default_factory=TcoSpec)
    # Multiplies every $/GPU-hour: a negotiated discount, or an uncertain price (see `uncertainty`).
    price_scale: float = Field(default=1.0, gt=0)
