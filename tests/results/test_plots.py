"""Plots from results files: every kind writes PNG and SVG; the wrong file is a clear error."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from factory_sim.cli import main
from factory_sim.studies.assemble import parse_experiment
from factory_sim.studies.run import run_experiment
from tests.helpers import SMALL

FRONTIER = pd.DataFrame({
    "hardware": ["a", "a", "b", "b"], "fleet": ["fa", "fa", "fb", "fb"], "on_frontier": [True, True, True, False],
    "tokens_per_s_per_user_p50": [20.0, 60.0, 30.0, 25.0], "tokens_per_s_per_gpu": [900.0, 200.0, 500.0, 100.0],
    "usd_per_m_output_tokens": [0.5, 2.0, 0.8, 3.0]})


def _check(paths):
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize("kind", ["pareto", "cost-curve"])
def test_frontier_plots(kind, tmp_path, capsys):
    src = tmp_path / "frontier.csv"
    FRONTIER.to_csv(src, index=False)
    assert main(["plot", str(src), "--kind", kind, "--out", str(tmp_path / kind)]) == 0
    _check([tmp_path / f"{kind}.png", tmp_path / f"{kind}.svg"])


def test_latency_cdf_from_a_run(tmp_path):
    raw = yaml.safe_load(SMALL)
    raw["load"] = {"mode": "fixed", "rate_per_s": 10}
    traces = run_experiment(parse_experiment(raw), jobs=1).traces_frame()
    src = tmp_path / "traces.parquet"
    traces.astype({c: str for c in traces.select_dtypes("category").columns}).to_parquet(src)
    assert main(["plot", str(src), "--kind", "latency-cdf", "--out", str(tmp_path / "lat")]) == 0
    _check([tmp_path / "lat.png", tmp_path / "lat.svg"])


def test_mix_surface_and_wrong_inputs(tmp_path, capsys):
    sweep = pd.DataFrame({"point_key": ["k1", "k2", "k3", "k4"], "x.a": [1, 1, 2, 2], "y.b": [5, 6, 5, 6],
                          "fleet": ["f"] * 4, "usd_per_m_goodput_tokens": [0.1, 0.2, 0.3, float("inf")]})
    src = tmp_path / "sweep.csv"
    sweep.to_csv(src, index=False)
    assert main(["plot", str(src), "--kind", "mix-surface", "--out", str(tmp_path / "mix")]) == 0
    _check([tmp_path / "mix.png", tmp_path / "mix.svg"])
    assert main(["plot", str(src), "--kind", "pareto"]) == 2
    assert "factory-sim frontier --out" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing.csv"), "--kind", "pareto"]) == 2
    assert "no such file" in capsys.readouterr().err
