"""Calibration: recovers known constants from synthetic rows, writes a loadable profile."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import yaml

from factory_sim.config.stack import load_stack
from factory_sim.fidelity.calibrate import calibrate, format_calibration, profile_yaml, write_profiles
from factory_sim.fidelity.measured import predict
from factory_sim.perf.stacks import override_stack

# Synthetic measured points: one small model on one GPU of two systems, short contexts (so
# attention hardly matters) and a spread of batch sizes. The weight read scales with each
# system's HBM bandwidth and the fixed per-step cost does not, which tells the two apart.
BASE = {"system": "h100_sxm", "model": "llama3_1_8b", "hf_model": "x", "backend": "trtllm", "backend_version": "1",
        "precision": "fp8", "gemm_quant": "fp8", "moe_quant": "fp8", "mode": "agg", "tp_size": 1, "pp_size": 1,
        "attention_dp_size": 1, "moe_tp_size": 1, "moe_ep_size": 1, "measured_date": "2026-03-01"}
SHAPES = [(64, 16, 1), (64, 16, 1), (64, 16, 16), (64, 16, 16), (64, 16, 64), (64, 16, 64)]
TRUE = {"hbm_efficiency": 0.70, "step_overhead_s": 0.004}


def _synthetic_points() -> pd.DataFrame:
    """Rows whose published values the simulator itself produced with the TRUE constants."""
    truth = {"trtllm_hopper": override_stack(load_stack("trtllm_hopper"), TRUE)}
    rows = []
    for i, (isl, osl, c) in enumerate(SHAPES):
        system = ("h100_sxm", "h200_sxm")[i % 2]  # two (system, model) groups for leave-one-out
        row = {**BASE, "id": f"s{i}", "system": system, "isl": isl, "osl": osl, "concurrency": c, "batch_size": c}
        ttft, tpot, _ = predict(row, stacks=truth)
        rows.append({**row, "ttft_ms": ttft, "tpot_ms": tpot})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted():
    points = _synthetic_points()
    # the two constants these rows identify, and a negligible prior: the rows alone decide
    fits, skipped = calibrate(None, points, points_sample=0, profiles=["trtllm_hopper"], rounds=4, iterations=10,
                              jobs=1, prior_weight=1e-4, parameters=["hbm_efficiency", "step_overhead_s"])
    return fits, skipped


def test_calibration_recovers_known_constants(fitted):
    fits, _ = fitted
    (fit,) = fits
    assert fit.profile == "trtllm_hopper"
    assert fit.values["hbm_efficiency"] == pytest.approx(TRUE["hbm_efficiency"], rel=0.1)
    assert fit.values["step_overhead_s"] == pytest.approx(TRUE["step_overhead_s"], rel=0.25)
    before = fit.errors_before.query("quantity == 'tpot_ms'")["rel_error"].abs().median()
    after = fit.errors_after.query("quantity == 'tpot_ms'")["rel_error"].abs().median()
    assert after < 0.05 < before


def test_leave_one_group_out_error_is_reported(fitted):
    fits, skipped = fitted
    loo = fits[0].loo
    assert set(loo["group"]) == {"h100_sxm/llama3_1_8b", "h200_sxm/llama3_1_8b"}
    assert np.isfinite(loo["rel_error"]).all()
    text = format_calibration(fits, skipped)
    assert "leave-one-group-out" in text and "trtllm_hopper" in text


def test_written_profile_loads_as_a_stack_and_lists_what_it_was_fitted_to(fitted, tmp_path):
    fits, _ = fitted
    (path,) = write_profiles(fits, tmp_path / "out")
    stack = load_stack(str(path))
    assert stack.name == "trtllm_hopper"
    # a fit of two constants holds the others, whose rows stay listed before the new ones
    earlier = load_stack("trtllm_hopper").fitted_to
    assert stack.fitted_to == earlier + [f"s{i}" for i in range(len(SHAPES))]
    assert stack.hbm_efficiency == pytest.approx(fits[0].values["hbm_efficiency"], rel=1e-3)
    text = profile_yaml(fits[0])
    line = next(x for x in text.splitlines() if x.startswith("hbm_efficiency:"))
    assert "other constants held" in line and "prior 0.87" in line
    assert "gemm_scale" in fits[0].held and "hbm_efficiency" not in fits[0].held
    full = dataclasses.replace(fits[0], held=[])  # a fit of every constant lists only its own rows
    assert yaml.safe_load(profile_yaml(full))["fitted_to"] == [f"s{i}" for i in range(len(SHAPES))]


def test_calibrate_cli_on_a_file_without_enough_rows_exits_2(tmp_path, capsys):
    from factory_sim.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["calibrate", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "neither" in capsys.readouterr().err


def test_measured_ttft_weighs_only_when_a_prefill_overhead_is_fitted():
    from factory_sim.fidelity.calibrate import PARAMETERS, TTFT_PARAMETERS, FitRow, _log_errors
    row = FitRow(id="p", kind="points", row={}, profile="trtllm_hopper", group="g", weight=1.0,
                 published={"ttft_ms": 100.0, "tpot_ms": 10.0})
    pred = [{"ttft_ms": 200.0, "tpot_ms": 10.0}]
    without = tuple(p for p in PARAMETERS if p.name not in TTFT_PARAMETERS)
    errors, weights = _log_errors([row], pred, without)
    assert errors == pytest.approx([np.log(2.0), 0.0])
    assert list(weights) == [0.0, 1.0]
    for name in TTFT_PARAMETERS:
        _, weights = _log_errors([row], pred, tuple(p for p in PARAMETERS if p.name == name))
        assert list(weights) == [0.5, 1.0]


def test_the_robust_loss_is_quadratic_near_zero_and_linear_far_out():
    from factory_sim.fidelity.calibrate import _robust
    small, large = _robust(np.array([1e-3, -1e-3])), _robust(np.array([100.0, 400.0]))
    assert small == pytest.approx([1e-3, -1e-3], rel=1e-6)
    assert large[1] ** 2 / large[0] ** 2 == pytest.approx(4.0, rel=0.02)  # loss grows as |r|, not r^2


def test_a_fitted_line_without_a_comment_leaves_the_next_line_alone(fitted, tmp_path, monkeypatch):
    import factory_sim.fidelity.calibrate as cal
    text = cal._profile_text("trtllm_hopper")
    lines = [x.split("#")[0].rstrip() if x.startswith("step_overhead_s:") else x for x in text.splitlines()]
    (tmp_path / "trtllm_hopper.yaml").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(cal, "_profile_text", lambda name: (tmp_path / f"{name}.yaml").read_text())
    fit = dataclasses.replace(fitted[0][0], values={"step_overhead_s": 0.003})
    out = yaml.safe_load(profile_yaml(fit))
    assert out["step_overhead_s"] == 0.003
    assert out["layer_overhead_s"] == yaml.safe_load(text)["layer_overhead_s"]  # the next line, intact
    line = next(x for x in profile_yaml(fit).splitlines() if x.startswith("step_overhead_s:"))
    assert "no source given" in line


def test_calibrate_cli_names_an_unknown_constant_and_exits_2(tmp_path, capsys):
    from factory_sim.cli import main
    assert main(["calibrate", "--parameter", "gemm_scal", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown constant 'gemm_scal'" in err and "gemm_scale" in err
    assert not (tmp_path / "o").exists()


def test_a_fit_whose_rounds_run_out_while_it_still_moves_says_it_did_not_converge(fitted):
    """One round cannot cover the distance to the TRUE constants (the trust region limits a
    round's move), so the report says more rounds would move them further; four rounds settle
    (the last one moves them by less than 0.01 in log)."""
    points = _synthetic_points()
    fits, skipped = calibrate(None, points, points_sample=0, profiles=["trtllm_hopper"], rounds=1, iterations=10,
                              jobs=1, prior_weight=1e-4, parameters=["hbm_efficiency", "step_overhead_s"], loo=False)
    (short,) = fits
    assert not short.converged
    assert "not converged" in format_calibration(fits, skipped)
    (settled,) = fitted[0]
    assert settled.converged
    assert "not converged" not in format_calibration(*fitted)


def test_a_family_its_twins_contradict_is_held_out_of_the_fit_but_still_scored():
    """SGLang DeepSeek NVFP4 with tensor-parallel experts measures ~10x the TTFT of the same
    deployments with expert parallelism: calibrate leaves it out (saying why); validate scores it."""
    from factory_sim.fidelity.calibrate import collect_rows, held_out
    from factory_sim.fidelity.measured import deployment, validate_points
    row = {"id": "ep1", "system": "b200_hgx", "model": "deepseek_r1", "hf_model": "x", "backend": "sglang",
           "backend_version": "0.5.9", "precision": "fp4", "gemm_quant": "nvfp4", "moe_quant": "nvfp4",
           "mode": "agg", "isl": 1024, "osl": 64, "concurrency": 4, "batch_size": 4, "tp_size": 8, "pp_size": 1,
           "attention_dp_size": np.nan, "moe_tp_size": 8, "moe_ep_size": 1, "ttft_ms": 2000.0, "tpot_ms": 8.0,
           "measured_date": "2026-03-25"}
    twin = {**row, "id": "ep8", "moe_tp_size": 1, "moe_ep_size": 8}
    assert "held out" in held_out(deployment(row))
    assert held_out(deployment(twin)) is None
    assert held_out(deployment({**row, "backend": "trtllm"})) is None  # only SGLang's
    rows, skipped = collect_rows(None, pd.DataFrame([row, twin]), points_sample=0)
    assert [r.id for r in rows] == ["ep8"]
    assert [(rid, "held out" in why) for rid, why in skipped] == [("ep1", True)]
    scored = validate_points(pd.DataFrame([row]), jobs=1)
    assert (scored["skipped"] == "").all() and len(scored) == 2


def test_a_user_fits_the_latency_floor_of_their_own_deployment_and_runs_with_it(tmp_path, capsys):
    """The README's workflow: measured rows of one's own deployment -> calibrate only the
    latency constants -> `stack: my_stack.yaml` in an experiment."""
    from factory_sim.cli import main

    true_frontend_s = 0.010  # the profile ships 0.0548
    truth = {"trtllm_hopper": override_stack(load_stack("trtllm_hopper"), {"frontend_latency_s": true_frontend_s})}
    rows = []
    for i, c in enumerate((1, 2, 4, 8, 16, 32)):  # enough rows that the prior pulls only a little
        row = {**BASE, "id": f"mine{i}", "isl": 512, "osl": 64, "concurrency": c, "batch_size": c}
        ttft, tpot, _ = predict(row, stacks=truth)
        rows.append({**row, "ttft_ms": ttft, "tpot_ms": tpot})
    points = tmp_path / "my_points.csv"
    pd.DataFrame(rows).to_csv(points, index=False)
    stack_path = tmp_path / "my_stack.yaml"
    assert main(["calibrate", str(points), "--profile", "trtllm_hopper", "--parameter", "frontend_latency_s",
                 "--rounds", "8", "--no-loo", "--jobs", "1", "--out", str(stack_path)]) == 0
    mine = load_stack(str(stack_path))
    assert mine.name == "my_stack"  # told apart from the built-in it was fitted from
    assert mine.frontend_latency_s == pytest.approx(true_frontend_s, rel=0.15)  # a loose prior pulls a little
    assert mine.hbm_efficiency == load_stack("trtllm_hopper").hbm_efficiency  # the rest held
    ttft, _, _ = predict(rows[0], stacks={"trtllm_hopper": mine})  # one client: no step to wait for
    assert ttft == pytest.approx(rows[0]["ttft_ms"], rel=0.05)

    experiment = tmp_path / "mine.yaml"
    experiment.write_text(yaml.safe_dump({
        "name": "mine", "model": "llama3_1_8b", "workload": "chat_1k1k", "requests": 200,
        "slo_tiers": [{"name": "chat", "ttft_s": 2.0, "tpot_s": 0.05}],
        "fleets": [{"name": "h100_mine", "hardware": "h100_sxm", "precision": "fp8", "stack": str(stack_path),
                    "aggregated": {"replicas": 1, "tp": 1}}]}))
    capsys.readouterr()
    assert main(["run", str(experiment), "--out", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "h100_mine" in out


def test_the_per_layer_overhead_is_fitted_only_when_named():
    """Every profile sets layer_overhead_s (an estimate): a plain calibrate leaves it alone, and
    `--parameter layer_overhead_s` moves it."""
    from factory_sim.fidelity.calibrate import fitted_parameters

    base = load_stack("trtllm_blackwell")
    default = [p.name for p in fitted_parameters(base, moe_ep=True, names=None)]
    assert "layer_overhead_s" not in default and "step_overhead_s" in default
    named = [p.name for p in fitted_parameters(base, moe_ep=True, names=["layer_overhead_s", "step_overhead_s"])]
    assert named == ["step_overhead_s", "layer_overhead_s"]


def test_calibrate_recovers_a_per_layer_overhead_from_models_of_different_depth():
    """A fixed cost per layer tells an 80-layer model from a 32-layer one on the same system,
    where a per-step cost cannot: fitted together they come back apart."""
    truth_values = {"step_overhead_s": 0.001, "layer_overhead_s": 6e-5}
    truth = {"trtllm_hopper": override_stack(load_stack("trtllm_hopper"), truth_values)}
    rows = []
    for i, (model, c) in enumerate([(m, c) for m in ("llama3_1_8b", "llama3_1_70b") for c in (1, 4, 16)]):
        tp = 1 if model == "llama3_1_8b" else 4
        row = {**BASE, "id": f"d{i}", "model": model, "system": "h200_sxm", "tp_size": tp, "isl": 64, "osl": 16,
               "concurrency": c, "batch_size": c}
        ttft, tpot, _ = predict(row, stacks=truth)
        rows.append({**row, "ttft_ms": ttft, "tpot_ms": tpot})
    fits, _ = calibrate(None, pd.DataFrame(rows), points_sample=0, profiles=["trtllm_hopper"], rounds=4, iterations=10,
                        jobs=1, loo=False, prior_weight=1e-4, parameters=["step_overhead_s", "layer_overhead_s"])
    (fit,) = fits
    assert fit.values["layer_overhead_s"] == pytest.approx(truth_values["layer_overhead_s"], rel=0.2)
    assert fit.values["step_overhead_s"] == pytest.approx(truth_values["step_overhead_s"], rel=0.3)
