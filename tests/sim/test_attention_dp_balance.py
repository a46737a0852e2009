"""Attention-DP context balancing (stack.adp_balance_timeout_steps), TensorRT-LLM's rule: at
load, a new prompt waits for the release that comes every `timeout` steps; it goes at once
while some rank runs nothing, or when every rank has a prompt and a free slot."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from factory_sim.fidelity.measured import spread_lengths
from factory_sim.perf.stacks import override_stack
from factory_sim.perf.steptime import StepTimeModel
from factory_sim.sim.engine import simulate
from tests.helpers import aggregated_fleet, shape

PROMPT, LONG = 64, 400  # tokens: 8 short prompts fill one mixed step, then decode for 399 steps
DP = 8


def _dp_shape(timeout_steps: int):
    sh = shape("h200_sxm", "deepseek_r1", "fp8", tp=1, dp_attention=DP, ep=DP)
    return dataclasses.replace(sh, stack=override_stack(sh.stack, {"adp_balance_timeout_steps": timeout_steps}))


def _boundaries(sh, running: int, steps: int) -> np.ndarray:
    """Times of the step boundaries after the first (mixed) step, relative to its end, of a
    batch of `running` sequences that all joined decode at its end."""
    ctx = running * (PROMPT + 1)
    return np.asarray(StepTimeModel(sh).decode_elapsed_s(running, range(ctx, ctx + running * steps, running)))


def _late_prompts(sh, running: int, late: int, arrive_after_steps: float):
    """`running` long requests at t=0, then `late` more reaching the replica in the middle of
    the step that ends at boundary `arrive_after_steps`; returns (prefill start of the late ones, first step end, boundaries)."""
    b = _boundaries(sh, running, 200)
    first = simulate(aggregated_fleet(sh, max_batch=2 * DP, max_batch_tokens=4096),
                     np.full(running, PROMPT), np.full(running, LONG), arrival_s=np.zeros(running)).trace.first_token_s[0]
    k = int(arrive_after_steps)
    at_replica = first + (b[k - 1] + b[k]) / 2  # between two boundaries
    arrival = np.concatenate([np.zeros(running), np.full(late, at_replica - sh.request_latency_s)])
    tr = simulate(aggregated_fleet(sh, max_batch=2 * DP, max_batch_tokens=4096),
                  np.full(running + late, PROMPT), np.full(running + late, LONG), arrival_s=arrival).trace
    return tr.prefill_start_s[running:], first, b


def test_a_prompt_at_load_waits_for_the_next_release():
    """8 ranks busy, one prompt arrives during step 25: with a 10-step timeout it starts at
    the boundary after step 30 (the count restarted at the first admission, step 0); without
    balancing, at the end of the step in progress."""
    sh = _dp_shape(10)
    start, first, b = _late_prompts(sh, DP, 1, 23)  # b[j] ends step j + 2: it arrives in step 25
    assert start[0] == pytest.approx(first + b[28], rel=1e-9)  # step 30 = the mixed one + 29 decode
    start_off, first_off, b_off = _late_prompts(_dp_shape(0), DP, 1, 23)
    assert start_off[0] == pytest.approx(first_off + b_off[23], rel=1e-9)  # step 25


def test_prompts_go_at_once_when_every_rank_has_one_or_a_rank_runs_nothing():
    sh = _dp_shape(10)
    # 8 prompts (one per rank) and 8 free slots: released at the next boundary
    start, first, b = _late_prompts(sh, DP, DP, 23)
    np.testing.assert_allclose(start, first + b[23], rtol=1e-9)
    # 4 sequences on 8 ranks: a rank has nothing to run, so nothing is held
    start, first, b = _late_prompts(sh, 4, 1, 23)
    assert start[0] == pytest.approx(first + b[23], rel=1e-9)


def test_balancing_holds_nothing_without_attention_dp_or_on_a_prefill_pool():
    sh = shape("h200_sxm", "deepseek_r1", "fp8", tp=8, ep=8)
    sh = dataclasses.replace(sh, stack=override_stack(sh.stack, {"adp_balance_timeout_steps": 10}))
    start, first, b = _late_prompts(sh, DP, 1, 23)
    assert start[0] == pytest.approx(first + b[23], rel=1e-9)


def test_every_request_is_served_under_balancing_in_a_closed_loop():
    """A closed loop at the batch limit (the case the rule slows down) still finishes every
    request, in causal order, and its prompts wait longer than without balancing (lengths
    spread, so that requests finish one at a time rather than a rank's worth together)."""
    out = spread_lengths(128, 320, 0.3, seed=1)
    ttft = {}
    for timeout in (0, 60):
        tr = simulate(aggregated_fleet(_dp_shape(timeout), max_batch=4 * DP, max_batch_tokens=8192),
                      np.full(320, 256), out, concurrency=4 * DP, seed=0).trace
        assert tr.done.all()
        assert (tr.arrival_s <= tr.first_token_s).all() and (tr.first_token_s <= tr.finish_s).all()
        ttft[timeout] = float(np.mean(tr.first_token_s - tr.arrival_s))
    assert ttft[60] > ttft[0]


def test_every_rank_must_have_a_prompt_not_just_dp_prompts_in_all():
    """A new request joins the rank with the fewest active requests. 24 long requests (3 per
    rank, request i on rank i % 8) with requests 0 and 8 short: rank 0 is left with one. Then 8
    prompts arrive together: three go to rank 0, one each to ranks 1-5, none to ranks 6 and 7,
    so they wait for the timeout although 8 prompts and 10 free slots are there (counted
    across ranks, they would go at the end of the step in progress)."""
    n, late = 3 * DP, DP
    out = np.full(n + late, LONG)
    out[[0, DP]] = 5
    first = simulate(aggregated_fleet(_dp_shape(10), max_batch=4 * DP, max_batch_tokens=4096),
                     np.full(n, PROMPT), out[:n], arrival_s=np.zeros(n)).trace.first_token_s[0]
    starts = {}
    for timeout in (0, 10):
        sh = _dp_shape(timeout)
        b = _boundaries(sh, n - 2, 200)  # step times once the two short ones have finished
        step = float(b[23] - b[22])
        at_replica = first + (b[22] + b[23]) / 2  # in the middle of a step, about step 25
        arrival = np.concatenate([np.zeros(n), np.full(late, at_replica - sh.request_latency_s)])
        tr = simulate(aggregated_fleet(sh, max_batch=4 * DP, max_batch_tokens=4096),
                      np.full(n + late, PROMPT), out, arrival_s=arrival).trace
        assert tr.done.all()
        starts[timeout] = tr.prefill_start_s[n:] - at_replica
        assert np.ptp(starts[timeout]) == 0.0  # released together
    assert 0.0 < starts[0][0] < step  # at the end of the step in progress
    assert starts[10][0] > starts[0][0] + 3 * step  # held for the release (5 steps later here)
