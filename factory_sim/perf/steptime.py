"""Step-time model: how long one forward pass of a replica takes for a given batch.

Roofline per component and per step: each part of the model (attention projections, dense
FFN, routed experts, LM head, attention math) takes the longer of its compute time and its
memory time, and the parts run one after another; communication (TP all-reduce, EP
all-to-all, PP hand-offs) and a fixed per-step and per-layer overhead are added. Every
efficiency factor comes from the software-stack profile.

It is a pure function of array inputs: one call prices one batch or a whole grid of
batches (macro-stepped decode prices hundreds of future steps in one call). It knows
nothing about queues.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from factory_sim.perf.replica import BYTES_PER_ELEMENT, ReplicaShape, compute_precision

ACTIVATION_BYTES = BYTES_PER_ELEMENT["bf16"]  # activations exchanged in collectives
DISPATCH_BYTES = BYTES_PER_ELEMENT["fp8"]  # MoE dispatch sends FP8 activations (DeepEP-style)


@dataclass(frozen=True)
class StepBreakdown:
    """Seconds per component for each priced batch (arrays of the broadcast shape)."""

    attention_linear_s: np.ndarray
    dense_ffn_s: np.ndarray
    experts_s: np.ndarray
    lm_head_s: np.ndarray
    attention_core_s: np.ndarray
    communication_s: np.ndarray
    overhead_s: np.ndarray
    total_s: np.ndarray = field(repr=False)


def effective_context(shape: ReplicaShape, context_tokens) -> np.ndarray:
    """Context per sequence averaged over layers: sliding-window layers see at most the window."""
    ctx = np.asarray(context_tokens, dtype=float)
    m = shape.model
    window_layers = m.attention_layers_window()
    if not window_layers:
        return ctx
    f_window = window_layers / m.layers
    return (1.0 - f_window) * ctx + f_window * np.minimum(ctx, m.sliding_window)


def prefill_attention_pairs(shape: ReplicaShape, chunk_tokens, prior_tokens) -> np.ndarray:
    """Causal (query, key) pairs of a prefill chunk, averaged over layers.

    A chunk of c tokens after p already-prefilled tokens attends to p+1 .. p+c keys; window
    layers cap each query's keys at the window.
    """
    c = np.asarray(chunk_tokens, dtype=float)
    p = np.asarray(prior_tokens, dtype=float)
    full = c * p + c * (c + 1.0) / 2.0
    m = shape.model
    window_layers = m.attention_layers_window()
    if not window_layers:
        return full
    w = float(m.sliding_window)
    # sum over q = p+1 .. p+c of min(q, w)
    below_end = np.clip(np.minimum(p + c, w), p, None)  # last q counted in full below the window
    n_below = below_end - p
    below = n_below * (p + 1.0 + below_end) / 2.0
    windowed = below + (c - n_below) * w
    f_window = window_layers / m.layers
    return (1.0 - f_window) * full + f_window * windowed


class StepTimeModel:
    """Prices batches for one replica shape. Construct once per shape; calls are cheap."""

    def __init__(self, shape: ReplicaShape):
        self.shape = shape
        m, hw, st = shape.model, shape.hardware, shape.stack
        self._hbm_bw = hw.hbm_bw_bytes_per_s * st.hbm_efficiency
        self._m_half = st.gemm_half_efficiency_tokens
        self._min_rows = st.gemm_min_rows

        def peak(precision: str) -> float:
            cp = compute_precision(precision)
            return hw.dense_flops_per_s(cp) * st.gemm_peak_fraction(cp)

        self._ffn_flops = peak(shape.precision)
        self._attn_lin_flops = peak(shape.attention_precision)
        self._bf16_flops = peak("bf16")
        self._attn_core_flops = hw.dense_flops_per_s("bf16") * st.attention_efficiency

        sg = shape.stage_gpus
        self._attn_params_per_gpu = m.attention_params_per_layer * m.layers / shape.tp
        self._attn_weight_bytes = self._attn_params_per_gpu * shape.attention_bytes_per_element
        self._dense_params_per_gpu = (
            m.dense_ffn_params_per_layer * m.dense_layers + m.shared_expert_params_per_layer * m.moe_layers
        ) / sg
        self._dense_weight_bytes = self._dense_params_per_gpu * shape.weight_bytes_per_element
        self._head_params_per_gpu = m.lm_head_params / shape.tp
        self._head_weight_bytes = self._head_params_per_gpu * BYTES_PER_ELEMENT["bf16"]
        self._kv_bytes_per_token = float(m.kv_bytes_per_token(shape.kv_bytes_per_element)) * shape.kv_replication
        self._imbalance = st.ep_load_imbalance if shape.ep > 1 else 1.0
        self._overhead = st.step_overhead_s + st.layer_overhead_s * m.layers

    # -- helpers -----------------------------------------------------------------------
    def _gemm_time(self, flops, weight_bytes, rows, peak_flops):
        """Roofline of GEMMs whose M dimension is `rows` tokens; zero when rows == 0.

        Tensor cores work in tiles of `gemm_min_rows` rows, so fewer rows cost as much
        compute as a full tile; above that, efficiency rolls off as rows/(rows + m_half).
        """
        rows = np.asarray(rows, dtype=float)
        padded = np.maximum(rows, self._min_rows)
        eff = padded / (padded + self._m_half)
        with np.errstate(divide="ignore", invalid="ignore"):
            compute = np.where(rows > 0, flops * (padded / rows) / (peak_flops * eff), 0.0)
        return np.where(rows > 0, np.maximum(compute, weight_bytes / self._hbm_bw), 0.0)

    def _link_bw(self, group_gpus: int) -> float:
        """Per-GPU bandwidth of a collective over `group_gpus`: NVLink inside a domain, NIC beyond."""
        hw, st = self.shape.hardware, self.shape.stack
        if group_gpus <= hw.gpus_per_scaleup_domain:
            return hw.nvlink_bw_bytes_per_s * st.nvlink_efficiency
        return hw.scaleout_bw_bytes_per_s * st.scaleout_efficiency

    def _allreduce_s(self, data_bytes, group_gpus: int):
        if group_gpus <= 1:
            return np.zeros_like(data_bytes)
        lat = self.shape.stack.collective_latency_s
        return 2.0 * (group_gpus - 1) / group_gpus * data_bytes / self._link_bw(group_gpus) + lat

    def _all_to_all_s(self, bytes_per_gpu):
        """EP dispatch + combine: intra-domain share over NVLink, the rest over the NIC, in parallel."""
        shape, hw, st = self.shape, self.shape.hardware, self.shape.stack
        ep = shape.ep
        if ep <= 1:
            return np.zeros_like(bytes_per_gpu)
        in_domain = min(ep, hw.gpus_per_scaleup_domain)
        intra = bytes_per_gpu * (in_domain - 1) / ep / (hw.nvlink_bw_bytes_per_s * st.nvlink_efficiency)
        inter = bytes_per_gpu * (ep - in_domain) / ep / (hw.scaleout_bw_bytes_per_s * st.scaleout_efficiency)
        return np.maximum(intra, inter) + 2.0 * st.collective_latency_s

    # -- the model ---------------------------------------------------------------------
    def breakdown(
        self,
        prefill_tokens=0.0,
        prefill_attn_pairs=0.0,
        prefill_seqs=0.0,
        decode_seqs=0.0,
        decode_ctx_tokens=0.0,
    ) -> StepBreakdown:
        """Price batches. All arguments broadcast against each other.

        prefill_tokens: new prompt tokens in the step (all chunks); prefill_attn_pairs: their
        layer-averaged causal (query, key) pairs (prefill_attention_pairs); prefill_seqs:
        sequences with a chunk; decode_seqs: sequences generating one token; decode_ctx_tokens:
        the sum of their layer-averaged contexts (effective_context).
        """
        shape, m = self.shape, self.shape.model
        sg, dp = shape.stage_gpus, shape.dp_attention
        p_tok = np.asarray(prefill_tokens, dtype=float)
        d_seq = np.asarray(decode_seqs, dtype=float)
        tokens = p_tok + d_seq
        logits = np.asarray(prefill_seqs, dtype=float) + d_seq

        attn_linear = self._gemm_time(
            2.0 * tokens * self._attn_params_per_gpu / dp, self._attn_weight_bytes, tokens / dp, self._attn_lin_flops
        )
        dense_ffn = self._gemm_time(
            2.0 * tokens * self._dense_params_per_gpu, self._dense_weight_bytes, tokens, self._ffn_flops
        )
        if m.is_moe:
            k, e = m.top_k, m.n_routed_experts
            touched = shape.experts_per_gpu * -np.expm1(tokens * np.log1p(-k / e))
            expert_bytes = touched * m.expert_params / shape.moe_tp * m.moe_layers * shape.weight_bytes_per_element
            expert_flops = 2.0 * tokens * k * m.expert_params * m.moe_layers / sg
            # rows of each touched expert's GEMM: the replica's k*tokens spread over touched experts
            touched_replica = e * -np.expm1(tokens * np.log1p(-k / e))
            with np.errstate(divide="ignore", invalid="ignore"):
                rows = np.where(tokens > 0, tokens * k / touched_replica, 0.0)
            experts = self._imbalance * self._gemm_time(expert_flops, expert_bytes, rows, self._ffn_flops)
        else:
            experts = np.zeros_like(tokens)
        lm_head = self._gemm_time(
            2.0 * logits * self._head_params_per_gpu / dp, self._head_weight_bytes, logits / dp, self._bf16_flops
        )
        attn_flops = (
            np.asarray(prefill_attn_pairs, dtype=float) * m.attn_flops_per_token_per_ctx_prefill
            + np.asarray(decode_ctx_tokens, dtype=float) * m.attn_flops_per_token_per_ctx_decode
        ) / sg
        kv_read = np.asarray(decode_ctx_tokens, dtype=float) * self._kv_bytes_per_token / sg
        attention_core = np.maximum(attn_flops / self._attn_core_flops, kv_read / self._hbm_bw)

        comm = self._communication_s(tokens)
        busy = tokens > 0
        overhead = np.where(busy, self._overhead, 0.0)
        comm = np.where(busy, comm * (1.0 - shape.stack.comm_overlap_fraction), 0.0)
        total = attn_linear + dense_ffn + experts + lm_head + attention_core + comm + overhead
        return StepBreakdown(attn_linear, dense_ffn, experts, lm_head, attention_core, comm, overhead, total)

    def _communication_s(self, tokens):
        shape, m = self.shape, self.shape.model
        sg, dp, hidden = shape.stage_gpus, shape.dp_attention, m.hidden
        act = tokens * hidden * ACTIVATION_BYTES
        # Attention output all-reduce over each DP group's TP ranks, every layer.
        comm = m.layers * self._allreduce_s(act / dp, shape.tp)
        # Dense FFN layers (and dense models' every FFN): reduce over the whole stage.
        dense_ffn_layers = m.dense_layers if m.is_moe else m.layers
        comm = comm + dense_ffn_layers * self._allreduce_s(act, sg)
        if m.is_moe:
            if shape.ep > 1:
                per_gpu = tokens / sg * m.top_k * hidden * (DISPATCH_BYTES + ACTIVATION_BYTES)
                comm = comm + m.moe_layers * self._all_to_all_s(per_gpu)
            elif sg > 1:  # experts tensor-parallel over the stage
                comm = comm + m.moe_layers * self._allreduce_s(act, sg)
        if shape.pp > 1:
            bw = self._link_bw(shape.gpus)
            comm = comm + (shape.pp - 1) * (act / bw + shape.stack.collective_latency_s)
        return comm

    def step_time_s(self, **batch) -> np.ndarray:
        return self.breakdown(**batch).total_s

    # -- decode fast path ----------------------------------------------------------------
    def decode_steps_s(self, n_seqs: int, ctx_sum_now: float, steps: int, ctx_after=None) -> np.ndarray:
        """Durations of the next `steps` pure-decode steps of an unchanged batch.

        The context sum grows by n_seqs per step for full attention; for sliding-window
        models the caller passes `ctx_after`, the exact effective context sums per step.
        """
        if ctx_after is None:
            ctx_after = ctx_sum_now + n_seqs * np.arange(steps, dtype=float)
        return self.breakdown(decode_seqs=float(n_seqs), decode_ctx_tokens=ctx_after).total_s

    def min_decode_step_s(self, context_tokens: float) -> float:
        """The fastest a single sequence can generate at this context (the lowest reachable TPOT)."""
        ctx = effective_context(self.shape, context_tokens)
        return float(self.breakdown(decode_seqs=1.0, decode_ctx_tokens=ctx).total_s)
