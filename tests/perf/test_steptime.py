"""Step-time and memory models: monotonicity, rooflines, parallelism arithmetic, refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.config.hardware import load_hardware
from factory_sim.errors import ConfigError
from factory_sim.perf.memory import plan_memory, replica_kv_bytes
from factory_sim.perf.steptime import StepTimeModel, effective_context, prefill_attention_pairs
from tests.helpers import shape

SHAPES = {
    "llama8b_h100": lambda: shape("h100_sxm", "llama3_1_8b", "fp8"),
    "llama70b_h200_tp8": lambda: shape("h200_sxm", "llama3_1_70b", "fp8", tp=8),
    "r1_h200_ep8": lambda: shape("h200_sxm", "deepseek_r1", "fp8", tp=1, dp_attention=8, ep=8),
    "r1_gb200_wide_ep": lambda: shape("gb200_nvl72", "deepseek_r1", "fp4", tp=1, dp_attention=32, ep=32),
    "gptoss_b200": lambda: shape("b200_hgx", "gpt_oss_120b", "mxfp4", attention_precision="bf16"),
}


def _with_stack(sh, **changes):
    return dataclasses.replace(sh, stack=sh.stack.model_copy(update=changes))


@pytest.mark.parametrize("name", SHAPES)
@given(batch=st.integers(1, 2000), ctx=st.integers(1, 30_000), grow=st.integers(1, 500))
def test_step_time_rises_with_batch_and_context(name, batch, ctx, grow):
    m = StepTimeModel(SHAPES[name]())
    t = lambda b, c: m.step_time_s(decode_seqs=float(b), decode_ctx_tokens=float(b * c))  # noqa: E731
    assert t(batch + grow, ctx) >= t(batch, ctx)
    assert t(batch, ctx + grow) >= t(batch, ctx)
    p = lambda n: m.step_time_s(prefill_tokens=float(n), prefill_attn_pairs=float(prefill_attention_pairs(  # noqa: E731
        m.shape, n, 0)), prefill_seqs=1.0)
    assert p(ctx + grow) >= p(ctx)


@pytest.mark.parametrize("name", SHAPES)
def test_one_vectorized_call_equals_many_scalar_calls(name):
    m = StepTimeModel(SHAPES[name]())
    rng = np.random.default_rng(3)
    p_tok = rng.integers(0, 5000, 50).astype(float)
    pairs = p_tok * rng.integers(1, 3000, 50)
    p_seqs = np.minimum(p_tok, rng.integers(1, 8, 50))
    d_seqs = rng.integers(0, 600, 50).astype(float)
    d_ctx = d_seqs * rng.integers(1, 8000, 50)
    vec = m.breakdown(p_tok, pairs, p_seqs, d_seqs, d_ctx).total_s
    one = [m.step_time_s(*map(float, args)) for args in zip(p_tok, pairs, p_seqs, d_seqs, d_ctx, strict=True)]
    np.testing.assert_allclose(vec, one, rtol=1e-12)
    assert m.step_time_s() == 0.0  # an empty step takes no time


def test_small_batch_decode_is_memory_bound_and_long_prefill_compute_bound():
    sh = SHAPES["llama70b_h200_tp8"]()
    base = StepTimeModel(sh)
    slower_memory = StepTimeModel(_with_stack(sh, hbm_efficiency=sh.stack.hbm_efficiency * 0.8))
    slower_compute = StepTimeModel(_with_stack(
        sh, gemm_efficiency=sh.stack.gemm_efficiency.model_copy(update={"fp8": sh.stack.gemm_efficiency.fp8 * 0.8}),
        attention_efficiency=sh.stack.attention_efficiency * 0.8,
        prefill_attention_efficiency=sh.stack.prefill_attention_fraction * 0.8))

    def decode(m):
        b = m.breakdown(decode_seqs=4.0, decode_ctx_tokens=4.0 * 1000)
        return float(b.attention_linear_s + b.dense_ffn_s + b.attention_core_s)

    def prefill(m):
        b = m.breakdown(prefill_tokens=8192.0, prefill_attn_pairs=float(prefill_attention_pairs(sh, 8192, 0)),
                        prefill_seqs=1.0)
        return float(b.attention_linear_s + b.dense_ffn_s + b.attention_core_s)

    # 20% less bandwidth makes small-batch decode 1/0.8 slower; 20% fewer FLOP/s does not touch it
    assert decode(slower_memory) == pytest.approx(decode(base) / 0.8, rel=1e-9)
    assert decode(slower_compute) == pytest.approx(decode(base), rel=1e-9)
    # and the other way round for a long prompt
    assert prefill(slower_compute) == pytest.approx(prefill(base) / 0.8, rel=1e-9)
    assert prefill(slower_memory) == pytest.approx(prefill(base), rel=1e-9)


def test_expected_distinct_experts():
    """A batch of T tokens each choosing top-k of E touches E(1-(1-k/E)^T) experts on average."""
    sh = SHAPES["r1_h200_ep8"]()
    m = StepTimeModel(sh)
    per_touched = m._expert_bytes_per_touched  # bytes if every expert of a GPU is read
    one = m.breakdown(decode_seqs=1.0, decode_ctx_tokens=1.0).experts_s
    many = m.breakdown(decode_seqs=100_000.0, decode_ctx_tokens=1e5).experts_s
    bw = sh.hardware.hbm_bw_bytes_per_s * sh.stack.hbm_efficiency
    imb = sh.stack.ep_load_imbalance
    assert float(one) == pytest.approx(imb * per_touched * (8 / 256) / bw, rel=1e-9)  # memory-bound: k/E of experts
    assert float(many) >= imb * per_touched / bw * (1 - 1e-9)  # every expert read


def test_deepseek_r1_fp8_on_one_h100_is_refused_with_the_shortfall():
    with pytest.raises(ConfigError) as err:
        plan_memory(shape("h100_sxm", "deepseek_r1", "fp8"))
    assert "does not fit" in err.value.message and "short by" in err.value.message


def test_a_tensor_parallel_size_that_splits_attention_heads_is_refused_with_the_sizes_that_work():
    with pytest.raises(ConfigError) as err:
        shape("gb200_nvl72", "deepseek_r1", "fp4", tp=36)
    assert err.value.path.endswith(".tp")
    assert "does not divide deepseek_r1's 128 attention heads" in err.value.message
    assert "1, 2, 4, 8, 16, 32, 64, 128" in err.value.message
    assert shape("gb200_nvl72", "deepseek_r1", "fp4", tp=32).tp == 32


def test_fp4_on_hopper_is_refused():
    with pytest.raises(ConfigError, match="no fp4 tensor cores"):
        shape("h200_sxm", "deepseek_r1", "fp4", tp=8, ep=8)


def test_weights_per_gpu_by_hand():
    # Llama-3.1-70B, FP8 weights, TP8: every matrix split 8 ways; BF16 embedding and head split 8 ways.
    sh = SHAPES["llama70b_h200_tp8"]()
    mem = plan_memory(sh)
    m = sh.model
    linear = (m.attention_params_per_layer + m.dense_ffn_params_per_layer) * m.layers / 8 * (1 + 4 / 16384)
    head = (m.embedding_params + m.lm_head_params) / 8 * 2
    assert mem.weight_bytes_per_gpu == pytest.approx(linear + head, rel=1e-12)
    free = 141e9 - 4e9 - mem.weight_bytes_per_gpu  # HBM minus activations minus weights
    assert mem.kv_capacity_bytes == pytest.approx(0.9 * free * 8, rel=1e-12)
    # GQA with 8 KV heads over TP8: one copy of the KV, 80 layers x 2 x 8 x 128 x 1 byte per token
    assert mem.kv_bytes_per_token == pytest.approx(80 * 2 * 8 * 128 * 1.0 * (1 + 4 / 16384))


def test_mla_cache_is_held_by_every_tp_rank():
    one = plan_memory(shape("h200_sxm", "deepseek_r1", "fp8", tp=8, ep=8))
    dp = plan_memory(shape("h200_sxm", "deepseek_r1", "fp8", tp=1, dp_attention=8, ep=8))
    assert one.kv_bytes_per_token == pytest.approx(8 * dp.kv_bytes_per_token)
    assert float(replica_kv_bytes(shape("h200_sxm", "deepseek_r1", "fp8", tp=8, ep=8), 1000)) == pytest.approx(
        8 * 1000 * 61 * 576 * (1 + 4 / 16384))


def test_sliding_window_caps_context():
    sh = SHAPES["gptoss_b200"]()
    assert float(effective_context(sh, 100)) == 100  # below the 128-token window
    assert float(effective_context(sh, 10_000)) == pytest.approx(0.5 * 10_000 + 0.5 * 128)
    # causal pairs of a chunk: the full layers see all keys, window layers at most 128
    full = 300 * 200 + 300 * 301 / 2
    windowed = sum(min(q, 128) for q in range(201, 501))
    assert float(prefill_attention_pairs(sh, 300, 200)) == pytest.approx(0.5 * full + 0.5 * windowed)


def test_sparse_attention_reads_its_top_k_keys_and_indexes_them_all():
    """GLM-5's DSA: a query attends at most 2,048 keys, and the indexer scores every key at 1/17
    of a key's absorbed-MLA decode price (1/8 of its per-head prefill price)."""
    sh = shape("b200_hgx", "glm_5", "fp8", tp=8)
    rho_decode, rho_prefill = 8192 / 139264, 8192 / 65536
    assert float(effective_context(sh, 1000)) == pytest.approx(1000 + rho_decode * 1000)
    assert float(effective_context(sh, 64_000)) == pytest.approx(2048 + rho_decode * 64_000)
    full = 3000 * 1000 + 3000 * 3001 / 2
    capped = sum(min(q, 2048) for q in range(1001, 4001))
    assert float(prefill_attention_pairs(sh, 3000, 1000)) == pytest.approx(capped + rho_prefill * full)
    # a long context's decode attention costs a small share of what dense MLA's would
    m = StepTimeModel(sh)
    dense = StepTimeModel(shape("b200_hgx", "deepseek_r1", "fp8", tp=8))
    sparse_core = float(m.breakdown(decode_seqs=8.0, decode_ctx_tokens=8 * float(effective_context(sh, 64_000)))
                        .attention_core_s)
    dense_core = float(dense.breakdown(decode_seqs=8.0, decode_ctx_tokens=8 * 64_000.0).attention_core_s)
    assert sparse_core < 0.25 * dense_core


