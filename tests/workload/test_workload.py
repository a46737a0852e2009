from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from factory_sim.config.workload import (
    Arrivals,
    ClosedLoopArrivals,
    EmpiricalLength,
    FixedLength,
    GammaArrivals,
    LengthDist,
    LognormalLength,
    NominalLength,
    PoissonArrivals,
    TraceArrivals,
    UniformLength,
    WorkloadSpec,
    list_workloads,
    load_workload,
)
from factory_sim.errors import ConfigError
from factory_sim.results.tables import workloads_table
from factory_sim.workload.arrivals import arrival_times, mean_rate_per_s, trace_requests
from factory_sim.workload.generate import generate_requests, mean_input_tokens, mean_output_tokens
from factory_sim.workload.lengths import mean_length, sample_lengths
from factory_sim.workload.trace_files import list_traces, load_trace


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- arrivals ---------------------------------------------------------------------------


def test_poisson_mean_gap_matches_rate():
    times = arrival_times(PoissonArrivals(rate_per_s=4.0), 20_000, rng(1))
    gaps = np.diff(np.concatenate([[0.0], times]))
    assert times[0] > 0
    assert np.all(gaps >= 0)
    assert gaps.mean() == pytest.approx(0.25, rel=0.03)


def test_same_seed_same_times():
    arr = PoissonArrivals(rate_per_s=2.0)
    assert np.array_equal(arrival_times(arr, 500, rng(7)), arrival_times(arr, 500, rng(7)))
    assert not np.array_equal(arrival_times(arr, 500, rng(7)), arrival_times(arr, 500, rng(8)))


@pytest.mark.parametrize("arr", [PoissonArrivals(rate_per_s=3.0), GammaArrivals(rate_per_s=3.0, cv=2.5)])
def test_doubling_the_rate_halves_times_exactly(arr):
    base = arrival_times(arr, 2000, rng(3))
    doubled = arrival_times(arr, 2000, rng(3), rate_per_s=6.0)
    assert np.array_equal(doubled, base / 2)


def test_rate_override_replaces_configured_rate():
    a = arrival_times(PoissonArrivals(rate_per_s=1.0), 100, rng(5), rate_per_s=10.0)
    b = arrival_times(PoissonArrivals(rate_per_s=10.0), 100, rng(5))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0])
def test_gamma_cv_and_rate(cv):
    times = arrival_times(GammaArrivals(rate_per_s=5.0, cv=cv), 40_000, rng(11))
    gaps = np.diff(np.concatenate([[0.0], times]))
    assert gaps.mean() == pytest.approx(0.2, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.10)


def test_closed_loop_has_no_generated_times():
    arr = ClosedLoopArrivals(concurrency=8)
    with pytest.raises(ValueError, match="engine"):
        arrival_times(arr, 10, rng())
    assert mean_rate_per_s(arr) is None


