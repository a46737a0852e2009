"""Traffic classes with their own SLOs, and the routers that use them: SLO-aware and cost-aware."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from factory_sim.errors import ConfigError
from factory_sim.sim.engine import FleetLayout, PoolLayout, simulate
from factory_sim.studies.assemble import parse_experiment
from factory_sim.studies.run import run_experiment
from tests.helpers import SMALL, shape

SLOW = shape("h100_sxm", "llama3_1_8b", "fp8")
FAST = shape("b200_hgx", "llama3_1_8b", "fp8")


def _requests(n=600, rate=30.0, seed=4):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.exponential(1 / rate, n)), rng.integers(100, 500, n), rng.integers(20, 150, n)


def _mixed(policy, slow_price=1.0, fast_price=3.0):
    pools = (PoolLayout("slow", "aggregated", SLOW, 2, 64, 2048, usd_per_hour_per_replica=slow_price),
             PoolLayout("fast", "aggregated", FAST, 2, 64, 2048, usd_per_hour_per_replica=fast_price))
    return FleetLayout("mix", pools, policy)


def test_slo_aware_sends_latency_critical_traffic_to_the_fastest_replicas():
    arrival, inp, out = _requests()
    classes = np.random.default_rng(1).integers(0, 2, len(arrival))
    tr = simulate(_mixed("slo_aware"), inp, out, arrival_s=arrival, slo_class=classes,
                  latency_critical=np.array([True, False]), slo_class_names=["chat", "batch"]).trace
    on_fast = tr.prefill_replica >= 2  # replicas 2 and 3 are the B200 pool
    assert on_fast[classes == 0].all()
    assert not on_fast[classes == 1].any()
    assert set(tr.to_frame()["slo_class"]) == {"chat", "batch"}


def test_cost_aware_prefers_the_cheaper_replica_per_token_when_load_allows():
    arrival, inp, out = _requests(rate=5.0)
    cheap_fast = simulate(_mixed("cost_aware", slow_price=10.0, fast_price=1.0), inp, out, arrival_s=arrival).trace
    cheap_slow = simulate(_mixed("cost_aware", slow_price=0.1, fast_price=10.0), inp, out, arrival_s=arrival).trace
    assert (cheap_fast.prefill_replica >= 2).mean() > 0.9
    assert (cheap_slow.prefill_replica < 2).mean() > 0.9


def test_experiment_with_traffic_classes_reports_per_class_attainment():
    raw = yaml.safe_load(SMALL)
    del raw["slo_tiers"]
    raw["traffic_classes"] = [{"name": "chat", "share": 0.3, "ttft_s": 0.5, "tpot_s": 0.03},
                              {"name": "batch", "share": 0.7, "ttft_s": 10.0, "tpot_s": 0.2}]
    raw["load"] = {"mode": "fixed", "rate_per_s": 15}
    raw["fleets"][1]["router"] = "slo_aware"
    exp = parse_experiment(raw)
    result = run_experiment(exp, jobs=1)
    df = result.summary
    assert list(df["tier"]) == ["per_class", "per_class"]
    assert df["note"].str.startswith("per class: chat").all()
    tr = result.points[("h100", "per_class")].sim.trace
    share = np.mean(tr.slo_class == 0)
    assert share == pytest.approx(0.3, abs=0.05)
    both = dict(raw, slo_tiers=[{"name": "x", "ttft_s": 1, "tpot_s": 1}])
    with pytest.raises(ConfigError, match="not both"):
        parse_experiment(both)
