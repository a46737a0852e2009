"""The event loop against queueing theory: one server, fixed service time, Poisson arrivals."""

from __future__ import annotations

import numpy as np
import pytest

from factory_sim.perf.steptime import StepTimeModel, prefill_attention_pairs
from factory_sim.sim.engine import simulate
from tests.helpers import aggregated_fleet, shape

PROMPT_TOKENS = 512


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_mean_wait_matches_theory(rho):
    """max_batch=1 and one-token outputs make a replica a single server with a fixed service time
    (one prefill step); its mean queueing delay must match Pollaczek-Khinchine for M/D/1."""
    sh = shape("h100_sxm", "llama3_1_8b", "fp8")
    service_s = StepTimeModel(sh).step_time_s(
        prefill_tokens=float(PROMPT_TOKENS),
        prefill_attn_pairs=float(prefill_attention_pairs(sh, PROMPT_TOKENS, 0)),
        prefill_seqs=1.0,
    )
    rate = rho / service_s
    n = 60_000
    rng = np.random.default_rng(20261128)
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    fleet = aggregated_fleet(sh, replicas=1, max_batch=1, max_batch_tokens=4096)
    tr = simulate(fleet, np.full(n, PROMPT_TOKENS), np.ones(n, dtype=int), arrival_s=arrival).trace
    service = tr.finish_s - tr.prefill_start_s
    np.testing.assert_allclose(service, service_s, rtol=1e-9)
    # the front-end delays every arrival by the same time, so the queue still sees Poisson arrivals
    wait = (tr.prefill_start_s - tr.arrival_s - sh.request_latency_s)[n // 10:]  # skip the empty-system start
    theory = rho * service_s / (2.0 * (1.0 - rho))
    assert wait.mean() == pytest.approx(theory, rel=0.05)


def test_littles_law_in_steady_state():
    """Time-average requests in the system = arrival rate x mean time in the system, within 2%."""
    sh = shape("h100_sxm", "llama3_1_8b", "fp8")
    rng = np.random.default_rng(7)
    n, rate = 40_000, 40.0
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    inp, out = rng.integers(100, 600, n), rng.integers(20, 200, n)
    tr = simulate(aggregated_fleet(sh, 2, 128, 4096), inp, out, arrival_s=arrival).trace
    t0, t1 = arrival[n // 5], arrival[-n // 5]
    # the exact time average of N(t) over [t0, t1]: every request's stay clipped to the window
    in_system = (np.clip(tr.finish_s, t0, t1) - np.clip(tr.arrival_s, t0, t1)).sum() / (t1 - t0)
    measured = (arrival >= t0) & (arrival <= t1)
    arrival_rate = measured.sum() / (t1 - t0)
    sojourn = (tr.finish_s - tr.arrival_s)[measured].mean()
    assert in_system == pytest.approx(arrival_rate * sojourn, rel=0.02)
