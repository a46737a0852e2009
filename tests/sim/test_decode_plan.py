"""Decode plans priced in chunks (sim/decode_plan.py) give what plans priced at once give, bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from factory_sim.perf.steptime import StepTimeModel
from factory_sim.sim import replica as replica_module
from factory_sim.sim.decode_plan import FIRST_CHUNK_STEPS, DecodePlan
from factory_sim.sim.engine import simulate
from factory_sim.sim.wake import wake
from tests.helpers import aggregated_fleet, disaggregated_fleet, shape

GPT_OSS = shape("b200_hgx", "gpt_oss_120b", "mxfp4", attention_precision="bf16")
LLAMA = shape("h100_sxm", "llama3_1_8b", "fp8")
MTP = dataclasses.replace(shape("b200_hgx", "deepseek_r1", "fp4", tp=8, ep=8), mtp_draft_tokens=2, mtp_acceptance=0.7)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 256), st.integers(1, 100_000), st.integers(1, 600), st.integers(1, 600))
def test_elapsed_in_pieces_is_the_elapsed_at_once(n, ctx, steps, cut):
    """decode_elapsed_s over two pieces (the second from the first's running sum) gives one call's
    floats, across the loop and NumPy paths."""
    model = StepTimeModel(LLAMA)
    sums = range(ctx, ctx + n * steps, n)
    whole = list(np.asarray(model.decode_elapsed_s(n, sums), dtype=float))
    cut = min(cut, steps)
    first = list(np.asarray(model.decode_elapsed_s(n, sums[:cut]), dtype=float))
    rest = list(np.asarray(model.decode_elapsed_s(n, sums[cut:], first[-1]), dtype=float)) if cut < steps else []
    assert first + rest == whole


def test_elapsed_in_pieces_with_multi_token_prediction():
    model = StepTimeModel(MTP)
    sums = [float(s) for s in range(5000, 5000 + 64 * 40, 64)]
    whole = model.decode_elapsed_s(64, sums)
    first = model.decode_elapsed_s(64, sums[:7])
    rest = model.decode_elapsed_s(64, sums[7:], float(first[-1]))
    assert list(first) + list(rest) == list(whole)


def test_a_plan_prices_in_doubling_chunks_and_queues_under_one_number():
    env = simpy.Environment()
    model = StepTimeModel(LLAMA)
    n, ctx, horizon = 16, 16_000, 100

    def sums(first, steps):
        return range(ctx + n * first, ctx + n * (first + steps), n)

    eager = list(model.decode_elapsed_s(n, sums(0, horizon)))
    plan = DecodePlan(env, 0.0, horizon, n, model, sums)
    number = next(env._eid)  # the plan took the number before this one
    assert len(plan.elapsed) == FIRST_CHUNK_STEPS and not plan.whole
    plan.price_more()
    assert len(plan.elapsed) == 2 * FIRST_CHUNK_STEPS
    plan.price_to(horizon)
    assert plan.whole and plan.elapsed == eager
    event = plan.queue(lambda _: None)
    assert env._queue == [(eager[-1], 1, number - 1, event)]


def test_a_placeholder_keeps_the_plan_end_in_simpys_order():
    """Events at the plan's end instant run in the order they would beside an end queued at once."""
    model = StepTimeModel(LLAMA)
    n, horizon = 4, 40

    def sums(first, steps):
        return range(4000 + n * first, 4000 + n * (first + steps), n)

    def run(lazy: bool) -> list[str]:
        env, order = simpy.Environment(), []
        end = float(model.decode_elapsed_s(n, sums(0, horizon))[-1])
        wake(env, end, lambda _: order.append("before"))
        plan = DecodePlan(env, 0.0, horizon, n, model, sums, None if lazy else model.decode_elapsed_s(n, sums(0, horizon)))
        wake(env, end, lambda _: order.append("after"))

        def on(event):
            if plan.whole:
                order.append("end")
            else:
                plan.price_more()
                plan.queue(on)
        plan.queue(on)
        env.run()
        return order

    assert run(lazy=True) == run(lazy=False) == ["before", "end", "after"]


def _traces(monkeypatch, lazy: bool, fleet, inp, out, arrival):
    # FIRST_CHUNK_STEPS at the horizon's limit: every plan is priced at once
    monkeypatch.setattr(replica_module, "FIRST_CHUNK_STEPS",
                        FIRST_CHUNK_STEPS if lazy else replica_module.MACRO_HORIZON_STEPS)
    calls = {"price_more": 0, "_cut_plan": 0}

    def counted(method, name):
        def call(*args):
            calls[name] += 1
            return method(*args)
        return call

    for cls, name in ((DecodePlan, "price_more"), (replica_module.Replica, "_cut_plan")):
        monkeypatch.setattr(cls, name, counted(getattr(cls, name), name))
    res = simulate(fleet, inp, out, arrival_s=arrival, seed=3)
    tr = res.trace
    arrays = {f.name: getattr(tr, f.name) for f in dataclasses.fields(tr) if isinstance(getattr(tr, f.name), np.ndarray)}
    return arrays, res.events, calls


@pytest.mark.parametrize("case", ["sliding_window", "full_attention", "disaggregated"])
def test_lazy_plans_simulate_what_eager_plans_do(monkeypatch, case):
    """Whole runs with lazy plans (sliding-window and full attention, cut often by arrivals) give the
    trace and event count of plans priced at once, bit for bit."""
    rng = np.random.default_rng(11)
    n = 1500
    inp = rng.integers(50, 900, n)
    out = rng.integers(20, 700, n)
    if case == "sliding_window":
        fleet = aggregated_fleet(GPT_OSS, replicas=2, max_batch=96, max_batch_tokens=4096)
        rate = 40.0
    elif case == "full_attention":
        fleet = aggregated_fleet(LLAMA, replicas=2, max_batch=96, max_batch_tokens=2048, router="least_loaded")
        rate = 40.0
    else:
        fleet = disaggregated_fleet(GPT_OSS, GPT_OSS, prefill_replicas=1, decode_replicas=2)
        rate = 30.0
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    lazy, lazy_events, lazy_calls = _traces(monkeypatch, True, fleet, inp, out, arrival)
    eager, eager_events, eager_calls = _traces(monkeypatch, False, fleet, inp, out, arrival)
    assert lazy_calls["price_more"] > 50 and eager_calls["price_more"] == 0  # lazy plans ran on ...
    assert lazy_calls["_cut_plan"] > 50  # ... and were cut
    assert lazy_events == eager_events
    for name, values in eager.items():
        assert values.tobytes() == lazy[name].tobytes(), name


def test_a_cut_plans_queued_event_calls_nothing(monkeypatch):
    """A cut leaves the plan's queued event (placeholder or end) on SimPy's queue with no callback:
    the loop pops it and calls nothing, so no step end or placeholder callback sees a stale event."""
    stale, calls = [], {"cuts": 0}
    for name in ("_end_decode_steps", "_price_on"):
        method = getattr(replica_module.Replica, name)

        def checked(self, event, method=method):
            if event is not self._step_event:
                stale.append(event)
            return method(self, event)
        monkeypatch.setattr(replica_module.Replica, name, checked)
    cut = replica_module.Replica._cut_plan

    def counted(self):
        calls["cuts"] += 1
        return cut(self)
    monkeypatch.setattr(replica_module.Replica, "_cut_plan", counted)
    rng = np.random.default_rng(2)
    n = 800
    res = simulate(aggregated_fleet(GPT_OSS, replicas=2, max_batch=96, max_batch_tokens=4096), rng.integers(50, 900, n),
                   rng.integers(20, 700, n), arrival_s=np.cumsum(rng.exponential(1.0 / 40.0, n)), seed=3)
    assert calls["cuts"] > 50 and not stale
    assert len(res.trace) == n
