"""Validation against measured deployments: exact deployments, analytic single-client check, skips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.cli import main
from factory_sim.fidelity import measured, mlperf
from factory_sim.fidelity.deployments import Skip
from factory_sim.fidelity.measured import deployment, load_points, predict, spread_lengths, validate_points
from factory_sim.fidelity.mlperf import benchmark
from factory_sim.perf.steptime import StepTimeModel, prefill_attention_pairs

BASE = {"id": "r1", "system": "h100_sxm", "model": "llama3_1_8b", "hf_model": "x", "backend": "trtllm",
        "backend_version": "1", "precision": "fp8", "gemm_quant": "fp8", "moe_quant": "fp8", "mode": "agg",
        "isl": 512, "osl": 64, "concurrency": 1, "batch_size": 1, "tp_size": 1, "pp_size": 1,
        "attention_dp_size": np.nan, "moe_tp_size": 1, "moe_ep_size": np.nan, "ttft_ms": 50.0, "tpot_ms": 5.0}


def test_one_client_matches_the_step_time_model_exactly(monkeypatch):
    """With one client there is no queueing: TTFT is the front-end plus one prefill step, TPOT
    the mean decode step (at the row's exact output length)."""
    monkeypatch.setattr(measured, "OUTPUT_LENGTH_SPREAD", 0.0)
    ttft_ms, tpot_ms, config = predict(BASE)
    shape = deployment(BASE).fleet.pools[0].shape
    m = StepTimeModel(shape)
    prefill = m.step_time_s(prefill_tokens=512.0, prefill_attn_pairs=float(prefill_attention_pairs(shape, 512, 0)),
                            prefill_seqs=1.0)
    decode = [m.step_time_s(decode_seqs=1.0, decode_ctx_tokens=float(512 + g)) for g in range(1, 64)]
    assert ttft_ms == pytest.approx((shape.stack.frontend_latency_s + prefill) * 1e3, rel=1e-9)
    assert tpot_ms == pytest.approx(np.mean(decode) * 1e3, rel=1e-9)
    assert "TP1" in config and "c=1" in config


def test_rows_that_cannot_be_scored_say_why():
    rows = pd.DataFrame([
        BASE,
        {**BASE, "id": "r2", "model": "acme/Unreleased-2T"},
        {**BASE, "id": "r3", "mode": "disagg"},
        {**BASE, "id": "r4", "system": "tpu_v9"},
        {**BASE, "id": "r5", "model": "llama3_1_405b"},
        {**BASE, "id": "r6", "concurrency": np.nan},
        {**BASE, "id": "r7", "moe_quant": "awq_int3", "gemm_quant": "awq_int3"},
        {**BASE, "id": "r8", "tp_size": 36},
    ])
    res = validate_points(rows, jobs=1)
    reasons = res.set_index("id")["skipped"]
    assert reasons["r2"] == "model 'acme/Unreleased-2T' is not in the catalog"
    assert "worker counts" in reasons["r3"]
    assert "no hardware profile" in reasons["r4"]
    assert "does not fit" in reasons["r5"]
    assert "concurrency" in reasons["r6"]
    assert reasons["r7"] == "quantization 'awq_int3' is not modelled"
    assert reasons["r8"].startswith("tp_size 36 does not divide the model's 32 attention heads")
    scored = res[res["id"] == "r1"].set_index("quantity")
    assert set(scored.index) == {"ttft_ms", "tpot_ms"}
    for q in ("ttft_ms", "tpot_ms"):
        row = scored.loc[q]
        assert row.rel_error == pytest.approx((row.predicted - row.published) / row.published)


def test_disaggregated_row_builds_both_pools():
    row = {**BASE, "mode": "disagg", "model": "deepseek_v3", "system": "gb200_nvl72", "precision": "fp4",
           "gemm_quant": "nvfp4", "moe_quant": "nvfp4", "concurrency": 64, "isl": 1024, "osl": 128,
           "prefill_num_workers": 2, "prefill_tp_size": 4, "prefill_moe_ep_size": 4, "prefill_batch_size": 2,
           "decode_num_workers": 1, "decode_tp_size": 1, "decode_attention_dp_size": 8, "decode_moe_ep_size": 8,
           "decode_batch_size": 8}
    dep = deployment(row)
    prefill, decode = dep.fleet.pools
    assert (prefill.replicas, prefill.shape.gpus, prefill.shape.ep) == (2, 4, 4)
    assert (decode.replicas, decode.shape.gpus, decode.shape.dp_attention, decode.shape.ep) == (1, 8, 8, 8)
    assert decode.max_batch >= 64  # every client can be in flight
    ttft_ms, tpot_ms, _ = predict(row)
    assert 0 < ttft_ms < 10_000 and 0 < tpot_ms < 1_000


def test_hopper_runs_4bit_checkpoints_weight_only():
    row = {**BASE, "model": "gpt_oss_120b", "system": "h100_sxm", "precision": "fp4", "gemm_quant": "nvfp4",
           "moe_quant": "nvfp4", "tp_size": 2, "moe_tp_size": 2}
    shape = deployment(row).fleet.pools[0].shape
    assert shape.precision == "mxfp4"


def test_gpt_oss_labelled_fp4_runs_its_mxfp4_checkpoint_with_bf16_attention():
    row = {**BASE, "model": "gpt_oss_120b", "system": "b200_hgx", "precision": "fp4", "gemm_quant": "nvfp4",
           "moe_quant": "nvfp4"}
    shape = deployment(row).fleet.pools[0].shape
    assert (shape.precision, shape.attention_precision) == ("mxfp4", "bf16")
    # an NVFP4 checkpoint of another model keeps its formats on Blackwell
    row = {**row, "model": "deepseek_v3", "tp_size": 8, "moe_ep_size": 8, "moe_tp_size": 1}
    assert deployment(row).fleet.pools[0].shape.precision == "fp4"


def test_builtin_points_load_and_cli_writes_results(tmp_path, capsys):
    assert len(load_points(None)) == 3214
    points = tmp_path / "points.csv"
    pd.DataFrame([BASE, {**BASE, "id": "r2", "isl": 1024}]).to_csv(points, index=False)
    assert main(["validate", str(points), "--out", str(tmp_path / "v"), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "median |error|" in out and "within +-20%" in out
    df = pd.read_csv(tmp_path / "v" / "validation.csv")
    assert {"id", "quantity", "predicted", "published", "rel_error", "config", "sample"} <= set(df.columns)
    assert len(df) == 4
    assert (tmp_path / "v" / "validation.png").stat().st_size > 1000
    summary = pd.read_csv(tmp_path / "v" / "validation_summary.csv")
    assert {"quantity", "group", "rows", "median_abs_error", "within_20pct", "median_signed_error"} <= set(summary)
    assert set(summary.loc[summary["group"] == "all", "quantity"]) == {"ttft_ms", "tpot_ms"}


def test_a_file_that_is_not_measured_points_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["validate", str(bad)]) == 2
    assert "missing columns" in capsys.readouterr().err
    with pytest.raises(Skip):
        deployment({**BASE, "concurrency": 0})


# -- published throughput rows (calibration.csv schema) ---------------------------------------

CAL = {"id": "T1", "source": "test", "date": "2026-04-01", "system": "h200_sxm", "gpus": 1, "model": "llama3_1_8b",
       "precision": "fp8", "isl_mean": 256.0, "osl_mean": 64.0, "scenario": "offline", "ttft_p99_ms": np.nan,
       "tpot_p99_ms": np.nan, "interactivity_tok_s_user": np.nan, "metric": "output_tok_s_per_gpu",
       "value": 10000.0, "unit": "tokens/s/GPU", "confidence": "high", "notes": "software: TensorRT-LLM"}


def test_a_throughput_row_of_each_scenario_produces_a_prediction():
    from factory_sim.fidelity.mlperf import validate_throughput

    rows = pd.DataFrame([
        CAL,
        {**CAL, "id": "T2", "scenario": "server", "ttft_p99_ms": 2000.0, "tpot_p99_ms": 100.0},
        {**CAL, "id": "T3", "scenario": "interactive", "ttft_p99_ms": 500.0, "tpot_p99_ms": 20.0},
        {**CAL, "id": "T4", "scenario": "at_interactivity", "interactivity_tok_s_user": 150.0,
         "metric": "tok_s_per_gpu"},
    ])
    res = validate_throughput(rows, jobs=1).set_index("id")
    assert (res["skipped"] == "").all(), res["skipped"].to_dict()
    assert (res["predicted"] > 0).all()
    # latency limits cost throughput: Offline >= Server >= Interactive
    assert res.loc["T1", "predicted"] >= res.loc["T2", "predicted"] >= res.loc["T3", "predicted"]
    assert res.loc["T2", "rel_error"] == pytest.approx((res.loc["T2", "predicted"] - 10000.0) / 10000.0)
    assert "stack=trtllm_hopper" in res.loc["T1", "config"]
    assert (res["sample"] == "out of sample").all()  # no profile was fitted to these made-up rows


def test_throughput_rows_that_cannot_be_scored_say_why():
    from factory_sim.fidelity.mlperf import validate_throughput

    rows = pd.DataFrame([
        {**CAL, "id": "U1", "system": "tpu_v9"},
        {**CAL, "id": "U2", "osl_mean": np.nan},
        {**CAL, "id": "U3", "scenario": "server"},
        {**CAL, "id": "U4", "model": "llama3_1_405b", "gpus": 1},
    ])
    res = validate_throughput(rows, jobs=1).set_index("id")["skipped"]
    assert "no hardware profile" in res["U1"]
    assert "osl_mean" in res["U2"]
    assert "limits" in res["U3"]
    assert "fits no replica" in res["U4"]


def test_the_stack_follows_framework_generation_and_date():
    from factory_sim.config.hardware import load_hardware
    from factory_sim.perf.stacks import select_stack

    b200, h100 = load_hardware("b200_hgx"), load_hardware("h100_sxm")
    assert select_stack(b200, "trtllm", "2025-09-09")[0].name == "trtllm_blackwell_2025"
    assert select_stack(b200, "trtllm", "2026-04-01")[0].name == "trtllm_blackwell"
    assert select_stack(h100, "vllm", "2026-03-01")[0].name == "vllm_hopper"
    stack, note = select_stack(h100, "some-engine")
    assert stack.name == "trtllm_hopper" and "no some-engine profile" in note
    row = {**BASE, "backend": "sglang", "measured_date": "2026-03-02"}
    assert "stack=sglang_hopper" in deployment(row).config


def test_a_published_result_names_its_framework_in_its_notes():
    from factory_sim.fidelity.mlperf import row_framework
    assert row_framework({"notes": "software: LLM-D v0.5.0 ,OpenShift 4.21"}) == "vllm"  # llm-d runs vLLM
    assert row_framework({"notes": "software: SGLang 0.5"}) == "sglang"
    assert row_framework({"notes": "platform B200-SXM-180GBx8_TRT"}) == "tensorrt-llm"
    assert row_framework({"notes": "no software named"}) is None
    assert row_framework({"framework": "vllm", "notes": "TensorRT"}) == "vllm"


def test_builtin_reference_holds_both_kinds_and_a_calibration_file_is_recognised(tmp_path, capsys):
    from factory_sim.fidelity.mlperf import load_reference

    ref = load_reference(None)
    assert set(ref) == {"points", "calibration"} and len(ref["calibration"]) == 96
    path = tmp_path / "cal.csv"
    pd.DataFrame([CAL, {**CAL, "id": "P1", "metric": "gpu_tdp_w", "value": 700.0}]).to_csv(path, index=False)
    assert set(load_reference(path)) == {"calibration"}
    assert main(["validate", str(path), "--out", str(tmp_path / "v"), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "throughput rows: 1, scored: 1" in out
    df = pd.read_csv(tmp_path / "v" / "throughput_validation.csv")
    assert {"id", "predicted", "published", "rel_error", "config"} <= set(df.columns)


def test_squared_parallelism_rows_are_read_as_the_gpus_their_ids_name():
    row = {**BASE, "model": "deepseek_v3", "system": "b200_hgx", "precision": "fp4", "gemm_quant": "nvfp4",
           "moe_quant": "nvfp4", "tp_size": 64, "attention_dp_size": 1, "moe_tp_size": 8, "moe_ep_size": 8,
           "concurrency": 8}
    shape = deployment(row).fleet.pools[0].shape
    assert (shape.gpus, shape.tp, shape.ep) == (8, 8, 8)


# A row of each model id that used to be skipped as "not in the catalog": the catalog model it
# maps to, and a small deployment it runs on.
NEW_MODEL_ROWS = [
    ("Qwen/Qwen3-32B", "qwen3_32b", {"system": "h100_sxm"}),
    ("nvidia/Qwen3-32B-NVFP4", "qwen3_32b", {"system": "b200_hgx", "precision": "fp4", "gemm_quant": "nvfp4",
                                             "moe_quant": "nvfp4"}),
    ("MiniMaxAI/MiniMax-M2.5", "minimax_m2_5", {"system": "h200_sxm", "tp_size": 4, "moe_ep_size": 4}),
    ("moonshotai/Kimi-K2.5", "kimi_k2", {"system": "b200_hgx", "precision": "fp4", "gemm_quant": "nvfp4",
                                         "moe_quant": "nvfp4", "tp_size": 8, "moe_ep_size": 8}),
    ("nvidia/DeepSeek-V3.1-NVFP4", "deepseek_r1", {"system": "b200_hgx", "precision": "fp4", "gemm_quant": "nvfp4",
                                                   "moe_quant": "nvfp4", "tp_size": 8, "moe_ep_size": 8}),
    ("Qwen/Qwen3.5-397B-A17B", "qwen3_5_397b_a17b", {"system": "h200_sxm", "tp_size": 8, "moe_ep_size": 8}),
    ("zhipuai/GLM-5", "glm_5", {"system": "h200_sxm", "tp_size": 8, "moe_tp_size": 8, "moe_ep_size": 1}),
]


@pytest.mark.parametrize(("model_id", "catalog_name", "change"), NEW_MODEL_ROWS)
def test_new_model_ids_are_scored(model_id: str, catalog_name: str, change: dict):
    row = {**BASE, "model": model_id, **change}
    assert deployment(row).fleet.pools[0].shape.model.name == catalog_name
    res = validate_points(pd.DataFrame([row]), jobs=1)
    assert (res["skipped"] == "").all(), res["skipped"].tolist()
    assert set(res["quantity"]) == {"ttft_ms", "tpot_ms"} and (res["predicted"] > 0).all()


def test_no_builtin_row_of_the_new_models_is_left_out_of_the_catalog():
    """Every built-in row of these ids reaches a catalog model; what still skips them is the row
    itself (no precision or concurrency given, a quantization not modelled, missing workers)."""
    points = load_points(None)
    points = points[points["model"].isin([m for m, _, _ in NEW_MODEL_ROWS])]
    assert len(points) == 341 + 247 + 156 + 4 + 2 + 228 + 70
    reasons = []
    for row in points.to_dict("records"):
        try:
            deployment(row)
        except Skip as skip:
            reasons.append(str(skip))
    assert not [r for r in reasons if "not in the catalog" in r]
    # INT4 weight-only rows (Kimi K2.5 on vLLM) are scored too
    assert not [r for r in reasons if "int4_wo" in r]


def test_int4_weight_only_rows_run_int4_experts_with_bf16_math_and_bf16_attention():
    from factory_sim.config.hardware import load_hardware
    from factory_sim.perf.shape import BYTES_PER_ELEMENT, compute_precision
    row = {**BASE, "model": "moonshotai/Kimi-K2.5", "system": "b200_hgx", "precision": "int4",
           "moe_quant": "int4_wo", "gemm_quant": "int4_wo", "tp_size": 8, "moe_ep_size": 8}
    sh = deployment(row).fleet.pools[0].shape
    assert (sh.precision, sh.attention_precision) == ("int4", "bf16")
    assert compute_precision("int4", load_hardware("b200_hgx")) == compute_precision("int4", load_hardware("h200_sxm")) \
        == "bf16"
    assert BYTES_PER_ELEMENT["int4"] == pytest.approx(0.5625)


def test_a_report_with_every_row_skipped_says_so():
    from factory_sim.fidelity.report import format_report
    res = validate_points(pd.DataFrame([{**BASE, "id": "r1", "model": "acme/Unreleased-2T"}]), jobs=1)
    text = format_report(res)
    assert "scored: 0" in text and "not in the catalog" in text


def test_rows_a_profile_was_fitted_to_are_reported_apart_from_the_rest():
    from factory_sim.config.stack import load_stack
    from factory_sim.fidelity.measured import fitted_ids
    from factory_sim.fidelity.report import error_summary
    fitted = load_stack("trtllm_hopper").fitted_to
    points = [p for p in fitted if not p.startswith("CAL-")]
    assert points and set(fitted) <= fitted_ids()
    rows = pd.DataFrame([{**BASE, "id": points[0]}, {**BASE, "id": "never-fitted"}])
    res = validate_points(rows, jobs=1)
    assert dict(zip(res["id"], res["sample"], strict=True)) == {points[0]: "in sample", "never-fitted": "out of sample"}
    groups = set(error_summary(res)["group"])
    assert {"sample=in sample", "sample=out of sample"} <= groups


@given(mean=st.integers(10, 20_000), n=st.integers(1, 400), spread=st.floats(0.0, 0.5), seed=st.integers(0, 2**32 - 1))
def test_spread_lengths_stay_in_range_keep_the_mean_and_repeat_with_the_seed(mean, n, spread, seed):
    lengths = spread_lengths(mean, n, spread, seed)
    assert len(lengths) == n and lengths.dtype == np.int64
    assert lengths.min() >= round(mean * (1 - spread)) - 1 and lengths.max() <= round(mean * (1 + spread)) + 1
    # antithetic pairs sum to 2 x mean to rounding; an odd n leaves one unpaired draw
    assert abs(lengths.mean() - mean) <= 0.5 + (mean * spread + 0.5) / n
    np.testing.assert_array_equal(lengths, spread_lengths(mean, n, spread, seed))
    if spread == 0:
        assert (lengths == mean).all()


def test_spread_output_lengths_dissolve_the_first_rounds_cohorts():
    """Eight clients whose 1k prompts all fit one step: with identical lengths every later round
    arrives as one cohort and waits for the whole cohort's prefill; spread lengths break it up."""
    row = {**BASE, "isl": 1024, "osl": 256, "concurrency": 8, "batch_size": 8}
    spread_ttft, _, _ = predict(row)
    lockstep_ttft, _, _ = predict(row, output_spread=0.0)
    assert spread_ttft < 0.8 * lockstep_ttft


def test_mlperf_rows_run_without_the_http_front_end_and_served_rows_with_it():
    row = {"id": "x", "system": "b200_hgx", "gpus": 8, "model": "llama2_70b", "precision": "fp4", "isl_mean": 294,
           "osl_mean": 294, "metric": "output_tok_s_per_gpu", "value": 1000.0, "framework": "tensorrt-llm",
           "date": "2025-09", "ttft_p99_ms": 2000, "tpot_p99_ms": 200, "interactivity_tok_s_user": 50}
    served = benchmark({**row, "scenario": "at_interactivity"})
    assert served.stack.frontend_latency_s > 0
    for scenario in ("offline", "server", "interactive"):
        assert benchmark({**row, "scenario": scenario}).stack.frontend_latency_s == 0.0


def test_an_aggregated_row_with_more_clients_than_a_workers_batch_runs_that_many_workers():
    """416 clients on TP2 workers of batch 13 ran 32 workers (one worker would have queued 400
    of them, and the row measures a 0.7 s TTFT); rows whose batch covers their clients, per
    attention-DP rank as listed, run one."""
    row = {**BASE, "model": "nvidia/Qwen3-32B-NVFP4", "system": "b200_hgx", "precision": "fp4",
           "gemm_quant": "nvfp4", "moe_quant": "nvfp4", "tp_size": 2, "concurrency": 416, "batch_size": 13}
    pool = deployment(row).fleet.pools[0]
    assert (pool.replicas, pool.max_batch, pool.shape.gpus) == (32, 13, 2)
    assert deployment(row).config.startswith("agg 32x[")
    uneven = deployment({**row, "concurrency": 420}).fleet.pools[0]
    assert (uneven.replicas, uneven.max_batch) == (33, 13)  # ceil(420 / 13) workers hold all clients
    listed = {**BASE, "model": "deepseek_v3", "system": "b200_hgx", "precision": "fp4", "gemm_quant": "nvfp4",
              "moe_quant": "nvfp4", "tp_size": 1, "attention_dp_size": 64, "moe_tp_size": 8, "moe_ep_size": 8,
              "concurrency": 256, "batch_size": 4}  # 4 per listed rank x 64 listed ranks = 256 clients
    pool = deployment(listed).fleet.pools[0]
    assert (pool.replicas, pool.max_batch, pool.shape.dp_attention) == (1, 256, 8)


def test_a_row_without_precision_serves_its_checkpoints_weights():
    row = {**BASE, "model": "Qwen/Qwen3-32B", "precision": np.nan, "gemm_quant": np.nan, "moe_quant": np.nan}
    dep = deployment(row)
    assert dep.fleet.pools[0].shape.precision == "bf16"  # Qwen/Qwen3-32B is released in BF16
    assert "precision not given: the checkpoint's bf16" in dep.config
    with pytest.raises(Skip, match="only one of"):
        deployment({**row, "gemm_quant": "fp8"})


def test_a_measured_rows_kv_cache_is_its_frameworks():
    """vLLM serves its default BF16 KV cache, TensorRT-LLM its recipes' FP8; a BF16 checkpoint keeps
    BF16 KV everywhere; published throughput results are tuned, FP8 KV whatever the framework."""
    def kv(**change):
        return deployment({**BASE, **change}).fleet.pools[0].shape.kv_precision
    assert kv(backend="vllm") == "bf16"
    assert kv(backend="trtllm") == "fp8"
    assert kv(backend="sglang") == "fp8"
    assert kv(backend="trtllm", precision="bf16", gemm_quant="bf16", moe_quant="bf16") == "bf16"
    bf16 = deployment({**BASE, "backend": "vllm"}).fleet.pools[0].shape
    fp8 = deployment({**BASE, "backend": "trtllm"}).fleet.pools[0].shape
    assert bf16.kv_bytes_per_element == pytest.approx(2 * fp8.kv_bytes_per_element, rel=1e-3)  # FP8 carries scales


def test_attention_dp_ranks_schedule_their_own_prompt_tokens_except_under_sglang():
    """TensorRT-LLM's max_num_tokens (and vLLM's per-engine budget) holds per attention-DP rank;
    SGLang splits its chunked-prefill size among the ranks."""
    row = {**BASE, "model": "deepseek_v3", "system": "b200_hgx", "precision": "fp4", "gemm_quant": "nvfp4",
           "moe_quant": "nvfp4", "tp_size": 1, "attention_dp_size": 8, "moe_tp_size": 1, "moe_ep_size": 8,
           "concurrency": 64, "batch_size": 8}
    trt = deployment({**row, "backend": "trtllm"}).fleet.pools[0]
    sgl = deployment({**row, "backend": "sglang"}).fleet.pools[0]
    assert trt.shape.dp_attention == sgl.shape.dp_attention == 8
    assert trt.max_batch_tokens == 8 * measured.PREFILL_CHUNK_TOKENS + 64
    assert sgl.max_batch_tokens == measured.PREFILL_CHUNK_TOKENS + 64


def test_offline_rate_is_the_steady_state_not_the_drain():
    """With long prompts and short outputs the last round decodes with nothing left to
    prefill; counting it (as the rate once did) read up to twice the steady rate."""
    from factory_sim.sim.engine import simulate as run_sim

    row = pd.Series({**CAL, "isl_mean": 8192.0, "osl_mean": 64.0})
    b = mlperf.benchmark(row)
    plan = mlperf.candidate_plans(b)[0][0]
    clients = 64
    predicted, _ = mlperf._closed_loop_tok_s_per_gpu(plan, b, clients)
    # reference: twelve rounds, counted over rounds 3-9 only
    n = 12 * clients
    out = measured.spread_lengths(b.osl, n, measured.OUTPUT_LENGTH_SPREAD, seed=0)
    sim = run_sim(plan, np.full(n, b.isl, dtype=np.int64), out, concurrency=clients)
    order = np.argsort(sim.trace.finish_s)
    finish, produced = sim.trace.finish_s[order], np.cumsum(sim.trace.output_tokens[order])
    lo, hi = 3 * clients, 9 * clients
    steady = (produced[hi - 1] - produced[lo - 1]) / (finish[hi - 1] - finish[lo - 1]) / plan.gpus
    assert predicted == pytest.approx(steady, rel=0.05)


@pytest.mark.parametrize("clients, band", [(1, "1-4"), (4, "1-4"), (5, "5-16"), (64, "17-64"), (65, "65-256"),
                                           (256, "65-256"), (257, "257+"), (12000, "257+"), (float("nan"), ""),
                                           (0, "")])
def test_client_bands_cover_every_count_once(clients, band):
    from factory_sim.fidelity.report import client_band
    assert client_band(clients) == band


def test_the_breakdown_reports_each_client_band_with_its_signed_error():
    from factory_sim.fidelity.report import error_summary, format_report
    rows = []
    for i, (clients, err) in enumerate([(2, 0.2), (3, 0.4), (100, -0.3), (300, -0.5), (None, 0.1)]):
        for quantity in ("ttft_ms", "tpot_ms"):
            rows.append({"id": f"r{i}", "quantity": quantity, "predicted": 1 + err, "published": 1.0,
                         "rel_error": err, "config": "", "skipped": "", "system": "b200_hgx", "model": "m",
                         "backend": "vllm", "mode": "agg", "concurrency": clients, "sample": "out of sample"})
    summary = error_summary(pd.DataFrame(rows))
    ttft = summary[summary["quantity"] == "ttft_ms"].set_index("group")
    # bands in load order, the row without a client count in none of them
    assert [g for g in ttft.index if g.startswith("clients=")] == ["clients=1-4", "clients=65-256", "clients=257+"]
    assert ttft.loc["clients=1-4", "rows"] == 2
    assert ttft.loc["clients=1-4", "median_signed_error"] == pytest.approx(0.3)
    assert ttft.loc["clients=257+", "median_signed_error"] == pytest.approx(-0.5)
    assert ttft.loc["all", "rows"] == 5
    text = format_report(pd.DataFrame(rows))
    assert "clients=65-256" in text and "(-30%)" in text


def test_the_sources_harness_can_be_tried_in_place_of_the_validations():
    """Opt-ins: a step of batch + ISL + headroom tokens per rank (SGLang's ranks sharing at most
    one chunk), and more requests per client; neither is the default."""
    row = {**BASE, "model": "deepseek_v3", "system": "b200_hgx", "precision": "fp4", "gemm_quant": "nvfp4",
           "moe_quant": "nvfp4", "tp_size": 1, "attention_dp_size": 8, "moe_tp_size": 1, "moe_ep_size": 8,
           "concurrency": 64, "batch_size": 8, "isl": 1024}
    headroom = measured.SOURCE_PROMPT_HEADROOM_TOKENS
    trt = deployment({**row, "backend": "trtllm"}, prompt_headroom_tokens=headroom).fleet.pools[0]
    sgl = deployment({**row, "backend": "sglang"}, prompt_headroom_tokens=headroom).fleet.pools[0]
    assert trt.max_batch_tokens == 8 * (1024 + headroom) + 64
    assert sgl.max_batch_tokens == min(8 * (1024 + headroom), measured.PREFILL_CHUNK_TOKENS) + 64
    assert deployment(BASE, prompt_headroom_tokens=headroom).fleet.pools[0].max_batch_tokens == 512 + headroom + 1
    scored = validate_points(pd.DataFrame([{**BASE, "concurrency": 2, "batch_size": 2}]), jobs=1,
                             requests_per_client=3, prompt_headroom_tokens=headroom)
    assert set(scored["quantity"]) == {"ttft_ms", "tpot_ms"} and scored["predicted"].notna().all()
