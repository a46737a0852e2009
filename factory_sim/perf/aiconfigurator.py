"""Step times from NVIDIA's aiconfigurator-core: a replica's steps priced from measured kernel tables.

aiconfigurator-core (Apache-2.0, https://github.com/ai-dynamo/aiconfigurator, PyPI
`aiconfigurator-core`, the optional extra `factory-sim[aic]`) compiles a model, a system, a
serving framework and a parallelism into an engine whose calls price a prefill or a decode
step in milliseconds from kernel timings measured on that system and framework version (GEMM,
attention, MoE and collective tables). This module puts that engine behind the narrow
interface the replica and the estimates use of StepTimeModel, so a stack with
`step_time_backend: aiconfigurator` runs the same event loop on its prices.

How a step is priced (the engine's two static calls, `decode_step_latency(n, isl, osl)` at
context isl + osl // 2 + 1 and `predict_prefill_latency(1, isl, prefix)`):
- a pure-decode step of n sequences at a mean context c is the engine's decode step at
  (n, c), divided by the expected tokens per pass when MTP drafts (the engine is compiled
  with those drafts and prices the (drafts + 1) verify batch itself);
- a step with prompt tokens is priced as prefill of its T = prompt + decode tokens: the
  engine's prefill of one T-token prompt with no prefix and with PREFIX_REF_TOKENS of
  prefix gives, per T, a cost without attention and a cost per causal (query, key) pair
  (counted as perf/steptime.py counts them, windows included), and the step pays the first
  plus the second times its pairs; its decode sequences add what their context adds to a
  decode step (the decode step at (n, c) less the one at (n, MIN_CONTEXT_TOKENS)).
With attention DP the engine's batch is one DP rank's (its results' `global_bs` is `bs` x
attention_dp_size): a step's sequences, tokens and pairs are shared evenly over the ranks, as
in perf/steptime.py, and the step is priced at one rank's share (at least one sequence).
A step's price is kept on a grid of batch sizes (every size to 16, then four per octave) and
contexts (powers of two) and interpolated linearly between the nodes, each node computed once
per compiled engine when first needed, so the event loop makes a few dictionary look-ups per
step. Memory (KV capacity), the scheduler and the stack's per-request latencies stay the
project's own.
"""

from __future__ import annotations

import bisect
import functools
import logging
import re
from collections.abc import Sequence

import numpy as np

from factory_sim.errors import ConfigError
from factory_sim.perf.shape import ReplicaShape
from factory_sim.perf.steptime import attention_is_capped, effective_context, prefill_attention_pairs

FIELD = "stack.step_time_backend"
INSTALL = "pip install 'factory-sim[aic]'"

# Catalog hardware -> aiconfigurator-core system (its systems/*.yaml).
SYSTEMS = {"h100_sxm": "h100_sxm", "h200_sxm": "h200_sxm", "b200_hgx": "b200_sxm", "b300_hgx": "b300_sxm",
           "gb200_nvl72": "gb200", "gb300_nvl72": "gb300"}
# Stack framework -> aiconfigurator-core backend.
BACKENDS = {"tensorrt-llm": "trtllm", "sglang": "sglang", "vllm": "vllm"}
# Catalog model -> the Hugging Face architecture aiconfigurator-core ships a config for
# (its model_configs/). Llama-3.3-70B has Llama-3.1-70B's architecture (meta-llama model cards).
MODELS = {"deepseek_r1": "deepseek-ai/DeepSeek-R1", "deepseek_v3_2": "deepseek-ai/DeepSeek-V3.2",
          "gpt_oss_120b": "openai/gpt-oss-120b", "kimi_k2": "moonshotai/Kimi-K2-Instruct",
          "llama3_1_8b": "meta-llama/Meta-Llama-3.1-8B", "llama3_1_70b": "meta-llama/Meta-Llama-3.1-70B",
          "llama3_3_70b": "meta-llama/Meta-Llama-3.1-70B", "llama3_1_405b": "meta-llama/Meta-Llama-3.1-405B",
          "qwen3_32b": "Qwen/Qwen3-32B", "qwen3_235b_a22b": "Qwen/Qwen3-235B-A22B",
          "qwen3_5_397b_a17b": "Qwen/Qwen3.5-397B-A17B", "glm_5": "zai-org/GLM-5",
          "minimax_m2_5": "MiniMaxAI/MiniMax-M2.5"}
