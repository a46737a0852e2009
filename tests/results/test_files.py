"""Result files are the user's: created with the permissions the umask gives, never 0600."""

from __future__ import annotations

import os
import stat

import pytest

from factory_sim.cli import main
from factory_sim.results.files import atomic_write
from tests.helpers import SMALL


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.csv", lambda p: p.write_text("x\n"))
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.csv") == 0o666 & ~umask
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "a.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    atomic_write(target, lambda p: p.write_text("new\n"))
    assert target.read_text() == "new\n" and _mode(target) == 0o640


def test_a_run_writes_files_others_can_read(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text(SMALL)
    old = os.umask(0o022)
    try:
        assert main(["run", str(exp), "--out", str(tmp_path / "res"), "--quiet", "--jobs", "1"]) == 0
    finally:
        os.umask(old)
    written = list((tmp_path / "res").iterdir())
    assert {p.name for p in written} >= {"summary.csv", "traces.parquet", "experiment.yaml", "command.json"}
    assert {_mode(p) for p in written} == {0o644}
