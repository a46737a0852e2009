"""Faults inside the factory: lost work is retried or failed, never dropped; no faults, no change."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from factory_sim.errors import ConfigError
from factory_sim.results.trace import DONE, FAILED, REASON_NO_REPLICA_UP, REASON_RETRIES_EXHAUSTED, REJECTED, Trace
from factory_sim.sim.engine import FleetLayout, PoolLayout, place_replicas, simulate
from factory_sim.sim.faults import FaultInjector, FaultRates, FaultSettings, Injection, long_run_availability
from factory_sim.studies.assemble import fault_settings, fleet_layouts, parse_experiment
from factory_sim.studies.run import run_experiment
from tests.helpers import SMALL, shape

HGX = shape("h100_sxm", "llama3_1_8b", "fp8", tp=8)  # one replica per 8-GPU node
NVL_EP = shape("gb200_nvl72", "qwen3_235b_a22b", "fp8", tp=1, dp_attention=36, ep=36)  # wide EP, 36 GPUs


def _agg(sh, replicas, router="least_loaded"):
    return FleetLayout("t", (PoolLayout("agg", "aggregated", sh, replicas, 64, 4096),), router)


def _load(n, rate, seed=0, inp=(200, 900), out=(20, 200)):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.exponential(1 / rate, n)), rng.integers(*inp, n), rng.integers(*out, n)


def _same_trace(a: Trace, b: Trace) -> None:
    for name in ("arrival_s", "prefill_start_s", "first_token_s", "finish_s", "kv_transfer_s", "outcome",
                 "reason", "prefill_replica", "decode_replica", "retries"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def _plan(pools, **kw):
    base = {"rates": {}, "restart_s": (5.0,) * pools}
    return FaultSettings(**(base | kw))


@given(seed=st.integers(0, 10_000), rate=st.floats(20.0, 400.0))
@settings(max_examples=15)
def test_a_fault_plan_that_never_fires_changes_nothing(seed, rate):
    arrival, inp, out = _load(400, rate, seed)
    fleet = _agg(HGX, 3)
    plain = simulate(fleet, inp, out, arrival_s=arrival, seed=seed)
    quiet = simulate(fleet, inp, out, arrival_s=arrival, seed=seed,
                     faults=_plan(1, rates={"h100_sxm": (FaultRates("gpu", float("inf"), 10.0),)}))
    _same_trace(plain.trace, quiet.trace)
    assert quiet.availability == 1.0 and plain.sim_end_s == quiet.sim_end_s


@given(seed=st.integers(0, 10_000), mtbf_s=st.floats(2.0, 60.0), retries=st.integers(0, 3),
       weibull=st.booleans(), disagg=st.booleans())
@settings(max_examples=25)
def test_every_request_is_done_retried_then_done_failed_or_refused(seed, mtbf_s, retries, weibull, disagg):
    arrival, inp, out = _load(500, 150.0, seed)
    if disagg:
        pools = (PoolLayout("p", "prefill", HGX, 2, 64, 4096), PoolLayout("d", "decode", HGX, 2, 64, 4096))
        fleet = FleetLayout("t", pools, "least_loaded")
    else:
        fleet = _agg(HGX, 3)
    plan = FaultSettings(rates={"h100_sxm": (FaultRates("node", mtbf_s * 8, 2.0), FaultRates("gpu", mtbf_s * 64, 1.0))},
                     restart_s=(1.0,) * len(fleet.pools), max_retries=retries, retry_after_s=0.2,
                     distribution="weibull" if weibull else "exponential", weibull_shape=0.7)
    res = simulate(fleet, inp, out, arrival_s=arrival, seed=seed, faults=plan)
    tr = res.trace
    assert np.isin(tr.outcome, [DONE, FAILED, REJECTED]).all()  # nothing left pending, nothing lost
    assert np.all(tr.retries[tr.outcome == DONE] <= retries)
    assert np.all(tr.retries[tr.outcome == FAILED] == retries + 1)
    assert np.all(tr.reason[tr.outcome == FAILED] == REASON_RETRIES_EXHAUSTED)
    assert np.all(tr.reason[tr.outcome == REJECTED] == REASON_NO_REPLICA_UP)
    done = tr.outcome == DONE
    assert np.all(tr.arrival_s[done] <= tr.prefill_start_s[done])
    assert np.all(tr.prefill_start_s[done] <= tr.first_token_s[done])
    assert np.all(tr.first_token_s[done] <= tr.finish_s[done])
    assert 0.0 <= res.availability <= 1.0


def test_same_seed_same_faults_other_seed_other_faults():
    arrival, inp, out = _load(400, 100.0, 3)
    plan = FaultSettings(rates={"h100_sxm": (FaultRates("node", 20.0, 2.0),)}, restart_s=(1.0,))
    a, b, c = (simulate(_agg(HGX, 3), inp, out, arrival_s=arrival, seed=s, faults=plan) for s in (1, 1, 2))
    _same_trace(a.trace, b.trace)
    assert a.faults.events == b.faults.events != c.faults.events


def test_a_failed_replica_loses_its_work_and_the_router_retries_it_elsewhere():
    arrival, inp, out = _load(600, 60.0, 5)
    fleet = _agg(HGX, 2)
    plan = _plan(1, injections=(Injection(3.0, "h100_sxm", "node", 0, 1e6),), retry_after_s=0.5)
    res = simulate(fleet, inp, out, arrival_s=arrival, seed=1, faults=plan)
    tr = res.trace
    retried = tr.retries > 0
    assert retried.any()
    assert np.all(tr.outcome[retried] == DONE)
    # the retried requests finished on the surviving replica, after the failure plus the retry delay
    assert np.all(tr.prefill_replica[retried] == 1)
    assert np.all(tr.prefill_start_s[retried] >= 3.5 - 1e-9)
    assert np.all(tr.prefill_replica[tr.arrival_s > 3.0] == 1)
    # half the GPUs were out from t = 3 s to the end
    assert res.availability == pytest.approx(1 - 0.5 * (res.sim_end_s - 3.0) / res.sim_end_s)


def test_no_retries_left_means_failed_with_the_reason():
    arrival, inp, out = _load(300, 60.0, 6)
    plan = _plan(1, injections=(Injection(2.0, "h100_sxm", "gpu", 3, 1e6),), max_retries=0)
    tr = simulate(_agg(HGX, 2), inp, out, arrival_s=arrival, faults=plan).trace
    assert (tr.outcome == FAILED).any()
    assert np.all(tr.reason[tr.outcome == FAILED] == REASON_RETRIES_EXHAUSTED)


def test_a_single_node_fleet_refuses_while_it_is_down_and_serves_after_the_restart():
    arrival, inp, out = _load(300, 20.0, 7)
    plan = _plan(1, injections=(Injection(2.0, "h100_sxm", "gpu", 0, 3.0),), restart_s=(2.0,))
    tr = simulate(_agg(HGX, 1), inp, out, arrival_s=arrival, faults=plan).trace
    down = (tr.arrival_s > 2.0) & (tr.arrival_s < 7.0)
    assert np.all(tr.outcome[down] == REJECTED) and np.all(tr.reason[down] == REASON_NO_REPLICA_UP)
    assert np.all(tr.outcome[tr.arrival_s > 7.0] == DONE)


def _nvl_fleet():
    return _agg(NVL_EP, 2)  # two 36-GPU EP replicas share one NVL72 domain


def test_drain_takes_the_whole_domain_out_degraded_only_shrinks_the_replica():
    arrival, inp, out = _load(1500, 150.0, 8)
    inj = (Injection(2.0, "gb200_nvl72", "gpu", 0, 1e6),)
    drain = simulate(_nvl_fleet(), inp, out, arrival_s=arrival,
                     faults=_plan(1, injections=inj, domain_policy="drain", reconfigure_s=1.0))
    degraded = simulate(_nvl_fleet(), inp, out, arrival_s=arrival,
                        faults=_plan(1, injections=inj, domain_policy="degraded", reconfigure_s=1.0))
    # drain: the failed replica at once, its neighbour once it has finished its work, nothing after
    assert np.all(drain.trace.reason[drain.trace.arrival_s > 2.0 + 1e-9] == REASON_NO_REPLICA_UP)
    # out of service: the failed replica's 36 GPUs from 2 s, its neighbour's 36 from its last finish
    end, last_finish = drain.sim_end_s, float(np.nanmax(drain.trace.finish_s))
    assert 2.0 < last_finish <= end
    assert drain.availability <= 1 - ((end - 2.0) + (end - last_finish)) / (2 * end) + 1e-9
    # degraded: the replica re-forms on 35 GPUs after 1 s; the neighbour never stops
    lost = degraded.faults.lost_gpu_s
    end = degraded.sim_end_s
    assert lost[1] == 0.0
    assert lost[0] == pytest.approx(36 * 1.0 + 1 * (end - 3.0), rel=1e-6)
    assert np.all(degraded.trace.outcome == DONE)


def test_degraded_replica_runs_slower_and_with_less_kv():
    arrival, inp, out = _load(10, 0.2, 9)  # one request at a time
    fleet = _agg(NVL_EP, 1)
    res = simulate(fleet, inp, out, arrival_s=arrival,
                   faults=_plan(1, injections=(Injection(0.0, "gb200_nvl72", "node", 0, 1e6),),
                                domain_policy="degraded", reconfigure_s=0.5))
    tr = res.trace
    ok = tr.outcome == DONE
    plain = simulate(fleet, inp, out, arrival_s=arrival).trace
    tpot = (tr.finish_s - tr.first_token_s) / np.maximum(tr.output_tokens - 1, 1)
    tpot0 = (plain.finish_s - plain.first_token_s) / np.maximum(plain.output_tokens - 1, 1)
    later = ok & (tr.arrival_s > 0.5)
    assert np.allclose(tpot[later], tpot0[later] * 36 / 32, rtol=1e-3)  # one 4-GPU tray lost


def _fault_only(plan, fleet, horizon_s, seed=0):
    n = 400
    arrival = np.linspace(0.0, horizon_s, n)
    return simulate(fleet, np.full(n, 100), np.full(n, 2), arrival_s=arrival, seed=seed, faults=plan)


@pytest.mark.parametrize("distribution", ["exponential", "weibull"])
def test_long_run_availability_matches_the_renewal_formula(distribution):
    fleet = _agg(HGX, 16)
    plan = FaultSettings(rates={"h100_sxm": (FaultRates("node", 2000.0, 100.0),)}, restart_s=(20.0,),
                     distribution=distribution, weibull_shape=1.5)
    res = _fault_only(plan, fleet, 300_000.0)
    expected = long_run_availability(plan, [(fleet.pools[0], 20.0)], {"h100_sxm": HGX.hardware})
    assert expected == pytest.approx(1 - 16 * 8 * 120.0 / 2100.0 / 128)
    assert res.availability == pytest.approx(expected, abs=0.006)


def test_weibull_draws_keep_the_configured_mean():
    plan = _plan(1, distribution="weibull", weibull_shape=0.6)
    inj = FaultInjector.__new__(FaultInjector)
    inj.plan, inj._rng = plan, np.random.default_rng(0)
    draws = [inj._draw(100.0) for _ in range(40_000)]
    assert np.mean(draws) == pytest.approx(100.0, rel=0.03)


def test_replicas_are_packed_into_domains_largest_first():
    big = shape("gb300_nvl72", "deepseek_r1", "fp4", tp=1, dp_attention=48, ep=48)
    small = shape("gb300_nvl72", "deepseek_r1", "fp4", tp=4, ep=4)
    fleet = FleetLayout("t", (PoolLayout("p", "prefill", small, 12, 64, 4096),
                            PoolLayout("d", "decode", big, 2, 64, 4096)), "least_loaded")
    first = place_replicas(fleet)
    assert first[12:] == [0, 72]  # each decode instance opens a rack
    racks = [f // 72 for f in first[:12]]
    assert racks.count(0) == 6 and racks.count(1) == 6  # six prefill instances fill the rest of each
    assert all((f % 72) + 4 <= 72 for f in first[:12])


# -- the experiment file ---------------------------------------------------------------------
def _experiment(**faults):
    raw = yaml.safe_load(SMALL)
    raw["faults"] = faults
    return raw


def test_fault_columns_in_the_run_table():
    raw = _experiment(random=False, inject=[{"at_s": 0.5, "hardware": raw_hw(), "kind": "node", "unit": 0,
                                             "repair_s": 1e5}])
    raw["load"] = {"mode": "fixed", "rate_per_s": 5.0}
    result = run_experiment(parse_experiment(raw), jobs=1)
    row = result.summary.iloc[0]
    assert row["faults_in_run"] == 1
    assert row["availability"] < 1.0
    assert row["goodput_tokens_per_s_no_faults"] >= row["goodput_tokens_per_s"]
    assert np.isnan(row["availability_long_run"])  # no random faults drawn


def raw_hw():
    return yaml.safe_load(SMALL)["fleets"][0]["hardware"]


@pytest.mark.parametrize("faults, path", [
    ({"inject": [{"at_s": 1, "hardware": "h100_sxm", "kind": "gpu", "unit": 10_000}]}, "faults.inject[0].unit"),
    ({"inject": [{"at_s": 1, "hardware": "gb300_nvl72", "kind": "gpu"}]}, "faults.inject[0].hardware"),
    ({"inject": [{"at_s": 1, "hardware": "h100_sxm", "kind": "cpu"}]}, "faults.inject[0].kind"),
    ({"overrides": {"h999": {"gpu": {"mtbf_hours": 1, "mttr_hours": 1}}}}, "faults.overrides.h999"),
    ({"rate_multiplier": -2}, "faults.rate_multiplier"),
    ({"domain_policy": "pray"}, "faults.domain_policy"),
])
def test_bad_fault_settings_name_the_field(faults, path):
    raw = _experiment(**faults)
    raw["fleets"][0]["hardware"] = "h100_sxm"
    with pytest.raises(ConfigError) as err:
        parse_experiment(raw)
    assert path in str(err.value)


def test_restart_time_follows_the_weights():
    raw = _experiment(engine_start_s=10.0, weight_load_gb_per_s=1.0)
    exp = parse_experiment(raw)
    plan = fleet_layouts(exp)[0]
    fp = fault_settings(exp, plan)
    from factory_sim.perf.memory import plan_memory
    assert fp.restart_s[0] == pytest.approx(10.0 + plan_memory(plan.pools[0].shape).weight_bytes_per_gpu / 1e9)
    assert dataclasses.replace(fp, restart_s=(1.0,)).restart_s == (1.0,)
