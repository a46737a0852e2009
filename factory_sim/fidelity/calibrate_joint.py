"""One fit of a profile's constants to InferenceX points, measured points and MLPerf rows at once.

`factory-sim calibrate --joint` fits each stack profile to the three data sets together: the
rows of each are collected as the single-set fits collect them (calibrate.collect_rows: the
Offline throughput rows and a stratified sample of measured points; calibrate_inferencex.
collect_points: a stratified sample of InferenceX points on tokens/s/GPU, interactivity and
TTFT), their log-error residuals are concatenated into one Gauss-Newton problem with the same
priors and robust loss, and each data set is weighted so that no one swamps the others: every
data set present gets the same total weight (the sum over its rows of row weight x quantity
weight), so 300 InferenceX points on two quantities count as much as 22 Offline rows.

Measured points are labelled with the MTP runs their InferenceX twins reveal
(mtp_runs.label_mtp_runs) and those rows are simulated with MTP at the profile's acceptance,
so that `mtp_acceptance` is informed by both data sets (MLPerf rows keep their own).

Held-out error is reported per data set: InferenceX leave-one-hardware-out and
leave-one-date-out (each refit without one hardware's or one month's points; the other data
sets stay in the fit), measured points and MLPerf rows leave-one-(system, model)-group-out.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from factory_sim.config.hardware import load_hardware
from factory_sim.config.stack import load_stack
from factory_sim.errors import ConfigError
from factory_sim.fidelity.calibrate import (
    PARAMETERS,
    FitRow,
    ProfileFit,
    _fmt,
    _log_errors,
    collect_rows,
    fit_each_profile,
    fitted_parameters,
    profile_yaml,
)
from factory_sim.fidelity.calibrate_inferencex import (
    DEFAULT_PARAMETERS,
    HARNESS_SET,
    add_unset_constants,
    collect_points,
    skip_lines,
)
from factory_sim.fidelity.deployments import catalog_names, row_stack, row_text
from factory_sim.fidelity.mtp_runs import label_mtp_runs

DATA_SETS = {"inferencex": "InferenceX points", "points": "measured points", "throughput": "MLPerf rows"}
QUANTITIES = {"inferencex": ("output_tok_s_per_gpu", "interactivity_tok_s_user", "ttft_ms"),
              "points": ("tpot_ms", "ttft_ms"), "throughput": ("throughput",)}
DEFAULT_SAMPLE = 100


def balance(rows: list[FitRow], parameters: tuple) -> dict[str, float]:
    """Scale each row's weight so that every data set present carries the same total weight
    (as `_log_errors` weighs its quantities with these `parameters`); return the scale per set."""
    _, w = _log_errors(rows, [{q: 1.0 for q in fr.published} for fr in rows], parameters)
    kinds = np.concatenate([[fr.kind] * len(fr.published) for fr in rows]) if rows else np.array([])
    totals = {k: float(w[kinds == k].sum()) for k in DATA_SETS if (kinds == k).any()}
    totals = {k: t for k, t in totals.items() if t > 0}
    if not totals:
        return {}
    share = sum(totals.values()) / len(totals)
    scale = {k: share / t for k, t in totals.items()}
    for fr in rows:
        fr.weight *= scale.get(fr.kind, 1.0)
    return scale


def _profile_of(row: dict) -> str | None:
    """The stack profile a measured row runs under (None: a system with no hardware profile)."""
    hardware, _ = catalog_names()
    if str(row.get("system")) not in hardware:
        return None
    stack, _ = row_stack(load_hardware(str(row["system"])), row_text(row, "backend"), row_text(row, "measured_date"))
    return stack.name


def collect_joint(calibration: pd.DataFrame | None, points: pd.DataFrame | None, inferencex: pd.DataFrame | None,
                  *, sample: int = DEFAULT_SAMPLE, profiles: list[str] | None = None, sim_rounds: int = 3
                  ) -> tuple[list[FitRow], list[tuple[str, str]]]:
    """The three data sets' fit rows (measured points labelled with their MTP runs), with
    measured and MLPerf rows held out by (system, model) group and InferenceX points by
    hardware and by month."""
    if points is not None and inferencex is not None:
        points = label_mtp_runs(points, inferencex)
    if points is not None and profiles:  # sample within the profiles fitted, not over every profile's rows
        points = points[[_profile_of(row) in profiles for row in points.to_dict("records")]]
    rows, skipped = collect_rows(calibration, points, points_sample=sample, profiles=profiles)
    for fr in rows:
        fr.strata = {"group": fr.group}
    if inferencex is not None and len(inferencex):
        ix_rows, ix_skipped = collect_points(inferencex, sample=sample, profiles=profiles, sim_rounds=sim_rounds)
        rows += ix_rows
        skipped += ix_skipped
    return rows, skipped


def calibrate_joint(calibration: pd.DataFrame | None, points: pd.DataFrame | None, inferencex: pd.DataFrame | None,
                    *, sample: int = DEFAULT_SAMPLE, profiles: list[str] | None = None, rounds: int = 3,
                    iterations: int = 20, jobs: int | None = None, loo: bool = True,
                    parameters: list[str] | None = None, sim_rounds: int = 3,
                    progress: Callable[[str], None] | None = None
                    ) -> tuple[list[ProfileFit], list[tuple[str, str]], dict[str, dict[str, float]]]:
    """Fit every profile with enough rows to all data sets given at once; return the fits, the
    rows left out (with the reason) and each profile's weight scale per data set."""
    known = [p.name for p in PARAMETERS]
    for name in parameters or []:
        if name not in known:
            raise ConfigError("--parameter", f"unknown constant '{name}'; calibrate fits {', '.join(known)}")
        if name in HARNESS_SET and inferencex is not None:
            raise ConfigError("--parameter", f"'{name}' is set by the InferenceX client's request path, so a "
                                             "joint fit with InferenceX points cannot fit it")
    names = list(parameters or DEFAULT_PARAMETERS)
    rows, skipped = collect_joint(calibration, points, inferencex, sample=sample, profiles=profiles,
                                  sim_rounds=sim_rounds)
    scales: dict[str, dict[str, float]] = {}
    for profile in sorted({r.profile for r in rows}):
        mine = [r for r in rows if r.profile == profile]
        scales[profile] = balance(mine, fitted_parameters(load_stack(profile), True, names))
    fits = fit_each_profile(rows, skipped, "rows", progress, rounds=rounds, iterations=iterations, jobs=jobs, loo=loo,
                            parameters=names, held_out_by=("hardware", "date", "group") if loo else ())
    return fits, skipped, scales


