"""Disaggregated serving whose client streams from the decode side (stack.first_token_from_decode):
the first token counts when a decode replica takes the request in, after the KV transfer and
any wait for room there, so that wait moves from TPOT into TTFT."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from factory_sim.perf.stacks import override_stack
from factory_sim.results.metrics import latencies
from factory_sim.sim.engine import simulate
from tests.helpers import disaggregated_fleet, shape


def _run(from_decode: bool):
    sh = shape("h100_sxm", "llama3_1_8b", "fp8", tp=1)
    sh = dataclasses.replace(sh, stack=override_stack(sh.stack, {"first_token_from_decode": from_decode}))
    # one decode slot: the second request's KV waits until the first request finishes
    fleet = disaggregated_fleet(sh, sh, max_batch=1, max_batch_tokens=4096)
    return simulate(fleet, np.full(2, 512), np.full(2, 64), arrival_s=np.zeros(2)).trace


def test_the_first_token_counts_when_the_decode_side_takes_the_request():
    off, on = _run(False), _run(True)
    assert off.done.all() and on.done.all()
    np.testing.assert_array_equal(off.finish_s, on.finish_s)  # the same schedule
    np.testing.assert_array_equal(off.first_token_s, off.prefill_end_s)
    np.testing.assert_array_equal(on.first_token_s, on.decode_start_s)
    # the second request waited for the decode slot: in TTFT now, no longer in its TPOT
    assert on.decode_start_s[1] >= on.finish_s[0]
    lat_off, lat_on = latencies(off), latencies(on)
    assert lat_on["ttft_s"][1] > lat_off["ttft_s"][1] + 0.5 * (on.finish_s[0] - on.prefill_end_s[1])
    assert lat_on["tpot_s"][1] < lat_off["tpot_s"][1]
    assert lat_on["e2e_s"][1] == pytest.approx(lat_off["e2e_s"][1])


def test_inferencex_dynamo_points_take_the_first_token_from_the_decode_side():
    from factory_sim.config.stack import load_stack
    from factory_sim.fidelity.inferencex import harness_stack

    st = load_stack("trtllm_blackwell")
    assert harness_stack(st, {"framework": "dynamo-trtllm", "concurrency": 8}).first_token_from_decode
    assert not harness_stack(st, {"framework": "trtllm", "concurrency": 8}).first_token_from_decode
    assert not harness_stack(st).first_token_from_decode
