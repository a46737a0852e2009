"""From a row of measured or published data to the replica that ran it.

Both kinds of reference rows (fidelity/measured.py, fidelity/mlperf.py) name a system, a model,
a quantization, a framework and a date; these helpers turn them into a ReplicaShape with the
software-stack profile of that framework, GPU generation and date, or say why they cannot.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pandas as pd

from factory_sim.config.hardware import list_hardware
from factory_sim.config.model import list_models
from factory_sim.config.stack import SoftwareStack
from factory_sim.errors import ConfigError
from factory_sim.perf.memory import plan_memory
from factory_sim.perf.shape import ReplicaShape
from factory_sim.perf.stacks import select_stack

# Catalog names for architectures the measured data names differently.
MODEL_ALIASES = {
    "deepseek_v3": "deepseek_r1",  # DeepSeek-R1 shares the DeepSeek-V3 architecture
    # NVIDIA's NVFP4 quantization of deepseek-ai/DeepSeek-V3.1 (https://huggingface.co/nvidia/DeepSeek-V3.1-NVFP4),
    # whose card says "The model structure of DeepSeek-V3.1 is the same as DeepSeek-V3"
    # (https://huggingface.co/deepseek-ai/DeepSeek-V3.1); the weights differ, the shapes do not.
    "nvidia/DeepSeek-V3.1-NVFP4": "deepseek_r1",
    # Kimi K2.5's language model: the text_config of https://huggingface.co/moonshotai/Kimi-K2.5/blob/main/config.json
    # (checked through public copies) is a kimi_k2/DeepseekV3 config with Kimi K2's shapes: 61 layers
    # (first_k_dense_replace 1), hidden 7168, 64 heads, MLA ranks 1536/512 with 128/64/128 head dims,
    # intermediate 18432, 384 routed + 1 shared experts of 2048, top-8, vocab 163840, no MTP.
    # It differs in max_position_embeddings (262144), in its MoonViT vision encoder (about 0.4B,
    # unused by text-only rows) and in its checkpoint (INT4 group-32 routed experts).
    "moonshotai/Kimi-K2.5": "kimi_k2",
    "Qwen/Qwen3-32B": "qwen3_32b",
    # NVIDIA's NVFP4 quantization of Qwen/Qwen3-32B (https://huggingface.co/nvidia/Qwen3-32B-NVFP4): same architecture
    "nvidia/Qwen3-32B-NVFP4": "qwen3_32b",
    "MiniMaxAI/MiniMax-M2.5": "minimax_m2_5",
    "Qwen/Qwen3.5-397B-A17B": "qwen3_5_397b_a17b",
    "zhipuai/GLM-5": "glm_5",
}


# The KV cache format a measured row's framework ran, which no row states (a BF16 checkpoint
# keeps BF16).
# TensorRT-LLM's benchmark recipes set kv_cache_config.dtype fp8 (SemiAnalysisAI/InferenceX
# benchmarks/single_node/dsr1_fp8_b200_trt.sh). vLLM's --kv-cache-dtype defaults to "auto", the
# model's activation dtype: BF16 (vLLM docs, "Quantized KV Cache"); with it vLLM's 857 measured
# rows score TPOT 14.1% against 16.0% with FP8 (Llama-3.1-70B 7.8% against 10.9%). SGLang's
# default is "auto" too, but its 378 rows fit FP8 better (TPOT 15.8% against 18.3%), as its
# DeepSeek recipes set --kv-cache-dtype fp8_e4m3: an estimate chosen by the rows.
KV_PRECISION_BY_FRAMEWORK = {"tensorrt-llm": "fp8", "vllm": "bf16", "sglang": "fp8"}


def row_kv_precision(stack: SoftwareStack, precision: str) -> str:
    """The KV cache format a measured row ran under `stack` with weights in `precision`."""
    if precision == "bf16":
        return "bf16"
    return KV_PRECISION_BY_FRAMEWORK.get(stack.framework, "fp8")


# Weight formats of the measured deployments' quantization modes. 'int4_wo' is INT4
# weight-only (Kimi K2.5 on vLLM): only the routed experts are INT4 ("INT4 weight-only
# quantization to the MoE components", Kimi K2 Thinking model card,
# https://huggingface.co/moonshotai/Kimi-K2-Thinking), so a row's gemm_quant 'int4_wo' runs its
# attention in BF16 (served_formats).
QUANT_TO_PRECISION = {"nvfp4": "fp4", "fp8": "fp8", "fp8_block": "fp8", "bf16": "bf16", "fp16": "bf16",
                      "w4a16_mxfp4": "mxfp4", "mxfp4": "mxfp4", "int4_wo": "int4"}


# Prompt tokens a step may add on top of its decode tokens; 8192 is TensorRT-LLM's default
# max_num_tokens and SGLang's default chunked-prefill size (estimate for rows that do not say).
PREFILL_CHUNK_TOKENS = 8192


class Skip(Exception):
    """A row that cannot be scored, with the reason."""


def read_reference_csv(p: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(p)
    except FileNotFoundError:
        raise ConfigError("SCENARIOS", f"no such file: {p}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError("SCENARIOS", f"{p} is not a readable CSV file: {exc}") from None


def row_number(row, key: str, default: float | None = None) -> float | None:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return float(value)


def row_text(row, key: str) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def row_size(row, key: str) -> int:
    """A parallelism size; 0 and empty mean 1 (not used)."""
    value = row_number(row, key, 1.0)
    return max(1, int(value))


@cache
def catalog_names() -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(h.name for h in list_hardware()), frozenset(m.name for m in list_models())


def row_precisions(row, model) -> tuple[str, str, str]:
    """(FFN/expert weight format, attention weight format, note) of a row.

    A row that names no precision and no quantization served the checkpoint it names as it
    is: it takes the model's native weight format, and the note says so in its config.
    """
    precision = row_text(row, "precision")
    moe = row_text(row, "moe_quant") or precision
    gemm = row_text(row, "gemm_quant") or precision
    note = ""
    if moe is None and gemm is None:
        moe = gemm = model.native_weight_format
        note = f"precision not given: the checkpoint's {model.native_weight_format}"
    if moe is None or gemm is None:
        raise Skip("precision given for only one of the GEMM and MoE weights")
    if moe not in QUANT_TO_PRECISION or gemm not in QUANT_TO_PRECISION:
        bad = moe if moe not in QUANT_TO_PRECISION else gemm
        raise Skip(f"quantization '{bad}' is not modelled")
    return QUANT_TO_PRECISION[moe], QUANT_TO_PRECISION[gemm], note


def served_formats(hw, model, precision: str, attention_precision: str) -> tuple[str, str]:
    """(expert/FFN, attention) weight formats a deployment labelled 4-bit actually runs.

    A model whose checkpoint is MXFP4 (gpt-oss) is served from it, whatever the label says
    ("fp4", "nvfp4"), with its BF16 attention; another 4-bit checkpoint on hardware without
    FP4 tensor cores runs weight-only (W4A16).
    """
    if model.native_weight_format == "mxfp4" and precision in ("fp4", "mxfp4"):
        return "mxfp4", "bf16"
    if attention_precision == "int4":  # INT4 weight-only checkpoints quantize the experts only
        attention_precision = "bf16"
    if not hw.supports("fp4"):
        precision = "mxfp4" if precision == "fp4" else precision
        attention_precision = "bf16" if attention_precision == "fp4" else attention_precision
    return precision, attention_precision


def row_parallel_sizes(row, prefix: str, model) -> tuple[int, int, int, int]:
    """(tp, attention dp, ep, pp) of one side of a measured row.

    Some rows list tp * attention_dp = moe_tp * moe_ep = n * n with moe_tp == moe_ep == n,
    while their ids name "tp{n}_ep{n}" and the deployment ran on n GPUs (e.g. tp_size 64 with
    moe_tp 8 x moe_ep 8 on an 8-GPU HGX node): those are read as n GPUs with EP n.
    """
    tp = row_size(row, f"{prefix}tp_size")
    dp = row_size(row, f"{prefix}attention_dp_size")
    pp = row_size(row, f"{prefix}pp_size")
    if not model.is_moe:
        return tp, dp, 1, pp
    ep = row_size(row, f"{prefix}moe_ep_size")
    moe_tp = row_size(row, f"{prefix}moe_tp_size")
    if moe_tp == ep > 1 and tp * dp == moe_tp * ep:
        if dp > 1:
            dp //= moe_tp
        else:
            tp //= moe_tp
    return tp, dp, ep, pp


def row_shape(row, prefix, hw, model, stack, precision, attention_precision, path) -> ReplicaShape:
    tp, dp, ep, pp = row_parallel_sizes(row, prefix, model)
    if model.n_heads % tp:
        # 34 GB200 rows of Nov 2025 list tp 12..72 with EP1 for DeepSeek's 128 heads: GPU
        # totals, likely of disaggregated deployments whose prefill/decode split is not given
        raise Skip(f"tp_size {tp} does not divide the model's {model.n_heads} attention heads, so no engine "
                   "ran it as one tensor-parallel group (likely a deployment's GPU total)")
    kv = row_kv_precision(stack, precision)
    try:
        shape = ReplicaShape(hardware=hw, model=model, stack=stack, precision=precision,
                             attention_precision=attention_precision, kv_precision=kv,
                             tp=tp, dp_attention=dp, ep=ep, pp=pp, path=path)
        plan_memory(shape)
    except ConfigError as exc:
        raise Skip(exc.message) from None
    return shape


def row_stack(hw, framework: str | None, date: str | None,
              stacks: dict[str, SoftwareStack] | None = None) -> tuple[SoftwareStack, str]:
    """The stack profile a row ran (by framework, GPU generation and date), replaced by
    `stacks[name]` when given (calibration evaluates candidate values this way)."""
    stack, note = select_stack(hw, framework, date)
    if stacks and stack.name in stacks:
        stack = stacks[stack.name]
    return stack, note
