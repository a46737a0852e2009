"""Stack constants fitted to InferenceX points, with leave-one-hardware-out and leave-one-date-out error.

`factory-sim calibrate points.csv.gz` (a file whose header is InferenceX's) fits, per stack
profile the points select (framework, GPU generation, software date or image version:
`inferencex.image_stack`), a few constants of `calibrate.PARAMETERS` to a stratified sample of
the points, on all three quantities the benchmark publishes (output tokens/s per GPU,
interactivity, median TTFT), with the same priors, robust loss and Gauss-Newton rounds as the
other rows. The held-out figures refit each profile without one hardware's points (then
without one month's) and predict those: a profile all of whose points are one hardware (or
one month) is then predicted at its values before this fit.

Each point is simulated with `sim_rounds` requests per client (default 3, about a quarter of
the benchmark's ten: inferencex.SIM_ROUNDS says what that shifts) so that a fit of a few
hundred points takes minutes on 2 cores.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd

from factory_sim.errors import ConfigError
from factory_sim.fidelity.calibrate import (
    PARAMETERS,
    FitRow,
    ProfileFit,
    _fmt,
    fit_each_profile,
    profile_yaml,
)
from factory_sim.fidelity.deployments import Skip
from factory_sim.fidelity.inferencex import (
    INFERENCEX_MOE_SETUP_SHARE,
    QUANTITIES,
    point_date,
    point_deployment,
    published_values,
)

# Constants fitted by default: few, and each one the three quantities can tell apart (GEMM
# scale and HBM efficiency: throughput at load and at tight latency; step overhead: TPOT at a
# few clients; EP imbalance: wide-EP MoE steps). The front-end and MoE prefill set-up latencies
# are not among them: the points are scored with their own client's request path
# (inferencex.harness_stack: no front-end latency and none of the MoE set-up latency), so they
# say nothing of a profile's. (When the MoE set-up latency was fitted to these points, before
# that, it earned its place held out, 304 points: TTFT leave-one-hardware-out 55.6% -> 48.4%,
# leave-one-date-out 48.3% -> 36.7%.)
DEFAULT_PARAMETERS = ("gemm_scale", "hbm_efficiency", "step_overhead_s", "ep_load_imbalance")
# Constants the points cannot inform: the harness sets them.
HARNESS_SET = ("frontend_latency_s",) + (("prefill_moe_layer_latency_s", "prefill_moe_latency_s_per_gparam")
                                         if INFERENCEX_MOE_SETUP_SHARE == 0 else ())
HELD_OUT_BY = ("hardware", "date")
DEFAULT_SAMPLE = 300
DEFAULT_SIM_ROUNDS = 3


def stratified(points: pd.DataFrame, n: int, keys: tuple[str, ...], seed: int = 0) -> pd.DataFrame:
    """About n rows, every stratum of `keys` represented, the rest proportional (seeded)."""
    if n <= 0 or len(points) <= n:
        return points
    rng = np.random.default_rng(seed)
    picks: list = []
    for _, g in points.groupby(list(keys), sort=True):
        k = max(1, int(round(n * len(g) / len(points))))
        picks.extend(rng.choice(g.index.to_numpy(), size=min(k, len(g)), replace=False).tolist())
    return points.loc[sorted(picks)]


def collect_points(points: pd.DataFrame, *, sample: int = DEFAULT_SAMPLE, profiles: list[str] | None = None,
                   sim_rounds: int = DEFAULT_SIM_ROUNDS, seed: int = 0
                   ) -> tuple[list[FitRow], list[tuple[str, str]]]:
    """Fit rows of the scoreable points (a sample stratified by hardware, framework, model and
    month) and the points left out with the reason."""
    skipped: list[tuple[str, str]] = []
    info = []
    for idx, p in zip(points.index, points.to_dict("records"), strict=True):
        try:
            dep, _ = point_deployment(p)
        except (Skip, ConfigError) as why:
            skipped.append((str(p.get("point_id")), str(getattr(why, "message", why))))
            continue
        profile = dep.fleet.pools[-1].shape.stack.name
        if profiles and profile not in profiles:
            continue
        info.append({"_i": idx, "profile": profile, "month": (point_date(p) or "")[:7]})
    if not info:
        return [], skipped
    meta = pd.DataFrame(info).set_index("_i")
    usable = points.loc[meta.index].join(meta)
    picked = stratified(usable, sample, ("hardware", "framework", "model", "month"), seed)
    rows = []
    for p in picked.to_dict("records"):
        published = {q: v for q, (v, _) in published_values(p).items()}
        rows.append(FitRow(str(p["point_id"]), "inferencex", p, p["profile"], f"{p['hardware']}/{p['model']}", 1.0,
                           published={q: published[q] for q in QUANTITIES if q in published},
                           strata={"hardware": str(p["hardware"]), "date": p["month"]}, sim_rounds=sim_rounds))
    return rows, skipped


def calibrate_inferencex(points: pd.DataFrame, *, sample: int = DEFAULT_SAMPLE, profiles: list[str] | None = None,
                         rounds: int = 3, iterations: int = 20, jobs: int | None = None, loo: bool = True,
                         parameters: list[str] | None = None, sim_rounds: int = DEFAULT_SIM_ROUNDS,
                         progress: Callable[[str], None] | None = None
                         ) -> tuple[list[ProfileFit], list[tuple[str, str]]]:
    """Fit every profile with at least MIN_ROWS_PER_PROFILE sampled points."""
    known = [p.name for p in PARAMETERS]
    for name in parameters or []:
        if name not in known:
            raise ConfigError("--parameter", f"unknown constant '{name}'; calibrate fits {', '.join(known)}")
    for name in parameters or []:
        if name in HARNESS_SET:
            raise ConfigError("--parameter", f"'{name}' is set by the InferenceX client's request path "
                                             "(inferencex.harness_stack), so these points cannot fit it; fit it "
                                             "to measured points instead")
    if sim_rounds < 3:
        raise ConfigError("--sim-rounds", f"{sim_rounds} requests per client; give at least 3 (start-up, "
                                          "steady, drain)")
    rows, skipped = collect_points(points, sample=sample, profiles=profiles, sim_rounds=sim_rounds)
    fits = fit_each_profile(rows, skipped, "InferenceX points", progress, rounds=rounds, iterations=iterations,
                            jobs=jobs, loo=loo, parameters=list(parameters or DEFAULT_PARAMETERS),
                            held_out_by=HELD_OUT_BY if loo else ())
    return fits, skipped


def median_errors(frame: pd.DataFrame | None) -> dict[str, tuple[float, float, int]]:
    """{quantity: (median |error|, median signed error, rows)} of an error frame."""
    out: dict[str, tuple[float, float, int]] = {}
    if frame is None or frame.empty:
        return out
    for q in QUANTITIES:
        e = frame.loc[frame["quantity"] == q, "rel_error"].dropna()
        if len(e):
            out[q] = (float(np.median(e.abs())), float(np.median(e)), len(e))
    return out


def _line(label: str, frame: pd.DataFrame | None) -> str:
    m = median_errors(frame)
    if not m:
        return f"  {label:<28} n/a"
    return f"  {label:<28} " + ", ".join(f"{q} {a:.1%} ({s:+.1%}, {n})" for q, (a, s, n) in m.items())


def summary_lines(fit: ProfileFit) -> list[str]:
    """Median |error| (median signed, rows) before, in sample, and held out by hardware and by date."""
    return [_line("before (profile as shipped)", fit.errors_before), _line("after (in sample)", fit.errors_after),
            _line("leave-one-hardware-out", fit.held_out.get("hardware")),
            _line("leave-one-date-out", fit.held_out.get("date"))]


def format_inferencex_calibration(fits: list[ProfileFit], skipped: list[tuple[str, str]]) -> str:
    lines = []
    for f in fits:
        lines.append(f"{f.profile}: {len(f.rows)} InferenceX points, {f.rounds} rounds"
                     + ("" if f.converged else " (not converged)"))
        for name, v in f.values.items():
            lines.append(f"  {name:<22} {f.start[name]:.4g} -> {v:.4g}")
        lines.extend(summary_lines(f))
    if fits:
        def cat(frames):
            frames = [x for x in frames if x is not None and not x.empty]
            return pd.concat(frames, ignore_index=True) if frames else None
        lines.append("all profiles: median |error| (median signed, rows)")
        lines.append(_line("before (profile as shipped)", cat([f.errors_before for f in fits])))
        lines.append(_line("after (in sample)", cat([f.errors_after for f in fits])))
        lines.append(_line("leave-one-hardware-out", cat([f.held_out.get("hardware") for f in fits])))
        lines.append(_line("leave-one-date-out", cat([f.held_out.get("date") for f in fits])))
    lines += skip_lines(skipped, "points")
    return "\n".join(lines)


def skip_lines(skipped: list[tuple[str, str]], noun: str) -> list[str]:
    """The report's lines on what a fit left out: a count per reason, the 12 commonest."""
    if not skipped:
        return []
    reasons = Counter(why for _, why in skipped)
    return [f"{noun} not fitted to: {len(skipped)}", *(f"  {n:5d}  {why}" for why, n in reasons.most_common(12))]


