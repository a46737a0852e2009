"""InferenceX validation results read as a person checks them: error tables by hardware,
framework, model and interactivity band, measured and simulated frontier envelopes, the
hardware ratios a cost claim rests on, and one figure per model and sequence length.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from factory_sim.errors import ConfigError
from factory_sim.fidelity.envelopes import (
    BAND_WIDTH,
    band_ratio,
    band_top,
    drop_one,
    frontier_envelope,
    hangs_on_one_point,
    point_ratio,
)
from factory_sim.fidelity.inferencex import (
    HARDWARE,
    INTERACTIVITY_BAND_LABELS,
    MODELS,
    QUANTITIES,
    RATIO_INTERACTIVITY,
    SIM_ROUNDS,
    filter_points,
    load_points,
    validate_inferencex,
)
from factory_sim.fidelity.report import client_band
from factory_sim.progress import Bars, on_terminal

SOURCES = {"gminneci/mantile": "result files (Dec 2025-Jan 2026)",
           "vngcloud/InferenceX-app": "dashboard API (Oct 2025-Jun 2026)",
           "leoshan/inference-max-automated-pipeline": "v1 dashboard (Oct 2025)"}


def source_label(repo) -> str:
    text = str(repo)
    return next((label for key, label in SOURCES.items() if text.startswith(key)), text)


def scored(results: pd.DataFrame) -> pd.DataFrame:
    return results[(results["skip_reason"] == "") & results["rel_error"].notna()]


def error_table(results: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per group of `by` and quantity: points, median |error|, median signed error, share within +-20%."""
    s = scored(results).assign(clients=lambda d: [client_band(float(c)) for c in d["concurrency"]],
                               setup=lambda d: np.where(d["disaggregated"].astype(str).str.lower() == "true",
                                                        "disagg", "agg"),
                               source=lambda d: d["source_repo"].map(source_label))
    keys = list(by) + ["quantity"]
    rows = []
    for key, g in s.groupby(keys, sort=True):
        err = g["rel_error"].to_numpy(dtype=float)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)), "points": len(g),
                     "median_abs_error": float(np.median(np.abs(err))),
                     "median_signed_error": float(np.median(err)),
                     "within_20pct": float(np.mean(np.abs(err) <= 0.2))})
    return pd.DataFrame(rows, columns=keys + ["points", "median_abs_error", "median_signed_error", "within_20pct"])


