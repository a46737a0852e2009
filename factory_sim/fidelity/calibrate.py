"""Fit a few software-stack constants to published results, and say which rows they came from.

Per stack profile (one per GPU generation, framework and software date; `select_stack`
assigns each row its profile) a handful of parameters is fitted: a scale on the GEMM
efficiencies, the HBM efficiency, the attention efficiency, the per-step overhead and the
expert-parallel load imbalance. The fit is a bounded least squares (scipy) on the log of
predicted / published, over the Offline throughput rows of calibration.csv and a stratified
sample of the measured operating points, with a prior penalty that pulls each parameter
toward its microbenchmark value (or its estimate, more loosely).

Every prediction is a simulation, so the fit is cheap by construction: each Gauss-Newton
round simulates every row once plus once per parameter (a finite-difference Jacobian), then
solves the linearised problem with scipy; a few rounds converge. Server/Interactive rows
are not fitted to (their load search is the costly part): they stay out of sample.
Leave-one-group-out error refits without each (system, model) group on the same
linearisation and simulates the held-out rows at the refitted values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from factory_sim.catalog import builtin_path
from factory_sim.config.hardware import load_hardware
from factory_sim.config.stack import SoftwareStack, load_stack
from factory_sim.errors import ConfigError
from factory_sim.fidelity.deployments import Skip, row_stack
from factory_sim.fidelity.measured import deployment, predict
from factory_sim.fidelity.mlperf import THROUGHPUT_METRICS, benchmark, predict_throughput
from factory_sim.perf.stacks import override_stack
from factory_sim.progress import emit
from factory_sim.studies.workers import map_jobs, worker_count


@dataclass(frozen=True)
class Parameter:
    """One fitted constant: how to read and write it, its bounds, and the prior's spread (log)."""

    name: str
    lower: float
    upper: float
    prior_sigma_log: float
    why: str
    unset_start: float | None = None  # a --parameter fit's start where the profile does not set it

    def get(self, stack: SoftwareStack) -> float:
        if self.name == "gemm_scale":
            return 1.0
        value = getattr(stack, self.name)
        return 0.0 if value is None else float(value)  # unset: not fitted

    def apply(self, stack: SoftwareStack, value: float) -> dict:
        if self.name == "gemm_scale":
            eff = stack.gemm_efficiency.model_dump()
            return {"gemm_efficiency": {k: (min(1.0, v * value) if v is not None else None) for k, v in eff.items()}}
        return {self.name: value}


EP_PARAMETERS = ("ep_load_imbalance", "ep_peer_latency_s", "adp_rank_jitter_s", "mla_dp_attention_efficiency",
                 "mla_dp_seq_overhead_s")
# Fitted only when named: every profile sets them (at an estimate); by default they would change a plain `calibrate`
OPT_IN_PARAMETERS = ("layer_overhead_s",)

