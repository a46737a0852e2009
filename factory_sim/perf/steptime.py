"""Step-time model: how long one forward pass of a replica takes for a given batch.

Roofline per component and per step: each part of the model (attention projections, dense
FFN, routed experts, LM head, attention math) takes the longer of its compute time and its
memory time, and the parts run one after another, with the memory-bound activation passes
between them (norms, residuals, quantization); communication (TP all-reduce, EP
all-to-all, PP hand-offs) and a fixed per-step and per-layer overhead are added. Every
efficiency factor comes from the software-stack profile.

It is a pure function of array inputs: one call prices one batch or a whole grid of
batches (macro-stepped decode prices hundreds of future steps in one call). It knows
nothing about queues.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from factory_sim.perf.shape import BYTES_PER_ELEMENT, ReplicaShape, compute_precision

ACTIVATION_BYTES = BYTES_PER_ELEMENT["bf16"]  # activations exchanged in collectives
DISPATCH_BYTES = BYTES_PER_ELEMENT["fp8"]  # MoE dispatch sends FP8 activations (DeepEP-style)


@dataclass(frozen=True)
class StepBreakdown:
    """Seconds per component for each priced batch (arrays of the broadcast shape)."""

    attention_linear_s: np.ndarray
    dense_ffn_s: np.ndarray
    experts_s: np.ndarray
    lm_head_s: np.ndarray
    activations_s: np.ndarray
    linear_attention_s: np.ndarray
    attention_core_s: np.ndarray
    communication_s: np.ndarray
    overhead_s: np.ndarray
    total_s: np.ndarray = field(repr=False)


def _context_weights(shape: ReplicaShape, prefill: bool) -> tuple[float, float, float]:
    """(a, b, w): a query's attention costs a x its context + b x min(context, w) keys at the
    model's per-key price, averaged over layers.

    Sliding-window layers (a share f) see at most the window: a = 1 - f, b = f. Sparse
    attention reads at most its top-k keys, and its indexer scores every key at a fraction
    of a key's attention price (FLOPs: the indexer's heads x dim against the attention's,
    absorbed MLA in decode, per-head in prefill): a = that fraction, b = 1.
    Otherwise a = 1, b = 0.
    """
    m = shape.model
    if m.sparse_attention_topk is not None:
        per_key = m.attn_flops_per_token_per_ctx_prefill if prefill else m.attn_flops_per_token_per_ctx_decode
        return m.indexer_flops_per_key / per_key, 1.0, float(m.sparse_attention_topk)
    window_layers = m.attention_layers_window()
    if not window_layers:
        return 1.0, 0.0, 0.0
    f_window = window_layers / m.layers
    return 1.0 - f_window, f_window, float(m.sliding_window)


def attention_is_capped(shape: ReplicaShape) -> bool:
    """Whether a sequence's attention cost stops growing linearly with its context (sliding
    window or sparse attention): the event loop then prices each sequence's context apart."""
    return bool(_context_weights(shape, prefill=False)[1])


def exact_context_weights(shape: ReplicaShape) -> tuple[int, int, int, int] | None:
    """(A, B, scale, w) with effective_context(ctx) = (A x ctx + B x min(ctx, w)) / scale for
    whole-token contexts, when the layer weights a and b are fractions over a power of two and
    the cap w is whole (gpt-oss: a = b = 1/2, w = 128); None otherwise (sparse attention's
    indexer share is not). Then every float effective_context and its batch sums compute is
    exact below 2**53 / scale, so integer sums give the same floats in any order."""
    a, b, w = _context_weights(shape, prefill=False)
    if not b or not float(w).is_integer():
        return None
    for k in range(31):  # a x 2**k is exact in floats: the test is exact
        scale = 1 << k
        if (a * scale).is_integer() and (b * scale).is_integer():
            return int(a * scale), int(b * scale), scale, int(w)
    return None


