import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.config.experiment import SloTarget
from factory_sim.errors import ConfigError
from factory_sim.results.metrics import SUMMARY_KEYS, latencies, measurement_window, meets_slo, summarize, summarize_by
from factory_sim.results.trace import DONE, PENDING, REJECTED, TIMED_OUT, Trace

NAN = math.nan

# Six requests, worked out by hand:
#   id arrival first  finish  in  out outcome   class  TTFT  TPOT        e2e
#   0  0.0     0.5    2.5     100  5  done      0      0.5   2.0/4=0.5   2.5
#   1  1.0     -      -       200 10  rejected  0      -     -           -
#   2  2.0     2.2    2.2      50  1  done      1      0.2   - (1 tok)   0.2
#   3  3.0     4.0    6.0     300 11  done      1      1.0   2.0/10=0.2  3.0
#   4  4.0     4.5    -        80 20  pending   0      -     -           -
#   5  5.0     5.1    5.8     120  8  done      0      0.1   0.7/7=0.1   0.8
ROWS = [
    (0.0, 0.5, 2.5, 100, 5, DONE, 0),
    (1.0, NAN, NAN, 200, 10, REJECTED, 0),
    (2.0, 2.2, 2.2, 50, 1, DONE, 1),
    (3.0, 4.0, 6.0, 300, 11, DONE, 1),
    (4.0, 4.5, NAN, 80, 20, PENDING, 0),
    (5.0, 5.1, 5.8, 120, 8, DONE, 0),
]
SLO = SloTarget(ttft_s=0.6, tpot_s=0.3)
# Met under SLO: 2 (TTFT 0.2, one token) and 5 (0.1, 0.1). 0 fails TPOT, 3 fails TTFT.


def make_trace(rows, n: int | None = None) -> Trace:
    trace = Trace.allocate(len(rows) if n is None else n)
    for i, (arrival, first, finish, tokens_in, tokens_out, outcome, slo_class) in enumerate(rows):
        trace.arrival_s[i] = arrival
        trace.first_token_s[i] = first
        trace.finish_s[i] = finish
        trace.input_tokens[i] = tokens_in
        trace.output_tokens[i] = tokens_out
        trace.outcome[i] = outcome
        trace.slo_class[i] = slo_class
    return trace


def test_latencies_by_hand():
    lat = latencies(make_trace(ROWS))
    np.testing.assert_allclose(lat["ttft_s"], [0.5, NAN, 0.2, 1.0, NAN, 0.1], equal_nan=True)
    np.testing.assert_allclose(lat["tpot_s"], [0.5, NAN, NAN, 0.2, NAN, 0.1], equal_nan=True)
    np.testing.assert_allclose(lat["e2e_s"], [2.5, NAN, 0.2, 3.0, NAN, 0.8], equal_nan=True)
    np.testing.assert_allclose(
        lat["interactivity_tok_s_user"], [2.0, NAN, NAN, 5.0, NAN, 10.0], equal_nan=True
    )


def _goodput_counts(s: dict) -> tuple[float, float]:
    """Requests and output tokens that met their SLO, from a summary's goodput rates."""
    return s["goodput_req_per_s"] * s["window_s"], s["goodput_tokens_per_s"] * s["window_s"]


def test_meets_slo_per_request():
    assert meets_slo(make_trace(ROWS), SLO).tolist() == [False, False, True, False, False, True]
    relaxed = SloTarget(ttft_s=0.6, tpot_s=0.6, name="relaxed")
    strict = SloTarget(ttft_s=0.1, tpot_s=0.3, name="strict")
    assert meets_slo(make_trace(ROWS), [relaxed, strict]).tolist() == [True, False, False, False, False, True]


def test_slo_verdicts_single_target():
    # met: 2 (1 token) and 5 (8 tokens)
    assert _goodput_counts(summarize(make_trace(ROWS), SLO, gpus=1)) == pytest.approx((2, 9))


def test_slo_verdicts_two_classes():
    relaxed = SloTarget(ttft_s=0.6, tpot_s=0.6, name="relaxed")
    strict = SloTarget(ttft_s=0.1, tpot_s=0.3, name="strict")
    # 0 (5 tokens) now meets the relaxed TPOT; 2 (class strict) misses TTFT 0.2 > 0.1; 5 (8 tokens) meets
    assert _goodput_counts(summarize(make_trace(ROWS), [relaxed, strict], gpus=1)) == pytest.approx((2, 13))