# Priors: GEMM and HBM efficiencies are measured (measured_efficiency.csv: cuBLASLt GEMM and HBM
# Triad/STREAM microbenchmarks), so they are held tightly; the others are estimates, held loosely.
PARAMETERS = (
    Parameter("gemm_scale", 0.3, 1.3, 0.15, "scale on the measured large-GEMM efficiencies"),
    Parameter("hbm_efficiency", 0.5, 0.95, 0.08, "measured HBM Triad/STREAM fraction of peak"),
    Parameter("attention_efficiency", 0.05, 1.0, 0.7, "estimate"),
    Parameter("mla_dp_attention_efficiency", 0.05, 1.0, 0.7, "estimate", unset_start=0.35),  # where set or named
    # fitted only where a profile sets it; its prior is the FlashAttention-3/-4 figure it cites
    Parameter("prefill_attention_efficiency", 0.1, 1.0, 0.3, "published kernel benchmarks"),
    Parameter("step_overhead_s", 1e-4, 0.02, 1.0, "estimate"),
    Parameter("layer_overhead_s", 1e-6, 2e-4, 1.5, "estimate"),  # fitted only when named: every profile sets it
    # fitted where a profile sets it, or when named (from 20 us: an estimate, a few small kernels' launch)
    Parameter("mla_layer_overhead_s", 1e-6, 2e-4, 1.5, "estimate", unset_start=2e-5),
    Parameter("ep_load_imbalance", 1.0, 3.0, 0.3, "estimate"),
    Parameter("ep_peer_latency_s", 1e-8, 2e-5, 1.5, "estimate", unset_start=1e-6),  # where set, or named (from 1 us)
    Parameter("adp_rank_jitter_s", 1e-5, 0.02, 1.5, "estimate", unset_start=1e-3),  # where set, or when named
    Parameter("seq_overhead_s", 1e-7, 2e-4, 1.5, "estimate"),  # fitted only where a profile sets it
    Parameter("mla_dp_seq_overhead_s", 1e-7, 1e-3, 1.5, "estimate", unset_start=2e-5),  # where set, or named (20 us)
    Parameter("prefill_step_overhead_s", 1e-3, 0.5, 1.5, "estimate"),
    Parameter("frontend_latency_s", 1e-3, 0.3, 1.0, "estimate"),  # fitted only where a profile sets it
    Parameter("frontend_s_per_streamed_token", 1e-7, 2e-3, 1.5, "estimate", unset_start=1e-4),  # where set or named
    Parameter("prefill_moe_layer_latency_s", 1e-5, 0.01, 1.5, "estimate"),
    Parameter("prefill_moe_layer_overhead_s", 1e-5, 0.01, 1.5, "estimate"),
    # per billion routed expert parameters of an MoE layer (DeepSeek-R1: 11.3); fitted only where a profile sets it
    Parameter("prefill_moe_latency_s_per_gparam", 1e-6, 2e-3, 1.5, "estimate"),
    Parameter("prefill_moe_overhead_s_per_gparam", 1e-6, 2e-3, 1.5, "estimate"),
    Parameter("activation_passes", 0.5, 40.0, 0.7, "estimate"),  # fitted only where a profile sets it
    Parameter("fp4_gemm_half_efficiency_tokens", 8, 8192, 1.5, "estimate", unset_start=32),  # where set or named
    # fitted only where a profile sets it, and only MTP rows (InferenceX points) inform it
    Parameter("mtp_acceptance", 0.2, 0.95, 0.3, "DeepSeek-V3 report: 85-90% for the first draft"),
)
# Spread of a row's log error the fit expects (estimate); the prior terms are in these units.
ROW_SIGMA_LOG = 0.25
# Weights per quantity. Measured TTFT carries the harness's front-end time and the engines'
# eager prefill steps, which only the prefill constants (TTFT_PARAMETERS) model: it is fitted
# to (at half weight) only when one of them is fitted, so that otherwise compute efficiencies
# are set by throughput and TPOT alone.
QUANTITY_WEIGHT = {"throughput": 1.0, "tpot_ms": 1.0, "ttft_ms": 0.5,
                   "output_tok_s_per_gpu": 1.0, "interactivity_tok_s_user": 1.0}  # the last two: InferenceX
TTFT_PARAMETERS = ("prefill_step_overhead_s", "prefill_moe_layer_latency_s", "prefill_moe_layer_overhead_s",
                   "prefill_moe_latency_s_per_gparam", "prefill_moe_overhead_s_per_gparam",
                   "prefill_attention_efficiency", "frontend_latency_s", "frontend_s_per_streamed_token")
# Largest parameter move per Gauss-Newton round (log), a trust region for the linearisation.
MAX_MOVE_LOG = 0.4
CONFIDENCE_WEIGHT = {"high": 1.0, "medium": 0.5, "low": 0.0}  # low-confidence rows get no weight
JACOBIAN_STEP_LOG = 0.1
MIN_ROWS_PER_PROFILE = 3


@dataclass
class FitRow:
    """A row the fit uses: its source row, its profile and group, and for throughput rows the
    serving configuration chosen at the starting values (held fixed while the stack varies)."""

    id: str
    kind: str  # "throughput" or "points"
    row: dict
    profile: str
    group: str
    weight: float
    config: str | None = None
    published: dict[str, float] = field(default_factory=dict)
    # other groupings held out in turn ({"hardware": ..., "date": ...}: InferenceX points)
    strata: dict[str, str] = field(default_factory=dict)
    sim_rounds: int = 10  # requests per client an InferenceX point is simulated with


