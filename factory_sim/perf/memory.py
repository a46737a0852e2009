"""Memory model: weights per GPU under the parallelism, and the KV cache that is left.

The KV capacity bounds how many tokens a replica can hold at once, which is what admission
in the event loop respects. A configuration whose weights do not fit is refused here, with
the shortfall in GB, before any simulation starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factory_sim.errors import ConfigError
from factory_sim.perf.shape import BYTES_PER_ELEMENT, ReplicaShape

EMBEDDING_BYTES_PER_ELEMENT = BYTES_PER_ELEMENT["bf16"]  # embeddings and LM head stay BF16


@dataclass(frozen=True)
class MemoryBudget:
    """Bytes per GPU (the busiest GPU of the replica) and the replica's KV budget."""

    attention_weight_bytes_per_gpu: float
    dense_ffn_weight_bytes_per_gpu: float
    expert_weight_bytes_per_gpu: float
    embedding_weight_bytes_per_gpu: float
    usable_bytes_per_gpu: float
    kv_bytes_per_gpu: float
    kv_capacity_bytes: float  # whole replica, all copies included
    kv_bytes_per_token: float  # whole replica, all copies included, at full attention
    # linear-attention state of one sequence, whole replica, whatever its length (0: none)
    state_bytes_per_seq: float = 0.0

    @property
    def weight_bytes_per_gpu(self) -> float:
        return (
            self.attention_weight_bytes_per_gpu
            + self.dense_ffn_weight_bytes_per_gpu
            + self.expert_weight_bytes_per_gpu
            + self.embedding_weight_bytes_per_gpu
        )

    @property
    def max_tokens(self) -> int:
        """Concurrent full-attention tokens the replica's KV cache holds."""
        return int(self.kv_capacity_bytes // self.kv_bytes_per_token)

    def sequences_fitting(self, context_tokens: float) -> int:
        """Sequences of this context the KV budget holds, linear-attention state included."""
        return int(self.kv_capacity_bytes // (self.kv_bytes_per_token * context_tokens + self.state_bytes_per_seq))


def plan_memory(shape: ReplicaShape) -> MemoryBudget:
    """Weights and KV per GPU; raises ConfigError if the weights leave no room for KV."""
    m, hw, st = shape.model, shape.hardware, shape.stack
    layers_per_stage = np.ceil(m.layers / shape.pp)
    dense_layers_per_stage = min(m.dense_layers, layers_per_stage)
    moe_layers_per_stage = min(m.moe_layers, layers_per_stage)

    # a hybrid model's linear-attention layers are spread evenly over the stages (3 of every 4)
    linear_share = m.linear_attention_layers / m.layers
    attention = (m.attention_params_per_layer * layers_per_stage * (1.0 - linear_share)
                 + m.linear_attention_params_per_layer * layers_per_stage * linear_share
                 ) / shape.tp * shape.attention_bytes_per_element
    # Dense FFN, shared experts and router are split over all GPUs of a stage.
    dense_ffn = (
        (m.dense_ffn_params_per_layer * dense_layers_per_stage)
        + (m.shared_expert_params_per_layer + m.router_params_per_layer) * moe_layers_per_stage
    ) / shape.stage_gpus * shape.weight_bytes_per_element
    experts = (
        shape.experts_per_gpu * m.expert_params / shape.moe_tp * moe_layers_per_stage * shape.weight_bytes_per_element
    )
    # Vocabulary-parallel over TP; the first stage holds the embedding, the last the head.
    embedding = max(m.embedding_params, m.lm_head_params) / shape.tp * EMBEDDING_BYTES_PER_ELEMENT
    if shape.pp == 1:
        embedding = (m.embedding_params + m.lm_head_params) / shape.tp * EMBEDDING_BYTES_PER_ELEMENT

    # As TensorRT-LLM sizes it: weights and the activation reserve first, then the KV cache
    # takes `hbm_utilization` of what is left (its free_gpu_memory_fraction).
    usable = hw.hbm_bytes - st.activation_reserve_gb * 1e9
    weights = attention + dense_ffn + experts + embedding
    free = usable - weights
    kv_per_gpu = free * st.hbm_utilization
    kv_per_token = float(m.kv_bytes_per_token(shape.kv_bytes_per_element)) * shape.kv_replication
    if free <= 0:
        raise ConfigError(
            shape.path,
            f"{m.name} at {shape.precision} does not fit on {shape.describe()}: weights need "
            f"{weights / 1e9:.1f} GB per GPU but only {usable / 1e9:.1f} GB is usable "
            f"({hw.hbm_gb:g} GB HBM minus {st.activation_reserve_gb:g} GB for activations), "
            f"short by {-free / 1e9:.1f} GB per GPU; use more GPUs per replica (tp/ep/pp) or a smaller precision",
        )
    plan = MemoryBudget(
        attention_weight_bytes_per_gpu=float(attention),
        dense_ffn_weight_bytes_per_gpu=float(dense_ffn),
        expert_weight_bytes_per_gpu=float(experts),
        embedding_weight_bytes_per_gpu=float(embedding),
        usable_bytes_per_gpu=float(usable),
        kv_bytes_per_gpu=float(kv_per_gpu),
        kv_capacity_bytes=float(kv_per_gpu * shape.gpus),
        kv_bytes_per_token=kv_per_token,
        state_bytes_per_seq=replica_state_bytes(shape),
    )
    return plan


def replica_state_bytes(shape: ReplicaShape) -> float:
    """Linear-attention state one sequence holds across the replica: split over the TP ranks
    by head, never copied, and the same at any context length."""
    return shape.model.linear_state_bytes_per_seq


def replica_kv_bytes(shape: ReplicaShape, context_tokens) -> np.ndarray:
    """KV bytes a sequence of this context occupies across the replica (copies included);
    a hybrid model's sequences hold replica_state_bytes on top."""
    per_copy = shape.model.kv_bytes_for_context(np.asarray(context_tokens, dtype=float), shape.kv_bytes_per_element)
    return per_copy * shape.kv_replication