def _kind_of(fit: ProfileFit) -> dict[str, str]:
    """Row id -> data set, read from the ids the fit lists (InferenceX ids start 'p', MLPerf 'CAL-')."""
    return {r: "throughput" if r.startswith("CAL-") else "inferencex" if re.fullmatch(r"p\d+", r) else "points"
            for r in fit.rows}


def per_data_set(fit: ProfileFit) -> dict[str, dict[str, pd.DataFrame]]:
    """{data set: {before, after, and its held-out frames}} of a joint fit."""
    kind = _kind_of(fit)
    out: dict[str, dict[str, pd.DataFrame]] = {}
    frames = {"before": fit.errors_before, "after (in sample)": fit.errors_after,
              "leave-one-(system, model)-out": fit.loo, **{f"leave-one-{k}-out": v for k, v in fit.held_out.items()}}
    for k in DATA_SETS:
        sets = {}
        for label, frame in frames.items():
            if frame is None or frame.empty:
                continue
            part = frame[frame["id"].map(kind) == k]
            if len(part):
                sets[label] = part
        if sets:
            out[k] = sets
    return out


def _cell(frame: pd.DataFrame, q: str) -> str:
    e = frame.loc[frame["quantity"] == q, "rel_error"].dropna()
    return f"{q} {np.median(e.abs()):.1%} ({np.median(e):+.1%}, {len(e)})" if len(e) else ""


def format_joint(fits: list[ProfileFit], skipped: list[tuple[str, str]], scales: dict[str, dict[str, float]]) -> str:
    """Per profile: fitted values, each data set's weight scale, and per data set median |error|
    (median signed, rows) before, in sample and held out."""
    lines = []
    for f in fits:
        lines.append(f"{f.profile}: {len(f.rows)} rows, {f.rounds} rounds"
                     + ("" if f.converged else " (not converged)"))
        for name, v in f.values.items():
            lines.append(f"  {name:<28} {_fmt(f.start[name]):>10} -> {_fmt(v)}")
        weights = scales.get(f.profile, {})
        lines.append("  weight per row, x: " + ", ".join(f"{DATA_SETS[k]} {s:.3g}" for k, s in weights.items()))
        for k, sets in per_data_set(f).items():
            lines.append(f"  {DATA_SETS[k]}: median |error| (median signed, rows)")
            for label, frame in sets.items():
                cells = [c for c in (_cell(frame, q) for q in QUANTITIES[k]) if c]
                lines.append(f"    {label:<30} " + ", ".join(cells))
    lines += skip_lines(skipped, "rows")
    return "\n".join(lines)


def joint_profile_yaml(fit: ProfileFit) -> str:
    """The profile's YAML with the fitted values (calibrate.profile_yaml), constants it did not
    set before added after step_overhead_s, and a comment naming the joint fit."""
    text = profile_yaml(fit)
    kind = _kind_of(fit)
    counts = {k: sum(1 for r in fit.rows if kind[r] == k) for k in DATA_SETS}
    what = ("fitted jointly (factory-sim calibrate --joint) to " +
            ", ".join(f"{n} {DATA_SETS[k]}" for k, n in counts.items() if n) + ", all in fitted_to")
    text = add_unset_constants(text, fit, what)
    n_thr = sum(1 for r in fit.rows if r.startswith("CAL-"))
    n_pts = len(fit.rows) - n_thr
    written = (f"fitted with the other constants held (factory-sim calibrate --parameter) to {n_thr} throughput "
               f"rows and {n_pts} measured points, all in fitted_to" if fit.held else
               f"fitted to the {n_thr} throughput rows and {n_pts} measured points in fitted_to "
               "(factory-sim calibrate)")
    return text.replace(written, what)