def test_wide_ep_beyond_the_nvlink_domain_pays_the_nic():
    inside = StepTimeModel(shape("h200_sxm", "deepseek_r1", "fp8", tp=1, dp_attention=8, ep=8))
    across = StepTimeModel(shape("h200_sxm", "deepseek_r1", "fp8", tp=1, dp_attention=16, ep=16))
    b = dict(decode_seqs=512.0, decode_ctx_tokens=512.0 * 2000)
    per_gpu_inside = float(inside.breakdown(**b).communication_s)
    per_gpu_across = float(across.breakdown(decode_seqs=1024.0, decode_ctx_tokens=1024.0 * 2000).communication_s)
    assert per_gpu_across > 3 * per_gpu_inside  # 400 Gb/s NIC vs 450 GB/s NVLink


def test_ep_peer_latency_adds_a_fixed_cost_per_moe_layer_and_peer_and_nothing_without_ep():
    from factory_sim.perf.stacks import override_stack

    def pair(**par):
        base = shape("gb200_nvl72", "deepseek_r1", "fp4", **par)
        slow = dataclasses.replace(base, stack=override_stack(base.stack, {"ep_peer_latency_s": 2e-6}))
        return StepTimeModel(base), StepTimeModel(slow)

    m = pair()[0].shape.model
    for ep in (8, 32):
        plain, slow = pair(tp=1, dp_attention=ep, ep=ep)
        b = dict(decode_seqs=16.0 * ep, decode_ctx_tokens=16.0 * ep * 2000)
        extra = slow.step_time_s(**b) - plain.step_time_s(**b)
        # dispatch and combine of every MoE layer wait for one message from each other rank
        assert extra == pytest.approx(m.moe_layers * 2 * (ep - 1) * 2e-6, rel=1e-9)
        assert float(slow.breakdown(**b).communication_s) > float(plain.breakdown(**b).communication_s)
    plain, slow = pair(tp=8)  # experts tensor-parallel: no all-to-all
    b = dict(decode_seqs=64.0, decode_ctx_tokens=64.0 * 2000)
    assert slow.step_time_s(**b) == plain.step_time_s(**b)