def test_summarize_by_hand():
    s = summarize(make_trace(ROWS), SLO, gpus=2)
    assert list(s) == list(SUMMARY_KEYS)
    expected = {
        "requests": 6,
        "done": 4,
        "rejected": 1,
        "timed_out": 0,
        "unfinished": 1,
        "window_s": 5.0,  # arrivals 0..5
        "offered_req_per_s": 6 / 5,
        # TTFT of done: 0.5 0.2 1.0 0.1 -> sorted 0.1 0.2 0.5 1.0
        "ttft_mean_s": 1.8 / 4,
        "ttft_p50_s": 0.35,  # halfway between 0.2 and 0.5
        "ttft_p90_s": 0.85,  # position 2.7: 0.5 + 0.7 * 0.5
        "ttft_p99_s": 0.985,  # position 2.97
        # TPOT of done with >1 token: 0.5 0.2 0.1
        "tpot_mean_s": 0.8 / 3,
        "tpot_p50_s": 0.2,
        "tpot_p90_s": 0.44,  # position 1.8: 0.2 + 0.8 * 0.3
        "tpot_p99_s": 0.494,
        # e2e: 2.5 0.2 3.0 0.8 -> sorted 0.2 0.8 2.5 3.0
        "e2e_mean_s": 6.5 / 4,
        "e2e_p50_s": 1.65,
        "e2e_p90_s": 2.85,
        "e2e_p99_s": 2.985,
        "slo_attainment": 2 / 6,
        "output_tokens_per_s": 25 / 5,  # 5 + 1 + 11 + 8
        "input_tokens_per_s": 570 / 5,  # 100 + 50 + 300 + 120
        "tokens_per_s_per_gpu": 2.5,
        "tokens_per_s_per_user_p50": 5.0,  # median of 2, 5, 10
        "goodput_tokens_per_s": 9 / 5,  # 1 + 8
        "goodput_req_per_s": 2 / 5,
        "goodput_tokens_per_s_per_gpu": 0.9,
    }
    for key, value in expected.items():
        assert s[key] == pytest.approx(value, rel=1e-9), key
    assert all(isinstance(v, float) for v in s.values())


def test_window_trimming():
    # [0 + 1.5, 5 - 1.0] = [1.5, 4.0] keeps requests 2, 3, 4.
    s = summarize(make_trace(ROWS), SLO, gpus=1, warmup_s=1.5, cooldown_s=1.0)
    assert (s["requests"], s["done"], s["rejected"], s["unfinished"]) == (3, 2, 0, 1)
    assert s["window_s"] == pytest.approx(2.5)
    assert s["output_tokens_per_s"] == pytest.approx(12 / 2.5)
    assert s["slo_attainment"] == pytest.approx(1 / 3)
    assert s["goodput_tokens_per_s"] == pytest.approx(1 / 2.5)
    assert s["ttft_mean_s"] == pytest.approx(0.6)


def test_window_edges_are_inclusive():
    assert measurement_window(make_trace(ROWS), 1.0, 1.0) == (1.0, 4.0)
    s = summarize(make_trace(ROWS), SLO, gpus=1, warmup_s=1.0, cooldown_s=1.0)
    assert s["requests"] == 4  # arrivals 1, 2, 3, 4
    assert s["rejected"] == 1


def test_empty_window_is_a_config_error():
    with pytest.raises(ConfigError, match="leave no measurement window.*span 5 s"):
        measurement_window(make_trace(ROWS), warmup_s=3.0, cooldown_s=3.0)
    with pytest.raises(ConfigError, match="no request arrives"):
        measurement_window(make_trace(ROWS), warmup_s=0.2, cooldown_s=4.7)
    with pytest.raises(ConfigError) as err:
        measurement_window(make_trace(ROWS), warmup_s=-1.0)
    assert err.value.path == "warmup_s"
    with pytest.raises(ConfigError, match="no requests"):
        measurement_window(Trace.allocate(0))


def test_unused_preallocated_rows_are_ignored():
    padded = summarize(make_trace(ROWS, n=9), SLO, gpus=2)
    exact = summarize(make_trace(ROWS), SLO, gpus=2)
    assert padded == pytest.approx(exact, nan_ok=True)


def test_single_request_window_spans_to_its_finish():
    s = summarize(make_trace([(10.0, 10.5, 12.5, 7, 5, DONE, 0)]), SLO, gpus=1)
    assert s["window_s"] == pytest.approx(2.5)
    assert s["output_tokens_per_s"] == pytest.approx(2.0)
    assert s["input_tokens_per_s"] == pytest.approx(7 / 2.5)
    assert s["ttft_p99_s"] == pytest.approx(0.5)
    assert s["tpot_p50_s"] == pytest.approx(0.5)
    assert s["slo_attainment"] == 0.0  # TPOT 0.5 > 0.3


def test_offline_all_arrive_at_once():
    rows = [(0.0, 1.0, 3.0, 10, 3, DONE, 0), (0.0, 1.0, 4.0, 10, 5, DONE, 0)]
    s = summarize(make_trace(rows), SloTarget(math.inf, math.inf), gpus=1)
    assert s["window_s"] == pytest.approx(4.0)
    assert s["output_tokens_per_s"] == pytest.approx(8 / 4)
    assert s["slo_attainment"] == 1.0


