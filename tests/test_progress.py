"""Progress bars: drawn on a terminal, silent with --quiet or when stderr is a file or pipe,
moved by every simulation even when the simulations run in worker processes."""

from __future__ import annotations

import io
import sys

import pytest

from factory_sim import progress
from factory_sim.cli import main
from factory_sim.progress import Bars, emit, on_terminal
from factory_sim.studies.workers import map_jobs
from tests.helpers import SMALL


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _emit_three(key: str) -> str:
    for _ in range(3):
        emit("unit-test", key)
    return key


def test_events_from_worker_processes_reach_the_bars(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    with Bars("unit-test", unit="step") as bars:
        assert map_jobs(_emit_three, ["a", "b", "a", "b"], jobs=2) == ["a", "b", "a", "b"]
    assert bars.counts == {"a": 6, "b": 6}
    assert progress._listener is None  # the block restored the silence
    emit("unit-test", "a")  # nobody listens: nothing happens
    assert bars.counts == {"a": 6, "b": 6}


def test_bars_only_on_a_terminal_and_not_with_quiet(tmp_path, monkeypatch):
    exp = tmp_path / "exp.yaml"
    exp.write_text(SMALL)
    seen = {}
    for case, stream, flags in (("terminal", _Terminal(), []), ("quiet", _Terminal(), ["--quiet"]),
                                ("pipe", io.StringIO(), [])):
        monkeypatch.setattr(sys, "stderr", stream)
        assert on_terminal("--quiet" in flags) == (case == "terminal")
        assert main(["run", str(exp), "--jobs", "1", *flags]) == 0
        seen[case] = stream.getvalue()
    # a bar per fleet, counting its simulations, with the load it is at
    assert "h100" in seen["terminal"] and "b200_disagg" in seen["terminal"] and "sim" in seen["terminal"]
    assert "req/s" in seen["terminal"]
    assert seen["quiet"] == ""
    # a log gets the one line saying what runs, and no bar
    assert seen["pipe"].startswith("factory-sim") and seen["pipe"].count("\n") == 1 and "\r" not in seen["pipe"]


def test_sweep_draws_its_bar_with_tqdm(tmp_path, capsys):
    from tests.studies.test_sweep import _sweep_file

    sweep = _sweep_file(tmp_path)
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "a.csv"), "--jobs", "1"]) == 0
    assert "[#" not in capsys.readouterr().err  # no hand-drawn bar (stderr is not a terminal here)
    from factory_sim.studies.sweep import load_sweep, run_sweep

    spec, base = load_sweep(sweep)
    run_sweep(spec, base, tmp_path / "b.csv", jobs=1, source=str(sweep), progress=True)
    err = capsys.readouterr().err
    assert "/4 [" in err and "point/s" in err  # tqdm: points done of 4, and their rate


@pytest.mark.parametrize("quiet", [True, False])
def test_disabled_bars_install_no_listener(quiet, monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    with Bars("unit-test", unit="step", enabled=on_terminal(quiet)) as bars:
        emit("unit-test", "a")
    assert bars.counts == ({} if quiet else {"a": 1})
