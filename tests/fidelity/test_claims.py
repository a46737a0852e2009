"""Claims from InferenceX results: $/M-token ratios at the same prices, and cost by month."""

import numpy as np
import pandas as pd
import pytest

from factory_sim.fidelity import claims


def _results(points):
    """Result rows as validate writes them, from (point, hardware, month, framework, interactivity,
    tok/s/GPU, simulated / published tok/s/GPU)."""
    rows = []
    for pid, hw, month, fw, inter, tps, f in points:
        for q, v in (("interactivity_tok_s_user", inter), ("output_tok_s_per_gpu", tps)):
            factor = f if q.startswith("output") else 1.0
            rows.append({"point_id": pid, "quantity": q, "published": v, "predicted": v * factor,
                         "rel_error": factor - 1, "hardware": hw, "framework": fw,
                         "model": "DeepSeek-R1-0528", "isl": 1024, "osl": 1024, "concurrency": 8,
                         "date": f"{month}-10", "skip_reason": ""})
    return pd.DataFrame(rows)


def test_cost_ratio_is_throughput_ratio_at_the_same_prices():
    pts = [("a", "h200", "2025-12", "sglang", 10.0, 100.0, 1.0),
           ("b", "h200", "2025-12", "sglang", 100.0, 10.0, 1.0),
           ("c", "gb200_nvl72", "2025-12", "trtllm", 10.0, 800.0, 1.5),
           ("d", "gb200_nvl72", "2025-12", "trtllm", 100.0, 80.0, 1.5)]
    r = claims.cost_ratios(_results(pts), others=("gb200_nvl72",), targets=(50.0,))
    (row,) = r.to_dict("records")
    assert row["measured_ratio"] == pytest.approx(8.0)
    assert row["simulated_ratio"] == pytest.approx(12.0)
    price = claims.usd_per_gpu_hour("h200") / claims.usd_per_gpu_hour("gb200_nvl72")
    assert row["measured_cost_ratio"] == pytest.approx(8.0 * price)
    assert row["simulated_cost_ratio"] == pytest.approx(12.0 * price)
    # over the band too: its reading is a geometric mean, so the price ratio carries through it
    assert row["measured_band_ratio"] == pytest.approx(8.0)
    assert row["simulated_cost_band_ratio"] == pytest.approx(row["simulated_band_ratio"] * price)
    assert "gb200_nvl72 vs h200" in claims.format_cost_ratios(r)


def test_cost_over_dates_against_the_first_month():
    pts = [("a", "b200", "2025-10", "trtllm", 50.0, 100.0, 1.0), ("b", "b200", "2025-12", "trtllm", 50.0, 500.0, 0.5),
           ("c", "b200", "2025-12", "sglang", 50.0, 5000.0, 1.0),  # another framework: not counted
           ("d", "b200", "2026-01", "dynamo-trtllm", 50.0, 200.0, 1.0)]  # below December's best: no regression
    df = claims.cost_over_dates(_results(pts), hardware=("b200",), targets=(50.0,))
    assert list(df["month"]) == ["2025-10", "2025-12", "2026-01"]
    usd = claims.usd_per_gpu_hour("b200") / (100.0 * 3600) * 1e6
    assert df["usd_per_m_measured"].iloc[0] == pytest.approx(usd)
    assert df["measured_vs_first"].tolist() == pytest.approx([1.0, 5.0, 5.0])
    assert df["simulated_vs_first"].tolist() == pytest.approx([1.0, 2.5, 2.5])
    assert np.isfinite(df["usd_per_m_simulated"]).all()
    assert "2025-12" in claims.format_cost_over_dates(df)


def test_envelope_points_name_the_points_either_side_of_each_target_with_their_errors():
    # GB200's simulated envelope at 50 is set by an over-predicted point (c2, +60%) that is not
    # on the measured envelope's side of 50 at all
    pts = [("h1", "h200", "2026-01", "trtllm", 40.0, 100.0, 1.0), ("h2", "h200", "2026-01", "trtllm", 80.0, 50.0, 1.1),
           ("c1", "gb200_nvl72", "2026-01", "dynamo-trtllm", 45.0, 1000.0, 1.0),
           ("c2", "gb200_nvl72", "2026-01", "dynamo-trtllm", 60.0, 700.0, 1.6),
           ("c3", "gb200_nvl72", "2026-01", "dynamo-trtllm", 90.0, 400.0, 1.0)]
    df = claims.envelope_points(_results(pts), targets=(50.0,))
    sim = df[(df["kind"] == "simulated") & (df["hardware"] == "gb200_nvl72")]
    assert sim["point_id"].tolist() == ["c2"]  # c2 (1,120 predicted) dominates c1 there
    assert sim["tok_s_per_gpu_error"].iloc[0] == pytest.approx(0.6)
    meas = df[(df["kind"] == "measured_scored") & (df["hardware"] == "gb200_nvl72")]
    assert meas["point_id"].tolist() == ["c1", "c2"]
    h = df[(df["kind"] == "measured_scored") & (df["hardware"] == "h200")]
    assert h["point_id"].tolist() == ["h1", "h2"]
    assert "c2" in claims.format_envelope_points(df)
    # a target beyond the fastest point has no envelope point
    assert claims.envelope_points(_results(pts), targets=(200.0,)).empty
