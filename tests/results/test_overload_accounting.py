"""Under overload the rates are what the fleet served, over the time it served them.

Two H100s serving Llama-3.1-8B at 1,700 req/s (about 10x what they serve) with an unbounded
queue: arrivals end after about a second, the backlog drains for a minute after. Dividing the
tokens of the requests that arrived in the measurement window by that window's length
reported about 800,000 tok/s/GPU; the fleet served about 13,000.
"""

from __future__ import annotations

import numpy as np
import pytest

from factory_sim.results.metrics import SERVED_INTERVAL_PERCENTILES, summarize
from factory_sim.studies.assemble import parse_experiment
from factory_sim.studies.run import run_experiment

OVERLOAD = {
    "name": "overload",
    "model": "llama3_1_8b",
    "workload": "chat_1k1k",
    "requests": 2000,
    "slo_tiers": [{"name": "chat", "ttft_s": 2.0, "tpot_s": 0.05}],
    "fleets": [{"name": "h100", "hardware": "h100_sxm", "aggregated": {"replicas": 2, "tp": 1}}],
    "load": {"mode": "fixed", "rate_per_s": 1700},
    "measurement": {"max_requests": 2000},
}


def _served_by_hand(frame, from_s: float, to_s: float) -> float:
    """Output tokens produced in [from_s, to_s], request by request: the first at its first
    token, the others evenly over its decode."""
    tokens = 0.0
    for r in frame[frame["outcome"] == "done"].itertuples():
        if from_s <= r.first_token_s <= to_s:
            tokens += 1
        if r.finish_s > r.first_token_s:
            inside = max(0.0, min(r.finish_s, to_s) - max(r.first_token_s, from_s))
            tokens += (r.output_tokens - 1) * inside / (r.finish_s - r.first_token_s)
    return tokens


@pytest.fixture(scope="module")
def overloaded():
    return run_experiment(parse_experiment(dict(OVERLOAD)), jobs=1)


def test_overloaded_run_reports_what_was_served(overloaded):
    row = overloaded.summary.iloc[0]
    frame = next(iter(overloaded.points.values())).sim.trace.to_frame()
    assert (frame["outcome"] == "done").all()  # an unbounded queue serves every request, late
    arrival = frame["arrival_s"]
    span = arrival.max() - arrival.min()
    start, end = arrival.min() + 0.3 * span, arrival.max() - 0.3 * span  # the default warm-up and drain
    measured = frame[(arrival >= start) & (arrival <= end)]
    from_s, to_s = np.percentile(measured["finish_s"], SERVED_INTERVAL_PERCENTILES)
    served_per_gpu = _served_by_hand(frame, from_s, to_s) / (to_s - from_s) / row["gpus"]
    assert row["tokens_per_s_per_gpu"] == pytest.approx(served_per_gpu, rel=1e-9)
    arrived_per_gpu = measured["output_tokens"].sum() / (end - start) / row["gpus"]
    assert row["tokens_per_s_per_gpu"] < 0.05 * arrived_per_gpu  # the old figure, 50x too high
    # and no more than the whole run's average would allow at the busiest
    whole_run = frame["output_tokens"].sum() / (frame["finish_s"].max() - arrival.min()) / row["gpus"]
    assert 0.9 * whole_run < row["tokens_per_s_per_gpu"] < 1.2 * whole_run
    assert row["usd_per_m_output_tokens"] == pytest.approx(
        row["usd_per_hour"] / (row["output_tokens_per_s"] * 3600) * 1e6)
    assert not row["steady_state"]
    assert "never reached steady state: the fleet fell behind" in row["note"]


def test_a_fleet_that_keeps_up_is_measured_over_its_arrival_window():
    light = dict(OVERLOAD, load={"mode": "fixed", "rate_per_s": 20}, requests=600,
                 measurement={"min_span_latencies": 0})
    result = run_experiment(parse_experiment(light), jobs=1)
    row = result.summary.iloc[0]
    point = next(iter(result.points.values()))
    s = point.summaries["chat"]
    assert row["steady_state"] and s["rate_interval_s"] == s["window_s"]
    assert 0.8 < s["served_rate_ratio"] < 1.25
    frame = point.sim.trace.to_frame()
    arrival = frame["arrival_s"]
    span = arrival.max() - arrival.min()
    start, end = arrival.min() + 0.3 * span, arrival.max() - 0.3 * span
    measured = frame[(arrival >= start) & (arrival <= end) & (frame["outcome"] == "done")]
    assert s["output_tokens_per_s"] == pytest.approx(measured["output_tokens"].sum() / (end - start), rel=1e-12)


def _light(rate_per_s: float, requests: int):
    exp = parse_experiment(OVERLOAD | {"load": {"mode": "fixed", "rate_per_s": rate_per_s}, "requests": requests,
                                       "measurement": {"min_span_latencies": 0}})
    result = run_experiment(exp, jobs=1)
    return result.summary.iloc[0], next(iter(result.points.values())).summaries["chat"]


def test_requests_served_after_the_arrivals_end_are_no_overload():
    # 70 requests at 10/s: the measured ones finish while the fleet drains, so it emits less
    # than they brought per second then; but no queue grew, and the window's rates stand
    row, s = _light(10, 70)
    assert s["served_rate_ratio"] < 0.8 and abs(s["ttft_growth"]) < 0.05
    assert row["steady_state"] and s["rate_interval_s"] == s["window_s"] and row["note"] == ""


def test_a_run_that_ends_before_the_fleet_fills_says_so():
    # 40 requests at 10/s arrive over 4 s; each takes about 6 s
    row, s = _light(10, 40)
    assert not row["steady_state"] and s["rate_interval_s"] == s["window_s"]
    assert "the run ended before the fleet filled; give it more requests" in row["note"]


def test_groups_of_an_overloaded_run_add_up(overloaded):
    from factory_sim.config.experiment import SloTarget
    from factory_sim.results.metrics import summarize_by

    trace = next(iter(overloaded.points.values())).sim.trace
    slo = SloTarget(ttft_s=30.0, tpot_s=0.05)  # met by the requests served early
    whole = summarize(trace, slo, gpus=2, warmup_s=0.3, cooldown_s=0.3)
    by_replica = summarize_by(trace, slo, trace.prefill_replica, ["r0", "r1"], gpus=1,
                              warmup_s=0.3, cooldown_s=0.3)
    assert whole["steady_state"] == 0.0 and (by_replica["steady_state"] == 0.0).all()
    for key in ("output_tokens_per_s", "input_tokens_per_s", "goodput_tokens_per_s", "goodput_req_per_s"):
        assert by_replica[key].sum() == pytest.approx(whole[key], rel=1e-9), key
    assert 0 < whole["goodput_tokens_per_s"] < whole["output_tokens_per_s"]
