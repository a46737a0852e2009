import math
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from factory_sim.config.cost import CostSpec, TcoSpec
from factory_sim.errors import ConfigError, from_validation_error
from factory_sim.results.cost import (
    fleet_power_kw,
    fleet_usd_per_hour,
    tokens_per_s_per_mw,
    usd_per_gpu_hour,
    usd_per_million_tokens,
)


class _Hw(SimpleNamespace):
    """Hashable stand-in for a hardware profile, so it can key a mapping."""

    __hash__ = object.__hash__


def stand_in(name="h200_sxm", allin_kw=1.73, tdp_w=700.0, prices=(1.41, 1.74, 1.6), capex=None):
    hyperscaler, neocloud, rental_3yr = prices
    return _Hw(
        name=name,
        allin_kw_per_gpu=allin_kw,
        gpu_tdp_w=tdp_w,
        usd_per_gpu_hour=SimpleNamespace(hyperscaler=hyperscaler, neocloud=neocloud, rental_3yr=rental_3yr),
        capex_usd_per_gpu=capex,
        placeholder_price=False,
    )


def test_tier_prices():
    hw = stand_in()
    assert usd_per_gpu_hour(hw, CostSpec()) == 1.41
    assert usd_per_gpu_hour(hw, CostSpec(tier="neocloud")) == 1.74
    assert usd_per_gpu_hour(hw, CostSpec(tier="rental_3yr")) == 1.6


def test_tco_allin_by_hand():
    hw = stand_in(capex=30_000.0)
    # Annuity: 30000 * 0.1 / (1 - 1.1**-4); 1.1**4 = 1.4641, 1/1.4641 = 0.683013455,
    # 3000 / 0.316986545 = 9464.1237 $/year -> / 8760 h = 1.0803794 $/h.
    capital = 1.0803794
    energy = 1.73 * 0.08  # 0.1384 $/h
    facility = 130.0 * 12 / 8760 * 1.73  # 0.17808219 $/kW-h * 1.73 kW = 0.30808219 $/h
    assert usd_per_gpu_hour(hw, CostSpec(basis="tco")) == pytest.approx(capital + energy + facility, rel=1e-6)


def test_tco_tdp_basis_applies_pue():
    hw = stand_in(capex=30_000.0)
    spec = CostSpec(basis="tco", tco=TcoSpec(power_basis="tdp"))
    energy = 0.7 * 1.3 * 0.08  # 0.0728 $/h
    facility = 130.0 * 12 / 8760 * 0.7  # 0.12465753 $/h
    assert usd_per_gpu_hour(hw, spec) == pytest.approx(1.0803794 + energy + facility, rel=1e-6)


def test_tco_zero_rate_is_straight_line_and_spec_capex_wins():
    hw = stand_in(capex=30_000.0)
    tco = TcoSpec(capex_usd_per_gpu=43_800.0, years=5, cost_of_capital=0.0, usd_per_kwh=0.0,
                  facility_usd_per_kw_month=0.0)
    # 43800 / 5 years = 8760 $/year = 1 $/h
    assert usd_per_gpu_hour(hw, CostSpec(basis="tco", tco=tco)) == pytest.approx(1.0)


def test_tco_without_capex_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        usd_per_gpu_hour(stand_in(), CostSpec(basis="tco"))
    assert err.value.path == "cost.tco.capex_usd_per_gpu"
    assert "h200_sxm" in err.value.message


def test_fleet_cost_and_power():
    h200 = stand_in()
    gb200 = stand_in(name="gb200_nvl72", allin_kw=2.1, prices=(2.21, 2.75, 3.3))
    pairs = [(h200, 16), (gb200, 72)]
    assert fleet_usd_per_hour(pairs, CostSpec()) == pytest.approx(16 * 1.41 + 72 * 2.21)  # 181.68
    assert fleet_usd_per_hour({h200: 16, gb200: 72}, CostSpec()) == pytest.approx(181.68)
    assert fleet_power_kw(pairs) == pytest.approx(16 * 1.73 + 72 * 2.1)  # 178.88 kW
    with pytest.raises(ValueError):
        fleet_power_kw([(h200, -1)])


def test_usd_per_million_tokens():
    # 3.6 $/h at 1 tok/s: 3600 tokens cost 3.6 $, so 1e6 tokens cost 1000 $.
    assert usd_per_million_tokens(3.6, 1.0) == pytest.approx(1000.0)
    # InferenceX formula: $/GPU-hr / (tok/s/GPU * 3600) * 1e6; 1.41 $/h at 1000 tok/s -> 0.391667 $
    assert usd_per_million_tokens(1.41, 1000.0) == pytest.approx(0.3916667, rel=1e-6)
    for tokens_per_s in (0.0, -1.0, math.nan):
        assert usd_per_million_tokens(3.6, tokens_per_s) == math.inf


def test_tokens_per_s_per_mw():
    assert tokens_per_s_per_mw(1000.0, 2000.0) == pytest.approx(500.0)  # 2 MW
    with pytest.raises(ValueError):
        tokens_per_s_per_mw(1000.0, 0.0)


def test_cost_spec_rejects_typos_and_impossible_values():
    with pytest.raises(ValidationError) as err:
        CostSpec.model_validate({"basis": "tco", "teir": "neocloud"})
    assert from_validation_error(err.value, "cost").path == "cost.teir"
    with pytest.raises(ValidationError) as err:
        CostSpec.model_validate({"tco": {"pue": 0.9}})
    assert from_validation_error(err.value, "cost").path == "cost.tco.pue"
    for bad in ({"tier": "spot"}, {"tco": {"years": 0}}, {"tco": {"capex_usd_per_gpu": -5}}):
        with pytest.raises(ValidationError):
            CostSpec.model_validate(bad)


def test_with_built_in_h200_profile():
    from factory_sim.config.hardware import load_hardware

    h200 = load_hardware("h200_sxm")
    assert usd_per_gpu_hour(h200, CostSpec()) == pytest.approx(1.41)
    # 8 GPUs x 1.41 $/h at 8 x 1000 tok/s -> 0.391667 $ per million output tokens
    fleet = [(h200, 8)]
    assert usd_per_million_tokens(fleet_usd_per_hour(fleet, CostSpec()), 8000.0) == pytest.approx(
        0.3916667, rel=1e-6
    )
    assert fleet_power_kw(fleet) == pytest.approx(8 * 1.73)
    spec = CostSpec(basis="tco", tco=TcoSpec(capex_usd_per_gpu=30_000.0))
    assert usd_per_gpu_hour(h200, spec) == pytest.approx(1.0803794 + 0.1384 + 0.30808219, rel=1e-6)
