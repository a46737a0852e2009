from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.catalog import builtin_path
from factory_sim.config.model import list_models, load_model
from factory_sim.errors import ConfigError
from factory_sim.results.tables import models_table

CATALOG = [
    "deepseek_r1",
    "deepseek_v3_2",
    "glm_5",
    "gpt_oss_120b",
    "kimi_k2",
    "llama2_70b",
    "llama2_7b",
    "llama3_1_405b",
    "llama3_1_70b",
    "llama3_1_8b",
    "llama3_3_70b",
    "minimax_m2_5",
    "qwen3_235b_a22b",
    "qwen3_32b",
    "qwen3_5_397b_a17b",
]

# Published "active" figures for dense models equal the total, so they count the input
# embedding, which is a lookup rather than a matmul. Only the 8B model's embedding is big
# enough (6.5%) to leave the 5% band; for it, active + embedding must match instead.
ACTIVE_COUNTS_EMBEDDING = {"llama3_1_8b"}


def builtin_dict(name: str) -> dict:
    text = builtin_path("model", name).read_text()
    return yaml.safe_load(text)


def write_model(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "my_model.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_catalog_loads_and_is_named_after_its_files():
    models = list_models()
    assert [m.name for m in models] == CATALOG
    assert load_model("deepseek_r1") is load_model("deepseek_r1")


def test_deepseek_r1_counts():
    m = load_model("deepseek_r1")
    assert m.is_moe and m.moe_layers == 58
    attention = 7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * 256 + 128 * 128 * 7168
    assert m.attention_params_per_layer == attention == 187_105_280
    assert m.expert_params == 3 * 7168 * 2048
    assert m.dense_ffn_params_per_layer == 3 * 7168 * 18432
    assert m.router_params_per_layer == 7168 * 256
    assert m.total_params == pytest.approx(671e9, rel=0.02)
    assert m.active_params_per_token == pytest.approx(36.6e9, rel=0.05)
    assert m.total_params == pytest.approx(m.dense_params + m.routed_expert_params)
    assert m.routed_expert_params == 58 * 256 * 3 * 7168 * 2048
    assert m.kv_elements_per_token_per_layer == 576
    assert m.kv_bytes_per_token(1.0) == 61 * 576
    assert m.attn_flops_per_token_per_ctx_prefill == 61 * (2 * 128 * 192 + 2 * 128 * 128)
    assert m.attn_flops_per_token_per_ctx_decode == 61 * (2 * 128 * 576 + 2 * 128 * 512)
    assert (m.attention_layers_full(), m.attention_layers_window()) == (61, 0)
    assert m.mtp_layers == 1


def test_llama3_1_70b_counts():
    m = load_model("llama3_1_70b")
    assert not m.is_moe and m.moe_layers == 0 and m.expert_params == 0
    per_layer = 2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672
    assert m.total_params == 80 * per_layer + 2 * 128256 * 8192
    assert m.total_params == pytest.approx(70.6e9, rel=0.01)
    assert m.dense_params == m.total_params and m.routed_expert_params == 0
    assert m.active_params_per_token == m.total_params - 128256 * 8192
    assert m.kv_bytes_per_token(2.0) == 80 * 2 * 8 * 128 * 2 == 327_680
    assert m.attn_flops_per_token_per_ctx_prefill == m.attn_flops_per_token_per_ctx_decode == 4 * 64 * 128 * 80


def test_qwen3_32b_counts():
    m = load_model("qwen3_32b")
    assert not m.is_moe and m.moe_layers == 0
    # GQA with head_dim 128: the query width 64 x 128 = 8192 exceeds hidden 5120
    attention = 5120 * 8192 + 2 * 5120 * 8 * 128 + 8192 * 5120
    assert m.attention_params_per_layer == attention
    assert m.total_params == 64 * (attention + 3 * 5120 * 25600) + 2 * 151936 * 5120
    # model card (huggingface.co/Qwen/Qwen3-32B): 32.8B parameters, 31.2B non-embedding, i.e.
    # without the input embedding and the LM head; the config counts 32.76B and 31.21B
    assert m.total_params == pytest.approx(32.8e9, rel=0.005)
    assert m.total_params - m.embedding_params - m.lm_head_params == pytest.approx(31.2e9, rel=0.005)
    assert m.active_params_per_token == m.total_params - m.embedding_params
    assert m.kv_bytes_per_token(2.0) == 64 * 2 * 8 * 128 * 2 == 262_144


def test_minimax_m2_5_counts():
    m = load_model("minimax_m2_5")
    assert m.is_moe and m.moe_layers == 62 and m.dense_layers == 0 and m.n_shared_experts == 0
    attention = 3072 * 6144 + 2 * 3072 * 8 * 128 + 6144 * 3072
    assert m.attention_params_per_layer == attention
    assert m.expert_params == 3 * 3072 * 1536
    assert m.routed_expert_params == 62 * 256 * 3 * 3072 * 1536
    # published "230B total, 10B active" (rounded); the config counts 228.7B and 10.4B
    assert m.total_params == pytest.approx(230e9, rel=0.01)
    assert m.active_params_per_token == pytest.approx(10e9, rel=0.05)
    # the released checkpoint's safetensors count, 228.70B, is the main model plus norms and
    # FP8 block scales (about 15M): it holds no MTP module, so none is modelled
    assert m.total_params == pytest.approx(228.70e9, rel=1e-3)
    assert m.mtp_layers == 0
    # the vLLM deployment guide asks 240 GB per 1M context tokens: 62 x 2 x 8 x 128 BF16
    # elements = 253,952 bytes a token, 236.5 GiB per million
    assert m.kv_bytes_per_token(2.0) == 253_952
    assert m.kv_bytes_per_token(2.0) * 1e6 / 2**30 == pytest.approx(240, rel=0.02)


def test_qwen3_5_counts_its_linear_attention_layers_apart():
    """45 Gated DeltaNet layers hold a fixed state per sequence; only the 15 gated-attention
    layers hold KV."""
    m = load_model("qwen3_5_397b_a17b")
    assert (m.softmax_attention_layers, m.linear_attention_layers, m.moe_layers) == (15, 45, 60)
    gated = 4096 * 2 * 32 * 256 + 2 * 4096 * 2 * 256 + 32 * 256 * 4096  # q and its gate, k, v, o
    assert m.attention_params_per_layer == gated
    qk, v = 16 * 128, 64 * 128
    linear = 4096 * (2 * qk + 2 * v + 2 * 64) + (2 * qk + v) * 4 + v * 4096
    assert m.linear_attention_params_per_layer == linear
    assert m.attention_params == 15 * gated + 45 * linear
    assert m.kv_bytes_per_token(1.0) == 15 * 2 * 2 * 256
    # FP32 recurrent state (64 value heads of 128 x 128) and BF16 convolution window (kernel 4)
    assert m.linear_state_bytes_per_seq == 45 * (64 * 128 * 128 * 4 + (2 * qk + v) * 3 * 2)
    assert m.linear_state_bytes_per_seq == pytest.approx(192.06e6, rel=1e-4)
    # attention math only in the full-attention layers
    assert m.attn_flops_per_token_per_ctx_prefill == 4 * 32 * 256 * 15
    dense = load_model("qwen3_235b_a22b")
    assert dense.linear_state_bytes_per_seq == 0.0 and dense.linear_attention_params_per_layer == 0.0


def test_glm_5_caches_its_indexer_key_beside_the_latent():
    """DeepSeek Sparse Attention caches one indexer key (128 elements) per token per layer on top
    of MLA's 576, and its indexer weights count as attention weights."""
    m = load_model("glm_5")
    assert m.kv_elements_per_token_per_layer == 512 + 64 + 128
    indexer = 2048 * 32 * 128 + 6144 * 128 + 6144 * 32  # queries from the q latent, one key, head weights
    assert m.indexer_params_per_layer == indexer
    assert m.total_params == pytest.approx(744e9, rel=0.002)
    # the indexer scores a key at 2 x 32 x 128 FLOPs per layer, 1/17 of absorbed MLA decode's
    assert m.indexer_flops_per_key == 2 * 32 * 128 * 78
    assert m.indexer_flops_per_key / m.attn_flops_per_token_per_ctx_decode == pytest.approx(8192 / 139264)
    assert load_model("deepseek_r1").indexer_params_per_layer == 0.0
    # DeepSeek-V3.2 is DeepSeek-V3 with a 64-head indexer: the same weights but for it
    v32, r1 = load_model("deepseek_v3_2"), load_model("deepseek_r1")
    indexer = 1536 * 64 * 128 + 7168 * 128 + 7168 * 64
    assert v32.total_params - r1.total_params == pytest.approx(61 * indexer)
    assert v32.kv_elements_per_token_per_layer == r1.kv_elements_per_token_per_layer + 128


def test_gpt_oss_window_caps_kv():
    m = load_model("gpt_oss_120b")
    assert (m.attention_layers_full(), m.attention_layers_window()) == (18, 18)
    assert m.kv_elements_per_token_per_layer == 2 * 8 * 64
    assert m.kv_bytes_per_token(1.0) == 36 * 1024
    # Below the window every layer holds every token; above it half the layers stop at 128.
    assert m.kv_bytes_for_context(100.0, 1.0) == 36 * 1024 * 100
    assert m.kv_bytes_for_context(1000.0, 1.0) == 18 * 1024 * 1000 + 18 * 1024 * 128
    ctx = np.array([[100.0, 1000.0], [128.0, 4096.0]])
    out = m.kv_bytes_for_context(ctx, 2.0)
    assert out.shape == (2, 2)
    assert out[0, 1] == 2 * (18 * 1024 * 1000 + 18 * 1024 * 128)
    assert m.attended_context(1000.0) == (18 * 1000 + 18 * 128) / 36


def test_no_window_passes_context_through():
    m = load_model("llama3_1_8b")
    ctx = np.array([1.0, 10_000.0])
    np.testing.assert_array_equal(m.kv_bytes_for_context(ctx, 1.0), ctx * 32 * 2 * 8 * 128)


@pytest.mark.parametrize("name", CATALOG)
def test_catalog_within_published_tolerances(name: str):
    m = load_model(name)
    assert m.total_params == pytest.approx(m.published_total_params_b * 1e9, rel=0.03)
    assert m.total_params == pytest.approx(m.dense_params + m.routed_expert_params)
    if name in ACTIVE_COUNTS_EMBEDDING:
        counted = m.active_params_per_token + m.embedding_params
        assert counted == pytest.approx(m.published_active_params_b * 1e9, rel=0.01)
    else:
        assert m.active_params_per_token == pytest.approx(m.published_active_params_b * 1e9, rel=0.05)


def test_mla_models_hold_576_kv_elements():
    assert load_model("kimi_k2").kv_elements_per_token_per_layer == 576


@given(
    name=st.sampled_from(CATALOG),
    ctx=st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=20),
)
def test_kv_for_context_is_vectorized_monotone_and_bounded(name: str, ctx: list[float]):
    m = load_model(name)
    arr = np.sort(np.array(ctx))
    out = m.kv_bytes_for_context(arr, 1.0)
    assert np.all(np.diff(out) >= 0)
    assert np.all(out <= m.kv_bytes_per_token(1.0) * arr * (1 + 1e-12))
    assert [m.kv_bytes_for_context(float(c), 1.0) for c in arr] == pytest.approx(list(out))


