"""Every number a file gives has a finite, physical range, and the message says why."""

from __future__ import annotations

import copy
import math
import time

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from factory_sim.errors import ConfigError
from factory_sim.results.files import write_csv
from factory_sim.results.tables import format_table
from factory_sim.studies.assemble import parse_experiment
from factory_sim.studies.run import run_experiment

BASE = yaml.safe_load("""
name: bounds
model: llama3_1_8b
seed: 1
workload:
  arrivals: {kind: poisson, rate_per_s: 5}
  input_tokens: {kind: fixed, tokens: 200}
  output_tokens: {kind: fixed, tokens: 20}
requests: 20
slo_tiers: [{name: s, ttft_s: 2.0, tpot_s: 0.1}]
fleets:
  - name: h100
    hardware: h100_sxm
    aggregated: {replicas: 1}
load: {mode: fixed}
measurement: {min_span_latencies: 0}
faults: {enabled: false}
cost: {price_scale: 1.0}
""")


def _with(path: str, value):
    raw = copy.deepcopy(BASE)
    node = raw
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return raw


# the values of the report, each once printed as a result with exit 0
@pytest.mark.parametrize(("path", "value", "why"), [
    ("workload.arrivals.rate_per_s", 1e-300, "requests per second"),
    ("fleets.0.aggregated.dp_attention", 1_000_000_000, "NVLink domain"),
    ("seed", -1, "non-negative seeds"),
    ("requests", 2**63, "trace"),
    ("faults.weibull_shape", 1e-9, "Weibull"),
    ("measurement.min_span_latencies", 1e308, "median latencies"),
    ("slo_tiers.0.tpot_s", math.inf, "finite"),
    ("workload.input_tokens.tokens", 10**9, "context window"),
    ("fleets.0.aggregated.replicas", 10**7, "replicas"),
])
def test_absurd_values_are_refused_with_the_reason(path, value, why):
    with pytest.raises(ConfigError) as err:
        parse_experiment(_with(path, value))
    where = path.replace(".0.", "[0].")
    assert err.value.path == where
    assert "must be" in err.value.message and why in err.value.message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nonfinite_numbers_are_refused_everywhere(value):
    for path in ("workload.arrivals.rate_per_s", "measurement.warmup_fraction", "fleets.0.aggregated.queue_timeout_s",
                 "faults.rate_multiplier", "cost.price_scale"):
        with pytest.raises(ConfigError, match="finite"):
            parse_experiment(_with(path, value))


def test_a_run_too_long_for_float_time_is_refused():
    raw = _with("workload.arrivals.rate_per_s", 1e-5) | {"requests": 5000}
    with pytest.raises(ConfigError, match="microseconds"):
        parse_experiment(raw)


def _log_uniform(low: float, high: float):
    return st.floats(math.log10(low), math.log10(high)).map(lambda e: 10.0**e)


@st.composite
def accepted_experiments(draw):
    """Experiments whose numbers range over everything the schema takes, at a few requests."""
    raw = copy.deepcopy(BASE)
    raw["seed"] = draw(st.integers(0, 2**63 - 1))
    raw["requests"] = draw(st.integers(1, 24))
    raw["workload"]["arrivals"]["rate_per_s"] = draw(_log_uniform(1e-4, 1e7))
    for which in ("input_tokens", "output_tokens"):
        raw["workload"][which]["tokens"] = int(draw(_log_uniform(1, 2**24)))
    pool = raw["fleets"][0]["aggregated"]
    pool["replicas"] = draw(st.integers(1, 16))
    pool["dp_attention"] = draw(st.sampled_from([1, 2, 1024]))
    pool["max_batch"] = draw(st.integers(1, 2**20))
    pool["max_batch_tokens"] = min(max(64, round(draw(_log_uniform(64, 2**24)))), 2**24)
    pool["max_queue"] = draw(st.none() | st.integers(0, 10**7))
    pool["queue_timeout_s"] = draw(st.none() | _log_uniform(1e-6, 86400))
    tier = raw["slo_tiers"][0]
    tier["ttft_s"], tier["tpot_s"] = draw(_log_uniform(1e-6, 86400)), draw(_log_uniform(1e-6, 86400))
    raw["measurement"] = {"warmup_fraction": draw(st.floats(0, 0.45)), "cooldown_fraction": draw(st.floats(0, 0.45)),
                          "min_span_latencies": draw(st.floats(0, 1000)), "max_requests": draw(st.integers(1, 60))}
    raw["cost"] = {"price_scale": draw(_log_uniform(1e-6, 1000))}
    if draw(st.booleans()):  # faults at any accepted rate and shape
        raw["faults"] = {"distribution": "weibull", "weibull_shape": draw(st.floats(0.1, 10)),
                         "rate_multiplier": draw(_log_uniform(1e-3, 1e4)),
                         "overrides": {"h100_sxm": {"gpu": {"mtbf_hours": draw(_log_uniform(0.01, 1e9)),
                                                            "mttr_hours": draw(_log_uniform(1e-3, 1e5))}}},
                         "max_retries": draw(st.integers(0, 100)), "retry_after_s": draw(st.floats(0, 86400))}
    return raw


@settings(max_examples=16)
@given(accepted_experiments())
def test_any_accepted_experiment_runs_to_a_finite_table(tmp_path_factory, raw):
    try:
        exp = parse_experiment(raw)
    except ConfigError:
        return  # refused, with a message: the other tests check those
    started = time.perf_counter()
    result = run_experiment(exp, jobs=1)
    assert time.perf_counter() - started < 120  # a hang guard, not a speed claim
    table = format_table(result.summary)
    assert "nan" not in table.lower() and "inf" not in table.lower().replace("infeasible", "")
    path = tmp_path_factory.mktemp("bounds") / "summary.csv"
    write_csv(path, result.summary)
    text = path.read_text().lower()
    assert "inf" not in text.replace("infeasible", "") and "nan" not in text