def _ordered(table: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Rows by group, bands in their natural order rather than alphabetical."""
    from factory_sim.fidelity.report import CLIENT_BAND_LABELS

    rank = {"interactivity_band": INTERACTIVITY_BAND_LABELS, "clients": CLIENT_BAND_LABELS}
    keys = [table[k].map(lambda v, labels=rank[k]: labels.index(v) if v in labels else len(labels))
            if k in rank else table[k].astype(str) for k in by]
    if not keys:
        return table
    order = pd.DataFrame({f"k{i}": k for i, k in enumerate(keys)}).sort_values(
        [f"k{i}" for i in range(len(keys))], kind="stable").index
    return table.loc[order]


def _wide(table: pd.DataFrame, by: Sequence[str]) -> list[str]:
    """Lines: one per group, |err| (signed) for each quantity and the points counted."""
    lines = []
    if not len(table):
        return lines
    cells = {}
    for _, r in table.iterrows():
        key = tuple(r[k] for k in by)
        cells.setdefault(key, {})[r["quantity"]] = r
    width = max(len("  ".join(str(x) for x in key)) for key in cells) if by else 3
    head = " / ".join(("out tok/s/GPU", "interactivity", "TTFT"))
    lines.append(f"  {'':<{width}}  {head}   |err| (signed)  [points]")
    for key, qs in cells.items():
        parts = []
        for q in QUANTITIES:
            r = qs.get(q)
            parts.append(f"{r['median_abs_error']:5.0%} ({r['median_signed_error']:+5.0%})" if r is not None
                         else f"{'-':>14}")
        n = max(int(r["points"]) for r in qs.values())
        label = "  ".join(str(x) for x in key) if by else "all"
        lines.append(f"  {label:<{width}}  {' / '.join(parts)}  [{n}]")
    return lines


def format_report(results: pd.DataFrame, *, worst: int = 5) -> str:
    """Counts, overall and grouped errors, the worst points, and the skip reasons."""
    points = results.drop_duplicates("point_id")
    skipped = points[points["skip_reason"] != ""]
    n_scored = len(points) - len(skipped)
    lines = [f"InferenceX points: {len(points)}, scored: {n_scored}, skipped: {len(skipped)}",
             "median |error| (median signed error) of output tokens/s/GPU (all GPUs) / interactivity (1/median "
             "TPOT) / median TTFT:"]
    lines += _wide(error_table(results), [])
    for by in (["hardware"], ["framework"], ["model"], ["setup"], ["mtp"], ["stack"], ["source"],
               ["interactivity_band"], ["clients"], ["hardware", "framework"], ["hardware", "framework", "mtp"],
               ["hardware", "setup", "interactivity_band"], ["hardware", "framework", "model", "interactivity_band"]):
        table = _ordered(error_table(results, by), by)
        lines.append(f"by {' x '.join(by)}:")
        lines += _wide(table, by)
    s = scored(results)
    for quantity in QUANTITIES:
        g = s[s["quantity"] == quantity]
        if not len(g):
            continue
        lines.append(f"worst {worst} {quantity}:")
        for _, r in g.reindex(g["rel_error"].abs().sort_values(ascending=False).index).head(worst).iterrows():
            lines.append(f"  {r['point_id']} {r['hardware']} {r['framework']} {r['model']} {r['isl']}/{r['osl']} "
                         f"c={r['concurrency']}: predicted {r['predicted']:.4g}, published {r['published']:.4g} "
                         f"({r['rel_error']:+.0%}) {r['config']}")
    if len(skipped):
        lines.append("skipped points by reason:")
        for reason, count in skipped["skip_reason"].value_counts().items():
            lines.append(f"  {count:5d}  {reason}")
    return "\n".join(lines)


# -- frontiers and hardware ratios --------------------------------------------------------------

RATIO_KINDS = ("measured", "measured_scored", "simulated")


def _points_frame(results: pd.DataFrame, kind: str) -> pd.DataFrame:
    """One row per point: interactivity and output tokens/s/GPU. "measured": published, every
    point that publishes both; "measured_scored": published, the points the simulator scored;
    "simulated": predicted, the same points."""
    col = "published" if kind.startswith("measured") else "predicted"
    src = results if kind == "measured" else scored(results)
    wide = src.pivot_table(index=["point_id", "hardware", "model", "isl", "osl"], columns="quantity", values=col,
                           aggfunc="first")
    need = ["interactivity_tok_s_user", "output_tok_s_per_gpu"]
    if not set(need) <= set(wide.columns):
        return pd.DataFrame(columns=["point_id", "hardware", "model", "isl", "osl", *need])
    return wide[need].dropna().reset_index()


READINGS = ("ratio", "band_ratio", "ratio_drop_other", "ratio_drop_reference", "band_drop_other",
            "band_drop_reference", "band_top")


def ratio_readings(other: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray], target: float,
                   *, width: float = BAND_WIDTH, between: str = "loglog") -> dict[str, float]:
    """Every reading of one cell from two sides' points (interactivity, tokens/s/GPU): the ratio
    of envelopes at the target, over the band around it (`envelopes.band_ratio`), and each with
    one point of one side's envelope removed, the one that moves it most (`envelopes.drop_one`)."""
    env_o, env_r = frontier_envelope(*other), frontier_envelope(*reference)
    point_drop = drop_one(other, reference, target, band=False, width=width, between=between)
    band_drop = drop_one(other, reference, target, band=True, width=width, between=between)
    return dict(zip(READINGS, (point_ratio(env_o, env_r, target, between), band_ratio(env_o, env_r, target, width,
                                                                                      between),
                               *point_drop, *band_drop, band_top(env_o, env_r, target, width)), strict=True))


def hardware_ratios(results: pd.DataFrame, *, model: str = "DeepSeek-R1-0528", reference: str = "h200",
                    others: Sequence[str] = ("gb200_nvl72", "b200"),
                    targets: Sequence[float] = RATIO_INTERACTIVITY, width: float = BAND_WIDTH,
                    between: str = "loglog") -> pd.DataFrame:
    """Ratio of output tokens/s/GPU of `others` to `reference` at each interactivity, per sequence
    length, from each hardware's envelope (every framework, precision and date), read the same
    way on every side (`between`): `measured_ratio` over all its measured points,
    `measured_scored_ratio` over the points the simulator scored, `simulated_ratio` over the
    predictions for those same points; `simulated_vs_measured`, the simulated ratio against the
    measured one of the same points. Beside each, `*_band_ratio` (the geometric mean over
    +-`width` of the target, up to `*_band_top` where an envelope stops sooner) and
    `*_ratio_drop_*` / `*_band_drop_*` (the ratio with the one point of the other / the reference
    side's envelope removed that moves it most); `simulated_vs_measured_band`."""
    rows = []
    for kind in RATIO_KINDS:
        f = _points_frame(results, kind)
        f = f[f["model"] == model]
        for (isl, osl), g in f.groupby(["isl", "osl"]):
            pts = {hw: (gh["interactivity_tok_s_user"].to_numpy(dtype=float),
                        gh["output_tok_s_per_gpu"].to_numpy(dtype=float)) for hw, gh in g.groupby("hardware")}
            if reference not in pts:
                continue
            for hw in others:
                if hw not in pts:
                    continue
                for t in targets:
                    read = ratio_readings(pts[hw], pts[reference], t, width=width, between=between)
                    rows.extend({"isl": int(isl), "osl": int(osl), "hardware": hw, "interactivity_tok_s_user": t,
                                 "reading": f"{kind}_{name}", "value": v} for name, v in read.items())
    cols = ["isl", "osl", "hardware", "interactivity_tok_s_user"]
    value_cols = [f"{kind}_{name}" for kind in RATIO_KINDS for name in READINGS]
    ratio_cols = [f"{kind}_ratio" for kind in RATIO_KINDS]
    tail = ["simulated_vs_measured", "simulated_vs_measured_band"]
    df = pd.DataFrame(rows, columns=cols + ["reading", "value"])
    if not len(df):
        return pd.DataFrame(columns=cols + value_cols + tail)
    out = df.pivot_table(index=cols, columns="reading", values="value", aggfunc="first", dropna=False)
    out = out.reindex(columns=value_cols).reset_index()
    out = out.merge(df[cols].drop_duplicates(), on=cols)  # only the combinations that exist
    out = out.dropna(subset=ratio_cols, how="all")
    out["simulated_vs_measured"] = out["simulated_ratio"] / out["measured_scored_ratio"] - 1.0
    out["simulated_vs_measured_band"] = out["simulated_band_ratio"] / out["measured_scored_band_ratio"] - 1.0
    out.columns.name = None
    return out.sort_values(cols, kind="stable").reset_index(drop=True)[cols + value_cols + tail]


def ratio_cell(v: float) -> str:
    """A ratio as the printed tables show it: one decimal and x, "-" where it is not reached."""
    return f"{v:.1f}x" if np.isfinite(v) else "-"


def band_cell(r: pd.Series, kind: str, width: float = BAND_WIDTH) -> str:
    """The band reading, with "*" where the band stops short of +width (an envelope ends inside it)."""
    cut = np.isfinite(r[f"{kind}_band_top"]) and r[f"{kind}_band_top"] < (1 + width) * r["interactivity_tok_s_user"]
    return ratio_cell(r[f"{kind}_band_ratio"]) + ("*" if cut else "")


def sensitivity_cell(r: pd.Series, kind: str, reading: str = "ratio") -> str:
    """"[a, b]": the reading with the one point of the other side's / the reference's envelope
    whose removal moves it most ("-": the target is not reached without it), "!" after it when
    either moves the reading more than 25% (`envelopes.hangs_on_one_point`)."""
    value = r[f"{kind}_ratio"] if reading == "ratio" else r[f"{kind}_band_ratio"]
    dropped = (r[f"{kind}_{reading}_drop_other"], r[f"{kind}_{reading}_drop_reference"])
    return f"[{ratio_cell(dropped[0])}, {ratio_cell(dropped[1])}]" + ("!" if hangs_on_one_point(value, dropped) else "")


def format_ratios(ratios: pd.DataFrame, reference: str = "h200", width: float = BAND_WIDTH) -> str:
    if not len(ratios):
        return ""
    lines = [f"output tokens/s/GPU ratio to {reference} from each hardware's envelope (interpolated in log-log "
             "between its points): measured, all points | measured, the points scored | simulated, the same "
             f"points; at the interactivity (tokens/s/user) and over +-{width:.0%} of it (geometric mean; * cut "
             "where an envelope ends sooner), each with [the ratio with the one point of the other side's, of the "
             "reference's envelope removed that moves it most; ! : one removal moves it more than 25%]; "
             "- : not reached"]
    for (isl, osl, hw), g in ratios.groupby(["isl", "osl", "hardware"], sort=True):
        lines.append(f"  {hw}/{reference} {isl}/{osl}")
        for _, r in g.sort_values("interactivity_tok_s_user").iterrows():
            for reading, label in (("ratio", "at"), ("band", "band")):
                lines.append(f"    {r['interactivity_tok_s_user']:>5g} {label:>4}: " + " | ".join(
                    f"{ratio_cell(r[f'{k}_ratio']) if reading == 'ratio' else band_cell(r, k, width):>6} "
                    f"{sensitivity_cell(r, k, reading):<17}" for k in RATIO_KINDS).rstrip())
    return "\n".join(lines)


def _slug(model: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", MODELS.get(model, model).lower()).strip("_")


def _seq(isl: int, osl: int) -> str:
    return f"{isl // 1024}k{osl // 1024}k" if isl % 1024 == 0 and osl % 1024 == 0 else f"{isl}x{osl}"


def plot_frontiers(results: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One PNG per model and sequence length: measured points, and the measured (dashed) and
    simulated (solid) envelope of each hardware with a profile, tokens/s/GPU against tokens/s/user."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from factory_sim.results.files import atomic_write

    measured, simulated = _points_frame(results, "measured"), _points_frame(results, "simulated")
    measured = measured[measured["hardware"].isin(HARDWARE)]  # no simulated frontier to compare elsewhere
    paths = []
    colors = {hw: f"C{i}" for i, hw in enumerate(sorted(set(measured["hardware"]) | set(simulated["hardware"])))}
    for (model, isl, osl), g in measured.groupby(["model", "isl", "osl"]):
        sim = simulated[(simulated["model"] == model) & (simulated["isl"] == isl) & (simulated["osl"] == osl)]
        fig, ax = plt.subplots(figsize=(8, 5.5))
        for hw, gh in g.groupby("hardware"):
            c = colors[hw]
            x, y = gh["interactivity_tok_s_user"].to_numpy(), gh["output_tok_s_per_gpu"].to_numpy()
            ax.scatter(x, y, s=7, alpha=0.35, color=c)
            ex, ey = frontier_envelope(x, y)
            ax.plot(ex, ey, "--", color=c, lw=1.2, label=f"{hw} measured")
            sh = sim[sim["hardware"] == hw]
            if len(sh):
                sx, sy = frontier_envelope(sh["interactivity_tok_s_user"].to_numpy(),
                                           sh["output_tok_s_per_gpu"].to_numpy())
                ax.plot(sx, sy, "-", color=c, lw=2.0, label=f"{hw} simulated")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("interactivity (tokens/s/user, 1 / median TPOT)")
        ax.set_ylabel("output tokens/s per GPU (all GPUs)")
        ax.set_title(f"{model} {isl}/{osl}: InferenceX measured points and frontiers vs factory-sim")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = Path(out_dir) / f"inferencex_{_slug(str(model))}_{_seq(int(isl), int(osl))}.png"
        atomic_write(path, lambda p, f=fig: f.savefig(p, dpi=110, format="png"))
        plt.close(fig)
        paths.append(path)
    return paths


# -- the command ------------------------------------------------------------------------------------

def run_validation(path: str | Path | None = None, *, out: str | Path | None = None,
                   hardware: Sequence[str] | None = None, model: Sequence[str] | None = None,
                   framework: Sequence[str] | None = None, limit: int | None = None, jobs: int | None = None,
                   quiet: bool = False, rounds: int = SIM_ROUNDS, step_time: str | None = None) -> pd.DataFrame:
    """`factory-sim validate POINTS.csv`: score, print the report (and the DeepSeek-R1 hardware
    ratios), and with `out` write inferencex_validation.csv, inferencex_errors.csv,
    inferencex_ratios.csv and one frontier PNG per model and sequence length."""
    import time

    from factory_sim.results.files import atomic_write

    out_dir = Path(out) if out else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ConfigError("--out", f"{out_dir} exists and is not a folder; name a folder for the results")
    points = filter_points(load_points(path), hardware=hardware, model=model, framework=framework, limit=limit)
    if not len(points):
        raise ConfigError("--system/--model/--backend", "no InferenceX points match these filters")
    started = time.perf_counter()
    with Bars("validation", unit="point", enabled=on_terminal(quiet), totals={"InferenceX points": len(points)}):
        results = validate_inferencex(points, jobs=jobs, rounds=rounds, step_time=step_time)
    wall = time.perf_counter() - started
    print(format_report(results))
    ratios = hardware_ratios(results)
    if len(ratios):
        print()
        print(format_ratios(ratios))
    priced = f", steps priced by {step_time}" if step_time else ""
    print(f"\n{len(points)} InferenceX points in {wall:.1f} s ({rounds} requests per client simulated{priced})")
    if out_dir is not None:
        errors = error_table(results, ["hardware", "framework", "model", "interactivity_band"])
        files = {"inferencex_validation.csv": results, "inferencex_errors.csv": errors}
        if len(ratios):
            files["inferencex_ratios.csv"] = ratios
        for name, frame in files.items():
            atomic_write(out_dir / name, lambda p, f=frame: f.to_csv(p, index=False))
        pngs = plot_frontiers(results, out_dir)
        print("wrote " + ", ".join(str(out_dir / n) for n in files) + f" and {len(pngs)} frontier figures in {out_dir}")
    return results