@given(
    rate=st.floats(min_value=1e-3, max_value=1e4),
    cv=st.floats(min_value=0.05, max_value=20.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_open_loop_times_sorted_and_positive(rate, cv, seed):
    times = arrival_times(GammaArrivals(rate_per_s=rate, cv=cv), 200, rng(seed))
    assert times.dtype == np.float64
    assert times[0] > 0
    assert np.all(np.diff(times) >= 0)


# --- lengths ----------------------------------------------------------------------------


def test_fixed_and_uniform():
    assert np.array_equal(sample_lengths(FixedLength(tokens=7), 4, rng()), [7, 7, 7, 7])
    draws = sample_lengths(UniformLength(low=3, high=5), 10_000, rng(2))
    assert draws.dtype == np.int64
    assert set(np.unique(draws)) == {3, 4, 5}
    assert mean_length(UniformLength(low=3, high=5)) == 4.0
    assert sample_lengths(FixedLength(tokens=7), 0, rng()).size == 0


def test_nominal_bounds_and_mean():
    dist = NominalLength(tokens=1024)
    draws = sample_lengths(dist, 50_000, rng(4))
    # round(0.8 * 1024) = 819; both ends are reachable.
    assert draws.min() == 819 and draws.max() == 1024
    assert mean_length(dist) == 921.5
    assert draws.mean() == pytest.approx(921.5, rel=0.005)
    assert sample_lengths(NominalLength(tokens=1, low_fraction=0.1, high_fraction=0.2), 50, rng()).min() == 1


def test_lognormal_mean():
    dist = LognormalLength(mean=500.0, sigma=0.8)
    draws = sample_lengths(dist, 100_000, rng(6))
    assert draws.min() >= 1
    assert draws.mean() == pytest.approx(500.0, rel=0.03)
    assert mean_length(dist) == 500.0


def test_lognormal_capped_mean_is_analytic():
    # mu = ln 1000 - 1/2, so ln(m) - mu = 0.5 and the capped mean is
    # 1000 * Phi(-0.5) + 1000 * (1 - Phi(0.5)) = 2000 * 0.308538 = 617.08.
    dist = LognormalLength(mean=1000.0, sigma=1.0, max_tokens=1000)
    assert mean_length(dist) == pytest.approx(617.075, abs=0.01)
    draws = sample_lengths(dist, 100_000, rng(8))
    assert draws.max() == 1000
    assert draws.mean() == pytest.approx(617.075, rel=0.01)


def test_empirical_draws_only_trace_values():
    values = set(load_trace("azure_code")["output_tokens"])
    dist = EmpiricalLength(trace="azure_code", column="output")
    draws = sample_lengths(dist, 5000, rng(9))
    assert set(draws) <= values
    assert mean_length(dist) == pytest.approx(27.8825, abs=1e-3)
    capped = sample_lengths(EmpiricalLength(trace="azure_code", column="output", max_tokens=10), 5000, rng(9))
    assert capped.max() == 10


@given(low=st.integers(1, 10_000), extra=st.integers(0, 10_000), seed=st.integers(0, 2**32 - 1))
def test_uniform_draws_stay_in_bounds(low, extra, seed):
    draws = sample_lengths(UniformLength(low=low, high=low + extra), 100, rng(seed))
    assert draws.min() >= low and draws.max() <= low + extra


def test_length_validation_names_the_field():
    adapter = TypeAdapter(LengthDist)
    with pytest.raises(ValidationError, match="high"):
        adapter.validate_python({"kind": "uniform", "low": 10, "high": 5})
    with pytest.raises(ValidationError, match="sigma"):
        adapter.validate_python({"kind": "lognormal", "mean": 10, "sigma": 0})
    with pytest.raises(ValidationError, match="unknown trace 'azure_cod'.*did you mean 'azure_code'"):
        adapter.validate_python({"kind": "empirical", "trace": "azure_cod", "column": "input"})


# --- traces -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows", "has_hashes"),
    [
        ("azure_code", 8819, False),
        ("azure_conv", 19366, False),
        ("mooncake_conversation", 12031, True),
        ("mooncake_synthetic", 3993, True),
    ],
)
def test_builtin_traces_load(name, rows, has_hashes):
    df = load_trace(name)
    assert len(df) == rows
    assert df["arrival_s"].iloc[0] == 0.0
    assert df["arrival_s"].is_monotonic_increasing
    assert df["input_tokens"].dtype == np.int64 and df["output_tokens"].dtype == np.int64
    assert df["output_tokens"].min() >= 1
    assert ("hash_ids" in df.columns) == has_hashes


def test_trace_means_and_span():
    moon = load_trace("mooncake_conversation")
    assert moon["input_tokens"].mean() == pytest.approx(12035, abs=1)
    assert moon["output_tokens"].mean() == pytest.approx(343, abs=1)
    assert moon["arrival_s"].iloc[-1] == pytest.approx(3536.999)  # last timestamp 3536999 ms
    assert moon["hash_ids"].iloc[0] == list(range(14))
    azure = load_trace("azure_code")
    assert azure["arrival_s"].iloc[1] == pytest.approx(0.052)  # 18:17:04.03196 - 18:17:03.97996


def test_list_traces():
    assert list_traces() == ["azure_code", "azure_conv", "mooncake_conversation", "mooncake_synthetic"]


def test_load_trace_returns_copies():
    first = load_trace("mooncake_synthetic")
    first.loc[0, "input_tokens"] = -5
    first["hash_ids"].iloc[1].append(-1)
    second = load_trace("mooncake_synthetic")
    assert second.loc[0, "input_tokens"] != -5
    assert second["hash_ids"].iloc[1][-1] != -1


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_custom_csv_trace(tmp_path):
    path = write(
        tmp_path / "mine.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-01-01 00:00:01.5,100,0\n"
        "2024-01-01 00:00:01.0,200,20\n"
        "2024-01-01 00:00:03.25,0,30\n",
    )
    df = load_trace(path)
    assert df["arrival_s"].tolist() == [0.0, 0.5, 2.25]  # sorted by time, from the first
    assert df["input_tokens"].tolist() == [200, 100, 1]  # 0 clamped to 1
    assert df["output_tokens"].tolist() == [20, 1, 30]


def test_gzipped_jsonl_trace(tmp_path):
    path = tmp_path / "mine.jsonl.gz"
    lines = [
        {"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [0]},
        {"timestamp": 1500, "input_length": 20, "output_length": 4, "hash_ids": [0, 1]},
    ]
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(json.dumps(line) for line in lines) + "\n\n")
    df = load_trace(str(path))
    assert df["arrival_s"].tolist() == [0.0, 1.5]
    assert df["hash_ids"].tolist() == [[0], [0, 1]]


HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROW = "2024-01-01 00:00:00,10,5\n"


@pytest.mark.parametrize(
    ("name", "text", "where", "message"),
    [
        ("bad.csv", HEADER + ROW * 3 + "2024-01-01 00:00:09,ten,5\n", "bad.csv:5", "ContextTokens is not a whole number"),
        ("bad.csv", HEADER + ROW + "2024-01-01 00:00:09,10,2.5\n", "bad.csv:3", "GeneratedTokens is not a whole number"),
        ("bad.csv", HEADER + ROW + ROW + "2024-01-01 00:00:09,10,-4\n", "bad.csv:4", "GeneratedTokens is negative"),
        ("bad.csv", HEADER + "yesterday,10,5\n", "bad.csv:2", "TIMESTAMP"),
        ("bad.csv", "TIMESTAMP,ContextTokens\n" + "2024-01-01 00:00:00,10\n", "bad.csv:1", "GeneratedTokens"),
        ("bad.csv", "", "bad.csv:1", "empty"),
        ("bad.csv", HEADER, "bad.csv:2", "no requests"),
        ("bad.jsonl", '{"timestamp": 0, "input_length": 1, "output_length": 1}\n{"timestamp": 1,\n', "bad.jsonl:2", "malformed JSON"),
        ("bad.jsonl", '{"timestamp": 0, "input_length": 1}\n', "bad.jsonl:1", "output_length"),
        ("bad.jsonl", '{"timestamp": 0, "input_length": -3, "output_length": 1}\n', "bad.jsonl:1", "input_length is negative"),
        ("bad.jsonl", '{"timestamp": 0, "input_length": "9", "output_length": 1}\n', "bad.jsonl:1", "input_length is not a whole number"),
        ("bad.jsonl", "\n", "bad.jsonl:1", "empty"),
        ("bad.jsonl", '[1, 2]\n', "bad.jsonl:1", "JSON object"),
        (
            "bad.jsonl",
            '{"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [1]}\n'
            '{"timestamp": 1, "input_length": 1, "output_length": 1}\n',
            "bad.jsonl:2",
            "hash_ids",
        ),
    ],
)
def test_malformed_traces_name_file_and_line(tmp_path, name, text, where, message):
    path = write(tmp_path / name, text)
    with pytest.raises(ConfigError) as info:
        load_trace(path)
    assert info.value.path == where
    assert message in info.value.message


def test_unknown_trace_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'azure_conv'"):
        load_trace("azure_convo")
    with pytest.raises(ConfigError, match="does not exist"):
        load_trace(str(tmp_path / "missing.csv"))


def test_edited_trace_file_is_reread(tmp_path):
    path = write(tmp_path / "t.csv", HEADER + ROW)
    assert load_trace(path)["input_tokens"].tolist() == [10]
    write(tmp_path / "t.csv", HEADER + "2024-01-01 00:00:00,12345,5\n")
    assert load_trace(path)["input_tokens"].tolist() == [12345]


# --- trace replay -----------------------------------------------------------------------


def test_trace_replay_time_scale_and_rate():
    raw = load_trace("azure_conv")["arrival_s"].to_numpy()
    arr = TraceArrivals(trace="azure_conv", time_scale=2.0)
    times = arrival_times(arr, 100, rng())
    assert np.allclose(times, raw[:100] / 2)
    native = (len(raw) - 1) / raw[-1]
    assert mean_rate_per_s(arr) == pytest.approx(2 * native)
    full = arrival_times(arr, len(raw), rng(), rate_per_s=20.0)
    assert (len(raw) - 1) / full[-1] == pytest.approx(20.0)


def test_trace_loop_and_length_limit(tmp_path):
    path = write(
        tmp_path / "t.csv",
        HEADER + "2024-01-01 00:00:00,1,1\n2024-01-01 00:00:02,2,2\n2024-01-01 00:00:04,3,3\n",
    )
    looped = trace_requests(TraceArrivals(trace=path, loop=True), 7)
    # span 4 s, mean gap 2 s, so each repetition starts 6 s after the previous one.
    assert looped["arrival_s"].tolist() == [0, 2, 4, 6, 8, 10, 12]
    assert looped["input_tokens"].tolist() == [1, 2, 3, 1, 2, 3, 1]
    with pytest.raises(ConfigError, match="loop"):
        trace_requests(TraceArrivals(trace=path), 4)


# --- workload spec ----------------------------------------------------------------------


def chat_spec(**changes) -> dict:
    spec = {
        "arrivals": {"kind": "poisson", "rate_per_s": 2.0},
        "input_tokens": {"kind": "fixed", "tokens": 100},
        "output_tokens": {"kind": "uniform", "low": 10, "high": 20},
    }
    spec.update(changes)
    return spec


def error_locs(exc: ValidationError) -> list[tuple]:
    return [err["loc"] for err in exc.errors()]


def test_spec_rejects_misspelled_key_and_negative_rate():
    with pytest.raises(ValidationError) as info:
        WorkloadSpec.model_validate(chat_spec(reqests=10))
    assert ("reqests",) in error_locs(info.value)
    with pytest.raises(ValidationError) as info:
        WorkloadSpec.model_validate(chat_spec(arrivals={"kind": "poisson", "rate_per_s": -1}))
    assert ("arrivals", "poisson", "rate_per_s") in error_locs(info.value)
    with pytest.raises(ValidationError) as info:
        WorkloadSpec.model_validate(chat_spec(arrivals={"kind": "gama", "rate_per_s": 1}))
    assert ("arrivals",) in error_locs(info.value)


def test_spec_requires_lengths_unless_trace_supplies_them():
    with pytest.raises(ValidationError) as info:
        WorkloadSpec.model_validate({"arrivals": {"kind": "poisson", "rate_per_s": 1}})
    assert {("input_tokens",), ("output_tokens",)} <= set(error_locs(info.value))
    assert "input_tokens is required" in str(info.value)
    WorkloadSpec.model_validate({"arrivals": {"kind": "trace", "trace": "azure_code"}})
    with pytest.raises(ValidationError, match="use_lengths"):
        WorkloadSpec.model_validate(
            {"arrivals": {"kind": "trace", "trace": "azure_code"}, "input_tokens": {"kind": "fixed", "tokens": 5}}
        )


def test_load_workload_file_errors(tmp_path):
    bad = tmp_path / "w.yaml"
    bad.write_text("arrivals:\n  kind: poisson\n  rate_per_s: -2\ninput_tokens: {kind: fixed, tokens: 1}\noutput_tokens: {kind: fixed, tokens: 1}\n")
    with pytest.raises(ConfigError) as info:
        load_workload(str(bad))
    assert "rate_per_s" in info.value.path and str(bad) in str(info.value)
    bad.write_text("arrivals: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_workload(str(bad))
    assert info.value.path == f"{bad}:2"
    with pytest.raises(ConfigError, match="did you mean 'chat_1k1k'"):
        load_workload("chat_1k1")


def test_load_workload_file_defaults_name(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("arrivals: {kind: closed_loop, concurrency: 4}\ninput_tokens: {kind: fixed, tokens: 1}\noutput_tokens: {kind: fixed, tokens: 2}\n")
    assert load_workload(str(path)).name == "mine"


# --- generating requests ----------------------------------------------------------------


def test_rate_changes_times_not_lengths():
    spec = WorkloadSpec.model_validate(chat_spec(requests=300))
    slow = generate_requests(spec, rng(21))
    fast = generate_requests(spec, rng(21), rate_per_s=8.0)
    assert np.array_equal(fast.arrival_s, slow.arrival_s / 4)
    assert np.array_equal(fast.input_tokens, slow.input_tokens)
    assert np.array_equal(fast.output_tokens, slow.output_tokens)
    assert len(slow) == 300 and slow.output_tokens.dtype == np.int64


def test_closed_loop_and_trace_batches():
    closed = WorkloadSpec.model_validate(chat_spec(arrivals={"kind": "closed_loop", "concurrency": 4}))
    batch = generate_requests(closed, rng(), n=50)
    assert batch.arrival_s is None and len(batch) == 50
    replay = load_workload("mooncake_conversation")
    batch = generate_requests(replay, rng(), n=5)
    trace = load_trace("mooncake_conversation")
    assert batch.input_tokens.tolist() == trace["input_tokens"].iloc[:5].tolist()
    assert batch.arrival_s.tolist() == trace["arrival_s"].iloc[:5].tolist()


def test_builtin_workloads():
    names = {spec.name for spec in list_workloads()}
    assert {
        "chat_1k1k", "reasoning_1k8k", "summarize_8k1k", "azure_conv",
        "azure_code", "mooncake_conversation", "mlperf_deepseek_r1",
    } <= names
    table = workloads_table().set_index("name")
    assert list(table.columns) == ["description", "arrivals", "rate_per_s", "mean_input_tokens", "mean_output_tokens"]
    assert table.loc["chat_1k1k", "mean_input_tokens"] == 921.5
    assert table.loc["reasoning_1k8k", "mean_output_tokens"] == 7373.0  # (6554 + 8192) / 2
    assert table.loc["mooncake_conversation", "mean_input_tokens"] == pytest.approx(12035, abs=1)
    assert table["description"].str.len().min() > 0


def test_deepseek_fit_matches_dataset_statistics():
    # mlperf_deepseek_r1 row: output mean 4043.4 and median 2194; input mean 803.8.
    spec = load_workload("mlperf_deepseek_r1")
    assert mean_output_tokens(spec) == pytest.approx(4043.4, rel=0.001)
    assert mean_input_tokens(spec) == pytest.approx(803.8, rel=0.001)
    out = sample_lengths(spec.output_tokens, 200_000, rng(13))
    assert np.median(out) == pytest.approx(2194, rel=0.02)


def test_arrivals_union_parses_every_kind():
    adapter = TypeAdapter(Arrivals)
    assert isinstance(adapter.validate_python({"kind": "gamma", "rate_per_s": 1, "cv": 3}), GammaArrivals)
    assert isinstance(adapter.validate_python({"kind": "trace", "trace": "azure_conv"}), TraceArrivals)
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "closed_loop", "concurrency": 0})
