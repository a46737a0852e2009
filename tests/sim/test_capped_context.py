"""The incremental sliding-window context sums give the floats NumPy's per-sequence sum gives."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from factory_sim.perf.steptime import effective_context, exact_context_weights
from factory_sim.sim.capped_context import CappedContextSums
from tests.helpers import shape

GPT_OSS = shape("b200_hgx", "gpt_oss_120b", "mxfp4", attention_precision="bf16")

# a batch's life: a sequence joins with a context, one leaves, or the batch decodes some steps
_OPS = st.lists(st.one_of(st.tuples(st.just("join"), st.integers(1, 400)),
                          st.tuples(st.just("leave"), st.integers(0, 10_000)),
                          st.tuples(st.just("steps"), st.integers(1, 300))), max_size=60)


def test_gpt_oss_weights_are_exact_and_sparse_attention_is_not():
    assert exact_context_weights(GPT_OSS) == (1, 1, 2, 128)
    assert exact_context_weights(shape("b200_hgx", "deepseek_v3_2", "fp8", tp=8, ep=8)) is None
    assert exact_context_weights(shape("h100_sxm", "llama3_1_8b", "fp8")) is None


@settings(max_examples=150, deadline=None)
@given(_OPS, st.one_of(st.integers(1, 40), st.integers(32, 600)))  # the loop and the NumPy path
def test_sums_match_numpy_bit_for_bit(ops, plan_steps):
    sums = CappedContextSums.for_shape(GPT_OSS)
    step, base = 0, {}  # sequence -> context minus the step count, as the replica keeps it
    for k, (op, x) in enumerate(ops):
        if op == "join":
            base[k] = x - step
            sums.join(base[k], step)
        elif op == "leave" and base:
            rid = sorted(base)[x % len(base)]
            sums.leave(base.pop(rid), step)
        elif op == "steps":
            step += x
            sums.advance(step)
        if base:
            ctx = np.array([b + step for b in base.values()], dtype=float)
            expected = effective_context(GPT_OSS, ctx[None, :] + np.arange(plan_steps)[:, None]).sum(axis=1)
            got = sums.sums(len(base), int(ctx.sum()), step, plan_steps)
            assert np.array_equal(np.asarray(got), expected)
            # a mixed step's one sum, without the list (also while the list holds reached hits)
            for at in (step, step + plan_steps):
                one = sums.sum_one(len(base), int(ctx.sum()) + len(base) * (at - step), at)
                assert one == sums.sums(len(base), int(ctx.sum()) + len(base) * (at - step), at, 1)[0]


def test_sums_decline_beyond_exact_floats():
    sums = CappedContextSums.for_shape(GPT_OSS)
    sums.join(2**53, 0)
    assert sums.sums(1, 2**53, 0, 1) is None
    assert sums.sum_one(1, 2**53, 0) is None


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=40), st.integers(0, 300), st.integers(1, 300))
def test_sums_from_a_later_step_are_the_tail_of_the_plan(contexts, first, steps):
    """A lazy plan's chunk (sim/decode_plan.py) asks for the sums from `first` steps ahead, with
    the list still holding the hits reached by then: the floats of the plan priced at once."""
    sums = CappedContextSums.for_shape(GPT_OSS)
    for ctx in contexts:
        sums.join(ctx, 0)
    n, total = len(contexts), sum(contexts)
    whole = list(sums.sums(n, total, 0, first + steps))
    assert list(sums.sums(n, total + n * first, first, steps)) == whole[first:]