@dataclass
class ProfileFit:
    profile: str
    start: dict[str, float]
    values: dict[str, float]
    rows: list[str]
    errors_before: pd.DataFrame
    errors_after: pd.DataFrame
    loo: pd.DataFrame
    rounds: int
    held: list[str] = field(default_factory=list)  # constants the profile sets that this fit held
    # False when the rounds ran out while the last one still moved a constant (by up to the
    # trust region): more --rounds would move it further
    converged: bool = True
    # held-out error per grouping of `FitRow.strata` (leave-one-hardware-out, -date-out)
    held_out: dict[str, pd.DataFrame] = field(default_factory=dict)


def held_out(dep) -> str | None:
    """Why a measured deployment is kept out of every fit (it stays scored, out of sample), or None.

    A family is held out only where its own twins contradict it: the same deployments with
    another parallelism fit, and no compute or memory cost explains the gap. Fitted to, such a
    family moves a latency constant that every other row of its profile then pays."""
    pool = dep.fleet.pools[0]
    sh = pool.shape
    if (pool.role == "aggregated" and sh.stack.framework == "sglang" and sh.model.name == "deepseek_r1"
            and sh.precision == "fp4" and sh.ep == 1):
        # DeepSeek NVFP4 on B200 with the experts tensor-parallel: measured TTFT 9.5x the
        # prediction at the median (46 rows, up to 9 s at 4 clients with 8k prompts), while the
        # same deployments with EP4/EP8 measure 0.78x and all their TPOTs fit.
        return ("SGLang DeepSeek NVFP4 with tensor-parallel experts (EP1): prefill ~10x its EP twins; "
                "held out of the fit")
    return None


