"""The event loop: accounting, causality, determinism, and the macro-stepped decode."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.results.trace import DONE, REASON_TOO_LONG_FOR_KV, REJECTED
from factory_sim.sim.engine import simulate
from tests.helpers import aggregated_fleet, disaggregated_fleet, shape
from tests.sim.reference_scheduler import reference_run

SMALL = shape("h100_sxm", "llama3_1_8b", "fp8")


def _requests(seed, n, rate, in_range=(50, 400), out_range=(1, 120)):
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    inp = rng.integers(in_range[0], in_range[1] + 1, n)
    out = rng.integers(out_range[0], out_range[1] + 1, n)
    return arrival, inp, out


def _check_causal_and_complete(trace):
    done = trace.outcome == DONE
    assert np.all((trace.outcome == DONE) | (trace.outcome == REJECTED))
    a, ps, ft, fin = trace.arrival_s[done], trace.prefill_start_s[done], trace.first_token_s[done], trace.finish_s[done]
    assert np.all(a <= ps) and np.all(ps < ft) and np.all(ft <= fin)
    assert np.all(trace.prefill_end_s[done] == ft)
    assert np.all(np.isnan(trace.first_token_s[~done]))


@given(
    seed=st.integers(0, 2**31 - 1),
    rate=st.floats(0.5, 200.0),
    max_batch=st.integers(1, 48),
    max_batch_tokens=st.integers(64, 4096),
    disagg=st.booleans(),
)
def test_every_request_accounted_for_and_causal(seed, rate, max_batch, max_batch_tokens, disagg):
    arrival, inp, out = _requests(seed, 120, rate)
    fleet = (
        disaggregated_fleet(SMALL, SMALL, 2, 2, max_batch, max_batch_tokens)
        if disagg
        else aggregated_fleet(SMALL, 2, max_batch, max_batch_tokens)
    )
    res = simulate(fleet, inp, out, arrival_s=arrival, seed=seed)
    tr = res.trace
    assert len(tr) == 120
    assert np.all(tr.outcome == DONE)  # small requests always fit
    _check_causal_and_complete(tr)
    if disagg:
        moved = tr.output_tokens > 1
        assert np.all(tr.decode_start_s[moved] >= tr.first_token_s[moved] + tr.kv_transfer_s[moved] - 1e-12)
        assert np.all(tr.kv_transfer_s[moved] > 0)


def test_too_long_requests_are_refused_with_reason():
    arrival, inp, out = _requests(3, 30, 5.0)
    inp[[4, 9]] = 10**9  # no replica's KV cache holds this
    res = simulate(aggregated_fleet(SMALL), inp, out, arrival_s=arrival)
    tr = res.trace
    assert list(np.flatnonzero(tr.outcome == REJECTED)) == [4, 9]
    assert np.all(tr.reason[[4, 9]] == REASON_TOO_LONG_FOR_KV)
    assert np.sum(tr.outcome == DONE) == 28


def test_same_seed_same_trace_other_seed_other_trace():
    arrival, inp, out = _requests(11, 200, 30.0)
    fleet = disaggregated_fleet(SMALL, SMALL, 2, 3, router="power_of_two")
    a = simulate(fleet, inp, out, arrival_s=arrival, seed=7).trace.to_frame()
    b = simulate(fleet, inp, out, arrival_s=arrival, seed=7).trace.to_frame()
    c = simulate(fleet, inp, out, arrival_s=arrival, seed=8).trace.to_frame()
    assert a.equals(b)
    assert not a["decode_replica"].equals(c["decode_replica"])


@given(
    seed=st.integers(0, 2**31 - 1),
    rate=st.floats(1.0, 80.0),
    max_batch=st.integers(1, 40),
    max_batch_tokens=st.integers(32, 3000),
    model=st.sampled_from(["llama3_1_8b", "gpt_oss_120b", "glm_5", "qwen3_5_397b_a17b"]),
)
def test_macro_stepped_decode_matches_step_by_step_reference(seed, rate, max_batch, max_batch_tokens, model):
    sh = {"llama3_1_8b": lambda: shape("h100_sxm", model, "fp8"),
          "gpt_oss_120b": lambda: shape("b200_hgx", model, "mxfp4", attention_precision="bf16"),  # sliding window
          "glm_5": lambda: shape("b200_hgx", model, "fp8", tp=8),  # sparse attention
          "qwen3_5_397b_a17b": lambda: shape("h200_sxm", model, "fp8", tp=8, ep=8)}[model]()  # linear attention
    arrival, inp, out = _requests(seed, 80, rate, out_range=(1, 300))
    fleet = aggregated_fleet(sh, 1, max_batch, max_batch_tokens)
    res = simulate(fleet, inp, out, arrival_s=arrival)
    first, finish = reference_run(sh, arrival, inp, out, max_batch, max_batch_tokens)
    np.testing.assert_allclose(res.trace.first_token_s, first, rtol=1e-9, atol=0)
    np.testing.assert_allclose(res.trace.finish_s, finish, rtol=1e-9, atol=0)


def test_macro_steps_schedule_far_fewer_events_than_steps():
    arrival, inp, out = _requests(5, 300, 4.0, out_range=(200, 400))
    res = simulate(aggregated_fleet(SMALL, 1, 64, 2048), inp, out, arrival_s=arrival)
    assert res.events < res.steps / 3


def test_closed_loop_keeps_concurrency_bounded():
    _, inp, out = _requests(2, 200, 1.0)
    res = simulate(aggregated_fleet(SMALL, 1, 256, 4096), inp, out, concurrency=8)
    tr = res.trace
    assert np.all(tr.outcome == DONE)
    # at any arrival, at most 8 requests are in flight (arrived and not finished)
    t = tr.arrival_s
    in_flight = [(np.sum((tr.arrival_s <= x) & (tr.finish_s > x))) for x in t]
    assert max(in_flight) <= 8
    _check_causal_and_complete(tr)


def test_least_loaded_weighs_replicas_by_speed():
    """Identical replicas: the same as least outstanding tokens. A fast and a slow one: the fast gets more."""
    arrival, inp, out = _requests(9, 400, 40.0)
    same_a = simulate(aggregated_fleet(SMALL, 3, router="least_loaded"), inp, out, arrival_s=arrival).trace
    same_b = simulate(aggregated_fleet(SMALL, 3, router="least_outstanding_tokens"), inp, out, arrival_s=arrival).trace
    assert same_a.to_frame().equals(same_b.to_frame())

    from factory_sim.sim.engine import FleetLayout, PoolLayout

    fast = shape("b200_hgx", "llama3_1_8b", "fp8")
    pools = (PoolLayout("slow", "aggregated", SMALL, 1, 64, 2048), PoolLayout("fast", "aggregated", fast, 1, 64, 2048))
    share = {}
    for policy in ("least_outstanding_tokens", "least_loaded"):
        tr = simulate(FleetLayout("mix", pools, policy), inp, out, arrival_s=arrival).trace
        share[policy] = float(np.mean(tr.prefill_replica == 1))
    assert share["least_loaded"] > share["least_outstanding_tokens"]
    assert share["least_loaded"] > 0.5


def test_decode_with_multi_token_prediction_runs_at_the_priced_rate():
    """One request alone: its decode takes exactly the per-token MTP step times summed."""
    import dataclasses

    from factory_sim.perf.steptime import StepTimeModel

    prefill = shape("gb200_nvl72", "deepseek_r1", "fp4", tp=4, ep=4)
    decode = dataclasses.replace(shape("gb200_nvl72", "deepseek_r1", "fp4", tp=1, dp_attention=8, ep=8),
                                 mtp_draft_tokens=2, mtp_acceptance=0.7)
    fleet = disaggregated_fleet(prefill, decode)
    res = simulate(fleet, np.array([900]), np.array([200]), arrival_s=np.array([1.0]))
    tr = res.trace
    steps = StepTimeModel(decode).decode_steps_s(1, [900.0 + g for g in range(1, 200)])
    assert tr.finish_s[0] - tr.decode_start_s[0] == pytest.approx(float(np.sum(steps)), rel=1e-9)


def test_the_frontend_delays_requests_without_occupying_the_gpus():
    """A stack's frontend_latency_s is pure latency: every engine-side time moves by exactly that
    much (the replica sees the same arrivals, later), and no step is added or lengthened."""
    arrival, inp, out = _requests(5, 80, 40.0)
    traces, steps = [], []
    for latency in (0.0, 0.05):
        sh = dataclasses.replace(SMALL, stack=SMALL.stack.model_copy(update={"frontend_latency_s": latency}))
        res = simulate(aggregated_fleet(sh, max_batch=16), inp, out, arrival_s=arrival)
        traces.append(res.trace)
        steps.append(res.steps)
    bare, fronted = traces
    np.testing.assert_array_equal(fronted.arrival_s, bare.arrival_s)
    for column in ("prefill_start_s", "first_token_s", "finish_s"):
        np.testing.assert_allclose(getattr(fronted, column), getattr(bare, column) + 0.05, rtol=0, atol=1e-9)
    assert steps[0] == steps[1]
    _check_causal_and_complete(fronted)


def test_a_hybrid_replica_admits_no_more_sequences_than_kv_and_state_hold():
    """Qwen3.5's Gated DeltaNet layers hold 192 MB of state per sequence: the replica admits a
    request only while its KV and state fit, so no more run at once than the budget holds."""
    from factory_sim.perf.memory import plan_memory
    sh = shape("h200_sxm", "qwen3_5_397b_a17b", "fp8", tp=8, ep=8)
    fits = plan_memory(sh).sequences_fitting(1024 + 64)
    n = fits + 200
    tr = simulate(aggregated_fleet(sh, max_batch=4096, max_batch_tokens=65536), np.full(n, 1024), np.full(n, 64),
                  arrival_s=np.zeros(n)).trace
    assert tr.done.all()
    running = [int(((tr.prefill_start_s <= t) & (tr.finish_s > t)).sum()) for t in np.unique(tr.prefill_start_s)]
    assert max(running) == fits