def test_unknown_model_suggests_closest():
    with pytest.raises(ConfigError) as info:
        load_model("deepseek")
    assert info.value.path == "model"
    assert "did you mean 'deepseek_r1'" in info.value.message
    assert "llama3_1_70b" in info.value.message


def test_user_model_from_path(tmp_path: Path):
    data = builtin_dict("llama3_1_8b") | {"name": "tiny", "layers": 2, "dense_layers": 2, "vocab": 1000}
    m = load_model(str(write_model(tmp_path, data)))
    per_layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336
    assert m.total_params == 2 * per_layer + 2 * 1000 * 4096


def test_tied_embeddings_count_once(tmp_path: Path):
    untied = load_model("llama3_1_8b")
    tied = load_model(str(write_model(tmp_path, builtin_dict("llama3_1_8b") | {"tie_word_embeddings": True})))
    assert untied.total_params - tied.total_params == 128256 * 4096
    assert tied.active_params_per_token == untied.active_params_per_token


@pytest.mark.parametrize(
    ("base", "change", "needle"),
    [
        ("deepseek_r1", {"mla_rope_dim": None}, "mla_rope_dim"),
        ("deepseek_r1", {"head_dim": 128}, "head_dim"),
        ("llama3_1_70b", {"mla_kv_lora_rank": 512}, "only apply to attention 'mla'"),
        ("llama3_1_70b", {"head_dim": None}, "needs head_dim"),
        ("llama3_1_70b", {"n_kv_heads": 6}, "multiple of n_kv_heads"),
        ("llama3_1_70b", {"attention": "mha"}, "n_kv_heads == n_heads"),
        ("llama3_1_70b", {"dense_layers": 79}, "dense model"),
        ("deepseek_r1", {"top_k": 300}, "top_k (300) cannot exceed"),
        ("deepseek_r1", {"dense_layers": 62}, "cannot exceed layers"),
        ("deepseek_r1", {"moe_intermediate": None}, "moe_intermediate"),
        ("gpt_oss_120b", {"sliding_window_layer_fraction": None}, "give both or neither"),
        ("gpt_oss_120b", {"sliding_window_layer_fraction": 0.3}, "whole number of layers"),
        ("llama3_1_70b", {"hidden": -8192}, "model.hidden"),
        ("llama3_1_70b", {"n_layers": 80}, "model.n_layers"),
        ("qwen3_5_397b_a17b", {"linear_conv_kernel": None}, "needs linear_conv_kernel"),
        ("qwen3_5_397b_a17b", {"linear_attention_layers": 60}, "at least one of the 60 layers"),
        ("qwen3_5_397b_a17b", {"linear_attention_layers": 0}, "only apply with linear_attention_layers"),
        ("qwen3_5_397b_a17b", {"sliding_window": 128, "sliding_window_layer_fraction": 0.25}, "give one of them"),
        ("glm_5", {"indexer_heads": None}, "sparse attention needs indexer_heads"),
        ("glm_5", {"sliding_window": 128, "sliding_window_layer_fraction": 0.5}, "cannot be combined"),
    ],
)
def test_inconsistent_architecture_is_a_config_error(tmp_path: Path, base: str, change: dict, needle: str):
    data = {k: v for k, v in (builtin_dict(base) | change).items() if v is not None}
    path = write_model(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_model(str(path))
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_models_table():
    table = models_table().set_index("name")
    assert list(table.index) == CATALOG
    assert table.loc["deepseek_r1", "kv_bytes_per_token_fp8"] == 61 * 576
    assert table.loc["llama3_1_70b", "kv_bytes_per_token_bf16"] == 327_680
    assert table.loc["deepseek_r1", "experts"] == 256 and table.loc["deepseek_r1", "top_k"] == 8
    assert table.loc["deepseek_r1", "total_params_b"] == pytest.approx(671, rel=0.02)
    assert table.loc["deepseek_r1", "state_mb_per_seq"] == 0.0
    assert table.loc["qwen3_5_397b_a17b", "state_mb_per_seq"] == pytest.approx(192.06, rel=1e-4)
