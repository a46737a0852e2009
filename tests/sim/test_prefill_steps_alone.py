"""A stack whose prefill steps run alone (stack.prefill_steps_alone, SGLang's scheduler): a step
that carries prompt tokens decodes nothing, the decode batch waits for it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from factory_sim.perf.stacks import override_stack
from factory_sim.results.metrics import latencies
from factory_sim.sim.engine import simulate
from tests.helpers import aggregated_fleet, shape


def _fleet(alone: bool, max_batch_tokens: int = 2048):
    sh = shape("h100_sxm", "llama3_1_8b", "fp8", tp=1)
    sh = dataclasses.replace(sh, stack=override_stack(sh.stack, {"prefill_steps_alone": alone}))
    return aggregated_fleet(sh, max_batch=8, max_batch_tokens=max_batch_tokens)


def test_a_prompt_arriving_during_decoding_pauses_the_decodes():
    # request 0 decodes alone; request 1's 4,096-token prompt arrives while it does (two chunks of 2,048)
    args = dict(arrival_s=np.array([0.0, 0.05]))
    tokens_in, tokens_out = np.array([512, 4096]), np.array([400, 8])
    mixed = simulate(_fleet(False), tokens_in, tokens_out, **args).trace
    alone = simulate(_fleet(True), tokens_in, tokens_out, **args).trace
    assert mixed.done.all() and alone.done.all()
    lat_mixed, lat_alone = latencies(mixed), latencies(alone)
    # the prompt's steps carry no decode: its first token comes no later
    assert lat_alone["ttft_s"][1] <= lat_mixed["ttft_s"][1]
    # request 0 generated no token during those two steps: it finishes later, its TPOT is longer
    assert alone.finish_s[0] > mixed.finish_s[0]
    assert lat_alone["tpot_s"][0] > lat_mixed["tpot_s"][0]
    # a request with no prompt overlapping its decoding is not affected
    assert lat_alone["ttft_s"][0] == pytest.approx(lat_mixed["ttft_s"][0])


def test_with_exact_lengths_a_closed_loop_stays_in_cohorts():
    # 6 clients, 3 rounds, identical lengths: with prefill steps alone each round's prompts are all
    # prefilled (over several steps) before any of them decodes, so the round's requests finish at
    # the same instant and come back together; with prompt chunks riding along with the decodes,
    # the ones prefilled first also finish first
    n, clients = 18, 6
    tokens_in, tokens_out = np.full(n, 1024), np.full(n, 32)
    alone = simulate(_fleet(True), tokens_in, tokens_out, concurrency=clients).trace
    mixed = simulate(_fleet(False), tokens_in, tokens_out, concurrency=clients).trace
    assert alone.done.all() and mixed.done.all()
    assert len(np.unique(np.round(alone.finish_s, 9))) == n // clients
    assert len(np.unique(np.round(mixed.finish_s, 9))) > n // clients
    first_round = np.argsort(alone.first_token_s)[:clients]
    assert len(np.unique(np.round(alone.first_token_s[first_round], 9))) > 1  # the burst took several steps