def test_multi_token_prediction():
    base = SHAPES["r1_gb200_wide_ep"]()
    mtp = dataclasses.replace(base, mtp_draft_tokens=3, mtp_acceptance=0.8)
    assert mtp.mtp_tokens_per_pass == pytest.approx(1 + 0.8 + 0.64 + 0.512)
    plain, spec = StepTimeModel(base), StepTimeModel(mtp)
    # small batches are memory-bound: verifying 4 positions costs little more than 1, so the
    # time per token falls; a draft that is never accepted only adds work
    small = dict(n_seqs=8, ctx_sum=8 * 2000.0)
    assert spec.decode_token_s(**small) < 0.8 * plain.decode_token_s(**small)
    useless = StepTimeModel(dataclasses.replace(base, mtp_draft_tokens=3, mtp_acceptance=0.0))
    assert useless.decode_token_s(**small) > plain.decode_token_s(**small)
    assert spec.min_decode_step_s(2000) < plain.min_decode_step_s(2000)
    with pytest.raises(ConfigError, match="no multi-token-prediction module"):
        dataclasses.replace(SHAPES["llama70b_h200_tp8"](), mtp_draft_tokens=1, mtp_acceptance=0.5)


def test_a_per_sequence_overhead_adds_its_cost_per_sequence_and_nothing_when_zero():
    from factory_sim.perf.stacks import override_stack
    base = shape("h200_sxm", "llama3_1_8b", "fp8")
    plain = StepTimeModel(base)
    zero = StepTimeModel(dataclasses.replace(base, stack=override_stack(base.stack, {"seq_overhead_s": 0.0})))
    busy = StepTimeModel(dataclasses.replace(base, stack=override_stack(base.stack, {"seq_overhead_s": 1e-5})))
    for seqs in (1, 64, 512):
        ctx = 1000.0 * seqs
        assert zero.step_time_s(decode_seqs=seqs, decode_ctx_tokens=ctx) == plain.step_time_s(
            decode_seqs=seqs, decode_ctx_tokens=ctx)
        extra = busy.step_time_s(decode_seqs=seqs, decode_ctx_tokens=ctx) - plain.step_time_s(
            decode_seqs=seqs, decode_ctx_tokens=ctx)
        assert extra == pytest.approx(1e-5 * seqs, rel=1e-9)
    # the event loop's scalar and run paths price it alike
    assert busy.batch_s(0.0, 0.0, 0.0, 64, 64000.0) == pytest.approx(
        busy.step_time_s(decode_seqs=64.0, decode_ctx_tokens=64000.0), rel=1e-12)
    assert float(busy.decode_elapsed_s(64, [64000.0])[0]) == pytest.approx(
        busy.step_time_s(decode_seqs=64.0, decode_ctx_tokens=64000.0), rel=1e-12)


def test_a_prefill_step_overhead_is_paid_by_steps_with_prompt_tokens_only():
    from factory_sim.perf.stacks import override_stack
    base = shape("h200_sxm", "llama3_1_8b", "fp8")
    plain = StepTimeModel(dataclasses.replace(base, stack=override_stack(base.stack, {"prefill_step_overhead_s": 0.0})))
    eager = StepTimeModel(dataclasses.replace(base, stack=override_stack(base.stack, {"prefill_step_overhead_s": 0.03})))
    pairs = float(prefill_attention_pairs(base, 512, 0))
    for seqs in (0.0, 8.0):  # a prefill-only step and a mixed step
        args = (512.0, pairs, 1.0, seqs, 1000.0 * seqs)
        assert eager.step_time_s(*args) - plain.step_time_s(*args) == pytest.approx(0.03, rel=1e-9)
        assert eager.batch_s(*args) == pytest.approx(eager.step_time_s(*args), rel=1e-12)
        assert float(eager.breakdown(*args).overhead_s) - float(plain.breakdown(*args).overhead_s) == \
            pytest.approx(0.03, rel=1e-9)
    # decode-only steps, by every path, do not pay it
    assert eager.step_time_s(decode_seqs=64.0, decode_ctx_tokens=64000.0) == \
        plain.step_time_s(decode_seqs=64.0, decode_ctx_tokens=64000.0)
    assert list(eager.decode_elapsed_s(64, [64000.0, 64064.0])) == list(plain.decode_elapsed_s(64, [64000.0, 64064.0]))


