"""Multi-turn sessions, diurnal arrivals, and the prefix-block hashes requests carry."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.config.workload import (
    HASH_STRIDE,
    DiurnalArrivals,
    PoissonArrivals,
    SessionArrivals,
    WorkloadSpec,
    load_workload,
)
from factory_sim.errors import ConfigError
from factory_sim.results.tables import workloads_table
from factory_sim.workload.arrivals import arrival_times, mean_rate_per_s
from factory_sim.workload.generate import generate_requests
from factory_sim.workload.trace_files import load_trace


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def session_spec(requests: int = 300, new_tokens: dict | None = None, **arrivals) -> WorkloadSpec:
    arr = {"kind": "sessions", "rate_per_s": 2.0, "turns": {"kind": "uniform", "low": 1, "high": 8},
           "system_prompt_tokens": 1000, "think_time_s": 3.0, "block_tokens": 64}
    arr.update(arrivals)
    return WorkloadSpec.model_validate({
        "arrivals": arr,
        "input_tokens": new_tokens or {"kind": "uniform", "low": 20, "high": 900},
        "output_tokens": {"kind": "lognormal", "mean": 300, "sigma": 0.9, "max_tokens": 4000},
        "requests": requests,
    })


def expected_hashes(input_tokens: int, session: int, system_prompt_tokens: int, block: int) -> tuple[int, ...]:
    blocks = math.ceil(input_tokens / block)
    return tuple(-(k + 1) if (k + 1) * block <= system_prompt_tokens else session * HASH_STRIDE + k + 1
                 for k in range(blocks))


# --- sessions: structure ------------------------------------------------------------------


@st.composite
def session_cases(draw):
    low_turns = draw(st.integers(1, 5))
    new_low = draw(st.integers(1, 500))
    arrivals = {
        "turns": {"kind": "uniform", "low": low_turns, "high": low_turns + draw(st.integers(0, 8))},
        "system_prompt_tokens": draw(st.integers(0, 3000)),
        "think_time_s": draw(st.floats(0, 30)),
        "think_distribution": draw(st.sampled_from(["exponential", "fixed"])),
        "max_context_tokens": draw(st.integers(3001, 12_000)),
        "block_tokens": draw(st.sampled_from([5, 16, 64, 512])),
    }
    new_tokens = {"kind": "uniform", "low": new_low, "high": new_low + draw(st.integers(0, 2000))}
    spec = session_spec(draw(st.integers(1, 150)), new_tokens, **arrivals)
    return spec, draw(st.integers(0, 2**32 - 1))


@given(session_cases())
def test_session_batches_are_consistent(case):
    spec, seed = case
    arr = spec.arrivals
    new = spec.input_tokens
    b = generate_requests(spec, rng(seed))
    n = spec.requests
    assert len(b) == n and b.output_tokens.size == n
    assert b.next_turn.dtype == np.int64 and b.session.dtype == np.int64 and b.think_s.dtype == np.float64
    assert b.block_tokens == arr.block_tokens

    # Sessions come in start order, numbered 0, 1, 2, ... without gaps.
    assert b.session[0] == 0 and set(np.diff(b.session)) <= {0, 1}
    first = np.ones(n, bool)
    first[1:] = b.session[1:] != b.session[:-1]
    # The first turns are exactly those with an arrival time; their times are increasing.
    assert np.array_equal(first, np.isfinite(b.arrival_s))
    starts = b.arrival_s[first]
    assert starts[0] > 0 and np.all(np.diff(starts) >= 0)
    # next_turn links each session's turns in order; the last turn links to -1.
    last = np.ones(n, bool)
    last[:-1] = b.session[1:] != b.session[:-1]
    assert np.array_equal(b.next_turn[last], np.full(last.sum(), -1))
    assert np.array_equal(b.next_turn[~last], np.flatnonzero(~last) + 1)
    # Think times: none before a first turn, from the configured distribution otherwise.
    assert np.all(b.think_s[first] == 0.0) and np.all(b.think_s >= 0)
    if arr.think_distribution == "fixed":
        assert np.all(b.think_s[~first] == arr.think_time_s)

    # A turn's prompt is the previous prompt and answer plus new tokens.
    later = np.flatnonzero(~first)
    added = b.input_tokens[later] - b.input_tokens[later - 1] - b.output_tokens[later - 1]
    assert np.all((added >= new.low) & (added <= new.high))
    opening = b.input_tokens[first] - arr.system_prompt_tokens
    assert np.all((opening <= new.high) & ((opening >= new.low) | (b.input_tokens[first] == arr.max_context_tokens)))
    assert b.input_tokens.max() <= arr.max_context_tokens

    # Block hashes: the documented scheme; each turn starts with all the full blocks of the
    # previous turn of its session; system-prompt blocks are the same in every session.
    block = arr.block_tokens
    for i in range(n):
        assert b.block_hashes[i] == expected_hashes(int(b.input_tokens[i]), int(b.session[i]),
                                                    arr.system_prompt_tokens, block)
    for i in later:
        full = int(b.input_tokens[i - 1]) // block
        assert b.block_hashes[i][:full] == b.block_hashes[i - 1][:full]
    system_blocks = arr.system_prompt_tokens // block
    shared = {h[:system_blocks] for h in b.block_hashes if len(h) >= system_blocks}
    assert len(shared) <= 1
    assert all(h < 0 for hs in b.block_hashes for h in hs[:system_blocks])


def test_sessions_stop_before_the_context_overflows():
    # Fixed sizes make the rule exact: 10 turns planned, each adding 1000 new + 500 answer
    # tokens after a 2000-token system prompt; the context holds 9000 tokens, so every
    # session ends after its 5th turn (2000 + 1000 + 4 * 1500 = 9000).
    spec = session_spec(
        requests=23, new_tokens={"kind": "fixed", "tokens": 1000}, turns={"kind": "fixed", "tokens": 10},
        system_prompt_tokens=2000, max_context_tokens=9000,
    )
    spec = spec.model_copy(update={"output_tokens": spec.input_tokens.model_copy(update={"tokens": 500})})
    b = generate_requests(spec, rng(3))
    assert b.session.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5 + [4] * 3  # last session cut at 23
    assert b.input_tokens[:5].tolist() == [3000, 4500, 6000, 7500, 9000]
    assert b.next_turn[:6].tolist() == [1, 2, 3, 4, -1, 6]
    assert b.next_turn[-1] == -1


def test_an_opening_prompt_longer_than_the_context_is_cut_to_it():
    spec = session_spec(requests=20, new_tokens={"kind": "fixed", "tokens": 5000}, max_context_tokens=4000)
    b = generate_requests(spec, rng(1))
    assert np.all(b.input_tokens == 4000) and np.all(b.next_turn == -1)
    assert np.array_equal(b.session, np.arange(20))


def test_same_seed_same_batch_other_seed_other_batch():
    spec = session_spec()
    a, again, other = generate_requests(spec, rng(5)), generate_requests(spec, rng(5)), generate_requests(spec, rng(6))
    for name in ("arrival_s", "input_tokens", "output_tokens", "next_turn", "think_s", "session"):
        assert np.array_equal(getattr(a, name), getattr(again, name), equal_nan=True)
    assert a.block_hashes == again.block_hashes
    assert not np.array_equal(a.input_tokens, other.input_tokens)
    assert not np.array_equal(a.arrival_s, other.arrival_s, equal_nan=True)


@pytest.mark.parametrize("how", ["override", "config"])
def test_rate_changes_only_session_start_times(how):
    spec = session_spec(requests=400)
    base = generate_requests(spec, rng(9))
    if how == "override":
        faster = generate_requests(spec, rng(9), rate_per_s=35.0)
        factor = mean_rate_per_s(spec.arrivals) / 35.0  # the override is in requests per second
    else:
        changed = spec.model_copy(update={"arrivals": spec.arrivals.model_copy(update={"rate_per_s": 8.0})})
        faster = generate_requests(changed, rng(9))
        factor = 2.0 / 8.0
    assert np.allclose(faster.arrival_s, base.arrival_s * factor, equal_nan=True, rtol=1e-12)
    for name in ("input_tokens", "output_tokens", "next_turn", "think_s", "session"):
        assert np.array_equal(getattr(faster, name), getattr(base, name))
    assert faster.block_hashes == base.block_hashes


def test_more_requests_start_with_the_same_sessions():
    spec = session_spec()
    short, long = generate_requests(spec, rng(2), n=100), generate_requests(spec, rng(2), n=3000)
    whole = short.session < short.session[-1]  # the last session of the short run may be cut
    for name in ("arrival_s", "input_tokens", "output_tokens", "think_s", "session", "next_turn"):
        assert np.array_equal(getattr(short, name)[whole], getattr(long, name)[: whole.sum()], equal_nan=True)


def test_session_rate_and_arrival_times():
    spec = session_spec()
    assert mean_rate_per_s(spec.arrivals) == pytest.approx(2.0 * 4.5)  # turns uniform 1..8
    with pytest.raises(ValueError, match="engine"):
        arrival_times(spec.arrivals, 10, rng())
    many = generate_requests(spec, rng(4), n=20_000)
    starts = many.arrival_s[np.isfinite(many.arrival_s)]
    assert (starts.size - 1) / (starts[-1] - starts[0]) == pytest.approx(2.0, rel=0.05)
    think = many.think_s[np.isnan(many.arrival_s)]
    assert think.mean() == pytest.approx(3.0, rel=0.05)
    assert generate_requests(spec, rng(), n=0).session.size == 0


# --- diurnal arrivals ----------------------------------------------------------------------


def expected_count(arr: DiurnalArrivals, t: np.ndarray) -> np.ndarray:
    """Integral of the rate curve from 0 to t."""
    mean = (arr.peak_rate_per_s + arr.trough_rate_per_s) / 2
    swing = (arr.peak_rate_per_s - arr.trough_rate_per_s) / 2
    w = 2 * np.pi / arr.period_s
    return mean * t - swing / w * (np.sin(w * (t - arr.trough_at_s)) + np.sin(w * arr.trough_at_s))


def test_diurnal_chat_counts_per_hour_follow_the_curve():
    from scipy.stats import chisquare

    spec = load_workload("diurnal_chat")
    arr = spec.arrivals
    start = time.perf_counter()
    batch = generate_requests(spec, rng(17))
    elapsed_s = time.perf_counter() - start
    assert len(batch) == 604_800 and elapsed_s < 3.0  # about 0.2 s when the machine is idle
    assert batch.block_hashes is None and batch.next_turn is None and batch.session is None
    times = batch.arrival_s
    assert times[0] > 0 and np.all(np.diff(times) >= 0)
    counts = np.histogram(times, bins=24, range=(0, 86400))[0]
    edges = np.arange(25) * 3600.0
    expected = np.diff(expected_count(arr, edges))
    assert chisquare(counts, expected * counts.sum() / expected.sum()).pvalue > 0.001
    # Quietest hour 04:00-05:00 (~2.0/s); busiest 15:00-17:00 (~12/s).
    assert counts.argmin() in (3, 4) and counts.argmax() in (15, 16)
    assert counts[4] / 3600 == pytest.approx(2.05, rel=0.05)
    assert counts[16] / 3600 == pytest.approx(11.95, rel=0.03)
    assert counts.sum() / 86400 == pytest.approx(7.0, rel=0.03)
    assert mean_rate_per_s(arr) == 7.0


def test_diurnal_rate_override_sets_the_mean():
    arr = DiurnalArrivals(peak_rate_per_s=9.0, trough_rate_per_s=1.0, period_s=1000.0, trough_at_s=250.0)
    times = arrival_times(arr, 200_000, rng(8), rate_per_s=20.0)  # x4: peak 36, trough 4
    periods = int(times[-1] // 1000)
    assert np.sum(times < periods * 1000) / (periods * 1000) == pytest.approx(20.0, rel=0.03)
    whole = times[times < periods * 1000]
    per_tenth = np.histogram(whole % 1000, bins=10, range=(0, 1000))[0] / (periods * 100)
    assert per_tenth[2] == pytest.approx(4 * np.diff(expected_count(arr, np.array([200.0, 300.0])))[0] / 100, rel=0.05)
    assert per_tenth[7] == pytest.approx(4 * np.diff(expected_count(arr, np.array([700.0, 800.0])))[0] / 100, rel=0.03)
    base = arrival_times(arr, 1000, rng(8))
    assert not np.array_equal(base, arrival_times(arr, 1000, rng(8), rate_per_s=6.0))
    assert np.array_equal(base, arrival_times(arr, 1000, rng(8), rate_per_s=5.0))  # 5/s is its own mean


def test_flat_diurnal_is_poisson():
    flat = DiurnalArrivals(peak_rate_per_s=3.0, trough_rate_per_s=3.0)
    assert np.allclose(arrival_times(flat, 500, rng(4)), arrival_times(PoissonArrivals(rate_per_s=3.0), 500, rng(4)))


@given(
    peak=st.floats(1e-3, 1e3),
    trough_fraction=st.floats(0, 1),
    period=st.floats(1.0, 1e6),
    trough_at=st.floats(-1e6, 1e6),
    seed=st.integers(0, 2**32 - 1),
)
def test_diurnal_times_solve_the_rate_curve(peak, trough_fraction, period, trough_at, seed):
    arr = DiurnalArrivals(peak_rate_per_s=peak, trough_rate_per_s=peak * trough_fraction,
                          period_s=period, trough_at_s=trough_at)
    times = arrival_times(arr, 300, rng(seed))
    assert np.all(np.isfinite(times)) and times[0] > 0 and np.all(np.diff(times) >= 0)
    # Time rescaling: the expected count at each arrival is the unit-rate Poisson point.
    unit = np.cumsum(rng(seed).standard_exponential(300))
    assert np.allclose(expected_count(arr, times), unit, rtol=1e-9, atol=1e-9 * unit[-1])


# --- other arrival kinds and trace replay ------------------------------------------------


def test_mooncake_replay_carries_block_hashes():
    spec = load_workload("mooncake_conversation")
    batch = generate_requests(spec, rng(), n=500)
    trace = load_trace("mooncake_conversation")
    assert batch.block_tokens == 512
    assert batch.block_hashes == [tuple(ids) for ids in trace["hash_ids"].iloc[:500]]
    assert all(len(h) == math.ceil(n / 512) for h, n in zip(batch.block_hashes, batch.input_tokens, strict=True))
    azure = generate_requests(load_workload("azure_conv"), rng(), n=10)
    assert azure.block_hashes is None and azure.block_tokens is None


@pytest.mark.parametrize("arrivals", [
    {"kind": "poisson", "rate_per_s": 2.0},
    {"kind": "gamma", "rate_per_s": 2.0, "cv": 2.0},
    {"kind": "closed_loop", "concurrency": 4},
    {"kind": "diurnal", "peak_rate_per_s": 2.0, "trough_rate_per_s": 1.0},
])
def test_single_request_kinds_leave_session_fields_empty(arrivals):
    spec = WorkloadSpec.model_validate({"arrivals": arrivals, "input_tokens": {"kind": "fixed", "tokens": 10},
                                        "output_tokens": {"kind": "fixed", "tokens": 5}, "requests": 20})
    b = generate_requests(spec, rng())
    assert (b.block_hashes, b.block_tokens, b.next_turn, b.think_s, b.session) == (None,) * 5


# --- configuration -----------------------------------------------------------------------


def test_builtin_session_and_diurnal_workloads():
    agentic = load_workload("agentic_sessions")
    assert isinstance(agentic.arrivals, SessionArrivals)
    start = time.perf_counter()
    b = generate_requests(agentic, rng())
    assert len(b) == 6000 and time.perf_counter() - start < 3.0  # well under 0.1 s when idle
    table = workloads_table().set_index("name")
    assert table.loc["agentic_sessions", "arrivals"] == "sessions"
    assert table.loc["agentic_sessions", "rate_per_s"] == pytest.approx(2.0 * 7)  # turns uniform 2..12
    # Prompts hold the conversation so far: far more than the ~800 new tokens per turn.
    assert table.loc["agentic_sessions", "mean_input_tokens"] > 4000 + 800
    assert table.loc["diurnal_chat", "rate_per_s"] == 7.0
    assert table.loc["diurnal_chat", "mean_input_tokens"] == 921.5


SESSIONS = "arrivals:\n  kind: sessions\n  rate_per_s: 1\n  turns: {kind: uniform, low: 2, high: 4}\n"
DIURNAL = "arrivals:\n  kind: diurnal\n  peak_rate_per_s: 5\n  trough_rate_per_s: 1\n"
LENGTHS = "input_tokens: {kind: fixed, tokens: 10}\noutput_tokens: {kind: fixed, tokens: 5}\n"


@pytest.mark.parametrize(("text", "field"), [
    (SESSIONS.replace("rate_per_s: 1", "rate_per_s: -1"), "rate_per_s"),
    (SESSIONS.replace("low: 2", "low: 0"), "turns.low"),
    (SESSIONS.replace("{kind: uniform, low: 2, high: 4}", "{kind: fixed, tokens: 0}"), "turns.tokens"),
    (SESSIONS + "  block_tokens: 0\n", "block_tokens"),
    (SESSIONS + "  think_time_s: -2\n", "think_time_s"),
    (SESSIONS + "  think_time: 2\n", "think_time"),
    (SESSIONS + "  think_distribution: gamma\n", "think_distribution"),
    (SESSIONS + "  system_prompt_tokens: 9000\n  max_context_tokens: 8000\n", "system_prompt_tokens"),
    (SESSIONS + "  max_context_tokens: 16777216\n  block_tokens: 1\n", "block_tokens"),
    (SESSIONS.replace("  turns: {kind: uniform, low: 2, high: 4}\n", ""), "turns"),
    (DIURNAL.replace("peak_rate_per_s: 5", "peak_rate_per_s: 0.5"), "peak_rate_per_s"),
    (DIURNAL.replace("trough_rate_per_s: 1", "trough_rate_per_s: -1"), "trough_rate_per_s"),
    (DIURNAL + "  period_s: 0\n", "period_s"),
    (DIURNAL + "  rate_per_s: 3\n", "rate_per_s"),
    (DIURNAL + "  trough_at_s: .nan\n", "trough_at_s"),
])
def test_bad_values_are_config_errors_naming_the_field(tmp_path, text, field):
    path = tmp_path / "w.yaml"
    path.write_text(text + LENGTHS)
    with pytest.raises(ConfigError) as info:
        load_workload(str(path))
    assert field in f"{info.value.path} {info.value.message}"
    assert info.value.path.startswith("arrivals")
