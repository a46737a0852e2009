"""Figures from results files, readable on a slide: labelled axes with units, legends.

- pareto: output tokens/s/GPU against tokens/s/user, per hardware (frontier.csv);
- cost-curve: $ per million output tokens against tokens/s/user (frontier.csv);
- latency-cdf: TTFT and TPOT distributions per fleet and tier (traces.parquet / .csv.gz);
- mix-surface: a metric over two swept fields (a sweep's results CSV);
- bands: p5/p50/p95 of a metric per fleet and tier (bands.csv from `run --samples`).
Each writes PNG and SVG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from factory_sim.errors import ConfigError
from factory_sim.results.files import atomic_write
from factory_sim.results.labels import field_label, label, sentence

CDF_POINTS = 1000  # points drawn per latency CDF
PLOT_KINDS = ("pareto", "cost-curve", "latency-cdf", "mix-surface", "bands", "scaling")


def read_results(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    try:
        if p.suffix == ".parquet":
            return pd.read_parquet(p)
        return pd.read_csv(p)
    except FileNotFoundError:
        raise ConfigError("RESULTS", f"no such file: {p}") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
        raise ConfigError("RESULTS", f"cannot read {p} as a results table: {exc}") from None


def _need(df: pd.DataFrame, columns: set[str], kind: str, produced_by: str) -> None:
    missing = columns - set(df.columns)
    if missing:
        raise ConfigError("RESULTS", f"--kind {kind} needs columns {', '.join(sorted(missing))}; "
                                     f"give the file {produced_by} writes")


def _figure(kind: str, df: pd.DataFrame, metric: str | None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if kind == "latency-cdf":
        return _latency_cdf(plt, df)
    if kind == "bands":
        return _bands(plt, df, metric or "usd_per_m_goodput_tokens")
    if kind == "scaling":
        return _scaling(plt, df)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    if kind in ("pareto", "cost-curve"):
        _need(df, {"hardware", "tokens_per_s_per_user_p50", "tokens_per_s_per_gpu", "usd_per_m_output_tokens",
                   "on_frontier"}, kind, "`factory-sim frontier --out`")
        y = "tokens_per_s_per_gpu" if kind == "pareto" else "usd_per_m_output_tokens"
        for hw, g in df.groupby("hardware"):
            front = g[g["on_frontier"].astype(bool)].sort_values("tokens_per_s_per_user_p50")
            line, = ax.plot(front["tokens_per_s_per_user_p50"], front[y], "-o", ms=4, label=hw)
            ax.scatter(g["tokens_per_s_per_user_p50"], g[y], s=10, alpha=0.3, color=line.get_color())
        ax.set_xlabel("interactivity (output tokens/s per user, median)")
        if kind == "pareto":
            ax.set_ylabel("throughput (output tokens/s per GPU)")
            ax.set_title("Throughput vs interactivity")
        else:
            ax.set_ylabel("$ per million output tokens")
            ax.set_yscale("log")
            ax.set_title("Cost per million output tokens vs interactivity")
    else:
        if "point_key" not in df:
            raise ConfigError("RESULTS", "--kind mix-surface needs a sweep results file (factory-sim sweep --out)")
        summary_cols = set(df.columns[df.columns.get_loc("fleet"):])
        fields = [c for c in df.columns if c not in summary_cols and c != "point_key"]
        if len(fields) < 2:
            raise ConfigError("RESULTS", "--kind mix-surface needs a sweep over at least two fields")
        metric = metric or "usd_per_m_goodput_tokens"
        _need(df, {metric}, kind, "`factory-sim sweep --out`")
        x, y = fields[0], fields[1]
        grid = df.pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
        values = grid.to_numpy(dtype=float)
        im = ax.imshow(np.where(np.isfinite(values), values, np.nan), origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
        ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
        ax.set_xlabel(field_label(x))
        ax.set_ylabel(field_label(y))
        fig.colorbar(im, ax=ax, label=label(metric))
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", color="w", fontsize=8)
        ax.set_title(sentence(label(metric)))
    if kind != "mix-surface":
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _latency_cdf(plt, df: pd.DataFrame):
    _need(df, {"fleet", "tier", "arrival_s", "first_token_s", "finish_s", "output_tokens"}, "latency-cdf",
          "`factory-sim run --out` (traces)")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for (fleet, tier), g in df.groupby(["fleet", "tier"]):
        ttft = np.sort((g["first_token_s"] - g["arrival_s"]).dropna().to_numpy())
        multi = g[g["output_tokens"] > 1]
        tpot = np.sort(((multi["finish_s"] - multi["first_token_s"]) / (multi["output_tokens"] - 1))
                       .dropna().to_numpy() * 1e3)
        if len(ttft):
            ax1.plot(*_cdf(ttft), label=f"{fleet} / {tier}")
        if len(tpot):
            ax2.plot(*_cdf(tpot), label=f"{fleet} / {tier}")
    ax1.set_xlabel("time to first token (s)")
    ax2.set_xlabel("time per output token (ms)")
    for ax, title in ((ax1, "TTFT"), (ax2, "TPOT")):
        ax.set_ylabel("share of requests")
        ax.set_title(f"{title} distribution")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _cdf(sorted_values: np.ndarray, most: int = CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """An empirical CDF's points, thinned to `most` evenly spaced ranks (first and last kept):
    the same curve from a million requests, without a million vertices in the file."""
    y = np.linspace(0, 1, len(sorted_values))
    if len(sorted_values) <= most:
        return sorted_values, y
    idx = np.unique(np.round(np.linspace(0, len(sorted_values) - 1, most)).astype(int))
    return sorted_values[idx], y[idx]


def _scaling(plt, df: pd.DataFrame):
    """The planner following demand: offered load on top, replicas held per pool below."""
    _need(df, {"fleet", "series", "t_s", "value"}, "scaling", "`factory-sim run --out` (scaling.csv)")
    hours = 3600.0 if df["t_s"].max() > 4 * 3600 else 1.0
    unit = "h" if hours > 1 else "s"
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for fleet, g in df.groupby("fleet"):
        load = g[g["series"] == "offered req/s"]
        if len(load):
            top.plot(load["t_s"] / hours, load["value"], label=fleet)
        for series, h in g[g["series"] != "offered req/s"].groupby("series"):
            bottom.step(h["t_s"] / hours, h["value"], where="post", label=series)
    top.set_ylabel("offered requests/s")
    bottom.set_ylabel("replicas held")
    bottom.set_xlabel(f"time ({unit})")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    top.set_title("Autoscaling: demand and the replicas held")
    fig.tight_layout()
    return fig


def _bands(plt, df: pd.DataFrame, metric: str):
    cols = {f"{metric}_p{q}" for q in (5, 50, 95)}
    _need(df, {"fleet", "tier"} | cols, "bands", "`factory-sim run --samples N --out`")
    finite = np.isfinite(df[sorted(cols)].to_numpy(dtype=float)).all(axis=1)
    if not finite.any():
        raise ConfigError("RESULTS", f"no fleet and tier has finite {metric} bands (nothing met the SLO)")
    df = df[finite]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    labels = [f"{f}\n{t}" for f, t in zip(df["fleet"], df["tier"], strict=True)]
    mid = df[f"{metric}_p50"].to_numpy(dtype=float)
    low = mid - df[f"{metric}_p5"].to_numpy(dtype=float)
    high = df[f"{metric}_p95"].to_numpy(dtype=float) - mid
    x = np.arange(len(df))
    ax.errorbar(x, mid, yerr=[low, high], fmt="o", capsize=6, label="p50 with p5-p95 band")
    ax.set_xticks(x, labels)
    ax.set_ylabel(label(metric))
    ax.set_title(f"{sentence(label(metric))}: p5-p95 over the uncertain inputs")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def identity_band(ax, lo: float, hi: float, band_label: str = "+-20%") -> None:
    """The line where predicted equals published, and the band within 20% of it."""
    xs = np.array([lo, hi])
    ax.plot(xs, xs, "k-", lw=1, label="exact")
    ax.fill_between(xs, xs * 0.8, xs * 1.2, color="grey", alpha=0.2, label=band_label)


def plot_results(results: str | Path, kind: str, out_stem: str | Path, metric: str | None = None) -> list[Path]:
    """Draw `kind` from a results file; writes OUT.png and OUT.svg."""
    if kind not in PLOT_KINDS:
        raise ConfigError("--kind", f"unknown plot kind '{kind}'; use one of {', '.join(PLOT_KINDS)}")
    import matplotlib.pyplot as plt

    fig = _figure(kind, read_results(results), metric)
    stem = Path(out_stem)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    atomic_write(paths[0], lambda p: fig.savefig(p, dpi=150, format="png"))
    atomic_write(paths[1], lambda p: fig.savefig(p, format="svg"))
    plt.close(fig)
    return paths
