"""Capacity plans: sizing from one unit's capacity, confirmation at full scale, power budgets."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from factory_sim.cli import main
from factory_sim.config.plan import PlanSpec
from factory_sim.studies.capacity import budget_capacity, make_plan

PLAN = {
    "name": "t", "model": "llama3_1_8b", "seed": 5, "requests": 800,
    "workload": {"arrivals": {"kind": "poisson", "rate_per_s": 1},
                 "input_tokens": {"kind": "uniform", "low": 100, "high": 400},
                 "output_tokens": {"kind": "uniform", "low": 20, "high": 120}},
    "demand": {"rate_per_s": 120},
    "slo": {"name": "chat", "ttft_s": 1.0, "tpot_s": 0.04},
    "power_budget_mw": 0.05,
    "candidates": [
        {"name": "h100_node", "hardware": "h100_sxm", "precision": "fp8",
         "aggregated": {"replicas": 2, "tp": 1, "max_batch": 64}},
        {"name": "b200_pd", "hardware": "b200_hgx", "precision": "fp8",
         "prefill": {"replicas": 1}, "decode": {"replicas": 1, "max_batch": 128}},
    ],
}


def test_plan_sizes_confirms_and_ranks():
    spec = PlanSpec.model_validate(PLAN)
    plan = make_plan(spec, jobs=1)
    assert list(plan["rank"]) == [1, 2]
    for _, r in plan.iterrows():
        assert r.units == math.ceil(120 / r.unit_capacity_req_per_s - 1e-9) or "added" in r.note
        assert r.capacity_req_per_s >= 120 and r.headroom >= 0
        assert r.confirmed and r.slo_attainment >= 0.9
        assert r.gpus == r.units * (2 if r.candidate == "h100_node" else 2)
    within = plan[plan.within_power_budget]
    assert (within.power_mw <= 0.05).all()
    if within.shape[0] == 2:
        assert plan.iloc[0].usd_per_hour <= plan.iloc[1].usd_per_hour
    best = budget_capacity(plan, spec).iloc[0]
    unit_mw = plan.set_index("candidate").loc[best.candidate]
    assert best.units_in_budget == math.floor(0.05 / (unit_mw.power_mw / unit_mw.units))


def test_plan_cli_and_bad_plan(tmp_path, capsys):
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(PLAN))
    assert main(["plan", str(p), "--out", str(tmp_path / "plan.csv"), "--quiet", "--jobs", "1"]) == 0
    assert "within 0.05 MW the most demand served" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "plan.csv")) == 2
    bad = dict(PLAN, demand={"rate_per_s": 10, "output_tokens_per_s": 5})
    p.write_text(yaml.safe_dump(bad))
    assert main(["plan", str(p), "--quiet"]) == 2
    assert "exactly one of rate_per_s or output_tokens_per_s" in capsys.readouterr().err
    bad = dict(PLAN, candidates=[dict(PLAN["candidates"][0], hardware="h100_sxm", precision="fp4")])
    p.write_text(yaml.safe_dump(bad))
    assert main(["plan", str(p), "--quiet"]) == 2
    assert "fp4" in capsys.readouterr().err


def test_demand_in_tokens_converts_with_the_mean_output():
    spec = PlanSpec.model_validate(dict(PLAN, demand={"output_tokens_per_s": 6000.0}, confirm_top=0))
    plan = make_plan(spec, jobs=1)
    assert plan["demand_req_per_s"].iloc[0] == pytest.approx(6000.0 / 70.0)  # uniform 20..120 has mean 70
    assert not plan["confirmed"].any()


def test_fleet_size_bands_under_uncertain_demand(tmp_path, capsys):
    raw = dict(PLAN, confirm_top=0, uncertainty={"samples": 4, "seed": 3, "inputs": {
        "demand.rate_per_s": {"kind": "uniform", "low": 200, "high": 4000}}})
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(raw))
    assert main(["plan", str(p), "--quiet", "--jobs", "1", "--out", str(tmp_path / "plan.csv")]) == 0
    assert "fleet size under uncertainty: 4 Latin-hypercube draws" in capsys.readouterr().out
    bands = pd.read_csv(tmp_path / "plan_bands.csv").set_index("candidate")
    for _, b in bands.iterrows():
        assert b.units_p5 <= b.units_p50 <= b.units_p95
        assert b.units_p95 > b.units_p5  # demand from 200 to 4,000 req/s needs more units at the top
        assert b.usd_per_hour_p50 / b.units_p50 == pytest.approx(b.usd_per_hour_p95 / b.units_p95)
