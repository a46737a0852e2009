"""InferenceX points as calibration rows: fitted, and held out by hardware and by date."""

import numpy as np
import pytest

from factory_sim.errors import ConfigError
from factory_sim.fidelity import calibrate_inferencex as cx
from factory_sim.fidelity.inferencex import load_points


@pytest.fixture(scope="module")
def hopper_points():
    d = load_points()
    # TensorRT-LLM on Hopper at a few clients (H100's are disaggregated runs), 1k/1k: quick to simulate
    return d[d["framework"].isin(["trtllm", "dynamo-trtllm"]) & d["hardware"].isin(["h100", "h200"])
             & (d["concurrency"] <= 30) & (d["osl"] == 1024) & (d["isl"] == 1024)]


def test_rows_carry_hardware_and_month_strata(hopper_points):
    rows, _ = cx.collect_points(hopper_points, sample=0, profiles=["trtllm_hopper"])
    assert rows and all(r.kind == "inferencex" and r.profile == "trtllm_hopper" for r in rows)
    assert {r.strata["hardware"] for r in rows} == {"h100", "h200"}
    assert all(len(r.strata["date"]) == 7 for r in rows)
    assert all(set(r.published) <= {"output_tok_s_per_gpu", "interactivity_tok_s_user", "ttft_ms"} for r in rows)


def test_stratified_sample_keeps_every_stratum(hopper_points):
    rows, _ = cx.collect_points(hopper_points, sample=0, profiles=["trtllm_hopper"])
    small, _ = cx.collect_points(hopper_points, sample=4, profiles=["trtllm_hopper"])
    assert len(small) < len(rows)
    assert {r.strata["hardware"] for r in small} == {"h100", "h200"}


def test_fit_reports_in_sample_and_held_out_errors(hopper_points):
    d = hopper_points.groupby("hardware").head(3)
    fits, _ = cx.calibrate_inferencex(d, sample=0, profiles=["trtllm_hopper"], rounds=1, jobs=1,
                                      parameters=["hbm_efficiency", "step_overhead_s"])
    (fit,) = fits
    assert set(fit.held_out) == {"hardware", "date"}
    ids = set(fit.rows)
    for frame in fit.held_out.values():
        assert set(frame["id"]) == ids  # every row is predicted once while held out
    # a grouping with one group has nothing left to fit: predicted at the profile as shipped
    months = {m for m in fit.held_out["date"]["held_out"]}
    if len(months) == 1:
        assert np.allclose(fit.held_out["date"]["predicted"], fit.errors_before["predicted"], equal_nan=True)
    text = cx.format_inferencex_calibration(fits, [])
    assert "leave-one-hardware-out" in text and "leave-one-date-out" in text
    assert "InferenceX fit" in cx.figures_comment(fit)


def test_bad_arguments_are_config_errors(hopper_points):
    with pytest.raises(ConfigError, match="sim-rounds"):
        cx.calibrate_inferencex(hopper_points, sim_rounds=2)
    with pytest.raises(ConfigError, match="unknown constant"):
        cx.calibrate_inferencex(hopper_points, parameters=["nope"])
    # the client's request path is the harness's: the points cannot fit a profile's front-end
    for name in cx.HARNESS_SET:
        assert name not in cx.DEFAULT_PARAMETERS
        with pytest.raises(ConfigError, match=f"{name}.*InferenceX client"):
            cx.calibrate_inferencex(hopper_points, parameters=[name])


def test_calibrate_command_recognises_an_inferencex_file(hopper_points, tmp_path, capsys):
    from factory_sim.cli import main

    pts = tmp_path / "points.csv"
    hopper_points[hopper_points["hardware"] == "h200"].head(4).to_csv(pts, index=False)
    out = tmp_path / "trtllm_hopper.yaml"
    assert main(["calibrate", str(pts), "--profile", "trtllm_hopper", "--rounds", "1", "--points", "0",
                 "--parameter", "hbm_efficiency", "--no-loo", "--quiet", "--jobs", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# InferenceX fit") and "name: trtllm_hopper" in text
    assert "after (in sample)" in capsys.readouterr().out
    # an InferenceX file is fitted on its own, not beside other rows
    other = tmp_path / "rows.csv"
    other.write_text("id,metric\n")
    assert main(["calibrate", str(pts), str(other), "--out", str(tmp_path / "x")]) == 2


def test_the_written_profile_adds_the_constants_the_profile_did_not_set_and_loads(tmp_path):
    import pandas as pd
    import yaml

    from factory_sim.config.stack import SoftwareStack, load_stack
    from factory_sim.fidelity.calibrate import ProfileFit

    base = load_stack("trtllm_blackwell_2025")  # a profile that sets neither constant
    assert base.mla_dp_attention_efficiency is None and not base.adp_rank_jitter_s
    empty = pd.DataFrame()
    fit = ProfileFit(profile="trtllm_blackwell_2025", start={"mla_dp_attention_efficiency": 0.35, "adp_rank_jitter_s": 1e-3,
                                                        "step_overhead_s": base.step_overhead_s},
                     values={"mla_dp_attention_efficiency": 0.4, "adp_rank_jitter_s": 2e-3, "step_overhead_s": 1e-3},
                     rows=["p00001", "p00002"], errors_before=empty, errors_after=empty, loo=empty, rounds=1)
    text = cx.add_unset_constants(cx.profile_yaml(fit), fit, "fitted to 2 InferenceX points")
    for name in ("mla_dp_attention_efficiency", "adp_rank_jitter_s", "step_overhead_s"):
        assert text.count(f"\n{name}:") == 1, name
    assert "prior 0.35: estimate" in text
    stack = SoftwareStack.model_validate(yaml.safe_load(text))
    assert stack.mla_dp_attention_efficiency == pytest.approx(0.4) and stack.adp_rank_jitter_s == pytest.approx(2e-3)
    assert stack.step_overhead_s == pytest.approx(1e-3)
