"""The optional aiconfigurator-core step-time back end: selection, refusals, and (with the extra
installed) that the adapter gives the engine's own prices at its grid nodes and sensible ones between."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import numpy as np
import pytest

from factory_sim.errors import ConfigError
from factory_sim.perf import aiconfigurator as aic
from factory_sim.perf.step_backends import step_time_model
from factory_sim.perf.steptime import StepTimeModel, prefill_attention_pairs
from tests.helpers import shape

HAVE_AIC = importlib.util.find_spec("aiconfigurator_core") is not None
needs_aic = pytest.mark.skipif(not HAVE_AIC, reason="aiconfigurator-core is not installed "
                                                   "(pip install 'factory-sim[aic]')")


def _aic(sh, **changes):
    return dataclasses.replace(sh, stack=sh.stack.model_copy(update={"step_time_backend": "aiconfigurator",
                                                                    **changes}))


def _r1_h200():
    return shape("h200_sxm", "deepseek_r1", "fp8", tp=8, ep=8)


def test_roofline_is_the_default():
    sh = _r1_h200()
    assert sh.stack.step_time_backend == "roofline"
    assert type(step_time_model(sh)) is StepTimeModel


def test_missing_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiconfigurator_core", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "aiconfigurator_core.sdk.engine", None)
    aic._tables.cache_clear()
    with pytest.raises(ConfigError) as err:
        step_time_model(_aic(_r1_h200()))
    assert err.value.path == "stack.step_time_backend"
    assert "pip install 'factory-sim[aic]'" in err.value.message and "roofline" in err.value.message
    aic._tables.cache_clear()


def test_settings_map_names_and_formats():
    s = aic.engine_settings(_aic(shape("gb200_nvl72", "deepseek_r1", "fp4", attention_precision="fp8", tp=1,
                                       dp_attention=8, ep=8)))
    assert (s["model_path"], s["system"], s["backend"]) == ("deepseek-ai/DeepSeek-R1", "gb200", "trtllm")
    assert (s["gemm_quant_mode"], s["moe_quant_mode"], s["kvcache_quant_mode"]) == ("fp8_block", "nvfp4", "fp8")
    assert (s["tp_size"], s["attention_dp_size"], s["moe_ep_size"], s["moe_tp_size"]) == (1, 8, 8, 1)
    hopper = aic.engine_settings(_aic(shape("h200_sxm", "gpt_oss_120b", "mxfp4", attention_precision="bf16", tp=2)))
    assert (hopper["moe_quant_mode"], hopper["gemm_quant_mode"]) == ("w4a16_mxfp4", "bfloat16")
    dense = aic.engine_settings(_aic(shape("h100_sxm", "llama3_3_70b", "fp8", tp=4)))
    assert (dense["model_path"], dense["gemm_quant_mode"], dense["moe_quant_mode"]) == (
        "meta-llama/Meta-Llama-3.1-70B", "fp8", None)


def test_unmapped_model_names_the_field():
    with pytest.raises(ConfigError) as err:
        aic.engine_settings(_aic(shape("h100_sxm", "llama2_70b", "fp8", tp=4)))
    assert err.value.path == "model" and "llama2_70b" in err.value.message and "roofline" in err.value.message


def test_validate_step_time_needs_inferencex_points(capsys):
    from factory_sim.cli import main

    assert main(["validate", "--step-time", "aiconfigurator", "--limit", "1"]) != 0
    assert "--step-time" in capsys.readouterr().err


@needs_aic
def test_prices_are_the_engines_at_the_nodes_and_between_them():
    sh = _aic(_r1_h200())
    model = step_time_model(sh)
    handle = model._tables.handle
    # a decode step at a grid node is the engine's own
    assert model.decode_token_s(8, 8 * 1024.0) == pytest.approx(handle.decode_step_latency(8, 1024, 1) * 1e-3)
    # a whole prompt alone at a token node is the engine's prefill
    pairs = float(prefill_attention_pairs(sh, 1024, 0))
    assert model.batch_s(1024, pairs, 1, 0, 0.0) == pytest.approx(handle.predict_prefill_latency(1, 1024, 0) * 1e-3)
    # between nodes the price lies between its neighbours', and it grows with batch and context
    lo, mid, hi = (model.decode_token_s(n, n * 3000.0) for n in (48, 52, 56))
    assert lo <= mid <= hi
    grid = [[model.decode_token_s(n, n * c) for c in (500.0, 3000.0, 20_000.0)] for n in (1, 7, 64, 300)]
    assert np.all(np.diff(grid, axis=0) >= 0) and np.all(np.diff(grid, axis=1) >= 0)
    # a mixed step costs more than either of its halves alone
    mixed = model.batch_s(512, float(prefill_attention_pairs(sh, 512, 0)), 1, 32, 32 * 2000.0)
    assert mixed > model.batch_s(512, float(prefill_attention_pairs(sh, 512, 0)), 1, 0, 0.0)
    assert mixed > model.batch_s(0, 0.0, 0, 32, 32 * 2000.0)
    # macro-stepped decode is the running sum of its steps
    for steps in (10, 100):  # a Python loop below 24 steps, NumPy above: the same prices
        ctx = range(64 * 1000, 64 * (1000 + steps), 64)
        assert np.allclose(model.decode_elapsed_s(64, ctx), np.cumsum(model.decode_steps_s(64, list(ctx))))
    assert model.batch_s(0, 0.0, 0, 64, 64 * 3000.0) == pytest.approx(model.decode_token_s(64, 64 * 3000.0))


@needs_aic
def test_mtp_divides_a_pass_by_its_expected_tokens():
    sh = _aic(_r1_h200())
    mtp = dataclasses.replace(sh, mtp_draft_tokens=1, mtp_acceptance=0.5)
    one = step_time_model(mtp)
    engine_pass = one._tables.handle.decode_step_latency(16, 2048, 1) * 1e-3
    assert one.decode_token_s(16, 16 * 2048.0) == pytest.approx(engine_pass / 1.5)


@needs_aic
@pytest.mark.parametrize("make", [
    lambda: _aic(_r1_h200(), aiconfigurator_version="0.1.0"),  # a version it does not list
    # gpt-oss's experts tensor-parallel under TensorRT-LLM on B200: its MoE tables hold EP only
    lambda: _aic(shape("b200_hgx", "gpt_oss_120b", "mxfp4", attention_precision="bf16", tp=4)),
])
def test_uncovered_combinations_are_config_errors(make):
    with pytest.raises(ConfigError) as err:
        step_time_model(make())
    assert err.value.path == "stack.step_time_backend" and "roofline" in err.value.message
    assert "/site-packages/" not in err.value.message


@needs_aic
def test_an_inferencex_point_scores_with_either_back_end():
    from factory_sim.fidelity import inferencex as ix

    points = ix.filter_points(ix.load_points(), hardware=["h200"], model=["DeepSeek-R1-0528"], framework=["trtllm"])
    p = next(r for r in points.to_dict("records") if not ix.is_v1(r) and int(r["concurrency"]) <= 8)
    rows = {st: ix.score_point(p, rounds=3, step_time=st) for st in ("roofline", "aiconfigurator")}
    for st, scored in rows.items():
        assert all(r["skip_reason"] == "" and np.isfinite(r["predicted"]) for r in scored), st
    assert "step time: aiconfigurator" in rows["aiconfigurator"][0]["config"]
    assert [r["predicted"] for r in rows["roofline"]] != [r["predicted"] for r in rows["aiconfigurator"]]


@needs_aic
def test_attention_dp_prices_one_ranks_share():
    sh = _aic(shape("gb200_nvl72", "deepseek_r1", "fp4", attention_precision="fp8", tp=1, dp_attention=8, ep=8))
    model = step_time_model(sh)
    per_rank = model._tables.handle.decode_step_latency(8, 1024, 1) * 1e-3
    assert model.decode_token_s(64, 64 * 1024.0) == pytest.approx(per_rank)


EXPERIMENT = """
name: aic
model: llama3_1_8b
workload: chat_1k1k
requests: 20
slo_tiers: [{name: s, ttft_s: 2.0, tpot_s: 0.1}]
fleets:
  - name: ours
    hardware: h100_sxm
    aggregated: {replicas: 1}
  - name: theirs
    hardware: h100_sxm
    aggregated: {replicas: 1}
    stack_overrides: {step_time_backend: aiconfigurator}
load: {mode: fixed, rate_per_s: 5}
"""


def test_an_experiment_picks_the_back_end_per_fleet():
    import yaml

    from factory_sim.studies.assemble import fleet_layouts, parse_experiment

    ours, theirs = fleet_layouts(parse_experiment(yaml.safe_load(EXPERIMENT)))
    assert [p.shape.stack.step_time_backend for p in ours.pools] == ["roofline"]
    assert [p.shape.stack.step_time_backend for p in theirs.pools] == ["aiconfigurator"]
    if HAVE_AIC:  # the same closed loop, priced by each
        from factory_sim.sim.engine import simulate

        tokens = np.full(16, 1024, dtype=np.int64)
        runs = [simulate(f, tokens, tokens // 8, concurrency=4, seed=0).trace for f in (ours, theirs)]
        assert all(t.done.all() for t in runs)
        assert runs[0].finish_s.max() != runs[1].finish_s.max()


def test_the_back_end_is_part_of_a_stacks_digest():
    from factory_sim.fidelity.stack_errors import stack_digest

    stack = _r1_h200().stack
    assert stack_digest(stack) != stack_digest(stack.model_copy(update={"step_time_backend": "aiconfigurator"}))
