"""Joint fit: three data sets in one fit, each weighted equally, held out per data set; MTP runs
of the measured points read from their InferenceX twins."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from factory_sim.config.stack import load_stack
from factory_sim.fidelity import calibrate_joint as cj
from factory_sim.fidelity.calibrate import FitRow
from factory_sim.fidelity.inferencex import load_points as load_inferencex
from factory_sim.fidelity.measured import deployment, predict
from factory_sim.fidelity.mtp_runs import label_mtp_runs
from factory_sim.perf.stacks import override_stack

ROW = {"system": "h200_sxm", "model": "deepseek_r1", "hf_model": "x", "backend": "trtllm",
       "backend_version": "1.1.0rc2.post2", "precision": "fp8", "gemm_quant": "fp8", "moe_quant": "fp8",
       "mode": "agg", "isl": 1024, "osl": 1024, "tp_size": 8, "pp_size": 1, "attention_dp_size": 1, "moe_tp_size": 1,
       "moe_ep_size": 8, "measured_date": "2026-03-25", "ttft_ms": 100.0}
TWIN = {"hardware": "h200", "framework": "trtllm", "model": "DeepSeek-R1-0528", "precision": "fp8", "isl": 1024,
        "osl": 1024, "disaggregated": False, "spec_method": "mtp", "tp": "8", "ep": "8", "dp_attention": "false",
        "run_date_est": "2026-01-14", "output_tok_s_per_gpu": 100.0, "interactivity_tok_s_user": 50.0,
        "ttft_ms": 100.0}


def test_a_measured_run_is_labelled_mtp_by_its_twins_and_its_image_labels_the_rest():
    twins = pd.DataFrame([{**TWIN, "point_id": "a", "concurrency": 4, "mtp_or_spec": True, "tpot_ms": 9.2},
                          {**TWIN, "point_id": "b", "concurrency": 4, "mtp_or_spec": False, "tpot_ms": 13.9},
                          {**TWIN, "point_id": "c", "concurrency": 8, "mtp_or_spec": False, "tpot_ms": 15.0},
                          {**TWIN, "point_id": "d", "concurrency": 16, "mtp_or_spec": True, "tpot_ms": 14.6},
                          {**TWIN, "point_id": "e", "concurrency": 32, "mtp_or_spec": False, "tpot_ms": 25.3}])
    points = pd.DataFrame([{**ROW, "id": "near_mtp", "concurrency": 4, "tpot_ms": 8.6},
                           {**ROW, "id": "far_below_no_mtp", "concurrency": 8, "tpot_ms": 11.0},
                           {**ROW, "id": "near_mtp_only", "concurrency": 16, "tpot_ms": 14.2},
                           {**ROW, "id": "no_twin", "concurrency": 64, "tpot_ms": 30.0},
                           {**ROW, "id": "other_image", "backend_version": "9", "concurrency": 64, "tpot_ms": 30.0},
                           {**ROW, "id": "near_no_mtp", "backend_version": "9", "concurrency": 32, "tpot_ms": 25.0}])
    out = label_mtp_runs(points, twins).set_index("id")
    assert out.loc["near_mtp", "mtp_draft_tokens"] == 3  # TensorRT-LLM's recipe without attention DP
    assert out.loc["far_below_no_mtp", "mtp_draft_tokens"] == 3
    assert out.loc["near_mtp_only", "mtp_draft_tokens"] == 3
    assert "twins" in out.loc["near_mtp", "mtp_evidence"]
    # three rows of image 1.1.0rc2.post2 with twins, all MTP: its row without a twin is one too
    assert out.loc["no_twin", "mtp_draft_tokens"] == 3 and "image" in out.loc["no_twin", "mtp_evidence"]
    # another image with one non-MTP twin row: too few to label its others
    assert out.loc["near_no_mtp", "mtp_draft_tokens"] == 0 and out.loc["near_no_mtp", "mtp_evidence"]
    assert out.loc["other_image", "mtp_draft_tokens"] == 0 and out.loc["other_image", "mtp_evidence"] == ""


def test_a_labelled_mtp_run_is_simulated_drafting_at_the_profiles_acceptance():
    row = {**ROW, "id": "r", "concurrency": 4, "tpot_ms": 9.0}
    plain = deployment(row)
    mtp = deployment({**row, "mtp_draft_tokens": 3})
    assert plain.fleet.pools[0].shape.mtp_draft_tokens == 0
    shape = mtp.fleet.pools[0].shape
    assert shape.mtp_draft_tokens == 3 and shape.mtp_acceptance == load_stack("trtllm_hopper").mtp_acceptance
    assert "MTP 3 draft(s)" in mtp.config
    low = {"trtllm_hopper": override_stack(load_stack("trtllm_hopper"), {"mtp_acceptance": 0.3})}
    high = {"trtllm_hopper": override_stack(load_stack("trtllm_hopper"), {"mtp_acceptance": 0.8})}
    _, tpot_plain, _ = predict({**row, "osl": 64})
    _, tpot_low, _ = predict({**row, "osl": 64, "mtp_draft_tokens": 3}, stacks=low)
    _, tpot_high, _ = predict({**row, "osl": 64, "mtp_draft_tokens": 3}, stacks=high)
    assert tpot_high < tpot_low and tpot_high < tpot_plain  # at a low acceptance 3 drafts cost more than they give


def test_a_constant_the_profile_does_not_set_is_fitted_from_its_estimate_only_when_named():
    from factory_sim.fidelity.calibrate import fitted_parameters, start_value

    base = load_stack("vllm_hopper")
    assert not base.mla_layer_overhead_s
    assert "mla_layer_overhead_s" not in [p.name for p in fitted_parameters(base, True, None)]
    (p,) = [p for p in fitted_parameters(base, True, ["mla_layer_overhead_s"])]
    assert start_value(p, base) == pytest.approx(2e-5)
    # the attention-DP rank jitter: from 1 ms when named, and only for rows that use expert parallelism
    assert "adp_rank_jitter_s" not in [p.name for p in fitted_parameters(base, True, None)]
    (p,) = fitted_parameters(base, True, ["adp_rank_jitter_s"])
    assert start_value(p, base) == pytest.approx(1e-3)
    assert fitted_parameters(base, False, ["adp_rank_jitter_s"]) == ()
    # the MLA attention of attention-DP ranks likewise, from 0.35
    assert base.mla_dp_attention_efficiency is None
    assert "mla_dp_attention_efficiency" not in [p.name for p in fitted_parameters(base, True, None)]
    (p,) = fitted_parameters(base, True, ["mla_dp_attention_efficiency"])
    assert start_value(p, base) == pytest.approx(0.35)
    assert fitted_parameters(base, False, ["mla_dp_attention_efficiency"]) == ()
    # and its cost per sequence of a rank, from 20 us
    assert not base.mla_dp_seq_overhead_s
    assert "mla_dp_seq_overhead_s" not in [p.name for p in fitted_parameters(base, True, None)]
    (p,) = fitted_parameters(base, True, ["mla_dp_seq_overhead_s"])
    assert start_value(p, base) == pytest.approx(2e-5)
    assert fitted_parameters(base, False, ["mla_dp_seq_overhead_s"]) == ()
    assert base.fp4_gemm_half_efficiency_tokens is None  # the FP4 roll-off likewise, from the 32 rows of every GEMM
    assert "fp4_gemm_half_efficiency_tokens" not in [p.name for p in fitted_parameters(base, True, None)]
    (p,) = fitted_parameters(base, True, ["fp4_gemm_half_efficiency_tokens"])
    assert start_value(p, base) == pytest.approx(32.0)
    # the EP all-to-all's per-peer latency likewise, from 1 us, and only for rows that use expert parallelism
    assert not base.ep_peer_latency_s
    assert "ep_peer_latency_s" not in [p.name for p in fitted_parameters(base, True, None)]
    (p,) = fitted_parameters(base, True, ["ep_peer_latency_s"])
    assert start_value(p, base) == pytest.approx(1e-6)
    assert fitted_parameters(base, False, ["ep_peer_latency_s"]) == ()


def _row(kind: str, i: int, quantities: tuple[str, ...]) -> FitRow:
    return FitRow(f"{kind}{i}", kind, {}, "trtllm_hopper", "g", 1.0, published={q: 1.0 for q in quantities})


def test_each_data_set_carries_the_same_total_weight():
    rows = ([_row("inferencex", i, ("output_tok_s_per_gpu", "interactivity_tok_s_user", "ttft_ms")) for i in range(30)]
            + [_row("points", i, ("ttft_ms", "tpot_ms")) for i in range(10)]
            + [_row("throughput", i, ("throughput",)) for i in range(2)])
    scale = cj.balance(rows, ())
    assert set(scale) == {"inferencex", "points", "throughput"}
    # TTFT has no weight without a prefill constant: 60, 10 and 2 weighted residuals become 24 each
    totals = {k: sum(r.weight * (2 if k == "inferencex" else 1) for r in rows if r.kind == k) for k in scale}
    assert totals["inferencex"] == pytest.approx(totals["points"]) == pytest.approx(totals["throughput"])
    assert scale["throughput"] > scale["points"] > scale["inferencex"]


@pytest.fixture(scope="module")
def joint_fit():
    """A small joint fit of trtllm_hopper to two data sets: measured points whose TPOTs the
    simulator made at a known step overhead, and three InferenceX points as published."""
    truth = {"trtllm_hopper": override_stack(load_stack("trtllm_hopper"), {"step_overhead_s": 0.004})}
    rows = []
    for i, (system, c) in enumerate([(s, c) for s in ("h100_sxm", "h200_sxm") for c in (1, 8)]):
        row = {**ROW, "id": f"m{i}", "model": "llama3_1_8b", "system": system, "tp_size": 1, "moe_ep_size": 1,
               "isl": 64, "osl": 16, "concurrency": c, "batch_size": c}
        ttft, tpot, _ = predict(row, stacks=truth)
        rows.append({**row, "ttft_ms": ttft, "tpot_ms": tpot})
    ix = load_inferencex()
    ix = ix[ix["point_id"].isin(["p01729", "p03151", "p05647"])]  # H200 at 4 clients, 3 months
    return cj.calibrate_joint(None, pd.DataFrame(rows), ix, sample=0, profiles=["trtllm_hopper"], rounds=1, jobs=1,
                              parameters=["step_overhead_s", "mla_layer_overhead_s"])


def test_the_joint_fit_reports_held_out_error_per_data_set(joint_fit):
    fits, _, scales = joint_fit
    (fit,) = fits
    assert set(scales["trtllm_hopper"]) == {"inferencex", "points"}
    assert fit.start["mla_layer_overhead_s"] == pytest.approx(load_stack("trtllm_hopper").mla_layer_overhead_s or 2e-5)
    sets = cj.per_data_set(fit)
    assert {"leave-one-hardware-out", "leave-one-date-out"} <= set(sets["inferencex"])
    assert "leave-one-(system, model)-out" in sets["points"]
    assert "leave-one-hardware-out" not in sets["points"]  # measured rows are held out by their own groups
    for label, frame in sets["points"].items():
        assert set(frame["id"]) == {"m0", "m1", "m2", "m3"}, label
    text = cj.format_joint(fits, [], scales)
    assert "InferenceX points" in text and "measured points" in text and "weight per row" in text


def test_the_joint_profile_adds_the_constants_it_fitted_and_loads(joint_fit, tmp_path):
    (fit,) = joint_fit[0]
    text = cj.joint_profile_yaml(fit)
    assert text.count("mla_layer_overhead_s:") == 1 and "calibrate --joint" in text
    path = tmp_path / "trtllm_hopper.yaml"
    path.write_text(text)
    data = yaml.safe_load(text)
    assert data["mla_layer_overhead_s"] == pytest.approx(fit.values["mla_layer_overhead_s"], rel=1e-3)
    assert set(fit.rows) <= set(data["fitted_to"])