def test_mxfp4_multiplies_at_the_fp8_rate_on_blackwell_and_bf16_on_hopper():
    from factory_sim.config.hardware import load_hardware
    from factory_sim.perf.shape import compute_precision
    assert compute_precision("mxfp4", load_hardware("b200_hgx")) == "fp8"
    assert compute_precision("mxfp4", load_hardware("h200_sxm")) == "bf16"
    assert compute_precision("fp4", load_hardware("b200_hgx")) == "fp4"
    # a long gpt-oss prefill is compute-bound: MXFP4 x MXFP8 experts take longer than NVFP4 ones would
    mx = StepTimeModel(shape("b200_hgx", "gpt_oss_120b", "mxfp4", attention_precision="bf16"))
    nv = StepTimeModel(shape("b200_hgx", "gpt_oss_120b", "fp4", attention_precision="bf16"))
    pairs = float(prefill_attention_pairs(mx.shape, 8192, 0))
    assert float(mx.breakdown(8192.0, pairs, 1.0).experts_s) > 1.5 * float(nv.breakdown(8192.0, pairs, 1.0).experts_s)


def test_small_expert_gemms_pay_for_the_token_side_tile_only():
    """gpt-oss decode on B200: 32 sequences give each touched expert about 2 rows. Engines put the
    tokens on the MMA's narrow side, so the expert GEMMs stay bound by reading their weights; a
    128-row tile floor would have made them compute-bound at the FP8 rate."""
    sh = shape("b200_hgx", "gpt_oss_120b", "mxfp4", attention_precision="bf16")
    m = StepTimeModel(sh)
    n = 32.0
    experts = float(m.breakdown(decode_seqs=n, decode_ctx_tokens=n * 1000).experts_s)
    touched = -np.expm1(n * m._log_miss)
    memory_bound = m._imbalance * m._expert_bytes_per_touched * touched / m._hbm_bw
    assert experts == pytest.approx(memory_bound, rel=1e-9)
    full_tile = StepTimeModel(_with_stack(sh, gemm_min_rows=128.0))
    assert float(full_tile.breakdown(decode_seqs=n, decode_ctx_tokens=n * 1000).experts_s) > 1.5 * experts


def test_activation_passes_cost_hbm_time_per_token_that_tp_does_not_split():
    """Norms, residual adds and quantization read and write each token's whole hidden vector on
    every TP rank: their time is tokens x passes x hidden x 2 bytes x layers over HBM bandwidth,
    the same at TP4 and TP8, and nothing with no passes."""
    tp4, tp8 = (_with_stack(shape("h200_sxm", "llama3_1_70b", "fp8", tp=tp), activation_passes=6.0) for tp in (4, 8))
    m = tp8.model
    tokens = 4096.0
    per_token = 6.0 * m.hidden * 2 * m.layers / (tp8.hardware.hbm_bw_bytes_per_s * tp8.stack.hbm_efficiency)
    b4, b8 = (StepTimeModel(s).breakdown(prefill_tokens=tokens, prefill_seqs=1.0) for s in (tp4, tp8))
    assert float(b8.activations_s) == pytest.approx(tokens * per_token, rel=1e-12)
    assert float(b4.activations_s) == float(b8.activations_s)
    assert float(b8.attention_linear_s) < float(b4.attention_linear_s)
    none = StepTimeModel(_with_stack(tp8, activation_passes=0.0)).breakdown(prefill_tokens=tokens, prefill_seqs=1.0)
    assert float(none.activations_s) == 0.0
    assert float(b8.total_s) - float(none.total_s) == pytest.approx(tokens * per_token, rel=1e-9)
    # attention data parallelism splits the tokens, so each rank passes only its own
    dp = _with_stack(shape("h200_sxm", "deepseek_r1", "fp8", tp=1, dp_attention=8, ep=8), activation_passes=6.0)
    one_rank = StepTimeModel(dp).breakdown(decode_seqs=64.0, decode_ctx_tokens=64e3).activations_s
    md = dp.model
    assert float(one_rank) == pytest.approx(
        8.0 * 6.0 * md.hidden * 2 * md.layers / (dp.hardware.hbm_bw_bytes_per_s * dp.stack.hbm_efficiency), rel=1e-12)


def test_the_moe_prefill_set_up_is_latency_of_the_request_not_time_of_the_step():
    """prefill_moe_layer_latency_s delays a new prompt of an MoE model by its MoE layers' set-up
    without lengthening any step (so the decodes sharing its steps are not stalled); a dense
    model pays only the front-end."""
    from factory_sim.perf.stacks import override_stack
    from factory_sim.sim.engine import simulate
    from tests.helpers import aggregated_fleet

    def with_latency(sh, v):
        return dataclasses.replace(sh, stack=override_stack(sh.stack, {"prefill_moe_layer_latency_s": v,
                                                                       "prefill_moe_latency_s_per_gparam": 0.0}))

    moe = shape("h200_sxm", "deepseek_r1", "fp8", tp=8, ep=8)
    plain, eager = with_latency(moe, 0.0), with_latency(moe, 0.002)
    pairs = float(prefill_attention_pairs(moe, 1024, 0))
    for seqs in (0.0, 16.0):
        args = (1024.0, pairs, 1.0, seqs, 1000.0 * seqs)
        assert StepTimeModel(eager).step_time_s(*args) == StepTimeModel(plain).step_time_s(*args)
    extra = 0.002 * moe.model.moe_layers  # 58 of DeepSeek-R1's 61 layers
    assert eager.request_latency_s - plain.request_latency_s == pytest.approx(extra, rel=1e-12)
    assert plain.request_latency_s == moe.stack.frontend_latency_s
    ttft = []
    for sh in (plain, eager):
        tr = simulate(aggregated_fleet(sh, max_batch=8, max_batch_tokens=4096), np.array([1024, 1024]),
                      np.array([64, 64]), arrival_s=np.array([0.0, 5.0])).trace  # the first done before the second
        ttft.append(tr.first_token_s - tr.arrival_s)
    np.testing.assert_allclose(ttft[1] - ttft[0], extra, rtol=1e-9)
    dense = shape("h200_sxm", "llama3_1_8b", "fp8")  # no MoE layer, nothing to wait for
    assert with_latency(dense, 0.002).request_latency_s == dense.stack.frontend_latency_s


