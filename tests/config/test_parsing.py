"""Files a careless user gives: each a clean one-line error naming the field as written."""

from __future__ import annotations

import copy

import pytest
import yaml

from factory_sim.catalog import parse_mapping
from factory_sim.cli import main
from factory_sim.errors import ConfigError
from factory_sim.studies.assemble import load_experiment, parse_experiment

BASE = yaml.safe_load("""
name: parse
model: llama3_1_8b
workload: chat_1k1k
requests: 20
slo_tiers: [{name: s, ttft_s: 2.0, tpot_s: 0.1}]
fleets:
  - name: h100
    hardware: h100_sxm
    prefill: {replicas: 1}
    decode: {replicas: 1}
load: {mode: fixed, rate_per_s: 5}
""")


def _error(raw) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse_experiment(raw)
    return err.value


def _cli(tmp_path, capsys, content: str | bytes, name="exp.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("factory-sim: error:") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_a_duplicate_key_is_refused_with_both_lines(tmp_path, capsys):
    text = yaml.safe_dump(BASE, sort_keys=False) + "requests: 5000\n"
    err = _cli(tmp_path, capsys, text)
    assert "duplicate key 'requests' (first given on line 4)" in err and f"exp.yaml:{text.count(chr(10))}" in err
    nested = yaml.safe_dump(BASE, sort_keys=False).replace("    replicas: 1\n", "    replicas: 1\n    replicas: 2\n", 1)
    assert "duplicate key 'replicas'" in _cli(tmp_path, capsys, nested)
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        parse_mapping("a: 1\nb: {c: 2}\na: 3\n", "x.yaml")
    # a merge key's mapping may be overridden key by key, as the shipped experiments do
    assert parse_mapping("a: &d {x: 1, y: 2}\nb: {<<: *d, y: 3}\n", "x.yaml")["b"] == {"x": 1, "y": 3}


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary\x00", bytes(range(256)), "name: a\x00b\n",
                                     "[" * 5000 + "]" * 5000, "a:\n" + "".join(" " * i + "- \n" for i in range(1, 80)),
                                     "{a: " * 200 + "1" + "}" * 200])
def test_binary_and_deeply_nested_files_are_clean_errors(tmp_path, capsys, content):
    _cli(tmp_path, capsys, content)


def test_a_model_file_that_is_not_utf8_names_the_field(tmp_path):
    (tmp_path / "m.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    err = _error(BASE | {"model": str(tmp_path / "m.yaml")})
    assert err.path == "model" and "not UTF-8" in err.message


def test_union_branches_never_show_in_field_names():
    raw = copy.deepcopy(BASE)
    raw["fleets"][0]["decode"] = {"replicas": 0}
    err = _error(raw)
    assert err.path == "fleets[0].decode.replicas" and "[function" not in str(err) and "list[" not in str(err)
    raw["fleets"][0]["decode"] = [{"replicas": 1}, {"replicas": 0}]
    err = _error(raw)
    assert err.path == "fleets[0].decode[1].replicas" and "PoolSpec" not in str(err)
    raw["fleets"][0]["decode"] = "four"
    assert "PoolSpec" not in str(_error(raw)) and "function-after" not in str(_error(raw))


@pytest.mark.parametrize(("change", "path", "hint"), [
    (lambda r: r["fleets"][0]["decode"].update(replicsa=1), "fleets[0].decode.replicsa", "'replicas'"),
    (lambda r: r.update(slo_tier=r.pop("slo_tiers")), "slo_tier", "'slo_tiers'"),
    (lambda r: r.update(workload={"arrivals": {"kind": "poisson", "rate_per_seconds": 1},
                                  "input_tokens": {"kind": "fixed", "tokens": 9},
                                  "output_tokens": {"kind": "fixed", "tokens": 9}}),
     "workload.arrivals.rate_per_seconds", "'rate_per_s'"),
    (lambda r: r.update(workload={"arrivals": {"kind": "poison", "rate_per_s": 1},
                                  "input_tokens": {"kind": "fixed", "tokens": 9},
                                  "output_tokens": {"kind": "fixed", "tokens": 9}}),
     "workload.arrivals", "'poisson'"),
    (lambda r: r["fleets"][0].update(stack_overrides={"hbm_efficency": 0.5}), "fleets[0].stack_overrides",
     "'hbm_efficiency'"),
    (lambda r: r.update(faults={"weibul_shape": 2}), "faults.weibul_shape", "'weibull_shape'"),
])
def test_misspelled_keys_get_a_did_you_mean(change, path, hint):
    raw = copy.deepcopy(BASE)
    change(raw)
    err = _error(raw)
    assert err.path == path and f"did you mean {hint}" in err.message


def test_an_unrelated_file_named_as_a_model_is_not_echoed(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cretSalt$Hash:19000:0:99999:7:::\nservice: hunter2-token\n"
                      "daemon:*:19000:0:99999:7:::\n")
    for field, change in (("model", {"model": str(secret)}),
                          ("fleets[0].hardware", {"fleets": [BASE["fleets"][0] | {"hardware": str(secret)}]})):
        err = _error(BASE | change)
        assert err.path == field and "is not a" in err.message
        assert not any(word in str(err) for word in ("s3cret", "hunter2", "daemon", "service"))
    with pytest.raises(ConfigError) as err:
        load_experiment(secret)
    assert "is not an experiment file" in str(err.value) and "hunter2" not in str(err.value)


@pytest.mark.parametrize(("path", "value"), [("seed", True), ("requests", False)])
def test_true_and_false_are_no_numbers(path, value):
    err = _error(BASE | {path: value})
    assert err.path == path and "not " + str(value).lower() in err.message


def test_long_values_are_shortened_when_echoed():
    err = _error(BASE | {"seed": "x" * 500})
    assert len(str(err)) < 400


def test_every_shipped_file_reads_as_the_pure_python_loader_reads_it():
    """Files are parsed by libyaml when PyYAML has it (catalog.UniqueKeyLoader): the same values
    as PyYAML's own SafeLoader, for every YAML file the project ships or runs."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = [p for p in root.rglob("*.yaml") if ".git" not in p.parts]
    assert len(files) > 40
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert parse_mapping(text, str(path)) == yaml.load(text, Loader=yaml.SafeLoader), path  # noqa: S506
