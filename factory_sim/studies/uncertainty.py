"""Uncertain inputs: distributions over experiment fields, and p5/p50/p95 bands of the results.

Prices, efficiencies and failure rates are estimates. An experiment may give any numeric
field a distribution (`uncertainty.inputs`, by dotted path, e.g. `cost.price_scale` or
`fleets[0].stack_overrides.hbm_efficiency`); `samples` draws are taken by Latin hypercube
sampling (scipy.stats.qmc), each draw is run as its own experiment, and the results carry
bands. The nominal experiment is the one without the draws.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
from pydantic import ConfigDict

from factory_sim.config.uncertainty import UncertaintySpec
from factory_sim.progress import emit
from factory_sim.studies.workers import map_jobs

_STRICT = ConfigDict(extra="forbid")

BAND_METRICS = ("usd_per_m_goodput_tokens", "usd_per_m_output_tokens", "goodput_tokens_per_s",
                "offered_req_per_s", "tokens_per_s_per_gpu", "usd_per_hour")


def draw(spec: UncertaintySpec, samples: int) -> list[dict[str, float]]:
    """`samples` Latin-hypercube draws of every input, as {path: value} overrides."""
    if not spec.inputs or samples <= 0:
        return []
    from scipy.stats import qmc

    paths = list(spec.inputs)
    unit = qmc.LatinHypercube(d=len(paths), seed=spec.seed).random(samples)
    out = []
    for row in unit:
        values = {}
        for path, u in zip(paths, row, strict=True):
            v = float(spec.inputs[path].frozen().ppf(u))
            values[path] = int(round(v)) if path in spec.integer_inputs else v
        out.append(values)
    return out


def _run_sample(args):
    from factory_sim.errors import ConfigError
    from factory_sim.studies.assemble import parse_experiment
    from factory_sim.studies.run import run_experiment
    from factory_sim.studies.sweep import set_field

    index, raw, overrides = args
    raw = copy.deepcopy(raw)
    for path, value in overrides.items():
        set_field(raw, path, value)
    try:
        summary = run_experiment(parse_experiment(raw, source=f"sample {index}"), jobs=1).summary
    except ConfigError as exc:
        return index, overrides, str(exc)
    finally:
        emit("draw", "uncertainty draws")
    return index, overrides, summary


def run_samples(raw: dict, spec: UncertaintySpec, samples: int, *, jobs: int | None = None) -> pd.DataFrame:
    """Every draw's summary rows, with `sample` and the drawn values as leading columns."""
    base = copy.deepcopy(raw)
    base.pop("uncertainty", None)
    draws = draw(spec, samples)
    results = map_jobs(_run_sample, [(i, base, d) for i, d in enumerate(draws)], jobs)
    frames, failed = [], []
    for index, overrides, outcome in results:
        if isinstance(outcome, str):
            failed.append(f"sample {index} {overrides}: {outcome}")
            continue
        df = outcome.copy()
        for j, (path, value) in enumerate(overrides.items()):
            df.insert(j, path, value)
        df.insert(0, "sample", index)
        frames.append(df)
    if failed:
        from factory_sim.errors import ConfigError

        raise ConfigError("uncertainty.inputs", "draws outside what the experiment allows: " + "; ".join(failed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def bands(samples: pd.DataFrame, metrics=BAND_METRICS) -> pd.DataFrame:
    """p5 / p50 / p95 of each metric per fleet and tier (infinite costs, where nothing met the SLO, count)."""
    rows = []
    for (fleet, tier), g in samples.groupby(["fleet", "tier"], sort=False):
        row = {"fleet": fleet, "tier": tier, "samples": len(g)}
        for m in metrics:
            values = g[m].to_numpy(dtype=float)
            values = values[~np.isnan(values)]
            method = "linear" if np.isfinite(values).all() else "nearest"  # no arithmetic on inf
            for q in (5, 50, 95):
                row[f"{m}_p{q}"] = float(np.percentile(values, q, method=method)) if len(values) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
