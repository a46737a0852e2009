"""Overload: bounded queues and time-outs refuse work the way a server does, and lose no request."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.config.experiment import SloTarget
from factory_sim.errors import ConfigError
from factory_sim.results.metrics import summarize
from factory_sim.results.trace import DONE, REASON_QUEUE_FULL, REASON_TIMEOUT, REJECTED, TIMED_OUT
from factory_sim.sim.engine import FleetLayout, PoolLayout, simulate
from factory_sim.studies.assemble import fleet_layouts, parse_experiment
from tests.helpers import SMALL, shape

SMALL_SHAPE = shape("h100_sxm", "llama3_1_8b", "fp8")


def _fleet(max_queue=None, timeout=None, replicas=1):
    pool = PoolLayout("agg", "aggregated", SMALL_SHAPE, replicas, 16, 2048, max_queue=max_queue,
                    queue_timeout_s=timeout)
    return FleetLayout("t", (pool,), "least_loaded")


def _overload(n=3000, rate=400.0, seed=1):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.exponential(1 / rate, n)), rng.integers(200, 800, n), rng.integers(50, 300, n)


@given(max_queue=st.one_of(st.none(), st.integers(0, 50)),
       timeout=st.one_of(st.none(), st.floats(0.05, 5.0)), seed=st.integers(0, 1000))
def test_every_request_is_done_refused_or_timed_out(max_queue, timeout, seed):
    arrival, inp, out = _overload(800, seed=seed)
    tr = simulate(_fleet(max_queue, timeout), inp, out, arrival_s=arrival).trace
    assert np.isin(tr.outcome, [DONE, REJECTED, TIMED_OUT]).all()
    assert np.all(tr.reason[tr.outcome == REJECTED] == REASON_QUEUE_FULL)
    assert np.all(tr.reason[tr.outcome == TIMED_OUT] == REASON_TIMEOUT)
    if max_queue is None:
        assert not (tr.outcome == REJECTED).any()
    if timeout is None:
        assert not (tr.outcome == TIMED_OUT).any()
    done = tr.outcome == DONE
    if timeout is not None:  # nobody admitted after waiting in the queue past the deadline
        queued = tr.prefill_start_s[done] - tr.arrival_s[done] - SMALL_SHAPE.request_latency_s
        assert np.all(queued <= timeout + 1e-9)


def test_queue_never_holds_more_than_its_bound():
    arrival, inp, out = _overload()
    tr = simulate(_fleet(max_queue=8, replicas=2), inp, out, arrival_s=arrival).trace
    admitted = tr.outcome == DONE
    # at every arrival, requests that reached a queue (past the front-end) and are not yet
    # admitted: at most 8 per replica
    starts = np.sort(tr.prefill_start_s[admitted])
    queued_at = tr.arrival_s[admitted] + SMALL_SHAPE.request_latency_s
    waiting = [np.sum(queued_at <= t) - np.searchsorted(starts, t, side="right") for t in arrival[::7]]
    assert max(waiting) <= 16
    assert (tr.outcome == REJECTED).mean() > 0.3  # 400 req/s is several times what 2 GPUs serve


def test_bounds_switched_off_give_exactly_the_unbounded_run():
    arrival, inp, out = _overload(1500, rate=60.0)
    plain = simulate(_fleet(), inp, out, arrival_s=arrival).trace.to_frame()
    generous = simulate(_fleet(max_queue=10**6, timeout=1e9), inp, out, arrival_s=arrival).trace.to_frame()
    assert plain.equals(generous)


def test_timeouts_keep_latency_of_served_requests_bounded_under_overload():
    arrival, inp, out = _overload()
    slo = SloTarget(ttft_s=2.0, tpot_s=0.2)
    unbounded = summarize(simulate(_fleet(), inp, out, arrival_s=arrival).trace, slo, gpus=1)
    bounded_tr = simulate(_fleet(timeout=1.0), inp, out, arrival_s=arrival).trace
    bounded = summarize(bounded_tr, slo, gpus=1)
    assert bounded["timed_out"] > 0 and bounded["ttft_p99_s"] < unbounded["ttft_p99_s"] / 5
    assert bounded["goodput_tokens_per_s"] > unbounded["goodput_tokens_per_s"]


def test_overload_settings_in_yaml():
    raw = yaml.safe_load(SMALL)
    raw["fleets"][0]["aggregated"].update(max_queue=4, queue_timeout_s=0.5)
    plan = fleet_layouts(parse_experiment(raw))[0]
    assert (plan.pools[0].max_queue, plan.pools[0].queue_timeout_s) == (4, 0.5)
    raw["fleets"][1]["decode"]["max_queue"] = 3
    with pytest.raises(ConfigError, match="apply where requests enter"):
        parse_experiment(raw)