def test_nothing_done_gives_nan_percentiles_and_zero_rates():
    rows = [(0.0, NAN, NAN, 10, 3, REJECTED, 0), (2.0, NAN, NAN, 10, 5, TIMED_OUT, 0)]
    s = summarize(make_trace(rows), SLO, gpus=4)
    assert (s["requests"], s["done"], s["rejected"], s["timed_out"]) == (2, 0, 1, 1)
    assert math.isnan(s["ttft_p50_s"]) and math.isnan(s["tpot_mean_s"])
    assert math.isnan(s["tokens_per_s_per_user_p50"])
    assert s["output_tokens_per_s"] == 0.0 and s["goodput_req_per_s"] == 0.0
    assert s["slo_attainment"] == 0.0
    assert s["offered_req_per_s"] == pytest.approx(1.0)


def test_summarize_by_pool():
    trace = make_trace(ROWS)
    trace.pool[:] = [0, -1, 1, 1, 0, 0]  # request 1 was rejected before reaching a pool
    df = summarize_by(trace, SLO, trace.pool, ["a", "b"], gpus=[1, 4])
    assert list(df.index) == ["a", "b"] and list(df.columns) == list(SUMMARY_KEYS)
    a, b = df.loc["a"], df.loc["b"]
    assert (a["requests"], a["done"], a["unfinished"]) == (3, 2, 1)
    assert a["output_tokens_per_s"] == pytest.approx(13 / 5)  # 5 + 8 over the shared 5 s
    assert b["output_tokens_per_s"] == pytest.approx(12 / 5)
    assert b["tokens_per_s_per_gpu"] == pytest.approx(12 / 5 / 4)
    assert a["slo_attainment"] == pytest.approx(1 / 3)  # request 5
    assert b["slo_attainment"] == pytest.approx(1 / 2)  # request 2
    assert b["ttft_p50_s"] == pytest.approx(0.6)  # 0.2 and 1.0
    total = summarize(trace, SLO, gpus=5)
    assert df["output_tokens_per_s"].sum() == pytest.approx(total["output_tokens_per_s"])
    assert df["goodput_tokens_per_s"].sum() == pytest.approx(total["goodput_tokens_per_s"])


def test_summarize_by_empty_group():
    trace = make_trace(ROWS)
    df = summarize_by(trace, SLO, np.zeros(len(trace), dtype=int), ["all", "none"], gpus=2)
    assert df.loc["all", "output_tokens_per_s"] == pytest.approx(5.0)
    assert df.loc["none", "requests"] == 0
    assert df.loc["none", "output_tokens_per_s"] == 0.0
    assert math.isnan(df.loc["none", "ttft_p50_s"])


def test_bad_slo_inputs():
    with pytest.raises(ConfigError) as err:
        SloTarget(ttft_s=0.0, tpot_s=0.1)
    assert err.value.path == "slo.ttft_s"
    with pytest.raises(ConfigError):
        SloTarget(ttft_s=1.0, tpot_s=NAN)
    with pytest.raises(ConfigError, match="class code 1 but only 1 target"):
        summarize(make_trace(ROWS), [SLO], gpus=1)
    with pytest.raises(ValueError):
        summarize(make_trace(ROWS), SLO, gpus=0)


@st.composite
def traces(draw):
    n = draw(st.integers(1, 25))
    times = st.floats(0.0, 100.0, allow_nan=False)
    gaps = st.floats(0.0, 10.0, allow_nan=False)
    rows = []
    for arrival in sorted(draw(st.lists(times, min_size=n, max_size=n))):
        outcome = draw(st.sampled_from([DONE, DONE, DONE, REJECTED, TIMED_OUT, PENDING]))
        first = finish = NAN
        if outcome in (DONE, PENDING):
            first = arrival + draw(gaps)
        if outcome == DONE:
            finish = first + draw(gaps)
        rows.append((arrival, first, finish, draw(st.integers(1, 4000)), draw(st.integers(1, 500)),
                     outcome, draw(st.integers(0, 1))))
    return make_trace(rows)


slo_targets = st.builds(SloTarget, st.floats(0.01, 20.0), st.floats(0.001, 5.0))


@given(traces(), st.lists(slo_targets, min_size=2, max_size=2), st.integers(1, 64))
def test_summary_invariants(trace, slos, gpus):
    s = summarize(trace, slos, gpus=gpus)
    assert 0.0 <= s["slo_attainment"] <= 1.0
    assert s["goodput_tokens_per_s"] <= s["output_tokens_per_s"] * (1 + 1e-12)
    assert s["goodput_req_per_s"] * s["rate_interval_s"] <= s["done"] + 1e-9
    assert s["steady_state"] in (0.0, 1.0)
    if s["steady_state"]:
        assert s["rate_interval_s"] == s["window_s"]
    assert s["done"] + s["rejected"] + s["timed_out"] + s["unfinished"] == s["requests"] == len(trace)
    assert s["tokens_per_s_per_gpu"] == pytest.approx(s["output_tokens_per_s"] / gpus)
    lat = latencies(trace)
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        values = lat[key][~np.isnan(lat[key])]
        assert (values >= 0).all()
    if s["done"]:
        assert 0.0 <= s["ttft_p50_s"] <= s["ttft_p90_s"] <= s["ttft_p99_s"]
