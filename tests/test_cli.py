"""The command line as a user meets it: the default run, bad input, files written."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from factory_sim.cli import main
from factory_sim.studies.assemble import default_experiment_path
from factory_sim.studies.run import SUMMARY_COLUMNS
from tests.helpers import SMALL


def _write(tmp_path, text, name="exp.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_default_run_prints_every_column(default_run_stdout):
    """The README's first command: `factory-sim run` with no arguments."""
    out = default_run_stdout
    for header in ("fleet", "tier", "hardware", "GPUs", "req/s", "tok/s/GPU", "tok/s/user", "TTFT p50 s",
                   "TTFT p99 s", "TPOT p50 ms", "TPOT p99 ms", "SLO met", "goodput tok/s", "kW", "$/hour",
                   "$/M out", "$/M goodput", "cost vs ref"):
        assert header in out
    for fleet in ("h200_throughput", "h200_latency", "gb200_throughput", "gb200_latency", "gb300_throughput",
                  "gb300_latency"):
        assert out.count(fleet) >= 2
    assert "nan" not in out.lower()


def test_default_run_lists_each_hardwares_cheapest_layout_per_tier(default_run_stdout):
    """The quick start's headline: of the two layouts each hardware is given, the cheapest per
    tier, relative to the cheapest H200 fleet."""
    lines = default_run_stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("fleet") and line.endswith("cost vs ref"))
    cost = {}  # (tier, fleet) -> $/M goodput, from the cost block
    for line in lines[head + 2:]:
        if not line.strip():
            break
        f = line.split()
        cost[(f[1], f[0])] = float(f[-2]) if f[-2] != "-" else float("inf")
    best_head = next(i for i, line in enumerate(lines) if line.startswith("tier") and "cheapest fleet" in line)
    best = [line.split() for line in lines[best_head + 2:best_head + 2 + 6]]
    assert {(b[0], b[1]) for b in best} == {(t, hw) for t in ("interactive", "low_latency")
                                            for hw in ("h200_sxm", "gb200_nvl72", "gb300_nvl72")}
    for tier, hw, fleet, of, usd, _ in best:
        mine = {f: c for (t, f), c in cost.items() if t == tier and f.startswith(hw.split("_")[0] + "_")}
        assert of == "2" and len(mine) == 2
        assert fleet == min(mine, key=mine.get) and float(usd) == mine[fleet]
    ref = {b[0]: float(b[4]) for b in best if b[1] == "h200_sxm"}
    for tier, _, _, _, usd, ratio in best:
        assert float(ratio.rstrip("x")) == pytest.approx(float(usd) / ref[tier], abs=6e-4)


def test_run_writes_summary_and_traces(tmp_path, capsys):
    exp = _write(tmp_path, SMALL)
    assert main(["run", str(exp), "--out", str(tmp_path / "res"), "--quiet", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "impossible" in out and "lowest reachable TPOT" in out
    summary = pd.read_csv(tmp_path / "res" / "summary.csv")
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert len(summary) == 4
    relaxed = summary[summary.tier == "relaxed"]
    assert relaxed.feasible.all() and (relaxed.slo_attainment >= 0.9).all()
    assert (relaxed.usd_per_m_goodput_tokens > 0).all()
    impossible = summary[summary.tier == "impossible"]
    assert not impossible.feasible.any() and impossible.note.str.contains("cannot meet TPOT").all()
    traces = pd.read_parquet(tmp_path / "res" / "traces.parquet")
    assert {"fleet", "tier", "arrival_s", "first_token_s", "finish_s", "outcome"} <= set(traces.columns)
    assert yaml.safe_load((tmp_path / "res" / "experiment.yaml").read_text())["name"] == "small"

    assert main(["run", str(exp), "--out", str(tmp_path / "csv"), "--trace-format", "csv", "--quiet",
                 "--jobs", "1"]) == 0
    assert len(pd.read_csv(tmp_path / "csv" / "traces.csv.gz")) > 0


BAD = {
    "misspelled key": ("fleets[0].aggregated.replica", "  aggregated: {replicas: 1", "  aggregated: {replica: 1"),
    "wrong type": ("seed", "seed: 3", "seed: three"),
    "negative rate": ("workload.arrivals.rate_per_s", "rate_per_s: 20", "rate_per_s: -5"),
    "unknown hardware": ("fleets[0].hardware", "hardware: h100_sxm", "hardware: h100_sxn"),
    "unknown model": ("model", "model: llama3_1_8b", "model: llama9"),
    "does not fit": ("fleets[0].aggregated", "model: llama3_1_8b", "model: llama3_1_405b"),
    "fp4 on hopper": ("fleets[0].aggregated.precision", "precision: fp8\n    aggregated",
                      "precision: fp4\n    aggregated"),
    "bad yaml": ("exp.yaml:", "seed: 3", "seed: [3"),
    "zero replicas": ("fleets[1].prefill.replicas", "prefill: {replicas: 1}", "prefill: {replicas: 0}"),
    "unknown router": ("fleets[0]", "precision: fp8\n    aggregated", "precision: fp8\n    router: fastest\n    aggregated"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_exits_2_naming_the_field(case, tmp_path, capsys):
    field, old, new = BAD[case]
    text = SMALL.replace(old, new, 1)
    assert text != SMALL
    code = main(["run", str(_write(tmp_path, text)), "--quiet", "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert field in err, err
    assert "Traceback" not in err


def test_bad_input_through_the_installed_entry_point_has_no_traceback(tmp_path):
    p = _write(tmp_path, SMALL.replace("hardware: h100_sxm", "hardware: tpu_v9"))
    proc = subprocess.run([sys.executable, "-m", "factory_sim.cli", "run", str(p)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown hardware 'tpu_v9'" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_file_and_existing_out_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read experiment file" in capsys.readouterr().err
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    assert main(["run", str(_write(tmp_path, SMALL)), "--out", str(blocker), "--quiet", "--jobs", "1"]) == 2
    assert blocker.read_text() == "keep me"


def test_init_writes_the_default_and_never_overwrites(tmp_path, capsys):
    target = tmp_path / "mine.yaml"
    assert main(["init", str(target)]) == 0
    assert target.read_text() == default_experiment_path().read_text()
    target.write_text("my edits")
    assert main(["init", str(target)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert target.read_text() == "my edits"
    assert main(["init", str(target), "--force"]) == 0


@pytest.mark.parametrize("what", ["hardware", "models", "workloads", "stacks"])
def test_list(what, capsys):
    assert main(["list", what]) == 0
    out = capsys.readouterr().out
    expected = {"hardware": "gb300_nvl72", "models": "deepseek_r1", "workloads": "chat_1k1k",
                "stacks": "trtllm_blackwell"}[what]
    assert expected in out
    if what == "stacks":  # what picks a profile, and the scheduling choices that are not constants
        for column in ("generation", "kv_allocation", "adp_balance_steps", "fitted_rows"):
            assert column in out
        assert "on_demand" in out and "reserve" in out


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["list", "--help"], ["init", "--help"]])
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "usage: factory-sim" in capsys.readouterr().out