def test_prefill_attention_runs_at_its_own_efficiency_and_decode_attention_at_the_other():
    base = shape("b200_hgx", "llama3_1_70b", "fp8", tp=2)
    one = StepTimeModel(_with_stack(base, attention_efficiency=0.2, prefill_attention_efficiency=None))
    two = StepTimeModel(_with_stack(base, attention_efficiency=0.2, prefill_attention_efficiency=0.6))
    pairs = float(prefill_attention_pairs(base, 8192, 0))
    prefill = [float(m.breakdown(8192.0, pairs, 1.0).attention_core_s) for m in (one, two)]
    assert prefill[1] == pytest.approx(prefill[0] * 0.2 / 0.6, rel=1e-12)  # unset: the decode figure
    decode = [float(m.breakdown(decode_seqs=256.0, decode_ctx_tokens=256 * 8000.0).attention_core_s)
              for m in (one, two)]
    assert decode[0] == decode[1]
    # the event loop's scalar path prices a mixed step the same way
    args = (2048.0, float(prefill_attention_pairs(base, 2048, 4096)), 1.0, 64.0, 64 * 8000.0)
    assert two.batch_s(*args) == pytest.approx(float(two.breakdown(*args).total_s), rel=1e-12)


def test_linear_attention_reads_and_writes_a_fixed_state_per_sequence():
    """A hybrid model's Gated DeltaNet layers cost each sequence of a decode step one read and
    one write of its state (split over TP), whatever its context; a model without them pays none."""
    sh = shape("h200_sxm", "qwen3_5_397b_a17b", "fp8", tp=8, ep=8)
    m = StepTimeModel(sh)
    n = 32.0
    state = sh.model.linear_state_bytes_per_seq
    per_step = n * 2.0 * state / 8 / (sh.hardware.hbm_bw_bytes_per_s * sh.stack.hbm_efficiency)
    short, long = (float(m.breakdown(decode_seqs=n, decode_ctx_tokens=n * ctx).linear_attention_s)
                   for ctx in (1_000.0, 100_000.0))
    assert short == long == pytest.approx(per_step, rel=1e-12)
    # the event loop's scalar path adds the same term
    assert m.batch_s(0.0, 0.0, 0.0, n, n * 1000.0) == pytest.approx(
        float(m.breakdown(decode_seqs=n, decode_ctx_tokens=n * 1000.0).total_s), rel=1e-12)
    plain = StepTimeModel(shape("h200_sxm", "qwen3_235b_a22b", "fp8", tp=8, ep=8))
    assert float(plain.breakdown(decode_seqs=n, decode_ctx_tokens=n * 1000.0).linear_attention_s) == 0.0


def test_a_hybrid_models_kv_budget_holds_its_state_per_sequence():
    sh = shape("h200_sxm", "qwen3_5_397b_a17b", "fp8", tp=8, ep=8)
    mem = plan_memory(sh)
    assert mem.state_bytes_per_seq == sh.model.linear_state_bytes_per_seq
    ctx = 2048.0
    assert mem.sequences_fitting(ctx) == int(mem.kv_capacity_bytes // (mem.kv_bytes_per_token * ctx
                                                                        + mem.state_bytes_per_seq))
    # at 2k tokens the state (192 MB) outweighs a copy of the KV (15 layers x 2 heads x 256 x 2 x
    # 1 byte x 2k = 31 MB; TP8 holds 4 copies of the 2 KV heads), and is never copied
    assert sh.kv_replication == 4.0
    assert mem.state_bytes_per_seq > 5 * float(replica_kv_bytes(sh, ctx)) / sh.kv_replication


def test_an_mla_layer_overhead_is_paid_per_mla_layer_by_every_step_and_by_nothing_else():
    from factory_sim.perf.stacks import override_stack

    def pair(hardware, model, precision, **par):
        base = shape(hardware, model, precision, **par)
        plain, slow = (dataclasses.replace(base, stack=override_stack(base.stack, {"mla_layer_overhead_s": v}))
                       for v in (0.0, 5e-5))
        return StepTimeModel(plain), StepTimeModel(slow)

    plain, slow = pair("b200_hgx", "deepseek_r1", "fp4", tp=8)
    layers = plain.shape.model.layers
    for seqs in (1, 64):
        b = dict(decode_seqs=float(seqs), decode_ctx_tokens=seqs * 2000.0)
        assert slow.step_time_s(**b) - plain.step_time_s(**b) == pytest.approx(layers * 5e-5, rel=1e-9)
    assert float(slow.decode_elapsed_s(8, [16000.0])[0]) == pytest.approx(
        slow.step_time_s(decode_seqs=8.0, decode_ctx_tokens=16000.0), rel=1e-12)
    plain, slow = pair("b200_hgx", "gpt_oss_120b", "fp4", tp=2)  # GQA attention: no MLA chain
    b = dict(decode_seqs=16.0, decode_ctx_tokens=16 * 2000.0)
    assert slow.step_time_s(**b) == plain.step_time_s(**b)