def figures_comment(fit: ProfileFit) -> str:
    """YAML comment lines stating what the fit gave, for the written profile."""
    return "".join(f"# {line.strip()}\n" for line in
                   [f"InferenceX fit (factory-sim calibrate points.csv.gz): {len(fit.rows)} points, median |error| "
                    "(median signed, rows):", *summary_lines(fit)])


def add_unset_constants(text: str, fit: ProfileFit, what: str) -> str:
    """The profile's YAML text with each constant the fit moved that the profile did not set
    (fitted from its estimate) added after step_overhead_s: profile_yaml only rewrites lines it finds."""
    for name, value in fit.values.items():
        if name != "gemm_scale" and not re.search(rf"^{name}:", text, flags=re.M):
            line = f"{name}: {_fmt(value)}   # {what}; prior {fit.start[name]:g}: estimate"
            text = re.sub(r"^(step_overhead_s:.*)$", lambda m, line=line: f"{m.group(1)}\n{line}", text, count=1,
                          flags=re.M)
    return text


def inferencex_profile_yaml(fit: ProfileFit) -> str:
    """The YAML `calibrate points.csv.gz` writes: the fit's figures, the fitted values, and the
    constants the profile did not set added."""
    what = (f"fitted with the other constants held (factory-sim calibrate points.csv.gz --parameter) to "
            f"{len(fit.rows)} InferenceX points")
    return figures_comment(fit) + add_unset_constants(profile_yaml(fit), fit, what)