def effective_context(shape: ReplicaShape, context_tokens) -> np.ndarray:
    """Context per sequence averaged over layers, in keys at the per-key price of attention:
    sliding-window layers see at most the window; sparse attention reads at most its top-k
    keys plus its indexer's pass over all of them."""
    ctx = np.asarray(context_tokens, dtype=float)
    a, b, w = _context_weights(shape, prefill=False)
    if not b:
        return ctx
    return a * ctx + b * np.minimum(ctx, w)


def prefill_attention_pairs(shape: ReplicaShape, chunk_tokens, prior_tokens) -> np.ndarray:
    """Causal (query, key) pairs of a prefill chunk, averaged over layers.

    A chunk of c tokens after p already-prefilled tokens attends to p+1 .. p+c keys; window
    layers cap each query's keys at the window.
    """
    c = np.asarray(chunk_tokens, dtype=float)
    p = np.asarray(prior_tokens, dtype=float)
    return _causal_pairs(_ArrayOps, c, p, *_context_weights(shape, prefill=True))


def _causal_pairs(ops, c, p, a: float, b: float, w: float):
    full = c * p + c * (c + 1.0) / 2.0
    if not b:
        return full
    # sum over q = p+1 .. p+c of min(q, w)
    below_end = ops.maximum(ops.minimum(p + c, w), p)  # last q counted in full below the window
    n_below = below_end - p
    below = n_below * (p + 1.0 + below_end) / 2.0
    windowed = below + (c - n_below) * w
    return a * full + b * windowed


class _ArrayOps:
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    expm1 = staticmethod(np.expm1)


class _ScalarOps:
    """The same formulas on Python floats: one step priced without NumPy's per-call overhead."""

    maximum = staticmethod(max)
    minimum = staticmethod(min)
    expm1 = staticmethod(math.expm1)


# Pure-decode plans up to this many steps are priced in a Python loop; longer ones in NumPy,
# whose per-call overhead only pays off over many elements. Both give the same floats.
_NUMPY_MIN_STEPS = 24


_TINY = 1e-30  # guards divisions whose result is multiplied by zero when rows == 0


@functools.lru_cache(maxsize=64)
def expected_max_standard_normal(n: int) -> float:
    """E[max of n independent standard normal draws]: 0 for one, 0.564 for two, 2.070 for 32.

    How far the slowest of n ranks whose step times spread alike lies above their mean, in
    units of that spread (integrated on a fine grid: the integrand is negligible beyond 12).
    """
    if n <= 1:
        return 0.0
    from scipy import integrate, special  # imported here: scipy costs every process 0.3-0.5 s of start-up

    x = np.linspace(-12.0, 12.0, 48001)
    density = n * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi) * special.ndtr(x) ** (n - 1)
    return float(integrate.trapezoid(x * density, x))


