"""The request path InferenceX's client and recipes give a point, on top of the stack profile.

The profiles were fitted to another harness (aiconfigurator's measured points); these constants
say what differs on InferenceX. `inferencex.harness_stack` applies them to a point's profile.
"""

import math
from dataclasses import replace

from factory_sim.config.stack import GemmEfficiency, SoftwareStack

# The request path as InferenceX's client sees it. A profile's front-end latency and MoE prefill set-up latency were
# fitted to aiconfigurator's measured points: another harness (mean TTFT, fixed lengths), whose rows carry a floor
# that even dense models show (the "Where measured TTFT stands" section of docs/fidelity.md). On InferenceX, median
# TTFT at 1-4 clients sits within a few ms of the simulated GPU part wherever the profiles' latencies are largest
# against it (gpt-oss-120b on TensorRT-LLM, vLLM and Dynamo: measured / simulated without them 0.74-1.1), so its
# points are scored with the front-end latency below in place of the profile's, and this share of the profile's MoE
# set-up latency. Fitted on a grid (front-end 0-40 ms x share 0-1, one setting for every framework, since one client
# drives them all) by benchmarks/inferencex_ttft.py to the 1,478 scoreable points that publish TTFT (with SGLang's
# request polling below), median |error| (median signed error) of median TTFT: the profiles' latencies 73.1% (+46.4%);
# this setting, in sample 31.6% (-25.3%); picked without each hardware 35.2% (-20.6%; share 0.25 without B200, else
# 0), without each month 31.6% (-25.3%; always 0, 0). A share per framework does no better held out (33.2% and 36.0%).
# Left: load, -30% at 65-256 clients, -65% above (with the mechanisms below).
INFERENCEX_FRONTEND_LATENCY_S = 0.0
INFERENCEX_MOE_SETUP_SHARE = 0.0
# SGLang's `--scheduler-recv-interval` as the benchmark's recipes launch it, per hardware: (from clients, interval)
# pairs, the first that applies. SemiAnalysisAI/InferenceX benchmarks/dsr1_fp8_b200.sh and dsr1_fp4_b200.sh: 10, or 30
# from 16 clients ("relax to ~30 requests between scheduler recv polls"); dsr1_fp8_h200.sh leaves SGLang's default (1:
# every step); disaggregated runs: not stated, so none. It earned its place: with it, the best setting above scores
# 31.6% in sample, 35.2% without each hardware, 31.6% without each month; without it (benchmarks/inferencex_ttft.py
# --no-recv-polls) 39.5%, 40.1%, 39.5%; SGLang's 358 points 35.3% (-27.4%) -> 14.8% (-2.7%).
SGLANG_RECV_INTERVAL = {"b200": ((16, 30), (1, 10))}
# Dynamo streams to the client from the decode worker: a disaggregated point's first token counts when the decode side
# takes the request in, after the KV transfer (stack.first_token_from_decode; assumed for both back ends). Dynamo
# points (411): |error| (signed) of TTFT 70.9% (-67.3%) -> 69.2% (-64.0%); throughput and interactivity unchanged.
DYNAMO_FIRST_TOKEN_FROM_DECODE = True
# DeepSeek-R1's prefill MoE stall (`prefill_moe_layer_overhead_s`, per MoE layer of a step carrying a prompt) on every
# framework: the value of the profile, per GPU generation, fitted to DeepSeek rows (SGLang's: sglang_blackwell to
# DeepSeek-R1/V3 rows only, sglang_hopper to DeepSeek, Qwen3-235B and Llama-3.1-8B rows; TensorRT-LLM's profiles fitted
# one value to DeepSeek, gpt-oss, Kimi and Qwen rows at once). At 1-4 clients InferenceX measures the same DeepSeek-R1
# 1k-prompt TTFT on both engines at TP8 (B200: SGLang 154-162 ms, TensorRT-LLM 139-167; H200: 120, 124-128), where
# the TensorRT-LLM profiles priced it 40-140 ms short. Nothing is fitted to these points: median TTFT 29.9% ->
# 25.5% in sample, 34.3% -> 25.5% without each hardware, 29.9% -> 25.5% without each month (benchmarks/
# inferencex_ttft.py); tokens/s/GPU 12.4% -> 12.1%, interactivity 12.1% -> 12.0%. Figures in docs/fidelity.md.
DEEPSEEK_PREFILL_MOE_FROM = {"blackwell": "sglang_blackwell", "hopper": "sglang_hopper"}
# The prefill workers of a disaggregated (Dynamo) point run their steps this factor as fast as the profile prices
# them (slower_prefill: every rate of the step times it, every fixed cost over it; 1: the profile's). The points
# publish their input tokens/s per prefill GPU; where the median TTFT says prompts queued for the prefill pool (at
# least 10x one prompt's simulated prefill step), that rate is a median 0.60 of the simulated capacity over 143
# points (benchmarks/inferencex_disagg_prefill.py), but not uniformly: GB200 NVL72 SGLang 8k prompts 0.97, with
# plateaus along a concurrency sweep at 1.07-1.5x it. Tried on the 411 scoreable disaggregated points (same
# benchmark, --grid), median |error| (signed) of tokens/s/GPU, interactivity, TTFT: 1: 12.4% (+5.5%), 12.9%
# (-1.2%), 52.6% (-41.5%); 0.9: 12.1%, 12.9%, 56.4% (-33.0%); 0.8: 12.6%, 13.4%, 57.6% (-19.0%); picked without
# each hardware 12.5%, 13.6%, 58.4%; without each month 12.2%, 13.4%, 61.2%. The points near saturation overshoot
# before the rest stop running short, so no one factor lowers TTFT error: it stays 1 (docs/fidelity.md).
DYNAMO_PREFILL_EFFICIENCY = 1.0
# The decode side's batch cap of a Dynamo-TRT point. TensorRT-LLM's max_batch_size holds per attention-DP rank; the
# recipes set a power of two and run the clients a little above the decode pool's slots (workers x ranks x batch),
# e.g. SemiAnalysisAI/InferenceX .github/configs/nvidia-master.yaml, B200 FP4 1k/1k: ctx1_gen2_dep8_batch64 (2 DEP8
# workers of batch 64: 1,024 slots) at 1,214 clients, ctx3_gen5_dep4_batch512 (10,240 slots) at 10,860,
# ctx1_gen2_dep8_batch128 (2,048) at 2,192; its test fixtures' dsr1-fp4-gb200-dynamo-trt entry one DEP8 worker of
# DECODE_MAX_BATCH_SIZE=256 at 2,150 clients. The clients beyond the slots wait for a decode slot with their prompt's
# KV on the prefill side, and Dynamo's first token reaches the client only once the decode side takes the request, so
# TTFT / end-to-end latency is 1 - slots / clients: 0.050-0.055 measured at GB200's 1,075 and 2,150 clients (1.05x),
# 0.159 at B200's 1,214. The points do not name their recipe, so `decode_batch_cap` takes the largest workers x ranks
# x 2^k not above the clients as the slots when the clients exceed them by at most this factor (0: no cap). Fitted on
# a grid (0, 1.1, 1.25, 1.5, 2; benchmarks/inferencex_disagg_prefill.py --headroom-grid, 3 requests per client) to the
# 411 scoreable disaggregated points, median |error| (signed) of TTFT: no cap 54.5% (-35.6%); 1.5 45.5% (-21.4%),
# picked without each hardware (45.5%) and without each month but one (46.0%); tokens/s/GPU 11.6% -> 11.3%,
# interactivity 12.8% -> 12.9%. Dynamo-SGLang's decode workers are left uncapped (its recipes cap running requests per
# server, not per rank in powers of two; a uniform clients / 1.05 cap on both frameworks gave 47.3%, worse at 65-1,024
# clients).
DYNAMO_DECODE_HEADROOM = 1.5

