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
from factory_sim.experiment import load_experiment, parse_experiment
from tests.test_cli import SMALL

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
