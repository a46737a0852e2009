"""The terminal table a person reads: it fits 120 columns, says its statistics, and keeps a
comparison honest (no ratio to a reference without goodput, fixed layouts said, each
hardware's cheapest fleet, placeholder prices marked)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from factory_sim.results.labels import field_label, label
from factory_sim.results.tables import (
    LAYOUT_NOTE,
    NO_FLEET,
    TABLE_WIDTH,
    best_by_hardware,
    format_table,
    placeholder_priced,
)
from factory_sim.studies.assemble import load_experiment
from factory_sim.studies.run import SUMMARY_COLUMNS
from tests.helpers import SMALL


def _summary(rows: list[dict]) -> pd.DataFrame:
    """A summary frame as run_experiment returns it, with plausible values in every column."""
    optional = SUMMARY_COLUMNS[SUMMARY_COLUMNS.index("prefix_hit_rate"):]  # cache, autoscaling, faults: off
    base = {c: (np.nan if c in optional else 1.0) for c in SUMMARY_COLUMNS}
    base.update(feasible=True, note="", reference_fleet=rows[0]["fleet"], gpus=72, offered_req_per_s=134.2,
                tokens_per_s_per_gpu=1716.0, tokens_per_s_per_user_p50=20.3, slo_attainment=0.999,
                goodput_tokens_per_s=123453.0, usd_per_hour=101.52, usd_per_m_goodput_tokens=0.2284)
    base.update({c: 0.0 for c in SUMMARY_COLUMNS if c.endswith("_share") and c != "served_share"})  # none lost
    df = pd.DataFrame([{**base, **r} for r in rows])[list(SUMMARY_COLUMNS)]
    ref_cost = df[df["fleet"] == df["reference_fleet"]].set_index("tier")["usd_per_m_goodput_tokens"]
    df["cost_ratio_to_reference"] = df["usd_per_m_goodput_tokens"] / df["tier"].map(ref_cost)
    return df


def test_every_line_fits_120_columns_and_headers_say_the_statistic():
    # every optional group on (prefix cache, autoscaling, faults) and long names
    on = {c: 0.5 for c in SUMMARY_COLUMNS[SUMMARY_COLUMNS.index("prefix_hit_rate"):]}
    rows = [{**on, "fleet": f"fleet_with_a_long_name_{i}", "tier": tier, "hardware": hw}
            for i, hw in enumerate(("h200_sxm", "gb200_nvl72+h200_sxm")) for tier in ("interactive", "batch")]
    text = format_table(_summary(rows))
    assert max(len(line) for line in text.splitlines()) <= TABLE_WIDTH
    for header in ("tok/s/user p50", "out tok/s/GPU", "TTFT p99 s", "TPOT p50 ms", "$/M goodput", "prefix hit",
                   "GPUs held mean", "avail long-run", "$/M goodput no faults"):
        assert header in text
    blocks = text.split("\n\n")[:-1]  # the blocks, then the notes
    assert len(blocks) >= 3
    for block in blocks:  # each block starts with the fleet and tier and lists every row
        lines = block.strip("\n").splitlines()
        assert lines[0].startswith("fleet") and "tier" in lines[0]
        assert sum(line.startswith("fleet_with_a_long_name_") for line in lines) == 4
    assert LAYOUT_NOTE.split(":")[0] in text


def test_cost_vs_ref_is_a_dash_with_a_note_where_the_reference_has_no_goodput():
    df = _summary([
        {"fleet": "h200", "tier": "fast", "goodput_tokens_per_s": 0.0, "usd_per_m_goodput_tokens": math.inf},
        {"fleet": "gb200", "tier": "fast", "usd_per_m_goodput_tokens": 0.1},
        {"fleet": "h200", "tier": "slow", "usd_per_m_goodput_tokens": 0.2},
        {"fleet": "gb200", "tier": "slow", "usd_per_m_goodput_tokens": 0.1},
    ])
    before = df.copy()
    assert df.loc[1, "cost_ratio_to_reference"] == 0.0  # what the summary holds (0.1 / inf)
    text = format_table(df)
    rows = {tuple(line.split()[:2]): line.split() for line in text.splitlines() if line.startswith(("h200", "gb200"))}
    assert rows[("gb200", "fast")][-1] == "-" and rows[("h200", "fast")][-1] == "-"
    assert rows[("gb200", "slow")][-1] == "0.500x"
    assert "0.000x" not in text
    assert "cost vs ref is '-' in tier fast: the reference fleet 'h200' serves no goodput" in text
    pd.testing.assert_frame_equal(df, before)  # formatting changes nothing in the results


def test_each_hardware_at_its_cheapest_fleet_per_tier():
    df = _summary([
        {"fleet": "h200_throughput", "tier": "t", "hardware": "h200_sxm", "usd_per_m_goodput_tokens": 8.0},
        {"fleet": "h200_latency", "tier": "t", "hardware": "h200_sxm", "usd_per_m_goodput_tokens": 2.0},
        {"fleet": "gb200", "tier": "t", "hardware": "gb200_nvl72", "usd_per_m_goodput_tokens": 0.1},
        {"fleet": "b200", "tier": "t", "hardware": "b200_hgx", "usd_per_m_goodput_tokens": math.inf},
    ])
    best = best_by_hardware(df).set_index("hardware")
    assert best.loc["h200_sxm", "fleet"] == "h200_latency" and best.loc["h200_sxm", "fleets"] == 2
    assert best.loc["gb200_nvl72", "cost_ratio_to_best_reference"] == pytest.approx(0.1 / 2.0)
    assert best.loc["b200_hgx", "fleet"] == NO_FLEET and np.isnan(best.loc["b200_hgx", "cost_ratio_to_best_reference"])
    text = format_table(df)
    assert "cheapest h200_sxm fleet" in text and "h200_latency" in text and "0.050x" in text
    # against the fixed reference layout the ratio is 4x smaller: the table shows both, and says which compares
    # each hardware at its best
    assert "0.013x" in text
    assert "'h200_throughput' is not the cheapest h200_sxm fleet in tier t" in " ".join(text.split())
    assert "No b200_hgx fleet meets tier t at any load." in text
    # one fleet per hardware: nothing to pick, and the table says how to compare at best layouts
    single = format_table(df[df["fleet"] != "h200_latency"])
    assert best_by_hardware(df[df["fleet"] != "h200_latency"]).empty and "give it several fleets" in single


def test_a_reference_hardware_that_meets_no_tier_gets_no_ratio_and_says_so():
    df = _summary([
        {"fleet": "h200_throughput", "tier": "fast", "hardware": "h200_sxm", "feasible": False,
         "usd_per_m_goodput_tokens": math.nan, "note": "cannot meet TPOT 5 ms at any load"},
        {"fleet": "h200_latency", "tier": "fast", "hardware": "h200_sxm", "feasible": False,
         "usd_per_m_goodput_tokens": math.nan, "note": "cannot meet TPOT 5 ms at any load"},
        {"fleet": "gb200", "tier": "fast", "hardware": "gb200_nvl72", "usd_per_m_goodput_tokens": 0.1},
    ])
    best = best_by_hardware(df).set_index("hardware")
    assert best.loc["h200_sxm", "fleet"] == NO_FLEET and np.isnan(best.loc["gb200_nvl72",
                                                                             "cost_ratio_to_best_reference"])
    text = " ".join(format_table(df).split())
    assert "No h200_sxm fleet meets tier fast at any load, so there is no ratio to it in that tier." in text
    assert "not the cheapest" not in text  # no fleet of it is: none to point to
    assert "h200_latency / fast: cannot meet TPOT 5 ms at any load" in text


def test_placeholder_prices_are_marked(tmp_path):
    exp_path = tmp_path / "e.yaml"
    exp_path.write_text(SMALL.replace("hardware: b200_hgx", "hardware: gb300_nvl72").replace(
        "precision: fp8\n    prefill", "precision: fp4\n    prefill"))
    exp = load_experiment(exp_path)
    assert placeholder_priced(exp) == {"gb300_nvl72"}  # its profile: placeholder_price: true
    df = _summary([{"fleet": "h100", "tier": "t", "hardware": "h100_sxm", "usd_per_hour": 1.3},
                   {"fleet": "b200_disagg", "tier": "t", "hardware": "gb300_nvl72", "usd_per_hour": 5.3}])
    text = format_table(df, placeholder_hardware=placeholder_priced(exp))
    line = next(line for line in text.splitlines() if line.startswith("b200_disagg") and "x" in line)
    assert "5.30*" in line
    assert "* placeholder price: the $/GPU-hour of gb300_nvl72" in text
    assert "*" not in format_table(df)


def test_words_for_columns_and_fields():
    assert label("tokens_per_s_per_user_p50") == "output tokens/s per user (median)"
    assert label("usd_per_m_goodput_tokens_p95") == "$ per million goodput tokens, p95"
    assert field_label("fleets.gb300_fp4.decode.dp_attention") == "gb300_fp4 decode: attention data-parallel ranks"
    assert field_label("fleets[0].decode.replicas") == "fleet 1 decode: replicas"
    assert field_label("cost.tier") == "price tier"
    assert field_label("workload.arrivals.rate_per_s") == "arrival rate (requests/s)"


def test_plan_frontier_and_band_tables_fit_and_use_words():
    from factory_sim.results.tables import FRONTIER_TABLE, KEYS, PLAN_TABLE, band_columns, frame_text
    from factory_sim.studies.capacity import PLAN_COLUMNS

    plan = pd.DataFrame([{c: 1234.5 for c in PLAN_COLUMNS} | {"rank": 1, "candidate": "gb300_rack_with_a_long_name",
                                                                "hardware": "gb300_nvl72", "confirmed": True,
                                                                "within_power_budget": False, "headroom": 0.15}])
    text = frame_text(plan, PLAN_TABLE, keys=2)
    assert max(len(line) for line in text.splitlines()) <= TABLE_WIDTH
    assert "racks/nodes" in text and "SLO met at scale" in text and "15.0%" in text and "yes" in text
    assert "usd_per_hour" not in text and "within_power_budget" not in text
    from factory_sim.results.tables import format_plan

    marked = format_plan(plan, {"gb300_nvl72"})
    assert "1234*" in marked and "* placeholder price: the $/GPU-hour of gb300_nvl72" in marked
    assert max(len(line) for line in marked.splitlines()) <= TABLE_WIDTH
    front = pd.DataFrame([{"hardware": "h200_sxm", "fleet": "h200", "concurrency": 64, "tokens_per_s_per_user_p50": 20.3,
                           "tokens_per_s_per_gpu": 1716.0, "ttft_p50_s": 0.4, "tpot_p50_s": 0.049,
                           "usd_per_m_output_tokens": 0.23}])
    assert "tok/s/user p50" in frame_text(front, FRONTIER_TABLE, keys=2)
    bands = pd.DataFrame([{"fleet": "f", "tier": "t"} | {f"{m}_p{q}": 1.0 for m in ("usd_per_m_goodput_tokens",
                                                                                   "goodput_tokens_per_s")
                                                        for q in (5, 50, 95)}])
    text = frame_text(bands, [*KEYS, *band_columns(("usd_per_m_goodput_tokens", "goodput_tokens_per_s"))], keys=2)
    assert "$/M goodput p95" in text and "goodput tok/s p5" in text
