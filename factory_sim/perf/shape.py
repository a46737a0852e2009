"""One replica's shape: hardware x model x precision x parallelism x software stack.

A replica is the unit that serves requests: a group of GPUs holding one full copy of the
model. The memory and step-time models both read this object, so the parallelism
arithmetic (who holds which shard) is written once, here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from factory_sim.config.hardware import HardwareProfile
from factory_sim.config.model import ModelSpec
from factory_sim.config.stack import SoftwareStack
from factory_sim.errors import ConfigError

# Bytes per stored weight or KV element, scale factors included.
BYTES_PER_ELEMENT = {
    "bf16": 2.0,
    # FP8 E4M3 with one FP32 scale per 128x128 block (DeepSeek-V3 README_WEIGHTS.md,
    # https://github.com/deepseek-ai/DeepSeek-V3/blob/main/README_WEIGHTS.md): 1 + 4/16384.
    "fp8": 1.0 + 4.0 / 16384.0,
    # NVFP4: 4-bit values with one FP8 scale per 16 elements (NVIDIA, "Introducing NVFP4 for
    # efficient and accurate low-precision inference", developer.nvidia.com blog, 2025): 0.5 + 1/16.
    "fp4": 0.5 + 1.0 / 16.0,
    # MXFP4: 4-bit values with one E8M0 scale per 32 elements (OCP Microscaling Formats
    # v1.0 spec, https://www.opencompute.org/documents/ocp-microscaling-formats-mx-v1-0-spec-final-pdf).
    "mxfp4": 0.5 + 1.0 / 32.0,
    # INT4 weight-only, one BF16 scale per group of 32 (Kimi K2 Thinking / K2.5 checkpoints:
    # compressed-tensors pack-quantized, group_size 32, https://huggingface.co/moonshotai/Kimi-K2-Thinking
    # config.json quantization_config; the scale width is an estimate): 0.5 + 2/32.
    "int4": 0.5 + 2.0 / 32.0,
}
WEIGHT_PRECISIONS = tuple(BYTES_PER_ELEMENT)
KV_PRECISIONS = ("bf16", "fp8")


def compute_precision(precision: str, hardware: HardwareProfile) -> str:
    """The tensor-core precision a weight format runs at on `hardware`.

    NVFP4 runs on FP4 tensor cores where the hardware has them. MXFP4 (gpt-oss's native
    experts) is not multiplied at the FP4 rate by the serving engines: on Blackwell they
    quantize activations to MXFP8 and run MXFP4 x MXFP8 GEMMs at the FP8 rate; on Hopper the
    weights are dequantized and multiplied in BF16 ("W4A16"). INT4 weight-only checkpoints
    (Kimi K2 Thinking, K2.5) run W4A16 on every GPU (Marlin-style mixed-input GEMMs). Both
    save memory and bandwidth, not compute. (TensorRT-LLM GPT-OSS deployment guide, MoE backend support
    matrix: B200/GB200/B300/GB300 activation MXFP8 x weights MXFP4; H200 BF16 x MXFP4,
    https://nvidia.github.io/TensorRT-LLM/deployment-guide/deployment-guide-for-gpt-oss-on-trtllm.html)
    """
    if precision == "mxfp4":
        return "fp8" if hardware.supports("fp4") else "bf16"
    if precision == "int4":  # weight-only: dequantized in the GEMM's main loop, multiplied in BF16
        return "bf16"
    return precision


@dataclass(frozen=True)
class ReplicaShape:
    """GPUs of one replica = tp * dp_attention * pp.

    tp: tensor parallel size of attention (and of dense FFN within a DP rank group);
    dp_attention: attention data-parallel ranks (each holds its own sequences' KV);
    ep: expert-parallel size of the MoE layers, over the tp * dp_attention GPUs of a stage;
    pp: pipeline stages (layers split evenly).
    `precision` is the FFN/expert weight format; attention projections use
    `attention_precision` (NVFP4 checkpoints keep attention in FP8).
    """

    hardware: HardwareProfile
    model: ModelSpec
    stack: SoftwareStack
    precision: str
    attention_precision: str
    kv_precision: str = "fp8"
    tp: int = 1
    dp_attention: int = 1
    ep: int = 1
    pp: int = 1
    # Multi-token prediction (speculative decoding with the model's own MTP module): each
    # decode pass verifies `mtp_draft_tokens` drafted tokens; each is accepted with
    # probability `mtp_acceptance` given the previous one was. 0 drafts: off.
    mtp_draft_tokens: int = 0
    mtp_acceptance: float = 0.0
    # Standard deviation of the acceptance across requests (perf/mtp_spread.py): each request
    # draws its own, the tokens per pass over all requests staying the above's. 0: every
    # request accepts at mtp_acceptance.
    mtp_acceptance_sd: float = 0.0
    path: str = "replica"

    def __post_init__(self) -> None:
        p = self.path
        for name in ("tp", "dp_attention", "ep", "pp"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{p}.{name}", f"must be a whole number >= 1, got {getattr(self, name)}")
        for name, value in (("precision", self.precision), ("attention_precision", self.attention_precision)):
            if value not in BYTES_PER_ELEMENT:
                raise ConfigError(f"{p}.{name}",
                                  f"unknown precision '{value}'; use one of {', '.join(WEIGHT_PRECISIONS)}")
            cp = compute_precision(value, self.hardware)
            if not self.hardware.supports(cp):
                raise ConfigError(
                    f"{p}.{name}",
                    f"{self.hardware.name} has no {cp} tensor cores; it supports "
                    f"{', '.join(self.hardware.supported_precisions)}",
                )
        if self.kv_precision not in KV_PRECISIONS:
            raise ConfigError(f"{p}.kv_precision", f"use one of {', '.join(KV_PRECISIONS)}")
        if self.model.n_heads % self.tp:
            # Engines shard attention by whole heads and refuse such a layout at start-up.
            divisors = [d for d in range(1, self.model.n_heads + 1) if self.model.n_heads % d == 0]
            raise ConfigError(
                f"{p}.tp",
                f"tp={self.tp} does not divide {self.model.name}'s {self.model.n_heads} attention heads; "
                f"use one of {', '.join(map(str, divisors))} (more GPUs go to dp_attention, pp or more replicas)",
            )
        if self.model.is_moe:
            if self.stage_gpus % self.ep:
                raise ConfigError(
                    f"{p}.ep",
                    f"ep={self.ep} must divide tp*dp_attention={self.stage_gpus} (the GPUs of one pipeline stage)",
                )
        elif self.ep != 1:
            raise ConfigError(f"{p}.ep", f"{self.model.name} is a dense model: expert parallelism must be 1")
        if self.mtp_draft_tokens:
            if self.model.mtp_layers < 1:
                raise ConfigError(f"{p}.mtp", f"{self.model.name} has no multi-token-prediction module; "
                                              "remove mtp or use a model with one (e.g. deepseek_r1)")
            if not 0.0 <= self.mtp_acceptance < 1.0:
                raise ConfigError(f"{p}.mtp.acceptance_rate", "must be in [0, 1)")
            if self.mtp_acceptance_sd:
                from factory_sim.perf.mtp_spread import beta_parameters

                beta_parameters(self.mtp_acceptance, self.mtp_draft_tokens, self.mtp_acceptance_sd, f"{p}.mtp")
        elif self.mtp_acceptance_sd:
            raise ConfigError(f"{p}.mtp.acceptance_sd", "a spread of acceptance needs MTP drafts; set mtp or remove it")
        if self.pp > self.model.layers:
            raise ConfigError(f"{p}.pp", f"pp={self.pp} exceeds the model's {self.model.layers} layers")

    @property
    def gpus(self) -> int:
        return self.tp * self.dp_attention * self.pp

    @property
    def stage_gpus(self) -> int:
        return self.tp * self.dp_attention

    @property
    def moe_tp(self) -> int:
        """Each expert's matrices are split this many ways."""
        return self.stage_gpus // self.ep if self.model.is_moe else 1

    @cached_property
    def experts_per_gpu(self) -> int:
        return math.ceil(self.model.n_routed_experts / self.ep) if self.model.is_moe else 0

    @property
    def weight_bytes_per_element(self) -> float:
        return BYTES_PER_ELEMENT[self.precision]

    @property
    def attention_bytes_per_element(self) -> float:
        return BYTES_PER_ELEMENT[self.attention_precision]

    @property
    def kv_bytes_per_element(self) -> float:
        return BYTES_PER_ELEMENT[self.kv_precision]

    @cached_property
    def kv_replication(self) -> float:
        """Copies of each KV element held across the tp ranks of a DP group.

        GQA shards KV heads over TP (replicating when tp > kv heads); MLA's latent cache is
        shared by all heads, so every TP rank holds all of it.
        """
        if self.model.attention == "mla":
            return float(self.tp)
        return max(1.0, self.tp / self.model.n_kv_heads)

    @property
    def request_latency_s(self) -> float:
        """Latency a request spends outside the GPUs' steps on its way to the first token: the
        serving front-end and, for an MoE model, the prefill's per-layer set-up (see the stack)."""
        st, m = self.stack, self.model
        gparams = m.routed_expert_gparams_per_layer
        per_layer = st.prefill_moe_layer_latency_s + st.prefill_moe_latency_s_per_gparam * gparams
        return st.frontend_latency_s + per_layer * m.moe_layers

    @property
    def mtp_tokens_per_pass(self) -> float:
        """Expected tokens a decode pass yields: 1 + a + a^2 + ... + a^k for k drafts."""
        a, k = self.mtp_acceptance, self.mtp_draft_tokens
        return (1.0 - a ** (k + 1)) / (1.0 - a) if k else 1.0

    def parallelism(self, dp: str = "DP", mtp: str = "MTP{}") -> list[str]:
        """TP, then attention DP, EP, PP and MTP where they apply; `dp` and `mtp` name the last two."""
        parts = [f"TP{self.tp}"]
        if self.dp_attention > 1:
            parts.append(f"{dp}{self.dp_attention}")
        if self.model.is_moe:
            parts.append(f"EP{self.ep}")
        if self.pp > 1:
            parts.append(f"PP{self.pp}")
        if self.mtp_draft_tokens:
            parts.append(mtp.format(self.mtp_draft_tokens))
        return parts

    def describe(self) -> str:
        return " ".join([f"{self.gpus}x{self.hardware.name}", self.precision, *self.parallelism()])
