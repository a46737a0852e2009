"""A sweep resumed after its base changed recomputes nothing stale: it stops and says why."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

import factory_sim.studies.sweep as sweep_module
from factory_sim.cli import main
from factory_sim.errors import ConfigError
from factory_sim.studies.sweep import load_sweep

BASE = {
    "name": "small",
    "model": "llama3_1_8b",
    "seed": 3,
    "workload": "work.yaml",
    "requests": 80,
    "slo_tiers": [{"name": "relaxed", "ttft_s": 1.0, "tpot_s": 0.05}],
    "fleets": [{"name": "h100", "hardware": "h100_sxm", "aggregated": {"replicas": 1, "max_batch": 64}}],
    "load": {"mode": "fixed", "rate_per_s": 5},
    "measurement": {"min_span_latencies": 0},
}
WORKLOAD = {"arrivals": {"kind": "poisson", "rate_per_s": 5},
            "input_tokens": {"kind": "uniform", "low": 100, "high": 400},
            "output_tokens": {"kind": "uniform", "low": 20, "high": 60}}


def _files(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE | {"workload": str(tmp_path / "work.yaml")}))
    (tmp_path / "work.yaml").write_text(yaml.safe_dump(WORKLOAD))
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "keys", "base": "base.yaml",
                                     "sweep": {"grid": {"load.rate_per_s": [4, 8]}}}))
    return sweep, tmp_path / "res.csv"


def _sweep(sweep, out) -> int:
    return main(["sweep", str(sweep), "--out", str(out), "--jobs", "1", "--quiet"])


def _edit(path, change):
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw))


@pytest.mark.parametrize("what", ["base", "workload file", "version"])
def test_a_changed_experiment_stops_the_resumed_sweep_before_any_work(tmp_path, capsys, monkeypatch, what):
    sweep, out = _files(tmp_path)
    assert _sweep(sweep, out) == 0
    first = out.read_bytes()
    if what == "base":
        _edit(tmp_path / "base.yaml", lambda raw: raw["fleets"][0]["aggregated"].update(replicas=2))
    elif what == "workload file":
        _edit(tmp_path / "work.yaml", lambda raw: raw["output_tokens"].update(high=90))
    else:
        monkeypatch.setattr(sweep_module, "__version__", "99.0")
    capsys.readouterr()
    assert _sweep(sweep, out) == 2
    err = capsys.readouterr().err
    assert "2 of these 2 points computed with other settings" in err and f"delete {out}" in err
    assert out.read_bytes() == first  # nothing stale handed back, nothing lost

    out.unlink()  # starting fresh recomputes with the new settings
    assert _sweep(sweep, out) == 0
    if what == "base":
        assert (pd.read_csv(out)["gpus"] == 2).all()


def test_an_unchanged_sweep_resumes(tmp_path, capsys):
    sweep, out = _files(tmp_path)
    assert _sweep(sweep, out) == 0
    before = out.read_bytes()
    assert main(["sweep", str(sweep), "--out", str(out), "--jobs", "1"]) == 0
    assert "2 of 2 points already in" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_a_results_file_without_experiment_keys_is_stale(tmp_path, capsys):
    sweep, out = _files(tmp_path)
    assert _sweep(sweep, out) == 0
    pd.read_csv(out).drop(columns=["experiment_key"]).to_csv(out, index=False)  # as written before the keys
    assert _sweep(sweep, out) == 2
    assert "computed with other settings" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/escaped", "a/b", ".hidden", ""])
def test_a_sweep_name_cannot_leave_the_folder(tmp_path, name):
    sweep, _ = _files(tmp_path)
    _edit(sweep, lambda raw: raw.update(name=name))
    with pytest.raises(ConfigError) as err:
        load_sweep(sweep)
    assert err.value.path == "name"