def test_the_expected_slowest_of_n_ranks_matches_the_order_statistics_of_the_normal():
    from factory_sim.perf.steptime import expected_max_standard_normal

    assert expected_max_standard_normal(1) == 0.0
    assert expected_max_standard_normal(2) == pytest.approx(1.0 / np.sqrt(np.pi), rel=1e-6)  # exact for two
    assert expected_max_standard_normal(3) == pytest.approx(1.5 / np.sqrt(np.pi), rel=1e-6)  # and for three
    draws = np.random.default_rng(0).standard_normal((20000, 32)).max(axis=1)
    assert expected_max_standard_normal(32) == pytest.approx(draws.mean(), abs=4 * draws.std() / np.sqrt(20000))


def test_attention_dp_rank_jitter_adds_the_slowest_ranks_lead_to_every_step_and_nothing_without_attention_dp():
    from factory_sim.perf.stacks import override_stack
    from factory_sim.perf.steptime import expected_max_standard_normal

    def pair(**par):
        base = shape("gb200_nvl72", "deepseek_r1", "fp4", **par)
        return tuple(StepTimeModel(dataclasses.replace(base, stack=override_stack(base.stack, {"adp_rank_jitter_s": v})))
                     for v in (0.0, 2e-3))

    for dp in (8, 32):
        plain, jittery = pair(tp=1, dp_attention=dp, ep=dp)
        for seqs in (dp, 64 * dp):
            b = dict(decode_seqs=float(seqs), decode_ctx_tokens=seqs * 1500.0)
            assert jittery.step_time_s(**b) - plain.step_time_s(**b) == pytest.approx(
                2e-3 * expected_max_standard_normal(dp), rel=1e-9)
        assert float(jittery.decode_elapsed_s(dp, [dp * 1500.0])[0]) == pytest.approx(
            jittery.step_time_s(decode_seqs=float(dp), decode_ctx_tokens=dp * 1500.0), rel=1e-12)
    plain, jittery = pair(tp=8, ep=8)  # one scheduler for all eight GPUs: no ranks to wait for
    b = dict(decode_seqs=16.0, decode_ctx_tokens=16 * 1500.0)
    assert jittery.step_time_s(**b) == plain.step_time_s(**b)


def test_mla_attention_on_attention_dp_ranks_runs_at_its_own_efficiency_and_nowhere_else():
    """mla_dp_attention_efficiency prices the decode attention math of an MLA model on attention-DP
    ranks (every head on the rank); TP-split attention, prefill attention and GQA keep attention_efficiency."""
    from factory_sim.perf.stacks import override_stack

    def pair(hardware, model, precision, **par):
        base = shape(hardware, model, precision, **par)
        eff = base.stack.attention_efficiency
        return tuple(StepTimeModel(dataclasses.replace(base, stack=override_stack(
            base.stack, {"mla_dp_attention_efficiency": v}))) for v in (None, 2 * eff))

    plain, full = pair("gb200_nvl72", "deepseek_r1", "fp4", tp=1, dp_attention=32, ep=32)
    b = dict(decode_seqs=32 * 256.0, decode_ctx_tokens=32 * 256 * 8000.0)  # long contexts: compute-bound
    core_plain = float(plain.breakdown(**b).attention_core_s)
    assert float(full.breakdown(**b).attention_core_s) == pytest.approx(core_plain / 2, rel=1e-9)
    assert float(full.breakdown(**b).experts_s) == float(plain.breakdown(**b).experts_s)
    p = dict(prefill_tokens=4096.0, prefill_attn_pairs=plain.prefill_pairs(4096, 0), prefill_seqs=1.0)
    assert full.step_time_s(**p) == plain.step_time_s(**p)  # prefill attention: its own efficiency
    for hardware, model, precision, par in (("gb200_nvl72", "deepseek_r1", "fp4", dict(tp=8, ep=8)),
                                            ("b200_hgx", "gpt_oss_120b", "fp4", dict(tp=1, dp_attention=2, ep=2))):
        plain, full = pair(hardware, model, precision, **par)
        b = dict(decode_seqs=64.0, decode_ctx_tokens=64 * 8000.0)
        assert full.step_time_s(**b) == plain.step_time_s(**b)


def test_mla_dp_seq_overhead_is_paid_per_sequence_of_one_attention_dp_rank_and_nowhere_else():
    """mla_dp_seq_overhead_s adds, per step, that cost per sequence of one attention-DP rank of an
    MLA model (the batch over dp), whatever the contexts; TP-split attention and GQA models do not pay it."""
    from factory_sim.perf.stacks import override_stack

    def pair(hardware, model, precision, **par):
        base = shape(hardware, model, precision, **par)
        return tuple(StepTimeModel(dataclasses.replace(base, stack=override_stack(
            base.stack, {"mla_dp_seq_overhead_s": v}))) for v in (0.0, 4e-5))

    for dp in (8, 32):
        plain, costly = pair("gb200_nvl72", "deepseek_r1", "fp4", tp=1, dp_attention=dp, ep=dp)
        for seqs, ctx in ((dp, 1000.0), (64 * dp, 8000.0)):
            b = dict(decode_seqs=float(seqs), decode_ctx_tokens=seqs * ctx)
            assert costly.step_time_s(**b) - plain.step_time_s(**b) == pytest.approx(4e-5 * seqs / dp, rel=1e-9)
        assert float(costly.decode_elapsed_s(dp, [dp * 1500.0])[0]) == pytest.approx(
            costly.step_time_s(decode_seqs=float(dp), decode_ctx_tokens=dp * 1500.0), rel=1e-12)
    for hardware, model, precision, par in (("gb200_nvl72", "deepseek_r1", "fp4", dict(tp=8, ep=8)),
                                            ("b200_hgx", "gpt_oss_120b", "fp4", dict(tp=1, dp_attention=2, ep=2))):
        plain, costly = pair(hardware, model, precision, **par)
        b = dict(decode_seqs=64.0, decode_ctx_tokens=64 * 8000.0)
        assert costly.step_time_s(**b) == plain.step_time_s(**b)


