"""Model catalog: the architecture facts that decide serving cost, and counts derived from them.

Parameter counts are computed from the architecture, never typed in, so a user's model
YAML is checked the same way as the built-ins (against its published totals). Counts
cover the matmul weights and embeddings; norms, biases and attention sinks are left out
(under 0.1% for every catalog model). Bytes per weight are not a model fact: precision
belongs to the deployment and lives in the step-time and memory models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory_sim.catalog import builtin_names, load
from factory_sim.config.bounds import (
    Dim,
    ExpertCount,
    Experts,
    LayerCount,
    Layers,
    ParamsB,
    Positions,
    PositiveFraction,
    Vocab,
)

ArrayOrFloat = TypeVar("ArrayOrFloat", np.ndarray, float)

_MLA_FIELDS = ("mla_kv_lora_rank", "mla_rope_dim", "mla_qk_nope_dim", "mla_v_head_dim")
_MOE_FIELDS = ("moe_intermediate", "n_routed_experts", "top_k")
_SPARSE_FIELDS = ("sparse_attention_topk", "indexer_heads", "indexer_head_dim")
_LINEAR_FIELDS = ("linear_key_heads", "linear_value_heads", "linear_key_head_dim", "linear_value_head_dim",
                  "linear_conv_kernel")
# Bytes per element of a linear-attention layer's recurrent state: engines keep it in FP32
# (SGLang's --mamba-ssm-dtype and the Qwen3.5 configs' mamba_ssm_dtype default to "float32");
# its short-convolution window is kept at the activation width, BF16.
LINEAR_STATE_BYTES = 4.0
LINEAR_CONV_STATE_BYTES = 2.0


class ModelSpec(BaseModel):
    """A transformer's shape. Attention is MHA/GQA (head_dim) or MLA (mla_* dims); a hybrid
    model replaces the attention of `linear_attention_layers` layers by a gated linear
    attention (Gated DeltaNet) that holds a fixed-size state per sequence instead of a KV cache."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    layers: Layers
    dense_layers: LayerCount
    hidden: Dim
    n_heads: Dim
    n_kv_heads: Dim
    attention: Literal["mha", "gqa", "mla"]
    head_dim: Dim | None = None
    mla_kv_lora_rank: Dim | None = None
    mla_rope_dim: Dim | None = None
    mla_q_lora_rank: Dim | None = None  # absent: queries project straight from hidden
    mla_qk_nope_dim: Dim | None = None
    mla_v_head_dim: Dim | None = None
    intermediate: Dim | None = None
    moe_intermediate: Dim | None = None
    n_routed_experts: Experts | None = None
    n_shared_experts: ExpertCount = 0
    top_k: Experts | None = None
    vocab: Vocab
    tie_word_embeddings: bool = False
    max_position_embeddings: Positions
    sliding_window: Positions | None = None
    sliding_window_layer_fraction: PositiveFraction | None = None
    native_weight_format: Literal["bf16", "fp16", "fp8", "mxfp4", "nvfp4"]
    published_total_params_b: ParamsB | None = None
    published_active_params_b: ParamsB | None = None
    mtp_layers: LayerCount = 0
    # full-attention layers whose query projection also yields an output gate of its width
    attention_output_gate: bool = False
    linear_attention_layers: LayerCount = 0
    linear_key_heads: Dim | None = None
    linear_value_heads: Dim | None = None
    linear_key_head_dim: Dim | None = None
    linear_value_head_dim: Dim | None = None
    linear_conv_kernel: Dim | None = None
    # Sparse attention (DeepSeek Sparse Attention, as in DeepSeek-V3.2 and GLM-5): a light
    # indexer scores every cached token for each query and the attention reads only the
    # `sparse_attention_topk` best; every token's indexer key is cached beside its KV.
    sparse_attention_topk: Positions | None = None
    indexer_heads: Dim | None = None
    indexer_head_dim: Dim | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        self._check_attention()
        self._check_ffn()
        self._check_window()
        self._check_linear()
        self._check_sparse()
        return self

    def _check_sparse(self) -> None:
        given = [f for f in _SPARSE_FIELDS if getattr(self, f) is not None]
        if not given:
            return
        missing = [f for f in _SPARSE_FIELDS if getattr(self, f) is None]
        if missing:
            raise ValueError(f"sparse attention needs {', '.join(missing)} too")
        if self.sliding_window is not None or self.linear_attention_layers:
            raise ValueError("sparse attention cannot be combined with sliding_window or linear_attention_layers")

    def _check_linear(self) -> None:
        given = [f for f in _LINEAR_FIELDS if getattr(self, f) is not None]
        if not self.linear_attention_layers:
            if given:
                raise ValueError(f"{', '.join(given)} only apply with linear_attention_layers > 0")
            return
        missing = [f for f in _LINEAR_FIELDS if getattr(self, f) is None]
        if missing:
            raise ValueError(f"linear_attention_layers needs {', '.join(missing)}")
        if self.linear_attention_layers >= self.layers:
            raise ValueError(
                f"linear_attention_layers ({self.linear_attention_layers}) must leave at least one of the "
                f"{self.layers} layers with full attention")
        if self.sliding_window is not None:
            raise ValueError("a model with linear-attention layers cannot also give sliding_window; give one of them")

    def _check_attention(self) -> None:
        mla_given = [f for f in (*_MLA_FIELDS, "mla_q_lora_rank") if getattr(self, f) is not None]
        if self.attention == "mla":
            missing = [f for f in _MLA_FIELDS if getattr(self, f) is None]
            if missing:
                raise ValueError(f"attention 'mla' needs {', '.join(missing)}")
            if self.head_dim is not None:
                raise ValueError("attention 'mla' takes mla_* dimensions, not head_dim; remove head_dim")
            return
        if mla_given:
            raise ValueError(f"{', '.join(mla_given)} only apply to attention 'mla' (this model is {self.attention!r})")
        if self.head_dim is None:
            raise ValueError(f"attention {self.attention!r} needs head_dim")
        if self.attention == "mha" and self.n_kv_heads != self.n_heads:
            raise ValueError(
                f"attention 'mha' has n_kv_heads == n_heads (got {self.n_kv_heads} vs {self.n_heads}); use 'gqa'"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")

    def _check_ffn(self) -> None:
        if self.dense_layers > self.layers:
            raise ValueError(f"dense_layers ({self.dense_layers}) cannot exceed layers ({self.layers})")
        if self.dense_layers > 0 and self.intermediate is None:
            raise ValueError("dense_layers > 0 needs intermediate (the dense FFN width)")
        moe_given = [f for f in _MOE_FIELDS if getattr(self, f) is not None]
        if not moe_given:
            if self.dense_layers != self.layers:
                raise ValueError(
                    f"a dense model has dense_layers == layers ({self.layers}); for MoE give {', '.join(_MOE_FIELDS)}"
                )
            if self.n_shared_experts:
                raise ValueError("n_shared_experts needs a MoE model (give moe_intermediate, n_routed_experts, top_k)")
            return
        missing = [f for f in _MOE_FIELDS if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a MoE model needs {', '.join(missing)} too")
        if self.top_k > self.n_routed_experts:  # type: ignore[operator]
            raise ValueError(f"top_k ({self.top_k}) cannot exceed n_routed_experts ({self.n_routed_experts})")
        if self.dense_layers == self.layers:
            raise ValueError("a MoE model needs at least one MoE layer (dense_layers < layers)")

    def _check_window(self) -> None:
        if (self.sliding_window is None) != (self.sliding_window_layer_fraction is None):
            raise ValueError("sliding_window and sliding_window_layer_fraction go together; give both or neither")
        if self.sliding_window_layer_fraction is not None:
            n = self.layers * self.sliding_window_layer_fraction
            if abs(n - round(n)) > 1e-6:
                raise ValueError(
                    f"sliding_window_layer_fraction x layers must be a whole number of layers (got {n:g})"
                )

    # --- structure ----------------------------------------------------------------------

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts is not None

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.is_moe else 0

    def attention_layers_window(self) -> int:
        if self.sliding_window_layer_fraction is None:
            return 0
        return round(self.layers * self.sliding_window_layer_fraction)

    def attention_layers_full(self) -> int:
        return self.layers - self.attention_layers_window()

    @property
    def softmax_attention_layers(self) -> int:
        """Layers with a KV cache (all of them but the linear-attention ones)."""
        return self.layers - self.linear_attention_layers

    # --- parameter counts ---------------------------------------------------------------

    @property
    def attention_params_per_layer(self) -> float:
        h, nh = self.hidden, self.n_heads
        if self.attention == "mla":
            qk_dim = self.mla_qk_nope_dim + self.mla_rope_dim  # type: ignore[operator]
            if self.mla_q_lora_rank is None:
                q = h * nh * qk_dim
            else:
                q = h * self.mla_q_lora_rank + self.mla_q_lora_rank * nh * qk_dim
            kv_a = h * (self.mla_kv_lora_rank + self.mla_rope_dim)  # type: ignore[operator]
            kv_b = self.mla_kv_lora_rank * nh * (self.mla_qk_nope_dim + self.mla_v_head_dim)  # type: ignore[operator]
            o = nh * self.mla_v_head_dim * h  # type: ignore[operator]
            return float(q + kv_a + kv_b + o) + self.indexer_params_per_layer
        q_width = nh * self.head_dim  # type: ignore[operator]
        kv_width = self.n_kv_heads * self.head_dim  # type: ignore[operator]
        gate = q_width if self.attention_output_gate else 0
        return float(h * (q_width + gate) + 2 * h * kv_width + q_width * h) + self.indexer_params_per_layer

    @property
    def indexer_params_per_layer(self) -> float:
        """Sparse attention's indexer: its queries (from the query latent where there is one),
        one shared key and a weight per head."""
        if self.sparse_attention_topk is None:
            return 0.0
        width = self.indexer_heads * self.indexer_head_dim  # type: ignore[operator]
        q_in = self.mla_q_lora_rank or self.hidden
        return float(q_in * width + self.hidden * self.indexer_head_dim + self.hidden * self.indexer_heads)  # type: ignore[operator]

    @property
    def indexer_flops_per_key(self) -> float:
        """Indexer score of one query against one cached token, all layers (2 FLOPs per multiply-add)."""
        if self.sparse_attention_topk is None:
            return 0.0
        return float(2 * self.indexer_heads * self.indexer_head_dim * self.softmax_attention_layers)  # type: ignore[operator]

    @property
    def linear_attention_params_per_layer(self) -> float:
        """Gated DeltaNet: q, k (key heads), v, z gate (value heads), beta and alpha per value head,
        the short convolution over q, k, v, and the output projection."""
        if not self.linear_attention_layers:
            return 0.0
        h = self.hidden
        qk = self.linear_key_heads * self.linear_key_head_dim  # type: ignore[operator]
        v = self.linear_value_heads * self.linear_value_head_dim  # type: ignore[operator]
        projections = h * (2 * qk + 2 * v + 2 * self.linear_value_heads)  # type: ignore[operator]
        conv = (2 * qk + v) * self.linear_conv_kernel  # type: ignore[operator]
        return float(projections + conv + v * h)

    @property
    def attention_params(self) -> float:
        """Token-mixing weights of all layers: full attention and linear attention."""
        return (self.softmax_attention_layers * self.attention_params_per_layer
                + self.linear_attention_layers * self.linear_attention_params_per_layer)

    @property
    def dense_ffn_params_per_layer(self) -> float:
        """SwiGLU: gate, up and down matrices."""
        if self.dense_layers == 0 or self.intermediate is None:
            return 0.0
        return float(3 * self.hidden * self.intermediate)

    @property
    def expert_params(self) -> float:
        """One routed (or shared) expert, a SwiGLU of width moe_intermediate."""
        return float(3 * self.hidden * self.moe_intermediate) if self.is_moe else 0.0  # type: ignore[operator]

    @property
    def routed_expert_gparams_per_layer(self) -> float:
        """Billions of parameters in one MoE layer's routed experts (all of them, however they are
        sharded): the size the stack's per-size MoE prefill costs scale with."""
        return self.n_routed_experts * self.expert_params / 1e9 if self.is_moe else 0.0  # type: ignore[operator]

    @property
    def shared_expert_params_per_layer(self) -> float:
        return self.n_shared_experts * self.expert_params

    @property
    def router_params_per_layer(self) -> float:
        return float(self.hidden * self.n_routed_experts) if self.is_moe else 0.0  # type: ignore[operator]

    @property
    def embedding_params(self) -> float:
        return float(self.vocab * self.hidden)

    @property
    def lm_head_params(self) -> float:
        """Always a matmul per token, even when its weights are tied to the embedding."""
        return float(self.vocab * self.hidden)

    @property
    def routed_expert_params(self) -> float:
        return self.moe_layers * (self.n_routed_experts or 0) * self.expert_params

    @property
    def dense_params(self) -> float:
        """Everything but routed experts: the weights that expert parallelism cannot spread out."""
        per_moe_layer = self.shared_expert_params_per_layer + self.router_params_per_layer
        head = 0.0 if self.tie_word_embeddings else self.lm_head_params
        return (
            self.attention_params
            + self.dense_layers * self.dense_ffn_params_per_layer
            + self.moe_layers * per_moe_layer
            + self.embedding_params
            + head
        )

    @property
    def total_params(self) -> float:
        """Excludes multi-token-prediction modules, as published totals do."""
        return self.dense_params + self.routed_expert_params

    @property
    def active_params_per_token(self) -> float:
        """Weights multiplied per token; the embedding lookup is not a matmul."""
        per_moe_layer = (
            self.shared_expert_params_per_layer
            + (self.top_k or 0) * self.expert_params
            + self.router_params_per_layer
        )
        return (
            self.attention_params
            + self.dense_layers * self.dense_ffn_params_per_layer
            + self.moe_layers * per_moe_layer
            + self.lm_head_params
        )

    # --- KV cache -----------------------------------------------------------------------

    @property
    def kv_elements_per_token_per_layer(self) -> int:
        """Cached elements per token per layer (a sparse model's indexer key included)."""
        indexer = self.indexer_head_dim or 0
        if self.attention == "mla":
            return self.mla_kv_lora_rank + self.mla_rope_dim + indexer  # type: ignore[operator]
        return 2 * self.n_kv_heads * self.head_dim + indexer  # type: ignore[operator]

    def kv_bytes_per_token(self, kv_bytes_per_element: float) -> float:
        """All layers with a KV cache, window layers counted in full; kv_bytes_for_context applies the cap."""
        return float(self.softmax_attention_layers * self.kv_elements_per_token_per_layer * kv_bytes_per_element)

    @property
    def linear_state_bytes_per_seq(self) -> float:
        """The linear-attention layers' state of one sequence, whatever its length: a key x value
        matrix per value head (FP32) and the convolution's last kernel - 1 inputs (BF16)."""
        if not self.linear_attention_layers:
            return 0.0
        qk = self.linear_key_heads * self.linear_key_head_dim  # type: ignore[operator]
        conv = (2 * qk + self.linear_value_heads * self.linear_value_head_dim) * (self.linear_conv_kernel - 1)  # type: ignore[operator]
        return float(self.linear_attention_layers
                     * (self._linear_state_elements * LINEAR_STATE_BYTES + conv * LINEAR_CONV_STATE_BYTES))

    @property
    def _linear_state_elements(self) -> int:
        """One linear-attention layer's recurrent state: a key x value matrix per value head."""
        return self.linear_value_heads * self.linear_key_head_dim * self.linear_value_head_dim  # type: ignore[operator]

    @property
    def linear_attention_flops_per_token(self) -> float:
        """Gated delta rule per token, all linear layers: decay and rank-1 update of each value
        head's state, and its read-out (about 6 multiply-adds per state element)."""
        if not self.linear_attention_layers:
            return 0.0
        return float(self.linear_attention_layers * 2 * 6 * self._linear_state_elements)

    def attended_context(self, context_tokens: ArrayOrFloat) -> ArrayOrFloat:
        """Mean over layers of the tokens a query attends to: window layers see at most the window."""
        window_layers = self.attention_layers_window()
        if window_layers == 0:
            return context_tokens
        ctx = np.asarray(context_tokens, dtype=float)
        capped = np.minimum(ctx, float(self.sliding_window))  # type: ignore[arg-type]
        mean = (self.attention_layers_full() * ctx + window_layers * capped) / self.layers
        return mean if mean.ndim else float(mean)  # type: ignore[return-value]

    def kv_bytes_for_context(self, context_tokens: ArrayOrFloat, kv_bytes_per_element: float) -> ArrayOrFloat:
        """KV bytes one sequence holds at this context length (window layers keep only the window)."""
        return self.kv_bytes_per_token(kv_bytes_per_element) * self.attended_context(context_tokens)

    # --- attention FLOPs per query token per attended context token, all layers ---------

    @property
    def attn_flops_per_token_per_ctx_prefill(self) -> float:
        """QK^T plus AV, 2 FLOPs per multiply-add. MLA prefill runs non-absorbed (per-head K/V)."""
        if self.attention == "mla":
            qk = self.mla_qk_nope_dim + self.mla_rope_dim  # type: ignore[operator]
            per_layer = 2 * self.n_heads * qk + 2 * self.n_heads * self.mla_v_head_dim  # type: ignore[operator]
        else:
            per_layer = 4 * self.n_heads * self.head_dim  # type: ignore[operator]
        return float(per_layer * self.softmax_attention_layers)

    @property
    def attn_flops_per_token_per_ctx_decode(self) -> float:
        """MLA decode runs absorbed: attention over the latent, which is cheaper to read, dearer to compute."""
        if self.attention != "mla":
            return self.attn_flops_per_token_per_ctx_prefill
        latent = self.mla_kv_lora_rank + self.mla_rope_dim  # type: ignore[operator]
        per_layer = 2 * self.n_heads * latent + 2 * self.n_heads * self.mla_kv_lora_rank  # type: ignore[operator]
        return float(per_layer * self.softmax_attention_layers)


def load_model(name_or_path: str | Path) -> ModelSpec:
    """A catalog model by name (e.g. 'deepseek_r1') or a user's model YAML by path."""
    return load("model", name_or_path, ModelSpec)


def list_models() -> list[ModelSpec]:
    return [load_model(n) for n in builtin_names("model")]
