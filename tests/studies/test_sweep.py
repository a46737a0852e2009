"""Sweeps: field paths, grid x zip points, results appended per point, resumption."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from factory_sim.cli import main
from factory_sim.config.sweep import SweepAxes
from factory_sim.errors import ConfigError
from factory_sim.studies.sweep import parse_path, point_key, set_field, sweep_points
from tests.helpers import SMALL


def test_field_paths():
    assert parse_path("fleets[0].decode.replicas") == ["fleets", 0, "decode", "replicas"]
    assert parse_path("load.rate_per_s") == ["load", "rate_per_s"]
    raw = yaml.safe_load(SMALL)
    set_field(raw, "fleets.b200_disagg.decode.replicas", 3)
    set_field(raw, "fleets[0].aggregated.tp", 2)
    set_field(raw, "load.rate_per_s", 7)
    assert raw["fleets"][1]["decode"]["replicas"] == 3
    assert raw["fleets"][0]["aggregated"]["tp"] == 2
    assert raw["load"] == {"mode": "max_goodput", "search_steps": 4, "rate_per_s": 7}
    for bad in ("fleets[5].hardware", "fleets.nope.hardware", "seed.x", "fleets[x"):
        with pytest.raises(ConfigError):
            set_field(raw, bad, 1)


def test_grid_times_zip():
    axes = SweepAxes(grid={"a": [1, 2, 3], "b": ["x", "y"]}, zip={"c": [10, 20], "d": [0.1, 0.2]})
    points = sweep_points(axes)
    assert len(points) == 3 * 2 * 2
    assert {"a": 1, "b": "x", "c": 20, "d": 0.2} in points
    assert len({point_key(p) for p in points}) == len(points)
    with pytest.raises(ValueError):
        SweepAxes(zip={"c": [1, 2], "d": [1]})


def _sweep_file(tmp_path):
    (tmp_path / "base.yaml").write_text(SMALL.replace("load: {mode: max_goodput, search_steps: 4}",
                                                      "load: {mode: fixed, rate_per_s: 10}"))
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "t", "base": "base.yaml", "sweep": {
        "grid": {"load.rate_per_s": [5, 10]}, "zip": {"fleets.h100.aggregated.max_batch": [8, 64]}}}))
    return sweep


def test_sweep_appends_points_and_resumes_without_losing_any(tmp_path, capsys):
    sweep, out = _sweep_file(tmp_path), tmp_path / "res.csv"
    assert main(["sweep", str(sweep), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    df = pd.read_csv(out)
    assert df["point_key"].nunique() == 4 and len(df) == 4 * 2 * 2  # points x fleets x tiers
    assert {"load.rate_per_s", "fleets.h100.aggregated.max_batch", "fleet", "usd_per_m_goodput_tokens"} <= set(df)

    # an interrupted write leaves a torn last line: that point is run again, the others are kept
    text = out.read_text()
    out.write_text(text[: len(text) - 40])
    assert pd.read_csv(out, on_bad_lines="skip")["point_rows"].isna().any()  # the torn row
    assert main(["sweep", str(sweep), "--out", str(out), "--jobs", "1"]) == 0
    assert "3 of 4 points already in" in capsys.readouterr().err
    again = pd.read_csv(out)
    assert len(again) == len(df) and again["point_key"].nunique() == 4 and again["point_rows"].notna().all()
    cols = ["point_key", "fleet", "tier", "goodput_tokens_per_s"]
    merged = again[cols].merge(df[cols], on=["point_key", "fleet", "tier"], suffixes=("", "_first"))
    assert (merged.goodput_tokens_per_s == merged.goodput_tokens_per_s_first).all()  # same seed, same numbers

    # a third run has nothing left to do
    assert main(["sweep", str(sweep), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    assert len(pd.read_csv(out)) == len(df)


def test_bad_sweep_field_exits_2_before_running(tmp_path, capsys):
    sweep = _sweep_file(tmp_path)
    raw = yaml.safe_load(sweep.read_text())
    raw["sweep"]["grid"] = {"fleets.h100.aggregated.replicas": [0, 1]}
    sweep.write_text(yaml.safe_dump(raw))
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "r.csv"), "--jobs", "1", "--quiet"]) == 2
    assert "fleets[0].aggregated.replicas" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_sweep_on_a_dask_local_cluster_gives_the_same_rows(tmp_path):
    from dask.distributed import LocalCluster

    sweep = _sweep_file(tmp_path)
    local = tmp_path / "local.csv"
    assert main(["sweep", str(sweep), "--out", str(local), "--jobs", "1", "--quiet"]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        on_dask = tmp_path / "dask.csv"
        assert main(["sweep", str(sweep), "--out", str(on_dask), "--scheduler", cluster.scheduler_address,
                     "--quiet"]) == 0
    cols = ["point_key", "fleet", "tier", "goodput_tokens_per_s", "usd_per_m_goodput_tokens"]
    a = pd.read_csv(local)[cols].sort_values(cols[:3]).reset_index(drop=True)
    b = pd.read_csv(on_dask)[cols].sort_values(cols[:3]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_unreachable_scheduler_is_a_clear_error(tmp_path, capsys):
    sweep = _sweep_file(tmp_path)
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "r.csv"), "--scheduler", "tcp://127.0.0.1:9",
                 "--quiet"]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