def _stratified(points: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """About n rows, every (system, backend, model) stratum represented, the rest proportional."""
    if len(points) <= n:
        return points
    keys = ["system", "backend", "model"]
    strata = points.groupby(keys, sort=True)
    picks = []
    rng = np.random.default_rng(seed)
    for _, g in strata:
        k = max(1, int(round(n * len(g) / len(points))))
        picks.extend(rng.choice(g.index.to_numpy(), size=min(k, len(g)), replace=False).tolist())
    return points.loc[sorted(picks)]


def collect_rows(calibration: pd.DataFrame | None, points: pd.DataFrame | None, *, points_sample: int = 100,
                 profiles: list[str] | None = None) -> tuple[list[FitRow], list[tuple[str, str]]]:
    """The rows to fit to (Offline throughput rows, a stratified sample of measured points),
    and the rows left out with the reason."""
    rows: list[FitRow] = []
    skipped: list[tuple[str, str]] = []
    if calibration is not None:
        for row in calibration.to_dict("records"):
            rid = str(row.get("id"))
            if row.get("metric") not in THROUGHPUT_METRICS:
                continue
            weight = CONFIDENCE_WEIGHT.get(str(row.get("confidence", "high")), 1.0)
            if row.get("scenario") != "offline":
                skipped.append((rid, "latency-bounded scenario: held out of the fit"))
                continue
            if weight == 0:
                skipped.append((rid, "low confidence: no weight in the fit"))
                continue
            try:
                b = benchmark(row)
                _, config = predict_throughput(row)
            except (Skip, ConfigError) as why:
                skipped.append((rid, str(why)))
                continue
            rows.append(FitRow(rid, "throughput", row, b.stack.name, f"{row['system']}/{row['model']}", weight,
                               config.split(" stack=")[0], {"throughput": float(row["value"])}))
    if points is not None and len(points):
        ok = []
        for idx, row in zip(points.index, points.to_dict("records"), strict=True):
            try:
                dep = deployment(row)
            except (Skip, ConfigError):
                continue
            why = held_out(dep)
            if why:
                skipped.append((str(row.get("id")), why))
                continue
            ok.append(idx)
        sample = _stratified(points.loc[ok], points_sample) if points_sample else points.loc[ok]
        for row in sample.to_dict("records"):
            hw = load_hardware(str(row["system"]))
            stack, _ = row_stack(hw, row.get("backend"), row.get("measured_date"))
            rows.append(FitRow(str(row["id"]), "points", row, stack.name, f"{row['system']}/{row['model']}", 1.0,
                               None, {"ttft_ms": float(row["ttft_ms"]), "tpot_ms": float(row["tpot_ms"])}))
    if profiles:
        rows = [r for r in rows if r.profile in profiles]
    return rows, skipped


def _predict(args) -> list[dict[str, float]]:
    """Predicted quantities of each row under `stacks` (NaN where the row could not be run)."""
    rows, stacks = args
    out = []
    for fr in rows:
        try:
            if fr.kind == "throughput":
                value, _ = predict_throughput(fr.row, stacks, config=fr.config)
                out.append({"throughput": value})
            elif fr.kind == "inferencex":
                from factory_sim.fidelity.inferencex import point_deployment, simulate_point
                predicted = simulate_point(point_deployment(fr.row, stacks)[0], rounds=fr.sim_rounds)
                out.append({q: predicted[q] for q in fr.published})
            else:
                ttft, tpot, _ = predict(fr.row, stacks=stacks)
                out.append({"ttft_ms": ttft, "tpot_ms": tpot})
        except (Skip, ConfigError):
            out.append({q: math.nan for q in fr.published})
        emit("calibration", fr.profile)
    return out


def _predict_all(rows: list[FitRow], stacks: dict[str, SoftwareStack], jobs: int | None) -> list[dict[str, float]]:
    workers = worker_count(jobs, len(rows))
    if workers == 1:
        return _predict((rows, stacks))
    order = [list(range(len(rows)))[i::workers] for i in range(workers)]
    parts = map_jobs(_predict, [([rows[i] for i in idx], stacks) for idx in order], workers)
    out: list[dict[str, float]] = [{} for _ in rows]
    for idx, part in zip(order, parts, strict=True):
        for i, p in zip(idx, part, strict=True):
            out[i] = p
    return out


def _log_errors(rows: list[FitRow], predictions: list[dict[str, float]],
                params: tuple[Parameter, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(log(pred/pub) per row-quantity, weight per row-quantity), in a fixed order; TTFT
    weighs only when `params` include a prefill overhead."""
    errs, weights = [], []
    fit_ttft = any(p.name in TTFT_PARAMETERS for p in params)
    quantity_weight = QUANTITY_WEIGHT if fit_ttft else {**QUANTITY_WEIGHT, "ttft_ms": 0.0}
    for fr, pred in zip(rows, predictions, strict=True):
        for q, pub in fr.published.items():
            p = pred.get(q, math.nan)
            errs.append(math.log(p / pub) if p > 0 and pub > 0 else math.nan)
            weights.append(fr.weight * quantity_weight[q])
    return np.array(errs), np.array(weights)


def _error_frame(rows: list[FitRow], predictions: list[dict[str, float]]) -> pd.DataFrame:
    records = []
    for fr, pred in zip(rows, predictions, strict=True):
        for q, pub in fr.published.items():
            p = pred.get(q, math.nan)
            records.append({"id": fr.id, "profile": fr.profile, "group": fr.group, "quantity": q, "predicted": p,
                            "published": pub, "rel_error": (p - pub) / pub})
    return pd.DataFrame(records)


def _stacks_at(profile: str, base: SoftwareStack, params: tuple[Parameter, ...], x: np.ndarray,
               start: dict[str, float]) -> dict[str, SoftwareStack]:
    overrides: dict = {}
    for p, xi in zip(params, x, strict=True):
        overrides.update(p.apply(base, start[p.name] * math.exp(xi)))
    return {profile: override_stack(base, overrides)}


def _bounds(params: tuple[Parameter, ...], base: SoftwareStack, start: dict[str, float]):
    lo, hi = [], []
    for p in params:
        upper = p.upper
        if p.name == "gemm_scale":
            upper = min(p.upper, 1.0 / max(v for v in base.gemm_efficiency.model_dump().values() if v))
        lo.append(math.log(p.lower / start[p.name]))
        hi.append(math.log(max(upper, start[p.name] * 1.0001) / start[p.name]))
    return np.array(lo), np.array(hi)


def _robust(r: np.ndarray) -> np.ndarray:
    """Residuals whose squares are the soft-L1 loss 2(sqrt(1 + r^2) - 1): quadratic within one
    ROW_SIGMA_LOG, linear beyond, so that a few rows off by several times (measured TTFT has
    them) do not outweigh the many the model predicts well."""
    return np.sign(r) * np.sqrt(2.0 * (np.sqrt(1.0 + r * r) - 1.0))


def _objective(e: np.ndarray, w: np.ndarray, x: np.ndarray, sigmas: np.ndarray, x_prior: np.ndarray) -> float:
    ok = np.isfinite(e) & (w > 0)
    return float(np.sum(w[ok] * _robust(e[ok] / ROW_SIGMA_LOG) ** 2) + np.sum(((x - x_prior) / sigmas) ** 2))


def _solve_linear(e0: np.ndarray, jac: np.ndarray, w: np.ndarray, x0: np.ndarray, sigmas: np.ndarray,
                  bounds, mask: np.ndarray, iterations: int, x_prior: np.ndarray) -> np.ndarray:
    """Bounded least squares of the linearised errors (rows in `mask`) plus the priors, within MAX_MOVE_LOG of x0."""
    mask = mask & (w > 0)
    sw = np.sqrt(w[mask])

    def fun(x):
        return np.concatenate([sw * _robust((e0[mask] + jac[mask] @ (x - x0)) / ROW_SIGMA_LOG),
                               (x - x_prior) / sigmas])

    lo = np.maximum(bounds[0], x0 - MAX_MOVE_LOG)
    hi = np.minimum(bounds[1], x0 + MAX_MOVE_LOG)
    start = np.clip(x0, lo + 1e-9, hi - 1e-9)
    return least_squares(fun, start, bounds=(lo, hi), max_nfev=50 * iterations).x


def _profile_text(profile: str) -> str:
    """A built-in stack profile's YAML as written, comments and all."""
    return builtin_path("stack", profile).read_text()


def prior_values(profile: str) -> dict[str, float]:
    """Prior centres of a built-in profile: the value a fitted line's comment names as its prior
    ("prior 0.87: <citation>"), else the value itself. gemm_scale's prior is relative to the
    current FP8 (else BF16) GEMM efficiency."""
    text = _profile_text(profile)
    out = {}
    for m in re.finditer(r"^[ \t]*([a-z0-9_]+):[ \t]*([0-9.eE+-]+)[ \t]*#.*?prior ([0-9.eE+-]+):", text, flags=re.M):
        out[m.group(1)] = float(m.group(3))
    stack = load_stack(profile)
    key = "fp8" if "fp8" in out else "bf16"
    current = getattr(stack.gemm_efficiency, key)
    out["gemm_scale"] = out.get(key, current) / current
    return out


def fitted_parameters(base: SoftwareStack, moe_ep: bool, names: list[str] | None) -> tuple[Parameter, ...]:
    """The constants a fit moves: those the profile sets (log-space: > 0), the EP ones only with rows
    that use expert parallelism, and of those the ones named (all but OPT_IN_PARAMETERS when none are)."""
    named = set(names or ())
    settable = [p for p in PARAMETERS if (p.name not in EP_PARAMETERS or moe_ep)
                and (p.get(base) > 0 or (p.name in named and p.unset_start))]
    return tuple(p for p in settable if (p.name in names if names is not None else p.name not in OPT_IN_PARAMETERS))


def start_value(p: Parameter, base: SoftwareStack) -> float:
    """Where a fit of `p` starts: the profile's value, else the parameter's unset_start."""
    return p.get(base) or float(p.unset_start or 0.0)


def fit_profile(profile: str, rows: list[FitRow], *, rounds: int = 3, iterations: int = 20, jobs: int | None = None,
                loo: bool = True, prior_weight: float = 1.0, parameters: list[str] | None = None,
                progress: Callable[[str], None] | None = None, held_out_by: tuple[str, ...] = ()) -> ProfileFit:
    """Gauss-Newton rounds: simulate, finite-difference Jacobian, scipy on the linearisation.

    The prior pulls toward the measured (or estimated) value the profile cites, not toward a
    previous fit; `prior_weight` scales its pull (1: as PARAMETERS states). `held_out_by` names
    groupings of the rows' strata to hold out in turn, on top of the (system, model) groups."""
    base = load_stack(profile)
    moe_ep = any(_uses_ep(fr) for fr in rows)
    params = fitted_parameters(base, moe_ep, parameters)
    start = {p.name: start_value(p, base) for p in params}
    priors = prior_values(profile)
    x_prior = np.array([math.log(priors.get(p.name, start[p.name]) / start[p.name]) for p in params])
    sigmas = np.array([p.prior_sigma_log for p in params]) / math.sqrt(prior_weight)
    bounds = _bounds(params, base, start)
    x = np.zeros(len(params))
    say = progress or (lambda _m: None)

    def evaluate(xv):
        return _predict_all(rows, _stacks_at(profile, base, params, xv, start), jobs)

    pred0 = evaluate(x)
    before = _error_frame(rows, pred0)
    if any(p.get(base) == 0 for p in params):  # started from an estimate the profile does not set
        before = _error_frame(rows, _predict_all(rows, {profile: base}, jobs))
    pred, done, converged = pred0, 0, len(params) == 0
    e_cur, w = _log_errors(rows, pred, params)
    best = _objective(e_cur, w, x, sigmas, x_prior)
    for r in range(rounds):
        e0 = e_cur
        ok = np.isfinite(e0)
        jac = np.zeros((len(e0), len(params)))
        for j in range(len(params)):
            step = np.zeros(len(params))
            step[j] = JACOBIAN_STEP_LOG if x[j] + JACOBIAN_STEP_LOG <= bounds[1][j] else -JACOBIAN_STEP_LOG
            ej, _ = _log_errors(rows, evaluate(x + step))
            jac[:, j] = (ej - e0) / step[j]
        ok &= np.isfinite(jac).all(axis=1)
        x_lin = _solve_linear(np.nan_to_num(e0), np.nan_to_num(jac), w, x, sigmas, bounds, ok, iterations, x_prior)
        done = r + 1
        accepted = False
        for shrink in (1.0, 0.5, 0.25):  # a step the simulation confirms, else a shorter one
            x_try = x + shrink * (x_lin - x)
            pred_try = evaluate(x_try)
            e_try, _ = _log_errors(rows, pred_try)
            value = _objective(e_try, w, x_try, sigmas, x_prior)
            if value < best:
                moved = float(np.max(np.abs(x_try - x)))
                x, pred, e_cur, best, accepted = x_try, pred_try, e_try, value, True
                break
        say(f"{profile}: round {done}: median |log error| {np.nanmedian(np.abs(e_cur[w > 0])):.3f}, "
            + (f"largest parameter move {moved:.3f} (log)" if accepted else "no improving step"))
        if not accepted or moved < 0.01:
            converged = True
            break
    after = _error_frame(rows, pred)
    values = {p.name: start[p.name] * math.exp(xi) for p, xi in zip(params, x, strict=True)}
    loo_frame, by = pd.DataFrame(), {}
    if loo:
        keys = {"group": lambda fr: fr.group} if not held_out_by else {}
        keys.update({k: (lambda fr, k=k: fr.strata.get(k)) for k in held_out_by})
        by = _leave_group_out(profile, base, params, start, rows, pred, x, sigmas, bounds, iterations, jobs,
                              x_prior, keys)
        loo_frame = by.pop("group", pd.DataFrame())
    held = [p.name for p in fitted_parameters(base, moe_ep, None) if p not in params]
    return ProfileFit(profile, start, values, [fr.id for fr in rows], before, after, loo_frame, done, held,
                      converged, by)


def _uses_ep(fr: FitRow) -> bool:
    try:
        if fr.kind == "points":
            return any(p.shape.ep > 1 for p in deployment(fr.row).fleet.pools)
        if fr.kind == "inferencex":
            from factory_sim.fidelity.inferencex import point_deployment
            return any(p.shape.ep > 1 for p in point_deployment(fr.row)[0].fleet.pools)
        return " EP" in (fr.config or "") and not re.search(r" EP1\b", fr.config or "")
    except (Skip, ConfigError):
        return False


def _leave_group_out(profile, base, params, start, rows, pred, x, sigmas, bounds, iterations, jobs,
                     x_prior, keys: dict[str, Callable[[FitRow], str]]) -> dict[str, pd.DataFrame]:
    """Per grouping in `keys` (name -> group of a row) and per group: refit without it (on the
    linearisation at the fitted values, with one fresh Jacobian) and simulate the held-out rows
    at the refitted values. A profile whose rows are all one group has nothing left to fit to:
    its held-out rows are predicted at the starting values (the profile before this fit); the
    (system, model) grouping gives no figure then, as before. A row with no group (None: a joint
    fit's row of another data set) stays in every fit of that grouping, unscored."""
    keys = {k: f for k, f in keys.items() if k != "group" or len({f(fr) for fr in rows} - {None}) > 1}
    if not keys:
        return {}
    e0, w = _log_errors(rows, pred, params)
    jac = np.zeros((len(e0), len(params)))
    for j in range(len(params)):
        step = np.zeros(len(params))
        step[j] = JACOBIAN_STEP_LOG if x[j] + JACOBIAN_STEP_LOG <= bounds[1][j] else -JACOBIAN_STEP_LOG
        ej, _ = _log_errors(rows, _predict_all(rows, _stacks_at(profile, base, params, x + step, start), jobs))
        jac[:, j] = (ej - e0) / step[j]
    row_of = np.concatenate([[i] * len(fr.published) for i, fr in enumerate(rows)]).astype(int)
    out = {}
    for name, key in keys.items():
        if not (groups := sorted({key(fr) for fr in rows} - {None})):
            continue
        frames = []
        for g in groups:
            held = np.array([key(rows[i]) == g for i in row_of])
            mask = ~held & np.isfinite(e0) & np.isfinite(jac).all(axis=1)
            xg = (_solve_linear(np.nan_to_num(e0), np.nan_to_num(jac), w, x, sigmas, bounds, mask, iterations,
                                x_prior) if (mask & (w > 0)).any() else np.zeros(len(params)))
            held_rows = [fr for fr in rows if key(fr) == g]
            frame = _error_frame(held_rows, _predict_all(held_rows, _stacks_at(profile, base, params, xg, start),
                                                         jobs))
            frames.append(frame.assign(held_out=g))
        out[name] = pd.concat(frames, ignore_index=True)
    return out


# -- writing profiles -------------------------------------------------------------------------

def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= 1e-3 else f"{value:.3e}"


def profile_yaml(fit: ProfileFit) -> str:
    """The stack's YAML with the fitted values replaced, each commented with what it was fitted to
    and its prior, and `fitted_to` listing the rows."""
    text = _profile_text(fit.profile)
    n_thr = sum(1 for r in fit.rows if r.startswith("CAL-"))
    n_pts = len(fit.rows) - n_thr
    what = f"fitted to the {n_thr} throughput rows and {n_pts} measured points in fitted_to (factory-sim calibrate)"
    if fit.held:  # a partial fit: the held constants keep their rows, so fitted_to lists both
        what = (f"fitted with the other constants held (factory-sim calibrate --parameter) to {n_thr} throughput "
                f"rows and {n_pts} measured points, all in fitted_to")
    for name, value in fit.values.items():
        if name == "gemm_scale":
            def scale(m: re.Match, value=value) -> str:
                old = float(m.group(2))
                prior_value, prior = _prior_of(m.group(3), old)
                return f"{m.group(1)}{_fmt(min(1.0, old * value))}   # {what}; prior {prior_value:g}: {prior}"
            text = re.sub(r"^(  (?:bf16|fp8|fp4): )([0-9.eE+-]+)[ \t]*#?[ \t]*(.*)$", scale, text, flags=re.M)
            continue

        def repl(m: re.Match, v=value) -> str:
            prior_value, prior = _prior_of(m.group(3), float(m.group(2)))
            return f"{m.group(1)}{_fmt(v)}   # {what}; prior {prior_value:g}: {prior}"
        # [ \t], not \s: a line without a comment must not reach into the next line
        text = re.sub(rf"^({name}:[ \t]*)([0-9.eE+-]+)[ \t]*#?[ \t]*(.*)$", repl, text, flags=re.M)
    rows = fit.rows
    if fit.held:
        earlier = load_stack(fit.profile).fitted_to
        rows = earlier + [r for r in fit.rows if r not in earlier]
    listing = "".join(f"\n  - {r}" for r in rows) if rows else " []"
    text = re.sub(r"^fitted_to:.*(\n  - .*)*", f"fitted_to:{listing}", text, flags=re.M)
    return text


def _prior_of(comment: str, value: float) -> tuple[float, str]:
    """(prior value, its citation) of a line that may already carry a fitted comment."""
    m = re.search(r"prior ([0-9.eE+-]+): (.*)$", comment)
    return (float(m.group(1)), m.group(2)) if m else (value, comment or "no source given")


def write_profiles(fits: list[ProfileFit], out: Path) -> list[Path]:
    """One YAML per fitted profile into a folder, or the one profile into a .yaml file."""
    if out.suffix in (".yaml", ".yml"):
        if len(fits) != 1:
            raise ConfigError("--out", f"{len(fits)} profiles were fitted ({', '.join(f.profile for f in fits)}); "
                                       "name a folder, or fit one profile with --profile")
        out.parent.mkdir(parents=True, exist_ok=True)
        text = profile_yaml(fits[0])
        if out.stem != fits[0].profile:  # a profile of one's own: its name tells it apart in reports
            text = re.sub(r"^name:.*$", f"name: {out.stem}   # fitted from {fits[0].profile}", text, count=1,
                          flags=re.M)
        out.write_text(text)
        return [out]
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a folder; name a folder or a .yaml file")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fit in fits:
        path = out / f"{fit.profile}.yaml"
        path.write_text(profile_yaml(fit))
        paths.append(path)
    return paths


# -- the whole calibration ----------------------------------------------------------------------

def calibrate(calibration: pd.DataFrame | None, points: pd.DataFrame | None, *, points_sample: int = 100,
              profiles: list[str] | None = None, rounds: int = 3, iterations: int = 20, jobs: int | None = None,
              loo: bool = True, prior_weight: float = 1.0, parameters: list[str] | None = None,
              progress: Callable[[str], None] | None = None
              ) -> tuple[list[ProfileFit], list[tuple[str, str]]]:
    """Fit every profile that has at least MIN_ROWS_PER_PROFILE rows; return the fits and the
    rows left out (with the reason)."""
    known = [p.name for p in PARAMETERS]
    for name in parameters or []:
        if name not in known:
            raise ConfigError("--parameter", f"unknown constant '{name}'; calibrate fits {', '.join(known)}")
    rows, skipped = collect_rows(calibration, points, points_sample=points_sample, profiles=profiles)
    fits = fit_each_profile(rows, skipped, "rows", progress, rounds=rounds, iterations=iterations, jobs=jobs, loo=loo,
                            prior_weight=prior_weight, parameters=parameters)
    return fits, skipped


def fit_each_profile(rows: list[FitRow], skipped: list[tuple[str, str]], what: str,
                     progress: Callable[[str], None] | None, **fit) -> list[ProfileFit]:
    """fit_profile for every profile with enough rows; the others' rows go to `skipped` with the reason."""
    fits = []
    for profile in sorted({r.profile for r in rows}):
        mine = [r for r in rows if r.profile == profile]
        if len(mine) < MIN_ROWS_PER_PROFILE:
            skipped.extend((r.id, f"profile {profile} has only {len(mine)} {what}: not fitted") for r in mine)
            continue
        if progress:
            progress(f"{profile}: fitting to {len(mine)} {what}")
        fits.append(fit_profile(profile, mine, progress=progress, **fit))
    return fits


def _summary(frame: pd.DataFrame) -> str:
    if frame is None or frame.empty:
        return "n/a"
    parts = []
    for q in ("throughput", "tpot_ms", "ttft_ms"):
        e = frame.loc[frame["quantity"] == q, "rel_error"].abs().dropna()
        if len(e):
            parts.append(f"{q} {np.median(e):.1%} ({len(e)})")
    return ", ".join(parts)


def format_calibration(fits: list[ProfileFit], skipped: list[tuple[str, str]]) -> str:
    """Fitted values against their starting values, and median |error| before, after and
    leave-one-group-out, per profile and over all."""
    lines = []
    for f in fits:
        lines.append(f"{f.profile}: {len(f.rows)} rows, {f.rounds} rounds"
                     + ("" if f.converged else f" (not converged: the last round still moved a constant; "
                                               f"more --rounds would move it further, by up to {MAX_MOVE_LOG} "
                                               f"in log per round)"))
        for name, v in f.values.items():
            lines.append(f"  {name:<22} {_fmt(f.start[name]):>10} -> {_fmt(v)}")
        lines.append(f"  median |error| before: {_summary(f.errors_before)}")
        lines.append(f"  median |error| after (in sample): {_summary(f.errors_after)}")
        lines.append(f"  median |error| leave-one-group-out: {_summary(f.loo)}")
    if fits:
        cat = pd.concat
        lines.append("all profiles:")
        lines.append(f"  before: {_summary(cat([f.errors_before for f in fits]))}")
        lines.append(f"  after (in sample): {_summary(cat([f.errors_after for f in fits]))}")
        loo = [f.loo for f in fits if not f.loo.empty]
        lines.append(f"  leave-one-group-out: {_summary(cat(loo)) if loo else 'n/a'}")
    if skipped:
        lines.append(f"rows not fitted to: {len(skipped)}")
        reasons: dict[str, int] = {}
        for _, why in skipped:
            reasons[why] = reasons.get(why, 0) + 1
        for why, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {count:5d}  {why}")
    return "\n".join(lines)