class StepTimeModel:
    """Prices batches for one replica shape. Construct once per shape; calls are cheap.

    Every term is written once (`_price`) and evaluated either on arrays (many batches) or
    on Python floats (one batch, the event loop's common case).
    """

    # decode_elapsed_s priced in pieces (after_s) gives the floats priced at once: its loop
    # and NumPy paths compute the same floats, and both add in order
    decode_chunks_exact = True

    # Every attribute, declared: past 30 attributes CPython 3.11 keeps an instance's in a dict,
    # slower to read and write than declared slots, and the event loop reads these per step.
    __slots__ = (
        "shape", "_hbm_bw", "_m_half", "_min_rows", "_attn", "_dense", "_head", "_dp", "_moe", "_ffn_peak",
        "_attn_flops_prefill", "_attn_flops_decode", "_attn_core_flops", "_prefill_core_flops", "_kv_read_per_ctx",
        "_comm_per_token", "_comm_fixed", "_comm_share", "_overhead", "_seq_overhead", "_prefill_overhead",
        "_activation_bytes", "_window", "_state_bytes", "_state_flops", "_terms", "_scalar_terms", "_decode_terms",
        "_mtp_drafts", "windowed", "_decode_bound", "_log_miss", "_experts_total", "_expert_rows_per_token",
        "_expert_flops_per_token", "_expert_bytes_per_touched", "_imbalance",
    )

    def __init__(self, shape: ReplicaShape):
        self.shape = shape
        m, hw, st = shape.model, shape.hardware, shape.stack
        sg, dp = shape.stage_gpus, shape.dp_attention
        self._hbm_bw = hw.hbm_bw_bytes_per_s * st.hbm_efficiency
        self._m_half = st.gemm_half_efficiency_tokens
        self._min_rows = st.gemm_min_rows

        def peak(precision: str) -> float:
            cp = compute_precision(precision, hw)
            return hw.dense_flops_per_s(cp) * st.gemm_peak_fraction(cp)

        def half_rows(precision: str) -> float:
            """Rows at which a dense (one-launch) GEMM at this precision reaches half its peak."""
            if compute_precision(precision, hw) == "fp4" and st.fp4_gemm_half_efficiency_tokens is not None:
                if st.fp4_gemm_rolloff_fp4_fp8_ratio:  # the roll-off's time per weight of the GPUs it was fitted on
                    fp4_over_fp8 = hw.dense_flops_per_s("fp4") / hw.dense_flops_per_s("fp8")
                    return st.fp4_gemm_half_efficiency_tokens * fp4_over_fp8 / st.fp4_gemm_rolloff_fp4_fp8_ratio
                return st.fp4_gemm_half_efficiency_tokens
            return self._m_half

        # Per GPU of a stage, summed over all layers (a step's latency crosses every stage).
        attn_params = m.attention_params / shape.tp
        dense_params = (m.dense_ffn_params_per_layer * m.dense_layers
                        + m.shared_expert_params_per_layer * m.moe_layers) / sg
        head_params = m.lm_head_params / shape.tp
        # (FLOPs per token, weight bytes, peak FLOP/s, rows at half efficiency) of each dense GEMM group
        self._attn = (2.0 * attn_params / dp, attn_params * shape.attention_bytes_per_element,
                      peak(shape.attention_precision), half_rows(shape.attention_precision))
        self._dense = (2.0 * dense_params, dense_params * shape.weight_bytes_per_element, peak(shape.precision),
                       half_rows(shape.precision))
        self._head = (2.0 * head_params / dp, head_params * BYTES_PER_ELEMENT["bf16"], peak("bf16"), self._m_half)
        self._dp = float(dp)
        if m.is_moe:
            k, e = m.top_k, m.n_routed_experts
            self._log_miss = math.log1p(-k / e)  # log P(an expert is not among one token's top-k)
            self._experts_total = float(e)
            self._expert_rows_per_token = float(k)
            self._expert_flops_per_token = 2.0 * k * m.expert_params * m.moe_layers / sg
            self._expert_bytes_per_touched = (shape.experts_per_gpu * m.expert_params / shape.moe_tp
                                              * m.moe_layers * shape.weight_bytes_per_element)
            self._imbalance = st.ep_load_imbalance if shape.ep > 1 else 1.0
        self._moe = m.is_moe
        self._ffn_peak = peak(shape.precision)
        self._attn_flops_prefill = m.attn_flops_per_token_per_ctx_prefill / sg
        self._attn_flops_decode = m.attn_flops_per_token_per_ctx_decode / sg
        decode_attention = st.attention_efficiency
        if m.attention == "mla" and dp > 1 and st.mla_dp_attention_efficiency is not None:
            decode_attention = st.mla_dp_attention_efficiency  # every head on the rank: a full tile
        self._attn_core_flops = hw.dense_flops_per_s("bf16") * decode_attention
        self._prefill_core_flops = hw.dense_flops_per_s("bf16") * st.prefill_attention_fraction
        kv_bytes_per_token = float(m.kv_bytes_per_token(shape.kv_bytes_per_element)) * shape.kv_replication
        self._kv_read_per_ctx = kv_bytes_per_token / sg
        # A decode step's attention is the larger of reading the KV and computing on it, each
        # context x coefficient / rate. When one is the larger at every context (compared exactly,
        # with room for the two roundings on each side), the decode loop prices only that one:
        # the same floats. (coefficient, rate) of that term, or None.
        read, math_ = Fraction(self._kv_read_per_ctx) / Fraction(self._hbm_bw), Fraction(
            self._attn_flops_decode) / Fraction(self._attn_core_flops)
        margin = 1 + Fraction(1, 2**40)
        self._decode_bound = ((self._kv_read_per_ctx, self._hbm_bw) if read > math_ * margin else
                              (self._attn_flops_decode, self._attn_core_flops) if math_ > read * margin else None)
        self._comm_per_token, self._comm_fixed = self._communication_coefficients()
        self._comm_share = 1.0 - st.comm_overlap_fraction
        mla_layers = m.softmax_attention_layers if m.attention == "mla" else 0
        self._overhead = (st.step_overhead_s + st.layer_overhead_s * m.layers + st.mla_layer_overhead_s * mla_layers
                          + st.adp_rank_jitter_s * expected_max_standard_normal(dp))
        self._seq_overhead = st.seq_overhead_s
        if m.attention == "mla" and dp > 1 and st.mla_dp_seq_overhead_s:  # per sequence of one rank
            self._seq_overhead += st.mla_dp_seq_overhead_s / dp
        moe_layer_s = (st.prefill_moe_layer_overhead_s
                       + st.prefill_moe_overhead_s_per_gparam * m.routed_expert_gparams_per_layer)
        self._prefill_overhead = st.prefill_step_overhead_s + moe_layer_s * m.moe_layers
        # bytes per token per GPU of the activation passes, all layers (every TP rank holds the
        # whole hidden vector of each token of its attention-DP group)
        self._activation_bytes = st.activation_passes * m.hidden * ACTIVATION_BYTES * m.layers
        self._window = _context_weights(shape, prefill=True)  # prefill's (a, b, w)
        # Linear-attention layers (a hybrid model's Gated DeltaNet): each sequence in a step reads
        # and writes its state once and every token updates it, per GPU of its DP group (the
        # heads are split over the TP ranks)
        self._state_bytes = 2.0 * m.linear_state_bytes_per_seq / shape.tp
        self._state_flops = m.linear_attention_flops_per_token / shape.tp
        # (ops, tokens, logits) -> _batch_terms: the event loop prices the same batch sizes again and again
        self._terms: dict[tuple, tuple[float, float, float]] = {}
        # the same terms keyed without `ops`: batch_s's (tokens, logits) and decode_elapsed_s's sequences
        self._scalar_terms: dict[tuple[float, float], tuple[float, float, float]] = {}
        self._decode_terms: dict[int, tuple[float, float, float]] = {}
        self._mtp_drafts = shape.mtp_draft_tokens
        self.windowed = bool(self._window[1])  # a window or sparse attention changes the prefill pair count

    # -- helpers -----------------------------------------------------------------------
    def _gemm_time(self, ops, flops, weight_bytes, rows, peak_flops, m_half):
        """Roofline of GEMMs whose M dimension is `rows` tokens; zero when rows == 0.

        Tensor cores work in tiles of `gemm_min_rows` rows, so fewer rows cost as much
        compute as a full tile; above that, efficiency rolls off as rows/(rows + m_half).
        """
        padded = ops.maximum(rows, self._min_rows)
        compute = flops * (padded + m_half) / ops.maximum(rows, _TINY) / peak_flops
        return (rows > 0) * ops.maximum(compute, weight_bytes / self._hbm_bw)

    def _link_bw(self, group_gpus: int) -> float:
        """Per-GPU bandwidth of a collective over `group_gpus`: NVLink inside a domain, NIC beyond."""
        hw, st = self.shape.hardware, self.shape.stack
        if group_gpus <= hw.gpus_per_scaleup_domain:
            return hw.nvlink_bw_bytes_per_s * st.nvlink_efficiency
        return hw.scaleout_bw_bytes_per_s * st.scaleout_efficiency

    def _communication_coefficients(self) -> tuple[float, float]:
        """Communication per step = per_token * tokens + fixed (every collective is linear in its data)."""
        shape, m, hw, st = self.shape, self.shape.model, self.shape.hardware, self.shape.stack
        sg, dp, lat = shape.stage_gpus, shape.dp_attention, st.collective_latency_s
        act = m.hidden * ACTIVATION_BYTES  # bytes of one token's activations
        per_token = fixed = 0.0

        def allreduce(layers: int, bytes_per_token: float, group: int):
            nonlocal per_token, fixed
            if group > 1 and layers:
                per_token += layers * 2.0 * (group - 1) / group * bytes_per_token / self._link_bw(group)
                fixed += layers * lat

        # Attention output all-reduce over each DP group's TP ranks, every layer.
        allreduce(m.layers, act / dp, shape.tp)
        # Dense FFN layers (every FFN of a dense model): reduce over the whole stage.
        allreduce(m.dense_layers if m.is_moe else m.layers, act, sg)
        if m.is_moe and shape.ep > 1:
            # EP dispatch (FP8) + combine (BF16): the in-domain share over NVLink, the rest over
            # the NIC, in parallel.
            ep = shape.ep
            sent = m.top_k * m.hidden * (DISPATCH_BYTES + ACTIVATION_BYTES) / sg
            in_domain = min(ep, hw.gpus_per_scaleup_domain)
            intra = sent * (in_domain - 1) / ep / (hw.nvlink_bw_bytes_per_s * st.nvlink_efficiency)
            inter = sent * (ep - in_domain) / ep / (hw.scaleout_bw_bytes_per_s * st.scaleout_efficiency)
            per_token += m.moe_layers * max(intra, inter)
            fixed += m.moe_layers * 2.0 * (lat + (ep - 1) * st.ep_peer_latency_s)
        elif m.is_moe:
            allreduce(m.moe_layers, act, sg)  # experts tensor-parallel over the stage
        if shape.pp > 1:
            per_token += (shape.pp - 1) * act / self._link_bw(shape.gpus)
            fixed += (shape.pp - 1) * lat
        return per_token, fixed

    def _price(self, ops, p_tok, pairs, p_seqs, d_seqs, d_ctx):
        tokens = p_tok + d_seqs
        logits = p_seqs + d_seqs
        flops, weights, peak, m_half = self._attn
        attn_linear = self._gemm_time(ops, flops * tokens, weights, tokens / self._dp, peak, m_half)
        flops, weights, peak, m_half = self._dense
        dense_ffn = self._gemm_time(ops, flops * tokens, weights, tokens, peak, m_half)
        if self._moe:
            touched = -ops.expm1(tokens * self._log_miss)  # share of experts any token chose
            rows = tokens * self._expert_rows_per_token / ops.maximum(self._experts_total * touched, _TINY)
            experts = self._imbalance * self._gemm_time(
                ops, self._expert_flops_per_token * tokens, self._expert_bytes_per_touched * touched, rows,
                self._ffn_peak, self._m_half)
        else:
            experts = 0.0 * tokens
        flops, weights, peak, m_half = self._head
        lm_head = self._gemm_time(ops, flops * logits, weights, logits / self._dp, peak, m_half)
        activations = tokens / self._dp * self._activation_bytes / self._hbm_bw
        if self._state_bytes:
            linear_attention = ops.maximum(logits / self._dp * self._state_bytes / self._hbm_bw,
                                           tokens / self._dp * self._state_flops / self._attn_core_flops)
        else:
            linear_attention = 0.0 * tokens
        attention_core = self._attention_core(ops, pairs, d_ctx)
        busy = tokens > 0
        comm = busy * (self._comm_per_token * tokens + self._comm_fixed) * self._comm_share
        overhead = busy * self._overhead
        if self._seq_overhead:  # per sequence (logit row) of the step
            overhead = overhead + self._seq_overhead * logits
        return attn_linear, dense_ffn, experts, lm_head, activations, linear_attention, attention_core, comm, overhead

    def _attention_core(self, ops, pairs, d_ctx, queries_per_seq: float = 1.0):
        """Attention math: the only term that depends on context, not just on the batch's size.

        With multi-token prediction a decode sequence has several query tokens over the same
        KV cache: the math grows with them, the KV read does not.
        """
        compute = (pairs * self._attn_flops_prefill / self._prefill_core_flops
                   + d_ctx * self._attn_flops_decode * queries_per_seq / self._attn_core_flops)
        return ops.maximum(compute, d_ctx * self._kv_read_per_ctx / self._hbm_bw)

    def _batch_terms(self, ops, tokens: float, logits: float) -> tuple[float, float, float]:
        """(linear layers with the activation passes, communication, overhead) of a batch of
        `tokens` tokens and `logits` sequences, cached: a step's total is linear + attention core
        + communication + overhead, added in that order, as `sum(_price(...))` adds them."""
        key = (ops, tokens, logits)
        terms = self._terms.get(key)
        if terms is None:
            attn_linear, dense_ffn, experts, lm_head, activations, linear_attention, _, comm, overhead = self._price(
                ops, tokens, 0.0, logits, 0.0, 0.0)
            terms = self._terms[key] = (float(attn_linear + dense_ffn + experts + lm_head + activations
                                              + linear_attention), float(comm), float(overhead))
        return terms

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
        args = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (
            prefill_tokens, prefill_attn_pairs, prefill_seqs, decode_seqs, decode_ctx_tokens)))
        parts = [np.asarray(x, dtype=float) * np.ones_like(args[0]) for x in self._price(_ArrayOps, *args)]
        if self._prefill_overhead:  # a step with prompt tokens (never a pure-decode step)
            parts[-1] = parts[-1] + (args[2] > 0) * self._prefill_overhead
        return StepBreakdown(*parts, total_s=sum(parts))

    def step_time_s(self, prefill_tokens=0.0, prefill_attn_pairs=0.0, prefill_seqs=0.0, decode_seqs=0.0,
                    decode_ctx_tokens=0.0):
        """Total seconds: a float for scalar arguments, an array otherwise."""
        args = (prefill_tokens, prefill_attn_pairs, prefill_seqs, decode_seqs, decode_ctx_tokens)
        if not all(isinstance(x, (int, float)) for x in args):
            return self.breakdown(*args).total_s
        return self.batch_s(*(float(x) for x in args))

    def batch_s(self, prefill_tokens: float, prefill_attn_pairs: float, prefill_seqs: float, decode_seqs: float,
                decode_ctx_tokens: float) -> float:
        """step_time_s of one batch given as Python floats, without checking them: the event loop's call.

        Token and sequence counts may be ints (the same key, and priced as floats)."""
        key = (prefill_tokens + decode_seqs, prefill_seqs + decode_seqs)
        terms = self._scalar_terms.get(key)
        if terms is None:
            terms = self._scalar_terms[key] = self._batch_terms(_ScalarOps, float(key[0]), float(key[1]))
        linear, comm, overhead = terms
        # _attention_core inlined (one query per decode sequence; its `* 1.0` changes no bit):
        # the event loop calls this once per mixed step
        compute = (prefill_attn_pairs * self._attn_flops_prefill / self._prefill_core_flops
                   + decode_ctx_tokens * self._attn_flops_decode / self._attn_core_flops)
        memory = decode_ctx_tokens * self._kv_read_per_ctx / self._hbm_bw
        if prefill_seqs and self._prefill_overhead:
            overhead = overhead + self._prefill_overhead
        return linear + (memory if memory > compute else compute) + comm + overhead

    def prefill_pairs(self, chunk_tokens: float, prior_tokens: float) -> float:
        """prefill_attention_pairs of one chunk, on Python floats."""
        return _causal_pairs(_ScalarOps, float(chunk_tokens), float(prior_tokens), *self._window)

    # -- decode fast path ----------------------------------------------------------------
    def decode_steps_s(self, n_seqs: int, ctx_sums) -> np.ndarray:
        """Durations of pure-decode steps of `n_seqs` sequences, one per context sum given.

        With multi-token prediction a step is the pass's time per token it yields on average
        (a mean-field view: tokens arrive at the expected rate, not in bursts).
        """
        if self._mtp_drafts:
            return self._mtp_step_s(_ArrayOps, float(n_seqs), np.asarray(ctx_sums, dtype=float))
        linear, comm, overhead = self._batch_terms(_ArrayOps, float(n_seqs), float(n_seqs))
        return linear + self._attention_core(_ArrayOps, 0.0, np.asarray(ctx_sums, dtype=float)) + comm + overhead

    def _mtp_step_s(self, ops, n: float, ctx):
        """One decode pass with k drafts per sequence, divided by the tokens it yields.

        The main model verifies k + 1 positions per sequence (GEMM rows and logits x (k+1),
        attention math x (k+1), the same KV read); the MTP module (mtp_layers layers and the
        LM head) runs k times on n tokens to draft them.
        """
        k, shape = self._mtp_drafts, self.shape
        linear, comm, overhead = self._batch_terms(ops, n * (k + 1), n * (k + 1))
        verify = linear + self._attention_core(ops, 0.0, ctx, k + 1) + comm + overhead
        d_linear, d_comm, _ = self._batch_terms(ops, n, n)
        flops, weights, peak, m_half = self._head
        head = float(self._gemm_time(ops, flops * n, weights, n / self._dp, peak, m_half))
        share = shape.model.mtp_layers / shape.model.layers
        draft = k * ((d_linear - head + d_comm + self._attention_core(ops, 0.0, ctx)) * share + head)
        return (verify + draft) / shape.mtp_tokens_per_pass

    def decode_elapsed_s(self, n_seqs: int, ctx_sums, after_s: float = 0.0) -> Sequence[float]:
        """Seconds from the start of a run of pure-decode steps to the end of each: the running
        sum of decode_steps_s, indexable and sorted; `after_s` is the running sum before the
        first of them, so that a run priced in pieces gives the floats priced at once
        (decode_chunks_exact)."""
        if len(ctx_sums) >= _NUMPY_MIN_STEPS or self._mtp_drafts:
            steps_s = self.decode_steps_s(n_seqs, ctx_sums)
            if after_s:  # NumPy's cumsum adds in order: the same additions as one run's
                return np.cumsum(np.concatenate(([after_s], steps_s)))[1:]
            return np.cumsum(steps_s)
        # the batch's terms as the NumPy path has them (np.expm1 and math.expm1 can differ in the
        # last bit), so that both paths give the same floats
        terms = self._decode_terms.get(n_seqs)
        if terms is None:
            terms = self._decode_terms[n_seqs] = self._batch_terms(_ArrayOps, float(n_seqs), float(n_seqs))
        linear, comm, overhead = terms
        kind = type(ctx_sums)
        if kind is not range and kind is not list:
            # NumPy scalars made Python floats; a list's or a range's ints multiply exactly as
            # their floats would (int * float converts the int as float() does)
            ctx_sums = [float(ctx) for ctx in ctx_sums]
        # _attention_core of a pure-decode step, inlined (no prefill pairs: `0.0 * ... / ... +`
        # and `* 1.0` change no bit); this loop runs for most of the event loop's decode steps
        elapsed, out = after_s, []
        if self._decode_bound is not None:  # one term is the larger at every context (see __init__)
            coefficient, rate = self._decode_bound
            for ctx in ctx_sums:
                elapsed += linear + ctx * coefficient / rate + comm + overhead
                out.append(elapsed)
            return out
        flops, core_flops = self._attn_flops_decode, self._attn_core_flops
        kv_read, hbm_bw = self._kv_read_per_ctx, self._hbm_bw
        for ctx in ctx_sums:
            compute = ctx * flops / core_flops
            memory = ctx * kv_read / hbm_bw
            elapsed += linear + (memory if memory > compute else compute) + comm + overhead
            out.append(elapsed)
        return out

    def min_decode_step_s(self, context_tokens: float) -> float:
        """The fastest a single sequence can generate at this context (the lowest reachable TPOT)."""
        return self.decode_token_s(1, float(effective_context(self.shape, context_tokens)))

    def decode_token_s(self, n_seqs: float, ctx_sum: float) -> float:
        """Seconds per generated token of a pure-decode step (multi-token prediction included)."""
        return float(self.decode_steps_s(int(n_seqs), [ctx_sum])[0]) if self._mtp_drafts else \
            self.step_time_s(decode_seqs=float(n_seqs), decode_ctx_tokens=float(ctx_sum))
