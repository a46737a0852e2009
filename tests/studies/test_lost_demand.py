"""Every request a run was offered is accounted for in the summary, not only in the trace."""

from __future__ import annotations

import numpy as np
import pytest

from factory_sim.results.tables import format_table
from factory_sim.results.trace import OUTCOME_NAMES
from factory_sim.studies.assemble import parse_experiment
from factory_sim.studies.run import run_experiment

BASE = {
    "name": "lost",
    "model": "llama3_1_8b",
    "workload": {"arrivals": {"kind": "poisson", "rate_per_s": 5},
                 "input_tokens": {"kind": "fixed", "tokens": 500},
                 "output_tokens": {"kind": "fixed", "tokens": 50}},
    "requests": 300,
    "slo_tiers": [{"name": "chat", "ttft_s": 2.0, "tpot_s": 0.05}],
    "fleets": [{"name": "h100", "hardware": "h100_sxm", "aggregated": {"replicas": 1}}],
    "load": {"mode": "fixed"},
    "measurement": {"min_span_latencies": 0},
}

COUNTS = ("served", "rejected", "timed_out", "failed", "unfinished")


def _run(**changes):
    return run_experiment(parse_experiment(BASE | changes), jobs=1)


def _check_against_trace(result):
    for (fleet, tier), point in result.points.items():
        row = result.summary.set_index(["fleet", "tier"]).loc[(fleet, tier)]
        outcomes = point.sim.trace.to_frame()["outcome"].value_counts()
        by_name = {"served": outcomes.get("done", 0)} | {k: outcomes.get(OUTCOME_NAMES_BY[k], 0) for k in COUNTS[1:]}
        for k in COUNTS:
            assert row[f"requests_{k}"] == by_name[k], k
            assert row[f"{k}_share"] == pytest.approx(by_name[k] / row["requests_offered"])
        assert sum(row[f"requests_{k}"] for k in COUNTS) == row["requests_offered"] == len(point.sim.trace)
        lost = row["requests_rejected"] + row["requests_timed_out"] + row["requests_failed"]
        assert row["lost_share"] == pytest.approx(lost / row["requests_offered"])


OUTCOME_NAMES_BY = {"rejected": OUTCOME_NAMES[1], "timed_out": OUTCOME_NAMES[2], "failed": OUTCOME_NAMES[3],
                    "unfinished": OUTCOME_NAMES[-1]}


def test_every_request_rejected_says_so():
    # the only rack fails at t=0 and stays down: no replica is ever up
    result = _run(model="deepseek_r1", requests=200,
                  fleets=[{"name": "gb200", "hardware": "gb200_nvl72", "precision": "fp4",
                           "aggregated": {"replicas": 1, "tp": 4, "ep": 4}}],
                  faults={"random": False, "inject": [{"at_s": 0, "hardware": "gb200_nvl72", "kind": "rack",
                                                        "repair_s": 1e5}]})
    row = result.summary.iloc[0]
    assert (row["requests_offered"], row["requests_rejected"], row["requests_served"]) == (200, 200, 0)
    assert (row["rejected_share"], row["served_share"]) == (1.0, 0.0)
    _check_against_trace(result)
    table = format_table(result.summary)
    assert "gb200 / chat: lost 200 of 200 requests (100.0%): 200 rejected (no replica up 200)" in table
    lines = table.splitlines()
    block = next(i for i, line in enumerate(lines) if line.split()[-5:] == ["lost", "rejected", "timed", "out",
                                                                               "failed"])
    assert lines[block + 2].split()[-4:] == ["100.0%", "100.0%", "0.0%", "0.0%"]  # lost, rejected, timed out, failed


def test_queue_overflow_and_timeouts_are_counted_per_fleet():
    small = {"hardware": "h100_sxm", "aggregated": {"replicas": 1, "max_batch": 8}}
    fleets = [small | {"name": "short_queue", "aggregated": small["aggregated"] | {"max_queue": 2}},
              small | {"name": "impatient", "aggregated": small["aggregated"] | {"queue_timeout_s": 0.2}},
              {"name": "roomy", "hardware": "h100_sxm", "aggregated": {"replicas": 2}}]
    result = _run(fleets=fleets, load={"mode": "fixed", "rate_per_s": 60})
    _check_against_trace(result)
    rows = result.summary.set_index("fleet")
    assert rows.loc["short_queue", "requests_rejected"] > 0 and rows.loc["impatient", "requests_timed_out"] > 0
    assert rows.loc["roomy", "served_share"] == 1.0 and rows.loc["roomy", "note"] == ""
    for fleet, why in (("short_queue", "rejected (queue full"), ("impatient", "timed out (timed out in queue")):
        lost = rows.loc[fleet, "requests_offered"] - rows.loc[fleet, "requests_served"]
        assert rows.loc[fleet, "note"].startswith(f"lost {lost} of 300 requests") and why in rows.loc[fleet, "note"]


def test_requests_in_flight_when_a_search_stops_a_run_are_unfinished_not_lost():
    from factory_sim.studies.run import demand_columns

    trace = next(iter(_run().points.values())).sim.trace
    trace.outcome[-20:] = -1  # as if the clock had stopped with the last 20 in flight
    columns, note = demand_columns(trace)
    assert columns["requests_unfinished"] == 20 and columns["lost_share"] == 0.0 and note == ""


def test_nothing_lost_adds_no_column():
    result = _run()
    assert result.summary["served_share"].eq(1.0).all() and result.summary["lost_share"].eq(0.0).all()
    assert np.isnan(result.summary["requests_failed"]).sum() == 0
    assert "lost" not in format_table(result.summary).splitlines()[0].split()
