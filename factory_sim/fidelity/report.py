"""Error tables and figures of a validation run: by quantity, system, framework, model and client band."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from factory_sim.results.plots import identity_band

# Client-count bands of the measured rows' breakdown: TTFT errors change sign with load
# (over-predicted at a few clients, under-predicted at hundreds), so a planner reads the band
# of their own operating point, not only the overall median.
CLIENT_BANDS = ((1, 4), (5, 16), (17, 64), (65, 256), (257, None))


CLIENT_BAND_LABELS = tuple(f"{low}-{high}" if high is not None else f"{low}+" for low, high in CLIENT_BANDS)


def client_band(concurrency: float) -> str:
    """The CLIENT_BANDS label of a closed-loop client count ("" when it is not given)."""
    if not np.isfinite(concurrency) or concurrency < 1:
        return ""
    return next(label for (_, high), label in zip(CLIENT_BANDS, CLIENT_BAND_LABELS, strict=True)
                if high is None or concurrency <= high)


def error_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per quantity and overall: rows scored, median |error|, share within +-20%, signed median."""
    scored = results[results["skipped"] == ""]
    if "concurrency" in scored:
        scored = scored.assign(clients=[client_band(c) for c in pd.to_numeric(scored["concurrency"], errors="coerce")])
    groups = []
    for quantity, g in scored.groupby("quantity"):
        groups.append(_stats(g, quantity=quantity, group="all"))
        for col in ("system", "model", "backend", "mode", "clients", "sample"):
            if col not in g:
                continue
            keys = [k for k in g[col].unique() if k != ""]
            for key in sorted(keys, key=CLIENT_BAND_LABELS.index if col == "clients" else None):
                groups.append(_stats(g[g[col] == key], quantity=quantity, group=f"{col}={key}"))
    # the columns even when nothing was scored (every row skipped): the report then says so
    return pd.DataFrame(groups, columns=["quantity", "group", "rows", "median_abs_error", "within_20pct",
                                         "median_signed_error"])


def _stats(g: pd.DataFrame, **labels) -> dict:
    err = g["rel_error"].to_numpy()
    return {**labels, "rows": len(g), "median_abs_error": float(np.median(np.abs(err))),
            "within_20pct": float(np.mean(np.abs(err) <= 0.2)), "median_signed_error": float(np.median(err))}


def format_report(results: pd.DataFrame, worst: int = 5) -> str:
    scored = results[results["skipped"] == ""]
    skipped = results[results["skipped"] != ""]
    lines = []
    summary = error_summary(results)
    overall = summary[summary["group"] == "all"]
    lines.append(f"measured rows: {results['id'].nunique()}, scored: {scored['id'].nunique()}, "
                 f"skipped: {len(skipped)}")
    for _, r in overall.iterrows():
        lines.append(f"  {r['quantity']}: median |error| {r['median_abs_error']:.1%}, within +-20%: "
                     f"{r['within_20pct']:.1%}, median signed error {r['median_signed_error']:+.1%} "
                     f"({r['rows']} rows)")
    for quantity, g in scored.groupby("quantity"):
        lines.append(f"worst {worst} {quantity}:")
        top = g.reindex(g["rel_error"].abs().sort_values(ascending=False).index).head(worst)
        for _, r in top.iterrows():
            lines.append(f"  {r['id']}: predicted {r['predicted']:.1f}, published {r['published']:.1f} "
                         f"({r['rel_error']:+.0%}) {r['config']}")
    breakdown = summary[summary["group"] != "all"]
    if len(breakdown):
        lines.append("median |error| (median signed error) by group, TTFT / TPOT:")
        wide = breakdown.pivot_table(index="group", columns="quantity", values="median_abs_error", sort=False)
        signed = breakdown.pivot_table(index="group", columns="quantity", values="median_signed_error", sort=False)
        rows_n = breakdown.pivot_table(index="group", columns="quantity", values="rows", sort=False)
        for group, r in wide.iterrows():
            cells = " / ".join(f"{r.get(q, np.nan):4.0%} ({signed.loc[group].get(q, np.nan):+4.0%})"
                               for q in ("ttft_ms", "tpot_ms"))
            n = int(rows_n.loc[group].max())
            lines.append(f"  {group:<32} {cells}  ({n} rows)")
    if len(skipped):
        lines.append("skipped rows by reason:")
        for reason, count in skipped["skipped"].value_counts().items():
            lines.append(f"  {count:5d}  {reason}")
    return "\n".join(lines)


def plot_predicted_vs_published(results: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = results[results["skipped"] == ""]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, quantity, title in zip(axes, ("ttft_ms", "tpot_ms"), ("mean TTFT (ms)", "mean TPOT (ms)"),
                                   strict=True):
        g = scored[scored["quantity"] == quantity]
        for system, gg in g.groupby("system"):
            ax.scatter(gg["published"], gg["predicted"], s=8, alpha=0.6, label=system)
        if len(g):
            lo = float(min(g["published"].min(), g["predicted"].min()))
            hi = float(max(g["published"].max(), g["predicted"].max()))
            identity_band(ax, lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"published {title}")
        ax.set_ylabel(f"predicted {title}")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
