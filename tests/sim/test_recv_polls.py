"""SGLang's request polling (stack.scheduler_recv_interval_steps): at load a new prompt waits for
the scheduler's next poll, which comes every N decode steps counted from the last poll or
prompt step; a replica that runs nothing polls at once."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from factory_sim.fidelity.measured import spread_lengths
from factory_sim.perf.stacks import override_stack
from factory_sim.perf.steptime import StepTimeModel
from factory_sim.sim.engine import simulate
from tests.helpers import aggregated_fleet, shape

PROMPT, LONG, RUNNING = 64, 400, 8  # 8 short prompts fill one mixed step, then decode for 399 steps


def _shape(interval: int):
    sh = shape("h200_sxm", "llama3_1_70b", "fp8", tp=8)
    return dataclasses.replace(sh, stack=override_stack(sh.stack, {"scheduler_recv_interval_steps": interval}))


def _prefill_starts(sh, arrive_in_steps: list[int]):
    """RUNNING long requests at t=0, then one more reaching the replica in the middle of each
    listed step (counted from 1, the mixed step); returns (their prefill starts, the first
    step's end, the boundaries after it: b[j] ends step j + 2)."""
    ctx = RUNNING * (PROMPT + 1)
    b = np.asarray(StepTimeModel(sh).decode_elapsed_s(RUNNING, range(ctx, ctx + RUNNING * 200, RUNNING)))
    fleet = aggregated_fleet(sh, max_batch=2 * RUNNING, max_batch_tokens=4096)
    first = simulate(fleet, np.full(RUNNING, PROMPT), np.full(RUNNING, LONG),
                     arrival_s=np.zeros(RUNNING)).trace.first_token_s[0]
    late = [first + (b[k - 3] + b[k - 2]) / 2 - sh.request_latency_s for k in arrive_in_steps]
    n = RUNNING + len(late)
    tr = simulate(fleet, np.full(n, PROMPT), np.full(n, LONG),
                  arrival_s=np.concatenate([np.zeros(RUNNING), late])).trace
    return tr.prefill_start_s[RUNNING:], first, b


def test_a_prompt_at_load_waits_for_the_next_poll():
    """Polls every 10 decode steps from the mixed step (step 1): at the boundaries after steps
    11, 21, 31. A prompt arriving in step 25 starts after step 31; without polling, after 25."""
    start, first, b = _prefill_starts(_shape(10), [25])
    assert start[0] == pytest.approx(first + b[31 - 2], rel=1e-9)
    start_off, first_off, b_off = _prefill_starts(_shape(0), [25])
    assert start_off[0] == pytest.approx(first_off + b_off[25 - 2], rel=1e-9)


def test_a_prompt_step_restarts_the_count_and_an_idle_replica_polls_at_once():
    # the second prompt arrives in step 38: the first one's prompt step (32) restarted the
    # count, so the poll comes after step 42 (not 41): four decode steps after the end of step
    # 38, where it starts without polling (the batch holds 9 sequences then: steps of about the
    # 8-sequence length, b[j + 1] - b[j])
    start, first, b = _prefill_starts(_shape(10), [25, 38])
    assert start[0] == pytest.approx(first + b[31 - 2], rel=1e-9)
    start_off, _, _ = _prefill_starts(_shape(0), [25, 38])
    waited_steps = (start[1] - start_off[1]) / (b[40] - b[39])
    assert waited_steps == pytest.approx(4.0, abs=0.3)
    # a replica with nothing to run takes a prompt at once
    sh = _shape(10)
    tr = simulate(aggregated_fleet(sh, max_batch=4, max_batch_tokens=4096), np.array([PROMPT]), np.array([8]),
                  arrival_s=np.array([0.5])).trace
    assert tr.prefill_start_s[0] == pytest.approx(0.5 + sh.request_latency_s)


def test_an_interval_of_one_or_none_polls_at_every_step():
    for interval in (0, 1):
        start, first, b = _prefill_starts(_shape(interval), [25])
        assert start[0] == pytest.approx(first + b[25 - 2], rel=1e-9)


def test_every_request_is_served_under_polling_in_a_closed_loop():
    out = spread_lengths(128, 240, 0.3, seed=1)
    ttft = {}
    for interval in (0, 30):
        tr = simulate(aggregated_fleet(_shape(interval), max_batch=24, max_batch_tokens=8192),
                      np.full(240, 256), out, concurrency=24, seed=0).trace
        assert tr.done.all()
        assert (tr.arrival_s <= tr.first_token_s).all() and (tr.first_token_s <= tr.finish_s).all()
        ttft[interval] = float(np.median(tr.first_token_s - tr.arrival_s))
    assert ttft[30] > ttft[0]
