"""The front-end's queue behind the streamed tokens (stack.frontend_s_per_streamed_token): new
requests wait the M/D/1 mean wait of an event loop that also sends every streamed token."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.perf.stacks import override_stack
from factory_sim.sim.engine import simulate
from factory_sim.sim.frontend import MAX_UTILIZATION, FrontendQueue, md1_wait_s, stream_wait_s
from tests.helpers import aggregated_fleet, shape


def test_md1_wait_is_the_pollaczek_khinchine_formula():
    # M/D/1: Wq = rho S / (2 (1 - rho)); at rho = 0.5 and S = 10 ms, 5 ms
    assert md1_wait_s(0.5, 0.010) == pytest.approx(0.005)
    assert md1_wait_s(0.9, 0.010) == pytest.approx(0.9 * 0.010 / 0.2)
    assert md1_wait_s(0.0, 0.010) == 0.0


def test_the_stream_wait_is_zero_without_a_cost_per_token():
    assert stream_wait_s(0.0, 20_000.0, 0.02) == 0.0


def test_the_stream_wait_is_md1_with_a_step_of_tokens_as_the_job():
    # 8,000 tokens/s at 100 us each: rho 0.8; a step's job 0.8 x 25 ms = 20 ms; Wq = 0.8 x 20 / 0.4 = 40 ms
    assert stream_wait_s(100e-6, 8_000.0, 0.025) == pytest.approx(0.040)
    # past the cap the wait stays the cap's
    capped = stream_wait_s(100e-6, 50_000.0, 0.025)
    assert capped == pytest.approx(md1_wait_s(MAX_UTILIZATION, MAX_UTILIZATION * 0.025))


@given(st.floats(1e-7, 1e-3), st.floats(1.0, 1e5), st.floats(1.0, 1e5), st.floats(1e-3, 0.2))
def test_the_stream_wait_grows_with_the_streamed_tokens(s_per_token, a, b, interval):
    low, high = sorted((a, b))
    assert 0.0 <= stream_wait_s(s_per_token, low, interval) <= stream_wait_s(s_per_token, high, interval)


class _Replica:
    def __init__(self, running: int):
        self.running = running


def test_the_queue_reads_the_batches_and_the_finished_requests_token_interval():
    reps = [_Replica(60), _Replica(20)]
    q = FrontendQueue(50e-6, frontends=2, streaming=reps)
    assert q.wait_s() == 0.0  # nothing finished yet: no interval to read the stream's rate from
    q.finished(101, 2.0)  # 20 ms between tokens
    q.finished(1, 0.0)  # a single token says nothing of the interval
    assert q.token_interval_s == pytest.approx(0.02)
    # 80 sequences every 20 ms over two front-ends: 2,000 tokens/s each, rho 0.1
    assert q.wait_s() == pytest.approx(stream_wait_s(50e-6, 2_000.0, 0.02))


def _closed_loop(s_per_token: float, clients: int):
    sh = shape("h200_sxm", "llama3_1_8b", "fp8", tp=1)
    sh = dataclasses.replace(sh, stack=override_stack(sh.stack, {"frontend_s_per_streamed_token": s_per_token}))
    n = clients * 4
    rng = np.random.default_rng(3)
    out = rng.integers(150, 250, n)
    res = simulate(aggregated_fleet(sh, max_batch=256), np.full(n, 256), out, concurrency=clients)
    tr = res.trace
    assert tr.done.all()
    return tr, res


def test_nothing_streamed_yet_means_no_wait():
    """A burst that arrives before any request has finished meets an idle front-end: the same
    trace as without the field (its fixed latency applies either way)."""
    sh = shape("h200_sxm", "llama3_1_8b", "fp8", tp=1)
    assert sh.stack.frontend_s_per_streamed_token == 0.0  # off by default
    traces = []
    for c in (0.0, 200e-6):
        s = dataclasses.replace(sh, stack=override_stack(sh.stack, {"frontend_s_per_streamed_token": c,
                                                                     "frontend_latency_s": 0.01}))
        traces.append(simulate(aggregated_fleet(s, max_batch=64), np.full(48, 512), np.full(48, 100),
                               arrival_s=np.zeros(48)).trace)
    for column in ("prefill_start_s", "first_token_s", "finish_s"):
        np.testing.assert_array_equal(getattr(traces[1], column), getattr(traces[0], column))


def test_the_wait_lengthens_ttft_more_as_more_tokens_stream():
    """With a cost per token, the TTFT added grows with the clients streaming; at a few clients it
    is nearly nothing."""
    added = []
    for clients in (4, 96):
        base, _ = _closed_loop(0.0, clients)
        fronted, _ = _closed_loop(60e-6, clients)
        added.append(float(np.mean(fronted.first_token_s - fronted.arrival_s) - np.mean(base.first_token_s - base.arrival_s)))
        assert np.all(fronted.first_token_s >= fronted.arrival_s)
    few, many = added
    assert abs(few) < 1e-3
    assert many > 10 * max(abs(few), 1e-5)


def test_open_loop_arrivals_pass_the_frontend_too():
    sh = shape("h200_sxm", "llama3_1_8b", "fp8", tp=1)
    n = 400
    arrival = np.sort(np.random.default_rng(5).uniform(0, 4.0, n))
    means = []
    for c in (0.0, 100e-6):
        s = dataclasses.replace(sh, stack=override_stack(sh.stack, {"frontend_s_per_streamed_token": c,
                                                                     "frontend_latency_s": 0.01}))
        tr = simulate(aggregated_fleet(s, max_batch=256), np.full(n, 256), np.full(n, 200), arrival_s=arrival).trace
        assert tr.done.all()
        np.testing.assert_array_equal(tr.arrival_s, arrival)
        assert np.all(tr.prefill_start_s >= arrival + 0.01 - 1e-12)
        means.append(float(np.mean(tr.first_token_s - tr.arrival_s)))
    assert means[1] > means[0]