# Stack constants that price a step: rates (a step lasts as long as 1 / rate) and fixed seconds of the step.
_STEP_RATES = ("attention_efficiency", "hbm_efficiency", "nvlink_efficiency", "scaleout_efficiency")
_STEP_SECONDS = ("step_overhead_s", "seq_overhead_s", "layer_overhead_s", "mla_layer_overhead_s",
                 "prefill_step_overhead_s", "prefill_moe_layer_overhead_s", "prefill_moe_overhead_s_per_gparam",
                 "collective_latency_s", "ep_peer_latency_s", "adp_rank_jitter_s", "mla_dp_seq_overhead_s")


def slower_prefill(stack: SoftwareStack, factor: float) -> SoftwareStack:
    """The stack whose steps last 1 / `factor` times as long: every rate (GEMM, attention, HBM, links) times
    `factor`, every fixed cost of a step over it. The request's own latencies (front end, MoE set-up, KV
    transfer) stay."""
    gemm = stack.gemm_efficiency
    update: dict = {"gemm_efficiency": GemmEfficiency(bf16=gemm.bf16 * factor, fp8=gemm.fp8 * factor,
                                                      fp4=None if gemm.fp4 is None else gemm.fp4 * factor),
                    "prefill_attention_efficiency": stack.prefill_attention_fraction * factor}
    update.update({name: getattr(stack, name) * factor for name in _STEP_RATES})
    if stack.mla_dp_attention_efficiency is not None:
        update["mla_dp_attention_efficiency"] = stack.mla_dp_attention_efficiency * factor
    update.update({name: getattr(stack, name) / factor for name in _STEP_SECONDS})
    return stack.model_copy(update=update)


def decode_batch_cap(clients: int, max_headroom: float, pool) -> int | None:
    """A Dynamo-TRT decode worker's batch cap as the recipes set it, or None where they leave the clients room.

    TensorRT-LLM's `max_batch_size` holds per attention-DP rank, and the recipes pick a power of two for it and run
    clients a little above the decode pool's slots (workers x ranks x batch): the slots are the largest such count
    not above the clients, taken when the clients exceed them by at most `max_headroom` times (DYNAMO_DECODE_HEADROOM).
    """
    ranks = pool.shape.dp_attention
    per_rank = clients / (pool.replicas * ranks)
    if max_headroom <= 0 or per_rank < 1:
        return None
    batch = 2 ** math.floor(math.log2(per_rank))
    slots = pool.replicas * ranks * batch
    if slots >= clients or clients > max_headroom * slots:
        return None
    return ranks * batch


def capped_decode(pool, clients: int, max_headroom: float):
    """The decode pool (a PoolLayout) with its workers' batch cap (`decode_batch_cap`), if any."""
    cap = decode_batch_cap(clients, max_headroom, pool)
    return pool if cap is None else replace(pool, max_batch=min(pool.max_batch, cap))
