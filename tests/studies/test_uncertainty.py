"""Uncertain inputs: Latin-hypercube draws, bands, and a run with samples end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from factory_sim.cli import main
from factory_sim.config.uncertainty import UncertaintySpec
from factory_sim.studies.uncertainty import bands, draw
from tests.helpers import SMALL


def test_latin_hypercube_puts_one_draw_in_every_stratum():
    spec = UncertaintySpec.model_validate({"seed": 3, "inputs": {
        "a": {"kind": "uniform", "low": 10, "high": 20},
        "b": {"kind": "triangular", "low": 0, "mode": 1, "high": 4},
        "c": {"kind": "normal", "mean": 5, "sd": 1},
        "d": {"kind": "lognormal", "median": 2, "sigma": 0.5}}, "integer_inputs": ["a"]})
    draws = draw(spec, 10)
    assert len(draws) == 10 and draws == draw(spec, 10)  # seeded
    a = np.array([d["a"] for d in draws])
    assert set(a) <= set(range(10, 21)) and a.dtype.kind == "i"
    b = np.array([d["b"] for d in draws])
    cdf = np.where(b <= 1, b ** 2 / 4, 1 - (4 - b) ** 2 / 12)  # triangular(0, 1, 4)
    assert sorted(np.floor(cdf * 10).astype(int)) == list(range(10))  # one draw per tenth of the distribution
    c = np.array([d["c"] for d in draws])
    assert (c >= 2).all() and (c <= 8).all()  # cut at mean -+ 3 sd
    assert (np.array([d["d"] for d in draws]) > 0).all()
    with pytest.raises(ValueError):
        UncertaintySpec.model_validate({"inputs": {"a": {"kind": "uniform", "low": 2, "high": 1}}})


def test_bands_by_hand():
    df = pd.DataFrame({"fleet": ["f"] * 5, "tier": ["t"] * 5, "usd_per_m_goodput_tokens": [1.0, 2.0, 3.0, 4.0, 5.0],
                       "goodput_tokens_per_s": [5.0, 4.0, 3.0, 2.0, np.inf]})
    b = bands(df, metrics=("usd_per_m_goodput_tokens", "goodput_tokens_per_s")).iloc[0]
    assert b["usd_per_m_goodput_tokens_p50"] == 3.0
    assert b["usd_per_m_goodput_tokens_p5"] == pytest.approx(1.2)  # linear between 1 and 2
    assert b["usd_per_m_goodput_tokens_p95"] == pytest.approx(4.8)
    assert b["goodput_tokens_per_s_p95"] == np.inf  # nearest rank, never inf - inf


def test_run_with_samples_writes_bands(tmp_path, capsys):
    raw = yaml.safe_load(SMALL)
    raw["load"] = {"mode": "fixed", "rate_per_s": 10}
    raw["uncertainty"] = {"samples": 3, "seed": 2, "inputs": {
        "cost.price_scale": {"kind": "uniform", "low": 0.5, "high": 1.5},
        "fleets[0].stack_overrides.hbm_efficiency": {"kind": "uniform", "low": 0.7, "high": 0.9}}}
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(raw))
    assert main(["run", str(exp), "--quiet", "--jobs", "1", "--out", str(tmp_path / "o")]) == 0
    assert "3 Latin-hypercube draws" in capsys.readouterr().out
    samples = pd.read_csv(tmp_path / "o" / "samples.csv")
    assert samples["sample"].nunique() == 3 and len(samples) == 3 * 4
    price = samples.groupby("sample")["cost.price_scale"].first()
    h100 = samples[(samples.fleet == "h100") & (samples.tier == "relaxed")].set_index("sample")
    # $/hour scales with the drawn price: one H100 at $1.30 per GPU-hour (hyperscaler tier)
    np.testing.assert_allclose(h100["usd_per_hour"], 1.30 * price.loc[h100.index])
    b = pd.read_csv(tmp_path / "o" / "bands.csv")
    assert {"usd_per_m_goodput_tokens_p5", "usd_per_m_goodput_tokens_p95"} <= set(b.columns)
    assert main(["plot", str(tmp_path / "o" / "bands.csv"), "--kind", "bands", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b.png").stat().st_size > 1000
    assert main(["report", str(tmp_path / "o")]) == 0  # the bands in the page, with their figure
    page = (tmp_path / "o" / "report.html").read_text()
    assert "Uncertainty" in page and "p5, p50 and p95 over 3 Latin-hypercube draws" in page and "Cost bands" in page
    raw["uncertainty"]["inputs"]["fleets[0].stack_overrides.hbm_efficiency"] = {"kind": "uniform", "low": 1.5,
                                                                               "high": 2.0}
    exp.write_text(yaml.safe_dump(raw))
    assert main(["run", str(exp), "--quiet", "--jobs", "1"]) == 2
    assert "hbm_efficiency" in capsys.readouterr().err