# Weight formats -> its quantization modes. FP8 checkpoints of the MoE models are block-scaled
# (DeepSeek-V3 README_WEIGHTS.md; Qwen3 and Kimi follow it), dense Llama FP8 is per-tensor.
_GEMM = {"bf16": "bfloat16", "fp4": "nvfp4", "int4": "int4_wo", "mxfp4": "bfloat16"}
_MOE = {"bf16": "bfloat16", "fp8": "fp8_block", "fp4": "nvfp4", "int4": "int4_wo"}
_KV = {"bf16": "bfloat16", "fp8": "fp8"}
_MOE_ALTERNATES = {"w4a8_mxfp4_mxfp8": ("w4a16_mxfp4",)}

_NUMPY_MIN_STEPS = 24  # shorter decode runs are priced in a Python loop (NumPy's per-call overhead)
MIN_CONTEXT_TOKENS = 16  # the context grid's first node: shorter contexts are priced there
PREFIX_REF_TOKENS = 8192  # the prefix of the prefill that measures attention's cost per pair


def _nodes(top: int) -> tuple[int, ...]:
    """Batch-size nodes: every integer to 16, then four per octave up to `top`."""
    out, x = list(range(1, 17)), 16
    while x < top:
        out += [x * m // 4 for m in (5, 6, 7, 8)]
        x *= 2
    return tuple(out)


BATCH_NODES = _nodes(1 << 17)
CONTEXT_NODES = tuple(MIN_CONTEXT_TOKENS << i for i in range(18))  # 16 .. 2M tokens


def _bracket(nodes: Sequence[float], x: float) -> tuple[int, int, float]:
    """(lower node index, upper node index, weight of the upper) of x, clamped to the nodes."""
    if x <= nodes[0]:
        return 0, 0, 0.0
    if x >= nodes[-1]:
        return len(nodes) - 1, len(nodes) - 1, 0.0
    hi = bisect.bisect_left(nodes, x)
    if nodes[hi] == x:
        return hi, hi, 0.0
    lo = hi - 1
    return lo, hi, (x - nodes[lo]) / (nodes[hi] - nodes[lo])


def _engine_api():
    """aiconfigurator-core's engine handle and its logger, or the error that says how to install it."""
    try:
        from aiconfigurator_core.sdk.engine import EngineHandle
    except ImportError:
        raise ConfigError(FIELD, f"step_time_backend 'aiconfigurator' needs the optional package "
                                 f"aiconfigurator-core: {INSTALL}, or set step_time_backend: roofline") from None
    # its table loader reports each fallback table it reads at INFO/WARNING: one line per engine
    logging.getLogger("aiconfigurator_core").setLevel(logging.ERROR)
    return EngineHandle


def engine_settings(shape: ReplicaShape) -> dict:
    """The engine a shape compiles to, in aiconfigurator-core's names, or ConfigError naming the
    field it cannot map."""
    hw, m, st = shape.hardware, shape.model, shape.stack
    fix = "use step_time_backend: roofline for it"
    if hw.name not in SYSTEMS:
        raise ConfigError("hardware", f"aiconfigurator-core has no tables for hardware '{hw.name}' (it covers "
                                      f"{', '.join(sorted(SYSTEMS))}); {fix}")
    if m.name not in MODELS:
        raise ConfigError("model", f"aiconfigurator-core has no architecture for model '{m.name}' (mapped: "
                                   f"{', '.join(sorted(MODELS))}); {fix}")
    if st.framework not in BACKENDS:
        raise ConfigError("stack.framework", f"aiconfigurator-core prices {', '.join(BACKENDS)}, not "
                                             f"'{st.framework}'; {fix}")
    fp4 = hw.supports("fp4")
    moe = {**_MOE, "mxfp4": "w4a8_mxfp4_mxfp8" if fp4 else "w4a16_mxfp4"}
    gemm_of = {**_GEMM, "fp8": "fp8_block" if m.is_moe else "fp8"}
    dense_precision = shape.attention_precision if m.is_moe else shape.precision
    if dense_precision not in gemm_of or (m.is_moe and shape.precision not in moe):
        raise ConfigError(f"{shape.path}.precision", f"no aiconfigurator-core quantization mode for "
                                                      f"'{shape.precision}'; {fix}")
    return {"model_path": MODELS[m.name], "system": SYSTEMS[hw.name], "backend": BACKENDS[st.framework],
            "backend_version": st.aiconfigurator_version, "tp_size": shape.tp, "pp_size": shape.pp,
            "attention_dp_size": shape.dp_attention, "moe_tp_size": shape.moe_tp,
            "moe_ep_size": shape.ep if m.is_moe else 1, "gemm_quant_mode": gemm_of[dense_precision],
            "moe_quant_mode": moe[shape.precision] if m.is_moe else None,
            "kvcache_quant_mode": _KV[shape.kv_precision], "nextn": shape.mtp_draft_tokens}


def _reason(exc: Exception) -> str:
    """The first line of the engine's error, without the path of its installed tables."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r" at /\S+$", "", text)


class _Tables:
    """One compiled engine and the step prices (seconds) it has given, by grid node."""

    def __init__(self, settings: dict):
        self.settings = settings
        api = _engine_api()
        errors = []
        # attention kernels: the engine's default for the KV format, else BF16 where its tables
        # have none at that (e.g. MLA prefill with an FP8 KV cache on gb200, TensorRT-LLM 1.3)
        # MXFP4 experts: its MXFP8-activation MoE tables where they cover the shape, else W4A16
        moe_modes = (settings["moe_quant_mode"], *_MOE_ALTERNATES.get(settings["moe_quant_mode"], ()))
        for moe, fmha in ((moe, fmha) for moe in moe_modes for fmha in (None, "bfloat16")):
            try:
                self.handle = api.compile(**{**settings, "moe_quant_mode": moe}, fmha_quant_mode=fmha)
                self.handle.decode_step_latency(1, 1024, 1)
                self.handle.predict_prefill_latency(1, 1024, 0)
                break
            except Exception as exc:  # the engine raises ValueError or its own perf-data errors
                errors.append(_reason(exc))
        else:
            s = settings
            what = (f"{s['model_path']} on {s['system']} {s['backend']} {s['backend_version'] or 'current'} "
                    f"(gemm {s['gemm_quant_mode']}, moe {'/'.join(moe_modes)}, kv {s['kvcache_quant_mode']}, "
                    f"tp {s['tp_size']}, attention dp {s['attention_dp_size']}, moe tp {s['moe_tp_size']}, "
                    f"ep {s['moe_ep_size']})")
            raise ConfigError(FIELD, f"aiconfigurator-core cannot price {what}: {errors[0]}; use "
                                     "step_time_backend: roofline for this fleet")
        self.decode: dict[tuple[int, int], float] = {}
        self.prefill: dict[tuple[int, int], float] = {}

    def _call(self, fn, *args) -> float:
        try:
            return fn(*args) * 1e-3  # milliseconds
        except Exception as exc:
            s = self.settings
            raise ConfigError(FIELD, f"aiconfigurator-core cannot price a step of {s['model_path']} on "
                                     f"{s['system']} {s['backend']} at {args}: {_reason(exc)}; use "
                                     "step_time_backend: roofline for this fleet") from None

    def decode_s(self, i: int, j: int) -> float:
        """Decode step of BATCH_NODES[i] sequences at context CONTEXT_NODES[j]."""
        value = self.decode.get((i, j))
        if value is None:
            value = self.decode[(i, j)] = self._call(self.handle.decode_step_latency, BATCH_NODES[i],
                                                     CONTEXT_NODES[j], 1)
        return value

    def prefill_s(self, i: int, prefix: int) -> float:
        """Prefill of one BATCH_NODES[i]-token prompt after `prefix` tokens."""
        value = self.prefill.get((i, prefix))
        if value is None:
            tokens = BATCH_NODES[i]
            value = self.prefill[(i, prefix)] = self._call(self.handle.predict_prefill_latency, 1,
                                                           tokens + prefix, prefix)
        return value


@functools.lru_cache(maxsize=64)
def _tables(key: tuple) -> _Tables:
    return _Tables(dict(key))


class AicStepTimeModel:
    """StepTimeModel's interface, priced by aiconfigurator-core. Construct once per shape."""

    # its loop and NumPy paths of decode_elapsed_s may differ in the last bit: a run is priced at once
    decode_chunks_exact = False

    def __init__(self, shape: ReplicaShape):
        self.shape = shape
        self._tables = _tables(tuple(engine_settings(shape).items()))
        self._per_pass = shape.mtp_tokens_per_pass
        self._ranks = float(shape.dp_attention)  # the engine prices one attention-DP rank's share
        self.windowed = attention_is_capped(shape)
        # effective (layer-averaged) context -> tokens of context, to give the engine the latter
        self._effective = np.asarray(effective_context(shape, np.asarray(CONTEXT_NODES, dtype=float)))
        self._prefill_terms: dict[int, tuple[float, float]] = {}

    # -- grid look-ups ---------------------------------------------------------------------------
    def _context_tokens(self, effective_per_seq):
        if not self.windowed:
            return effective_per_seq
        return np.interp(effective_per_seq, self._effective, CONTEXT_NODES)

    def _decode_pass_s(self, n: float, context_tokens: np.ndarray) -> np.ndarray:
        """Seconds of decode passes of n sequences at these contexts per sequence."""
        lo, hi, w = _bracket(BATCH_NODES, n / self._ranks)
        ctx = np.clip(np.asarray(context_tokens, dtype=float), CONTEXT_NODES[0], CONTEXT_NODES[-1])
        first = max(bisect.bisect_right(CONTEXT_NODES, float(ctx.min())) - 1, 0)
        last = min(bisect.bisect_left(CONTEXT_NODES, float(ctx.max())), len(CONTEXT_NODES) - 1)
        nodes = CONTEXT_NODES[first:last + 1]
        t = self._tables
        at_lo = np.interp(ctx, nodes, [t.decode_s(lo, j) for j in range(first, last + 1)])
        if not w:
            return at_lo
        at_hi = np.interp(ctx, nodes, [t.decode_s(hi, j) for j in range(first, last + 1)])
        return at_lo + w * (at_hi - at_lo)

    def _decode_one_s(self, n: float, context_tokens: float) -> float:
        """_decode_pass_s of one step on Python floats: the event loop's common call."""
        lo, hi, w = _bracket(BATCH_NODES, n / self._ranks)
        j0, j1, v = _bracket(CONTEXT_NODES, context_tokens)
        t = self._tables
        a, b = t.decode_s(lo, j0), t.decode_s(lo, j1)
        at_lo = a + v * (b - a)
        if not w:
            return at_lo
        a, b = t.decode_s(hi, j0), t.decode_s(hi, j1)
        return at_lo + w * (a + v * (b - a) - at_lo)

    def _prefill_coefficients(self, i: int) -> tuple[float, float]:
        """(seconds without attention, seconds per causal pair) of a BATCH_NODES[i]-token prefill."""
        terms = self._prefill_terms.get(i)
        if terms is None:
            t, tokens = self._tables, BATCH_NODES[i]
            base, longer = t.prefill_s(i, 0), t.prefill_s(i, PREFIX_REF_TOKENS)
            pairs0 = float(prefill_attention_pairs(self.shape, tokens, 0.0))
            pairs_ref = float(prefill_attention_pairs(self.shape, tokens, PREFIX_REF_TOKENS))
            per_pair = max(longer - base, 0.0) / (pairs_ref - pairs0)
            terms = self._prefill_terms[i] = (max(base - per_pair * pairs0, 0.0), per_pair)
        return terms

    def _prefill_s(self, tokens: float, pairs: float) -> float:
        tokens, pairs = max(tokens / self._ranks, 1.0), pairs / self._ranks
        lo, hi, w = _bracket(BATCH_NODES, tokens)
        fixed, per_pair = self._prefill_coefficients(lo)
        if w:
            fixed_hi, per_pair_hi = self._prefill_coefficients(hi)
            fixed, per_pair = fixed + w * (fixed_hi - fixed), per_pair + w * (per_pair_hi - per_pair)
        elif tokens > BATCH_NODES[-1]:
            fixed *= tokens / BATCH_NODES[-1]
        return fixed + per_pair * pairs

    # -- StepTimeModel's interface ---------------------------------------------------------------
    def batch_s(self, prefill_tokens: float, prefill_attn_pairs: float, prefill_seqs: float, decode_seqs: float,
                decode_ctx_tokens: float) -> float:
        """Seconds of one step (see the module docstring for how a mixed step is composed)."""
        if not prefill_seqs:
            if not decode_seqs:
                return 0.0
            return self._decode_one_s(decode_seqs, float(self._context_tokens(decode_ctx_tokens / decode_seqs)))
        total = self._prefill_s(prefill_tokens + decode_seqs, prefill_attn_pairs)
        if decode_seqs:
            ctx = float(self._context_tokens(decode_ctx_tokens / decode_seqs))
            total += max(self._decode_one_s(decode_seqs, ctx) - self._decode_one_s(decode_seqs, MIN_CONTEXT_TOKENS),
                         0.0)
        return total

    def step_time_s(self, prefill_tokens=0.0, prefill_attn_pairs=0.0, prefill_seqs=0.0, decode_seqs=0.0,
                    decode_ctx_tokens=0.0):
        """Total seconds: a float for scalar arguments, an array otherwise."""
        args = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (
            prefill_tokens, prefill_attn_pairs, prefill_seqs, decode_seqs, decode_ctx_tokens)))
        out = np.array([self.batch_s(*map(float, row)) for row in zip(*(a.ravel() for a in args), strict=True)])
        return float(out[0]) if args[0].ndim == 0 else out.reshape(args[0].shape)

    def prefill_pairs(self, chunk_tokens: float, prior_tokens: float) -> float:
        return float(prefill_attention_pairs(self.shape, float(chunk_tokens), float(prior_tokens)))

    def decode_steps_s(self, n_seqs: float, ctx_sums) -> np.ndarray:
        """Seconds per generated token of pure-decode steps, one per context sum given."""
        ctx = self._context_tokens(np.asarray(ctx_sums, dtype=float) / max(float(n_seqs), 1.0))
        return self._decode_pass_s(float(n_seqs), ctx) / self._per_pass

    def decode_elapsed_s(self, n_seqs: int, ctx_sums, after_s: float = 0.0) -> Sequence[float]:
        """Seconds from the start of a run of pure-decode steps to the end of each."""
        if len(ctx_sums) >= _NUMPY_MIN_STEPS:
            return np.cumsum(np.concatenate(([after_s], self.decode_steps_s(n_seqs, list(ctx_sums)))))[1:]
        elapsed, out, n = after_s, [], float(n_seqs)
        for ctx in ctx_sums:
            elapsed += self._decode_one_s(n, float(self._context_tokens(ctx / n))) / self._per_pass
            out.append(elapsed)
        return out

    def decode_token_s(self, n_seqs: float, ctx_sum: float) -> float:
        return float(self.decode_steps_s(n_seqs, [ctx_sum])[0])

    def min_decode_step_s(self, context_tokens: float) -> float:
        return self.decode_token_s(1, float(effective_context(self.shape, context_tokens)))


def covered(shape: ReplicaShape) -> bool:
    """Whether aiconfigurator-core is installed and can price this shape (for tests and reports)."""
    try:
        _tables(tuple(engine_settings(shape).items()))
    except ConfigError:
        return False
    return True