def test_the_per_size_moe_prefill_costs_scale_with_routed_expert_parameters_not_with_sharding():
    """prefill_moe_{latency,overhead}_s_per_gparam price a model's MoE prefill set-up per MoE layer
    and per billion routed expert parameters of the layer: DeepSeek-R1 (256 experts of 3 x 7168 x
    2048) pays 3.5x gpt-oss-120b (128 of 3 x 2880 x 2880) per layer, the same at any TP or EP; a
    dense model pays nothing, and at 0 they change nothing."""
    from factory_sim.perf.stacks import override_stack

    def priced(sh, latency, overhead):
        return dataclasses.replace(sh, stack=override_stack(sh.stack, {
            "prefill_moe_layer_latency_s": 0.0, "prefill_moe_layer_overhead_s": 0.0, "prefill_step_overhead_s": 0.0,
            "prefill_moe_latency_s_per_gparam": latency, "prefill_moe_overhead_s_per_gparam": overhead}))

    r1 = shape("h200_sxm", "deepseek_r1", "fp8", tp=8, ep=8)
    assert r1.model.routed_expert_gparams_per_layer == pytest.approx(256 * 3 * 7168 * 2048 / 1e9)
    gptoss = shape("b200_hgx", "gpt_oss_120b", "mxfp4", attention_precision="bf16")
    assert r1.model.routed_expert_gparams_per_layer / gptoss.model.routed_expert_gparams_per_layer == \
        pytest.approx(7168 * 2048 * 2 / (2880 * 2880), rel=1e-12)  # 3.54
    for sh in (r1, shape("h200_sxm", "deepseek_r1", "fp8", tp=8, ep=1), gptoss):
        plain, sized = priced(sh, 0.0, 0.0), priced(sh, 1e-4, 2e-4)
        gparams_s = sh.model.routed_expert_gparams_per_layer * sh.model.moe_layers
        assert sized.request_latency_s - plain.request_latency_s == pytest.approx(1e-4 * gparams_s, rel=1e-12)
        pairs = float(prefill_attention_pairs(sh, 1024, 0))
        args = (1024.0, pairs, 1.0, 8.0, 8000.0)
        assert StepTimeModel(sized).step_time_s(*args) - StepTimeModel(plain).step_time_s(*args) == \
            pytest.approx(2e-4 * gparams_s, rel=1e-9)
        decode = dict(decode_seqs=8.0, decode_ctx_tokens=8000.0)  # no prompt, no stall
        assert StepTimeModel(sized).step_time_s(**decode) == StepTimeModel(plain).step_time_s(**decode)
    dense = shape("h200_sxm", "llama3_1_8b", "fp8")
    assert dense.model.routed_expert_gparams_per_layer == 0.0
    assert priced(dense, 1e-4, 2e-4).request_latency_s == priced(dense, 0.0, 0.0).request_latency_s


def test_the_per_size_moe_prefill_fields_at_zero_leave_the_stack_digest_alone():
    from factory_sim.config.stack import load_stack
    from factory_sim.fidelity.stack_errors import stack_digest
    stack = load_stack("sglang_blackwell")
    zero = stack.model_copy(update={"prefill_moe_latency_s_per_gparam": 0.0, "prefill_moe_overhead_s_per_gparam": 0.0})
    assert stack_digest(zero) == stack_digest(stack)
    assert stack_digest(zero.model_copy(update={"prefill_moe_overhead_s_per_gparam": 1e-4})) != stack_digest(stack)


def test_fp4_dense_gemms_roll_off_at_their_own_rows_and_nothing_else_moves():
    """Llama 2 70B NVFP4 on B300: with the FP4 half-efficiency rows set, the FFN's FP4 GEMMs cost
    flops x (rows + m) / rows at the FP4 rate once compute-bound; the FP8 attention projections,
    the BF16 LM head and a model's grouped expert GEMMs keep gemm_half_efficiency_tokens."""
    sh = shape("b300_hgx", "llama2_70b", "fp4")
    sh = _with_stack(sh, fp4_gemm_rolloff_fp4_fp8_ratio=None)  # the rows as given, whatever the GPU
    plain = StepTimeModel(_with_stack(sh, fp4_gemm_half_efficiency_tokens=None))
    rolled = StepTimeModel(_with_stack(sh, fp4_gemm_half_efficiency_tokens=512.0))
    tokens = 512.0
    b, r = plain.breakdown(decode_seqs=tokens, decode_ctx_tokens=tokens * 300), \
        rolled.breakdown(decode_seqs=tokens, decode_ctx_tokens=tokens * 300)
    flops_per_token, _, peak, m_half = rolled._dense
    assert m_half == 512.0 and plain._dense[3] == sh.stack.gemm_half_efficiency_tokens
    assert float(r.dense_ffn_s) == pytest.approx(flops_per_token * (tokens + 512.0) / peak, rel=1e-12)
    assert float(r.dense_ffn_s) > 1.5 * float(b.dense_ffn_s)
    for part in ("attention_linear_s", "lm_head_s", "attention_core_s", "overhead_s"):
        assert float(getattr(r, part)) == float(getattr(b, part))
    # unset is the other GEMMs' roll-off, to the bit
    same = StepTimeModel(_with_stack(sh, fp4_gemm_half_efficiency_tokens=sh.stack.gemm_half_efficiency_tokens))
    for n in (1.0, 64.0, 4096.0):
        assert float(same.breakdown(decode_seqs=n, decode_ctx_tokens=n * 500).total_s) == \
            float(plain.breakdown(decode_seqs=n, decode_ctx_tokens=n * 500).total_s)
    # DeepSeek-R1 NVFP4: the routed experts' grouped GEMMs are not the dense ones
    moe = SHAPES["r1_gb200_wide_ep"]()
    moe_plain = StepTimeModel(_with_stack(moe, fp4_gemm_half_efficiency_tokens=None))
    moe_rolled = StepTimeModel(_with_stack(moe, fp4_gemm_half_efficiency_tokens=512.0))
    assert float(moe_rolled.breakdown(decode_seqs=256.0, decode_ctx_tokens=256e3).experts_s) == \
        float(moe_plain.breakdown(decode_seqs=256.0, decode_ctx_tokens=256e3).experts_s)


