"""Generated bad input: every mistake ends as a ConfigError naming a field, never another exception."""

from __future__ import annotations

import contextlib
import copy
import io
import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from factory_sim.cli import main
from factory_sim.errors import ConfigError
from factory_sim.studies.assemble import load_experiment, parse_experiment
from tests.helpers import SMALL

BASE = yaml.safe_load(SMALL)

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from([-1, 0, 1e300, -1e-9, "fp4", "h100_sxm", "deepseek_r1", "poisson", "", "nan"]),
)


def _paths(node, prefix=()):
    """Every (container, key) in a nested mapping/list, depth first."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield node, k, prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield node, i, prefix + (i,)
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_experiments(draw):
    raw = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        places = list(_paths(raw))
        container, key, _ = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["replace", "delete", "add_key", "rename"]))
        if action == "replace":
            container[key] = draw(JUNK)
        elif action == "delete":
            del container[key]
        elif action == "add_key" and isinstance(container, dict):
            container[draw(st.text(min_size=1, max_size=8))] = draw(JUNK)
        elif action == "rename" and isinstance(container, dict):
            container[str(key) + draw(st.sampled_from(["s", "_", "x"]))] = container.pop(key)
    return raw


def _valid(raw) -> bool:
    try:
        parse_experiment(raw)
    except ConfigError as exc:
        assert exc.message and str(exc)
        return False
    return True


@settings(max_examples=800)
@given(mutated_experiments())
def test_mutated_experiments_are_valid_or_a_config_error(raw):
    _valid(raw)


@settings(max_examples=200)
@given(st.one_of(JUNK, st.lists(JUNK, max_size=3), st.text(max_size=40)))
def test_any_top_level_value_is_a_config_error(value):
    try:
        parse_experiment(value)
    except ConfigError:
        return
    raise AssertionError("a non-mapping experiment was accepted")


@settings(max_examples=150)
@given(st.text(max_size=200))
def test_any_file_text_is_valid_or_a_config_error(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("fuzz") / "exp.yaml"
    p.write_text(text)
    try:
        load_experiment(p)
    except ConfigError:
        pass


@settings(max_examples=60)
@given(mutated_experiments())
def test_cli_exits_2_without_traceback(tmp_path_factory, raw):
    if _valid(raw):
        return  # a valid experiment would run; the properties above cover validation
    p = tmp_path_factory.mktemp("fuzz") / "exp.yaml"
    p.write_text(yaml.safe_dump(raw))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(["run", str(p), "--quiet", "--jobs", "1"]) == 2
    err = stderr.getvalue()
    assert err.startswith("factory-sim: error:") and "Traceback" not in err


def test_nonfinite_numbers_are_refused():
    for path, value in ((("workload", "arrivals", "rate_per_s"), math.inf), (("slo_tiers", 0, "tpot_s"), math.nan)):
        raw = copy.deepcopy(BASE)
        node = raw
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        assert not _valid(raw)


# The newer blocks: sessions workloads, prefix caches, autoscaled pools, faults. Mutations are
# checked through validate_all, which also resolves fault, cache and autoscale plans.
FEATURES = [yaml.safe_load(text) for text in ("""
name: cached_autoscaled
model: llama3_1_8b
workload:
  arrivals: {kind: sessions, rate_per_s: 1.0, turns: {kind: uniform, low: 2, high: 5},
             system_prompt_tokens: 500, think_time_s: 2.0, block_tokens: 32}
  input_tokens: {kind: lognormal, mean: 300, sigma: 0.5}
  output_tokens: {kind: fixed, tokens: 50}
  requests: 100
slo_tiers: [{name: s, ttft_s: 2.0, tpot_s: 0.1}]
fleets:
  - name: cached
    hardware: h100_sxm
    precision: fp8
    router: kv_aware
    prefix_cache: {hbm_fraction: 0.5, host_gb_per_gpu: 10, host_gb_per_s: 50}
    aggregated: {replicas: 2, autoscale: {min_replicas: 1, max_replicas: 3, interval_s: 10}}
""", """
name: faulty
model: qwen3_235b_a22b
workload: {arrivals: {kind: diurnal, peak_rate_per_s: 4, trough_rate_per_s: 1, period_s: 600},
           input_tokens: {kind: fixed, tokens: 200}, output_tokens: {kind: fixed, tokens: 20}, requests: 100}
slo_tiers: [{name: s, ttft_s: 2.0, tpot_s: 0.1}]
fleets:
  - name: f
    hardware: gb200_nvl72
    precision: fp8
    fault_domain_policy: degraded
    aggregated: {replicas: 2, tp: 1, dp_attention: 4, ep: 4}
faults:
  distribution: weibull
  weibull_shape: 0.7
  max_retries: 1
  overrides: {gb200_nvl72: {gpu: {mtbf_hours: 100, mttr_hours: 1}}}
  inject: [{at_s: 1, hardware: gb200_nvl72, kind: node, unit: 0}]
""")]


@st.composite
def mutated_features(draw):
    raw = copy.deepcopy(draw(st.sampled_from(FEATURES)))
    for _ in range(draw(st.integers(1, 2))):
        container, key, _ = draw(st.sampled_from(list(_paths(raw))))
        action = draw(st.sampled_from(["replace", "delete", "rename"]))
        if action == "replace":
            container[key] = draw(JUNK)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[str(key) + "x"] = container.pop(key)
    return raw


def test_the_feature_bases_are_valid():
    for raw in FEATURES:
        parse_experiment(copy.deepcopy(raw))


@settings(max_examples=600)
@given(mutated_features())
def test_mutated_feature_blocks_are_valid_or_a_config_error(raw):
    try:
        parse_experiment(raw)
    except ConfigError as exc:
        assert exc.message and str(exc)
