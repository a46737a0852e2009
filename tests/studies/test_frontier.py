"""Frontiers and cost curves: Pareto envelope, interpolation, crossings, and a small real run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from factory_sim.cli import main
from factory_sim.studies.frontier import concurrency_ladder, cost_at_interactivity, crossings, pareto_mask
from tests.helpers import SMALL


def test_pareto_mask_keeps_only_undominated_points():
    throughput = np.array([100.0, 80.0, 90.0, 50.0, 10.0])
    interactivity = np.array([10.0, 20.0, 15.0, 30.0, 25.0])
    # (10,100) (15,90) (20,80) (30,50) are undominated; (25,10) is beaten by (30,50)
    assert pareto_mask(throughput, interactivity).tolist() == [True, True, True, True, False]


def test_cost_curve_interpolates_holds_below_and_stops_above():
    pts = pd.DataFrame({"hardware": ["a", "a", "b"], "on_frontier": [True, True, True],
                        "tokens_per_s_per_user_p50": [10.0, 100.0, 50.0],
                        "usd_per_m_output_tokens": [1.0, 100.0, 2.0]})
    curves = cost_at_interactivity(pts, np.array([5.0, 10.0, math.sqrt(1000.0), 100.0, 120.0]))
    # log-log line through (10, 1) and (100, 100): cost = x^2 / 100
    np.testing.assert_allclose(curves["a"].to_numpy()[:4], [1.0, 1.0, 10.0, 100.0])
    assert math.isnan(curves["a"].iloc[4])
    assert curves["b"].iloc[0] == 2.0 and math.isnan(curves["b"].iloc[-1])
    cross = crossings(cost_at_interactivity(pts, np.array([10.0, 20.0, 40.0, 50.0])), reference="a", factors=(1.0,))
    # a costs x^2/100 -> 1, 4, 16, 25 against b's 2: a/b >= 1 from 20 tok/s/user
    assert cross.loc[0, "from_tokens_per_s_per_user"] == 20.0
    assert cross.loc[0, "max_ratio"] == pytest.approx(12.5)
    # tokens/s per MW there: a makes 50 at 10 and 5 at 100 tok/s/user (x^-1 in log-log), b makes 20
    pts["tokens_per_s_per_mw"] = [50.0, 5.0, 20.0]
    grid = np.array([10.0, 20.0, 40.0, 50.0])
    cross = crossings(cost_at_interactivity(pts, grid), reference="a", factors=(1.0,),
                      per_mw=cost_at_interactivity(pts, grid, "tokens_per_s_per_mw"))
    assert cross.loc[0, "tokens_per_s_per_mw_ratio_there"] == pytest.approx(20.0 / 25.0)


def test_concurrency_ladder():
    assert concurrency_ladder(1, 5) == [1]
    ladder = concurrency_ladder(1000, 6)
    assert ladder[0] == 1 and ladder[-1] == 1000 and ladder == sorted(set(ladder))


def test_frontier_command_on_a_small_experiment(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text(SMALL)
    assert main(["frontier", str(exp), "--points", "4", "--jobs", "1", "--reference", "h100_sxm",
                 "--interactivity", "20", "50", "--out", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    assert "h100_sxm/b200_hgx" in out and "15x" in out
    pts = pd.read_csv(tmp_path / "f" / "frontier.csv")
    assert set(pts["hardware"]) == {"h100_sxm", "b200_hgx"}
    assert (pts["tokens_per_s_per_mw"] > 0).all()
    assert "tokens_per_s_per_mw_ratio_there" in pd.read_csv(tmp_path / "f" / "crossings.csv")
    for _, g in pts.groupby("fleet"):
        g = g.sort_values("concurrency")
        assert g["tokens_per_s_per_gpu"].is_monotonic_increasing  # more clients, more throughput
        assert g["tokens_per_s_per_user_p50"].iloc[0] >= g["tokens_per_s_per_user_p50"].iloc[-1]
    assert (tmp_path / "f" / "frontier.png").stat().st_size > 1000
    assert main(["frontier", str(exp), "--points", "2", "--jobs", "1", "--reference", "tpu"]) == 2