def test_the_fp4_roll_off_costs_the_same_time_per_weight_on_a_faster_fp4_gpu():
    """With the FP4/FP8 peak ratio of the GPUs the roll-off was fitted on set (2, B200), a GPU
    whose FP4 runs 3x its FP8 (B300) gets its rows scaled by 1.5: the roll-off term (flops x m /
    peak) is the same time on B300 as on B200, while large GEMMs still run at B300's own peak."""
    ref = 2.0
    b200 = shape("b200_hgx", "llama2_70b", "fp4")
    b300 = shape("b300_hgx", "llama2_70b", "fp4")
    m = 322.0
    on = {"fp4_gemm_half_efficiency_tokens": m, "fp4_gemm_rolloff_fp4_fp8_ratio": ref}
    b200_on = StepTimeModel(_with_stack(b200, **on))
    b300_on = StepTimeModel(_with_stack(b300, **on))
    off = {"fp4_gemm_half_efficiency_tokens": m, "fp4_gemm_rolloff_fp4_fp8_ratio": None}
    b300_off = StepTimeModel(_with_stack(b300, **off))
    b200_off = StepTimeModel(_with_stack(b200, **off))
    b300_hw = load_hardware("b300_hgx")
    ratio = b300_hw.dense_tflops["fp4"] / b300_hw.dense_tflops["fp8"] / ref
    assert ratio == pytest.approx(1.5)
    assert b300_on._dense[3] == pytest.approx(m * ratio, rel=1e-12) and b300_off._dense[3] == m
    assert b200_on._dense[3] == m  # the GPUs it was fitted on, B200 and GB200: unchanged, to the bit
    gb200 = shape("gb200_nvl72", "llama2_70b", "fp4")
    assert StepTimeModel(_with_stack(gb200, **on))._dense[3] == m
    flops_b300, _, peak_b300, _ = b300_on._dense
    flops_b200, _, peak_b200, _ = b200_on._dense
    # the roll-off's time (the m term) is the same on both GPUs ...
    assert flops_b300 * b300_on._dense[3] / peak_b300 == pytest.approx(flops_b200 * m / peak_b200, rel=1e-12)
    # ... so B300 is slower than without the reference at mid-size batches, B200 not at all
    for n in (64.0, 512.0, 4096.0):
        assert float(b300_on.breakdown(decode_seqs=n, decode_ctx_tokens=n * 300).dense_ffn_s) > \
            float(b300_off.breakdown(decode_seqs=n, decode_ctx_tokens=n * 300).dense_ffn_s)
        assert float(b200_on.breakdown(decode_seqs=n, decode_ctx_tokens=n * 300).total_s) == \
            pytest.approx(float(b200_off.breakdown(decode_seqs=n, decode_ctx_tokens=n * 300).total_s), rel=1e-12)
    # without an FP4 roll-off the reference changes nothing
    plain = StepTimeModel(_with_stack(b300, fp4_gemm_half_efficiency_tokens=None, fp4_gemm_rolloff_fp4_fp8_ratio=ref))
    assert plain._dense[3] == b300.stack.gemm_half_efficiency_tokens


def test_the_fp4_roll_off_unset_leaves_the_stack_digest_alone():
    from factory_sim.config.stack import load_stack
    from factory_sim.fidelity.stack_errors import stack_digest
    stack = load_stack("sglang_blackwell")
    assert stack.fp4_gemm_half_efficiency_tokens is None
    assert stack_digest(stack.model_copy(update={"fp4_gemm_half_efficiency_tokens": 256.0})) != stack_digest(stack)
    assert stack.fp4_gemm_rolloff_fp4_fp8_ratio is None
    assert stack_digest(stack.model_copy(update={"fp4_gemm_rolloff_fp4_fp8_ratio": 2.0})) != stack_digest(stack)


@pytest.mark.parametrize("name", SHAPES)
@given(n=st.integers(1, 512), ctx=st.lists(st.one_of(st.integers(0, 2_000_000), st.floats(0.0, 2e6)), min_size=1,
                                           max_size=20))
def test_the_decode_loop_prices_the_larger_attention_term_as_numpy_does(name, n, ctx):
    """Where one attention term (the KV read or the math) is the larger at every context, the
    decode loop prices only it (`_decode_bound`): the same floats as NumPy's maximum of both."""
    m = StepTimeModel(SHAPES[name]())
    assert m._decode_bound is not None or name not in ("llama8b_h100", "r1_h200_ep8")  # both kinds are exercised
    loop = m.decode_elapsed_s(n, ctx)
    assert isinstance(loop, list)
    assert loop == np.cumsum(m.decode_steps_s(n, ctx)).tolist()
