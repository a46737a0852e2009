"""What a fleet costs per hour, and what that makes a million tokens cost.

Two bases: a published $/GPU-hour price tier (what InferenceX and NVIDIA quote, so results
compare with theirs), or a total cost of ownership built from capital cost, power and
facility charges (for a planner with their own prices).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from factory_sim.config.cost import CostSpec
from factory_sim.errors import ConfigError

if TYPE_CHECKING:
    from factory_sim.config.hardware import HardwareProfile

HOURS_PER_YEAR = 8760.0  # 365 days x 24 h
MONTHS_PER_YEAR = 12.0

GpusByHardware = Mapping[Any, int] | Iterable[tuple[Any, int]]


def usd_per_gpu_hour(hw: HardwareProfile, cost: CostSpec) -> float:
    """One GPU's cost per hour under `cost`.

    basis "tier": the hardware profile's price for `cost.tier`.

    basis "tco": capital recovery + energy + facility, per hour of a year of 8760 h, with
    the GPU drawing its provisioned power all the time (an upper bound on energy):
      - capital: the annuity that repays capex over `years` at `cost_of_capital`;
      - power_basis "allin": energy = allin_kw_per_gpu x usd_per_kwh, and the facility
        charge applies to allin_kw_per_gpu. No PUE: the all-in figure already includes
        cooling and other facility overhead, so multiplying by PUE would count it twice.
      - power_basis "tdp": energy = gpu_tdp_w / 1000 x pue x usd_per_kwh, and the facility
        charge applies to the GPU's IT power gpu_tdp_w / 1000 (colocation is priced per kW
        of IT load). This leaves out host and network power, so it is the lower figure.
    """
    if cost.basis == "tier":
        return float(getattr(hw.usd_per_gpu_hour, cost.tier)) * cost.price_scale
    tco = cost.tco
    capex = tco.capex_usd_per_gpu if tco.capex_usd_per_gpu is not None else hw.capex_usd_per_gpu
    if capex is None:
        raise ConfigError(
            "cost.tco.capex_usd_per_gpu",
            f"hardware '{hw.name}' has no capital cost per GPU; set cost.tco.capex_usd_per_gpu "
            "or price it with cost.basis: tier",
        )
    capital = _annuity_usd_per_year(capex, tco.cost_of_capital, tco.years) / HOURS_PER_YEAR
    if tco.power_basis == "allin":
        billed_kw = energy_kw = hw.allin_kw_per_gpu
    else:
        billed_kw = hw.gpu_tdp_w / 1000.0
        energy_kw = billed_kw * tco.pue
    energy = energy_kw * tco.usd_per_kwh
    facility = tco.facility_usd_per_kw_month * MONTHS_PER_YEAR / HOURS_PER_YEAR * billed_kw
    return (capital + energy + facility) * cost.price_scale


def fleet_usd_per_hour(gpus_by_hardware: GpusByHardware, cost: CostSpec) -> float:
    """A mixed fleet's cost per hour; takes a mapping or (hardware, gpus) pairs."""
    return sum(gpus * usd_per_gpu_hour(hw, cost) for hw, gpus in _pairs(gpus_by_hardware))


def fleet_power_kw(gpus_by_hardware: GpusByHardware) -> float:
    """Provisioned all-in power of a fleet, the figure a data-center planner budgets."""
    return sum(gpus * hw.allin_kw_per_gpu for hw, gpus in _pairs(gpus_by_hardware))


def usd_per_million_tokens(usd_per_hour: float, tokens_per_s: float) -> float:
    """Cost per million tokens; inf when nothing was produced, so it sorts last, never NaN."""
    if not tokens_per_s > 0:
        return math.inf
    return usd_per_hour / (tokens_per_s * 3600.0) * 1e6


def usd_per_million_token_columns(usd_per_hour: float, summary: Mapping[str, float]) -> dict[str, float]:
    """$ per million output, goodput, input and all tokens of one summary (metrics.summarize):
    one definition for every table that prices a run."""
    output, inputs = summary["output_tokens_per_s"], summary["input_tokens_per_s"]
    return {
        "usd_per_m_output_tokens": usd_per_million_tokens(usd_per_hour, output),
        "usd_per_m_goodput_tokens": usd_per_million_tokens(usd_per_hour, summary["goodput_tokens_per_s"]),
        "usd_per_m_input_tokens": usd_per_million_tokens(usd_per_hour, inputs),
        "usd_per_m_total_tokens": usd_per_million_tokens(usd_per_hour, inputs + output),
    }


def tokens_per_s_per_mw(tokens_per_s: float, power_kw: float) -> float:
    """Throughput per megawatt of provisioned power."""
    if not power_kw > 0:
        raise ValueError(f"power_kw must be positive, got {power_kw!r}")
    return tokens_per_s / (power_kw / 1000.0)


def _annuity_usd_per_year(capex_usd: float, rate: float, years: float) -> float:
    """Level yearly payment that repays `capex_usd` with interest over `years`."""
    if rate == 0:
        return capex_usd / years
    return capex_usd * rate / (1.0 - (1.0 + rate) ** -years)


def _pairs(gpus_by_hardware: GpusByHardware) -> list[tuple[Any, int]]:
    items = gpus_by_hardware.items() if isinstance(gpus_by_hardware, Mapping) else gpus_by_hardware
    pairs = [(hw, gpus) for hw, gpus in items]
    for hw, gpus in pairs:
        if gpus < 0:
            raise ValueError(f"GPU count for '{hw.name}' must be >= 0, got {gpus}")
    return pairs
