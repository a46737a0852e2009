"""MTP acceptance that differs by request: the Beta keeps the tokens per pass, the steps scale
each request's decode, bad spreads are refused, and a run with it is seeded and deterministic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factory_sim.config.experiment import MtpSpec
from factory_sim.errors import ConfigError
from factory_sim.perf.mtp_spread import beta_parameters, decode_steps, max_sd, steps_per_token, tokens_per_pass
from factory_sim.results.metrics import latencies
from factory_sim.sim.engine import simulate
from tests.helpers import aggregated_fleet, shape

_QUANTILES = (np.arange(4000) + 0.5) / 4000


@settings(max_examples=12, deadline=None)
@given(acceptance=st.floats(0.3, 0.9), drafts=st.integers(1, 4), share=st.floats(0.05, 0.6))
def test_the_tokens_per_pass_over_all_requests_are_the_stacks(acceptance, drafts, share):
    """Passes per token averaged over requests (what an engine's accepted tokens over verify passes
    inverts) equal those of every request accepting at the stack's acceptance."""
    sd = share * max_sd(acceptance)
    per_token = steps_per_token(acceptance, drafts, sd, _QUANTILES)
    assert float(np.mean(per_token)) == pytest.approx(1.0, abs=2e-3)
    alpha, beta = beta_parameters(acceptance, drafts, sd)
    mean, var = alpha / (alpha + beta), alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1))
    assert np.sqrt(var) == pytest.approx(sd, rel=1e-6)
    assert mean >= acceptance - 1e-6  # 1 / t is convex: the Beta's mean sits at or above the acceptance
    assert np.all(np.diff(per_token) <= 1e-12)  # a higher quantile accepts more: fewer steps per token


def test_tokens_per_pass_and_decode_steps():
    assert tokens_per_pass(0.5, 2) == pytest.approx(1.75)
    out = np.array([1, 2, 101, 101])
    np.testing.assert_array_equal(decode_steps(out, np.array([2.0, 0.1, 0.5, 1.5])), [1, 2, 51, 151])


def test_a_spread_needs_drafts_and_room():
    base = shape("b200_hgx", "deepseek_r1", "fp4", tp=1, dp_attention=8, ep=8)
    with pytest.raises(ConfigError, match="acceptance_sd"):
        dataclasses.replace(base, mtp_acceptance_sd=0.1)
    with pytest.raises(ConfigError, match="too wide"):
        dataclasses.replace(base, mtp_draft_tokens=1, mtp_acceptance=0.85, mtp_acceptance_sd=0.34)
    dataclasses.replace(base, mtp_draft_tokens=1, mtp_acceptance=0.85, mtp_acceptance_sd=0.1)
    with pytest.raises(ValueError, match="acceptance_sd"):
        MtpSpec(acceptance_sd=0.5)
    assert MtpSpec(acceptance_sd=0.1).acceptance_sd_for(0.2) == 0.1
    assert MtpSpec().acceptance_sd_for(0.2) == 0.2 and MtpSpec().acceptance_sd_for(None) == 0.0


def _run(sd: float, seed: int):
    mtp = dataclasses.replace(shape("b200_hgx", "deepseek_r1", "fp4", tp=1, dp_attention=8, ep=8),
                              mtp_draft_tokens=1, mtp_acceptance=0.7, mtp_acceptance_sd=sd)
    n = 120
    rng = np.random.default_rng(5)
    arrival = np.cumsum(rng.exponential(1 / 2.0, n))
    inp, out = rng.integers(200, 800, n), rng.integers(100, 400, n)
    return simulate(aggregated_fleet(mtp, max_batch=64), inp, out, arrival_s=arrival, seed=seed).trace


def test_a_spread_run_is_seeded_and_widens_the_tpot_alone():
    """Same seed, same trace; another seed, other acceptances; the spread widens the per-request
    TPOT while the output tokens and the median stay near the run without it."""
    plain, a, b, c = _run(0.0, 1), _run(0.2, 1), _run(0.2, 1), _run(0.2, 2)
    for name in ("first_token_s", "finish_s", "output_tokens"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.finish_s, c.finish_s)
    np.testing.assert_array_equal(a.output_tokens, plain.output_tokens)
    t0, t1 = latencies(plain)["tpot_s"], latencies(a)["tpot_s"]
    spread = lambda t: np.percentile(t, 95) / np.percentile(t, 5)  # noqa: E731
    assert spread(t1) > 1.15 * spread(t0)
    assert np.median(t1) == pytest.approx(np.median(t0), rel=0.1)
