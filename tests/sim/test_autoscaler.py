"""The P/D planner: bounds kept, bills equal to the replicas held, new capacity only after its delay."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factory_sim.errors import ConfigError
from factory_sim.results.trace import DONE
from factory_sim.sim.autoscaler import AutoscaleSettings, ScaleLog
from factory_sim.sim.engine import FleetLayout, PoolLayout, simulate
from factory_sim.studies.assemble import parse_experiment
from tests.helpers import shape

SH = shape("h100_sxm", "llama3_1_8b", "fp8")


def held_integral_gpu_s(log: ScaleLog, pool_index: int, gpus_per_replica: int) -> float:
    """GPU-seconds under the held-replicas step function: what the bill must equal."""
    steps = log.held[pool_index]
    return sum(gpus_per_replica * n * (t1 - t0) for (t0, n), (t1, _) in zip(steps, steps[1:], strict=False))


def _plan(lo, hi, delay=5.0, interval=2.0, cooldown=10.0):
    return AutoscaleSettings(min_replicas=lo, max_replicas=hi, interval_s=interval, scale_up_delay_s=delay,
                         cooldown_s=cooldown, ttft_slo_s=0.5, tpot_slo_s=0.02)


def _fleet(start, plan, role="aggregated"):
    if role == "aggregated":
        pools = (PoolLayout("agg", "aggregated", SH, start, 16, 2048, autoscale=plan),)
    else:
        pools = (PoolLayout("p", "prefill", SH, start, 16, 2048, autoscale=plan),
                 PoolLayout("d", "decode", SH, start, 16, 2048, autoscale=plan))
    return FleetLayout("t", pools, "least_loaded")


def _ramp(n, seed, peak=60.0):
    """Load that rises and falls: rate grows linearly to `peak` then back."""
    rng = np.random.default_rng(seed)
    t, times = 0.0, []
    half = n // 2
    for i in range(n):
        rate = 2.0 + (peak - 2.0) * (i / half if i < half else (n - i) / half)
        t += rng.exponential(1 / rate)
        times.append(t)
    return np.array(times), rng.integers(200, 800, n), rng.integers(20, 200, n)


@given(seed=st.integers(0, 10_000), lo=st.integers(1, 2), extra=st.integers(0, 4),
       role=st.sampled_from(["aggregated", "disaggregated"]))
@settings(max_examples=12)
def test_the_planner_keeps_its_bounds_and_bills_what_it_held(seed, lo, extra, role):
    hi = lo + extra
    plan = _plan(lo, hi)
    arrival, inp, out = _ramp(3000, seed)
    res = simulate(_fleet(lo, plan, role), inp, out, arrival_s=arrival, seed=seed)
    assert np.all(res.trace.outcome == DONE)
    log = res.scaling
    for pool_index, steps in log.held.items():
        held = [n for _, n in steps]
        assert min(held) >= lo and max(held) <= hi
        assert log.gpu_s[pool_index] == pytest.approx(held_integral_gpu_s(log, pool_index, SH.gpus), rel=1e-9)
    if extra:
        assert any(kind == "up" for _, _, kind, _ in log.events)  # the ramp needs more than the minimum


def test_bounds_equal_to_the_fleet_change_nothing():
    arrival, inp, out = _ramp(1500, 4, peak=30.0)
    fixed = simulate(_fleet(2, None), inp, out, arrival_s=arrival, seed=1)
    pinned = simulate(_fleet(2, _plan(2, 2)), inp, out, arrival_s=arrival, seed=1)
    for col in ("prefill_start_s", "first_token_s", "finish_s", "prefill_replica"):
        np.testing.assert_array_equal(getattr(fixed.trace, col), getattr(pinned.trace, col), err_msg=col)
    assert pinned.scaling.gpu_s[0] == pytest.approx(2 * SH.gpus * pinned.sim_end_s)


def test_new_replicas_serve_only_after_the_scale_up_delay():
    arrival, inp, out = _ramp(3000, 5)
    res = simulate(_fleet(1, _plan(1, 4, delay=7.5)), inp, out, arrival_s=arrival, seed=1)
    ups = [(t, n) for t, _, kind, n in res.scaling.events if kind == "up"]
    assert ups
    first_up = ups[0][0]
    tr = res.trace
    late = tr.prefill_replica >= 1  # replicas that started parked
    assert late.any()
    assert tr.prefill_start_s[late].min() >= first_up + 7.5 - 1e-9
    # and scaled down once the ramp was over
    assert any(kind == "down" for _, _, kind, _ in res.scaling.events)


def _raw(**autoscale):
    return {
        "name": "t", "model": "llama3_1_8b", "workload": "chat_1k1k", "requests": 300,
        "slo_tiers": [{"name": "s", "ttft_s": 2.0, "tpot_s": 0.1}],
        "fleets": [{"name": "f", "hardware": "h100_sxm", "precision": "fp8",
                    "aggregated": {"replicas": 2, "autoscale": autoscale}}],
    }


@pytest.mark.parametrize("autoscale, fragment", [
    ({"min_replicas": 3, "max_replicas": 2}, "min_replicas (3) must be <= max_replicas (2)"),
    ({"min_replicas": 3, "max_replicas": 5}, "must lie within"),
    ({"max_replicas": 4, "down_threshold": 0.9}, "down_threshold must be below up_threshold"),
    ({"max_replicas": 4, "interval_s": -1}, "interval_s"),
])
def test_bad_autoscale_settings_name_the_field(autoscale, fragment):
    with pytest.raises(ConfigError) as err:
        parse_experiment(_raw(**autoscale))
    assert fragment in str(err.value) and "fleets[0].aggregated" in str(err.value)


def test_autoscaling_with_faults_is_refused_with_the_reason():
    raw = _raw(max_replicas=4)
    raw["faults"] = {"random": False}
    with pytest.raises(ConfigError, match="autoscaling and faults"):
        parse_experiment(raw)


def test_run_writes_the_scaling_timeline_and_plots_it(tmp_path):
    from factory_sim.results.plots import plot_results
    from factory_sim.studies.run import run_experiment
    raw = _raw(max_replicas=4, interval_s=2.0, cooldown_s=6.0, scale_up_delay_s=2.0)
    raw["workload"] = {"arrivals": {"kind": "diurnal", "peak_rate_per_s": 120, "trough_rate_per_s": 4,
                                    "period_s": 60},
                       "input_tokens": {"kind": "fixed", "tokens": 1500},
                       "output_tokens": {"kind": "fixed", "tokens": 150}, "requests": 4000}
    raw["load"] = {"mode": "fixed"}
    raw["measurement"] = {"warmup_fraction": 0.0, "cooldown_fraction": 0.0, "min_span_latencies": 0}
    result = run_experiment(parse_experiment(raw), jobs=1)
    frame = result.scaling_frame()
    held = frame[frame["series"] == "f/aggregated replicas held"]["value"]
    assert held.between(1, 4).all() and held.nunique() > 1
    assert (frame["series"] == "offered req/s").sum() == 96
    row = result.summary.iloc[0]
    assert row["gpu_hours_billed"] * 3600 == pytest.approx(
        held_integral_gpu_s(next(iter(result.points.values())).sim.scaling, 0, 1))
    path = tmp_path / "scaling.csv"
    frame.to_csv(path, index=False)
    pngs = plot_results(path, "scaling", tmp_path / "scaling")
    assert all(p.stat().st_size > 1000 for p in pngs)


def test_kv_bound_for_a_retired_decode_replica_goes_to_another_without_a_retry(monkeypatch):
    import factory_sim.sim.engine as engine
    monkeypatch.setattr(engine, "kv_link", lambda prefill, dec: (1e12, 4.0))  # every transfer takes 4 s
    plan = _plan(1, 4, delay=1.0, interval=1.0, cooldown=1.0)
    pools = (PoolLayout("p", "prefill", SH, 2, 16, 2048),
             PoolLayout("d", "decode", SH, 4, 16, 2048, autoscale=plan))
    arrival, inp, out = _ramp(400, 6, peak=8.0)
    res = simulate(FleetLayout("t", pools, "round_robin"), inp, out, arrival_s=arrival, seed=1)
    tr = res.trace
    assert np.all(tr.outcome == DONE) and not tr.retries.any()
    assert any(kind == "down" for _, _, kind, _ in res.scaling.events)
    assert (tr.kv_transfer_s > 4.0 + 1e-9).any()  # some KV was sent on after its replica retired


def test_latency_outside_the_gpus_does_not_keep_idle_replicas():
    """A front-end taking 60% of the TTFT SLO keeps p90 TTFT at ~0.64 of it under a light load.
    That part does not shrink with more replicas, so the planner counts it as the floor and
    retires the idle ones; priced as load, one replica fewer would look like 0.85 and none
    would go."""
    fronted = dataclasses.replace(SH, stack=SH.stack.model_copy(update={"frontend_latency_s": 0.3}))
    plan = _plan(1, 4, interval=2.0, cooldown=10.0)
    fleet = FleetLayout("t", (PoolLayout("agg", "aggregated", fronted, 4, 16, 2048, autoscale=plan),), "least_loaded")
    rng = np.random.default_rng(3)
    n = 400
    arrival = np.cumsum(rng.exponential(1 / 2.0, n))  # 2 req/s for ~200 s
    res = simulate(fleet, np.full(n, 200), np.full(n, 20), arrival_s=arrival, seed=3)
    assert np.all(res.trace.outcome == DONE)
    ttft = res.trace.first_token_s - res.trace.arrival_s
    assert 0.6 < np.percentile(ttft, 90) / plan.ttft_slo_s < 0.8  # between the two thresholds
    held = [n_held for _, n_held in res.scaling.held[0]]
    assert held[-1] < 4 and any(kind == "down" for _, _, kind, _ in res.scaling.events)
