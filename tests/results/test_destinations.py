"""Destinations are checked before any work, and a write that still fails keeps the results shown."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import yaml

import factory_sim.results.files as files
import factory_sim.studies.run as run_module
from factory_sim.cli import main
from factory_sim.errors import ConfigError
from factory_sim.results.files import check_file, check_folder

QUICK = yaml.safe_dump({
    "name": "quick", "model": "llama3_1_8b",
    "workload": {"arrivals": {"kind": "poisson", "rate_per_s": 5},
                 "input_tokens": {"kind": "fixed", "tokens": 200}, "output_tokens": {"kind": "fixed", "tokens": 20}},
    "requests": 40, "slo_tiers": [{"name": "s", "ttft_s": 2.0, "tpot_s": 0.1}],
    "fleets": [{"name": "h100", "hardware": "h100_sxm", "aggregated": {"replicas": 1}}],
    "load": {"mode": "fixed"}, "measurement": {"min_span_latencies": 0}})
TOO_LONG = "n" * 300
PLAN = Path(__file__).resolve().parents[2] / "experiments" / "plan_chat.yaml"


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process may not write in: a read-only one, or (as root, who may write
    anywhere on a normal file system) one of sysfs."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder / "out"
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no read-only folder available")
    return Path("/sys/factory_sim_out")


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a simulation starts."""
    # capacity binds run_experiment by name: imported first, so that it is not imported for the
    # first time under the patch and left holding the refusing stand-in after the test
    import factory_sim.studies.capacity  # noqa: F401

    def refuse(*args, **kwargs):
        raise AssertionError("the run started before its destination was checked")
    monkeypatch.setattr(run_module, "run_experiment", refuse)


def _bad_destinations(tmp_path):
    (tmp_path / "a_file").write_text("x")
    return {"under a file": (tmp_path / "a_file" / "out", "it is a file"),
            "read-only": (_unwritable(tmp_path), "cannot write in"),
            "name too long": (tmp_path / TOO_LONG, "too long")}


@pytest.mark.parametrize("case", ["under a file", "read-only", "name too long"])
def test_run_out_is_checked_before_the_simulation(tmp_path, capsys, no_work, case):
    exp = tmp_path / "exp.yaml"
    exp.write_text(QUICK)
    out, says = _bad_destinations(tmp_path)[case]
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("factory-sim: error: --out:") and says in captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


@pytest.mark.parametrize("case", ["under a file", "read-only", "name too long"])
def test_sweep_plan_and_init_destinations_are_checked_first(tmp_path, capsys, no_work, case):
    out, says = _bad_destinations(tmp_path)[case]
    (tmp_path / "base.yaml").write_text(QUICK)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "s", "base": "base.yaml", "sweep": {"grid": {"requests": [20, 30]}}}))
    for argv in (["sweep", str(sweep), "--out", str(out / "r.csv" if case != "name too long" else out)],
                 ["plan", str(PLAN), "--out", str(out / "p.csv" if case != "name too long" else out)],
                 ["init", str(out / "e.yaml" if case != "name too long" else out)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, (argv, err)


def test_the_check_leaves_nothing_behind(tmp_path):
    check_folder(tmp_path / "a" / "b", "--out")
    check_file(tmp_path / "c" / "r.csv", "--out")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="is a folder"):
        check_file(tmp_path, "--out")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        check_folder(tmp_path / "f", "--out")
    # a name that fits, but not with the temporary name a safe write uses beside it
    with pytest.raises(ConfigError, match="too long"):
        check_file(tmp_path / ("n" * 250), "--out")


def test_a_write_that_fails_after_the_run_keeps_the_table(tmp_path, capsys, monkeypatch):
    exp = tmp_path / "exp.yaml"
    exp.write_text(QUICK)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "summary.csv"))
    monkeypatch.setattr(files, "write_csv", disk_full)
    assert main(["run", str(exp), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "h100" in captured.out and "tok/s/GPU" in captured.out  # the table was printed all the same
    assert captured.err.count("\n") == 1
    assert "no space left on device" in captured.err.lower() and "computed but not saved" in captured.err
