"""Files an experiment names by a relative path are found beside it, wherever it is run from."""

from __future__ import annotations

import pytest
import yaml

from factory_sim.cli import main
from factory_sim.errors import ConfigError
from factory_sim.studies.assemble import load_experiment
from factory_sim.studies.sweep import build_point, load_sweep

TRACE = "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
    f"2023-11-16 18:00:{i // 10:02d}.{i % 10}00000,{200 + 7 * i},{20 + i % 13}\n" for i in range(40))


def _project(tmp_path, *, requests=30, workload_requests=None):
    """An experiment folder with its own trace and workload file, and another folder to run from."""
    folder = tmp_path / "project"
    (folder / "traces").mkdir(parents=True)
    (folder / "traces" / "mine.csv").write_text(TRACE)
    workload = {"arrivals": {"kind": "trace", "trace": "traces/mine.csv"}}
    if workload_requests is not None:
        workload["requests"] = workload_requests
    (folder / "work.yaml").write_text(yaml.safe_dump(workload))
    exp = {"name": "rel", "model": "llama3_1_8b", "workload": "work.yaml",
           "slo_tiers": [{"name": "s", "ttft_s": 2.0, "tpot_s": 0.1}],
           "fleets": [{"name": "h100", "hardware": "h100_sxm", "aggregated": {"replicas": 1}}],
           "load": {"mode": "fixed"}, "measurement": {"min_span_latencies": 0}}
    if requests is not None:
        exp["requests"] = requests
    (folder / "exp.yaml").write_text(yaml.safe_dump(exp))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return folder, elsewhere


def test_a_trace_resolves_beside_the_file_that_names_it(tmp_path, monkeypatch, capsys):
    folder, elsewhere = _project(tmp_path)
    monkeypatch.chdir(elsewhere)
    exp = load_experiment(folder / "exp.yaml")
    assert exp.workload_spec.arrivals.trace == str(folder / "traces" / "mine.csv")
    assert main(["run", str(folder / "exp.yaml"), "--quiet"]) == 0
    assert "h100" in capsys.readouterr().out


@pytest.mark.parametrize(("requests", "workload_requests", "field"), [(41, None, "requests"),
                                                                       (None, 41, "workload.requests")])
def test_the_trace_length_is_checked_against_the_requests_asked_for(tmp_path, monkeypatch, requests,
                                                                   workload_requests, field):
    folder, elsewhere = _project(tmp_path, requests=requests, workload_requests=workload_requests)
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError) as err:
        load_experiment(folder / "exp.yaml")
    assert err.value.path == field and "41 requests exceed the 40 requests" in err.value.message


def test_a_sweep_base_and_its_varied_files_resolve_beside_their_files(tmp_path, monkeypatch):
    folder, elsewhere = _project(tmp_path)
    (folder / "other.yaml").write_text(yaml.safe_dump({"arrivals": {"kind": "poisson", "rate_per_s": 3},
                                                       "input_tokens": {"kind": "fixed", "tokens": 100},
                                                       "output_tokens": {"kind": "fixed", "tokens": 10}}))
    sweeps = tmp_path / "project" / "sweeps"
    sweeps.mkdir()
    (sweeps / "s.yaml").write_text(yaml.safe_dump({"name": "s", "base": "../exp.yaml",
                                                   "sweep": {"grid": {"workload": ["../other.yaml"]}}}))
    monkeypatch.chdir(elsewhere)
    spec, base = load_sweep(sweeps / "s.yaml")
    assert base["workload"] == str(folder / "work.yaml")
    exp = build_point(base, {"workload": spec.sweep.grid["workload"][0]}, "s")
    assert exp.workload_spec.arrivals.rate_per_s == 3


def test_a_name_not_beside_the_file_still_means_a_built_in(tmp_path, monkeypatch):
    folder, elsewhere = _project(tmp_path)
    raw = yaml.safe_load((folder / "exp.yaml").read_text())
    (folder / "exp.yaml").write_text(yaml.safe_dump(raw | {"workload": "chat_1k1k"}))
    monkeypatch.chdir(elsewhere)
    assert load_experiment(folder / "exp.yaml").workload_spec.name == "chat_1k1k"
