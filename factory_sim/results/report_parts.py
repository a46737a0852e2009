"""The parts of the HTML report: tables of formatted cells (sortable by their raw values),
figures as PNG data URIs, and the fidelity table of the stacks a run used.

Nothing here computes a result: cells are the results' values, formatted.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from factory_sim.results import tables
from factory_sim.results.labels import field_label, label, sentence
from factory_sim.results.plots import identity_band

FIGURE_DPI = 110
MAX_TABLE_ROWS = 400  # longer tables are cut (the CSV has every row)


# -- cells and tables ---------------------------------------------------------------------------

@dataclass
class HtmlTable:
    caption: str
    headers: list[dict[str, Any]]  # text, title (words), numeric
    rows: list[list[dict[str, Any]]]  # text, value (for sorting; "" when none)
    notes: list[str] = field(default_factory=list)
    cut: int = 0  # rows not shown


def _sort_value(value) -> str:
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
        if math.isnan(v):
            return ""
        return "Infinity" if v == math.inf else "-Infinity" if v == -math.inf else repr(v)
    return ""


# shares shown as percentages, ratios with an x
PERCENT_COLUMNS = {"slo_attainment", "headroom", "rel_error", "median_abs_error", "within_20pct",
                   "median_signed_error", "feasible_share", "prefix_hit_rate", "goodput_lost_fraction",
                   "availability", "availability_long_run"}
RATIO_COLUMNS = {"cost_ratio_to_reference", "max_ratio", "tokens_per_s_per_mw_ratio_there"}


def format_value(value, column: str = "") -> str:
    """A value as a table shows it: thousands separated, four significant digits, shares in
    percent, ratios with an x, '-' for none."""
    if column and isinstance(value, float | np.floating | int | np.integer) and not isinstance(value, bool | np.bool_):
        if tables.is_missing(float(value)):
            return "-"
        if column in PERCENT_COLUMNS or column.split("_p")[0] in PERCENT_COLUMNS:
            return f"{float(value):.1%}"
        if column in RATIO_COLUMNS or "/" in column:
            return f"{float(value):.3g}x"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        if tables.is_missing(float(value)):
            return "-"
        v = float(value)
        if v == int(v) and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    return "" if value is None else str(value)


def frame_table(caption: str, df: pd.DataFrame, columns: list[str] | None = None,
                headers: dict[str, str] | None = None, notes: list[str] | None = None) -> HtmlTable:
    """Any results frame as a table, its headers in words."""
    columns = [c for c in (columns or list(df.columns)) if c in df.columns]
    headers = headers or {}
    shown = df.head(MAX_TABLE_ROWS)
    heads = [{"text": headers.get(c) or label(c), "title": c,
              "numeric": pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])}
             for c in columns]
    rows = [[{"text": format_value(r[c], c), "value": _sort_value(r[c])} for c in columns]
            for _, r in shown.iterrows()]
    return HtmlTable(caption, heads, rows, list(notes or []), cut=len(df) - len(shown))


def summary_table(summary: pd.DataFrame, placeholder: set[str]) -> HtmlTable:
    """The run's table as the terminal prints it (same headers, same cells), every group in one."""
    columns, _, cells = tables.summary_rows(summary, placeholder)
    no_ref = tables.reference_without_goodput(summary)
    heads = [{"text": c.header, "title": label(c.name), "numeric": not c.left} for c in columns]
    rows = []
    for (_, r), row in zip(summary.iterrows(), cells, strict=True):
        values = []
        for c, text in zip(columns, row, strict=True):
            raw = r[c.name]
            if c.name == "cost_ratio_to_reference" and r["tier"] in no_ref:
                raw = math.nan
            values.append({"text": text, "value": _sort_value(raw) if not c.left else ""})
        rows.append(values)
    notes = tables.table_notes(summary, placeholder)
    return HtmlTable("Summary: each fleet at its reported load, per SLO tier", heads, rows, notes["before"])


def best_table(summary: pd.DataFrame) -> HtmlTable | None:
    best = tables.best_by_hardware(summary)
    if not len(best):
        return None
    cols = tables.best_columns(tables.reference_hardware(summary))
    heads = [{"text": c.header, "title": label(c.name), "numeric": not c.left} for c in cols]
    rows = [[{"text": tables.cell(r[c.name], c.fmt), "value": "" if c.left else _sort_value(r[c.name])}
             for c in cols] for _, r in best.iterrows()]
    return HtmlTable("Each hardware at its cheapest fleet of this experiment, per tier", heads, rows)


# -- figures ------------------------------------------------------------------------------------

@dataclass
class Figure:
    title: str
    caption: str
    src: str  # data: URI


def data_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_of(kind: str, df: pd.DataFrame, metric: str | None = None):
    from factory_sim.results.plots import _figure

    return _figure(kind, df, metric)


def cost_bars(summary: pd.DataFrame, placeholder: set[str]):
    """$ per million goodput tokens per fleet, a group of bars per tier (log scale)."""
    plt = _plt()
    df = summary[summary["usd_per_m_goodput_tokens"].map(lambda v: not tables.is_missing(v))]
    if not len(df):
        return None
    fleets = list(dict.fromkeys(summary["fleet"]))
    tiers = list(dict.fromkeys(summary["tier"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(fleets) * len(tiers) ** 0.5 + 3), 4.2))
    width = 0.8 / len(fleets)
    for j, fleet in enumerate(fleets):
        g = df[df["fleet"] == fleet].set_index("tier")
        x = [i + (j - (len(fleets) - 1) / 2) * width for i, t in enumerate(tiers) if t in g.index]
        y = [g.loc[t, "usd_per_m_goodput_tokens"] for t in tiers if t in g.index]
        hw = str(summary.loc[summary["fleet"] == fleet, "hardware"].iloc[0])
        flagged = bool(placeholder & set(hw.split("+")))
        ax.bar(x, y, width * 0.95, label=fleet + (" (placeholder price)" if flagged else ""),
               hatch="//" if flagged else None, edgecolor="black" if flagged else None, linewidth=0.4)
    ax.set_xticks(range(len(tiers)), tiers)
    ax.set_yscale("log")
    ax.set_ylabel("$ per million goodput tokens (log scale)")
    ax.set_xlabel("SLO tier")
    ax.set_title("Cost per million goodput tokens, by fleet and SLO tier")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sweep_lines(df: pd.DataFrame, field_name: str, metric: str = "usd_per_m_goodput_tokens"):
    """A one-field sweep: the metric against the field's values, a line per fleet and tier."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    values = list(dict.fromkeys(df[field_name]))
    numeric = all(isinstance(v, int | float | np.integer | np.floating) for v in values)
    for (fleet, tier), g in df.groupby(["fleet", "tier"], sort=False):
        y = pd.to_numeric(g[metric], errors="coerce").replace([np.inf, -np.inf], np.nan)
        x = g[field_name] if numeric else [values.index(v) for v in g[field_name]]
        ax.plot(x, y, "-o", ms=4, label=f"{fleet} / {tier}")
    if not numeric:
        ax.set_xticks(range(len(values)), [str(v) for v in values])
    ax.set_xlabel(field_label(field_name))
    ax.set_ylabel(label(metric))
    ax.set_title(f"{sentence(label(metric))} across the sweep")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plan_bars(plan: pd.DataFrame):
    """Each candidate's fleet cost per hour at the demand; confirmed ones solid."""
    plt = _plt()
    df = plan[plan["usd_per_hour"].map(lambda v: not tables.is_missing(v))]
    if not len(df):
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(df) + 1.8))
    colors = ["tab:green" if bool(c) else "tab:gray" for c in df["confirmed"]]
    ax.barh(df["candidate"].astype(str), df["usd_per_hour"], color=colors)
    ax.invert_yaxis()
    ax.set_xlabel("fleet cost at the demand ($/hour)")
    ax.set_title("Candidate fleets for the demand (green: confirmed by a full-scale simulation)")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def throughput_scatter(thr: pd.DataFrame):
    plt = _plt()
    g = thr[thr["skipped"].fillna("") == ""]
    if not len(g):
        return None
    fig, ax = plt.subplots(figsize=(6, 5))
    for system, gg in g.groupby("system"):
        ax.scatter(gg["published"], gg["predicted"], s=14, alpha=0.7, label=system)
    lo = float(min(g["published"].min(), g["predicted"].min()))
    hi = float(max(g["published"].max(), g["predicted"].max()))
    identity_band(ax, lo, hi, "±20%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("published output tokens/s per GPU")
    ax.set_ylabel("predicted output tokens/s per GPU")
    ax.set_title("Throughput: predicted against published")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def validation_figure(results: pd.DataFrame):
    from factory_sim.fidelity.report import plot_predicted_vs_published

    buf = io.BytesIO()
    plot_predicted_vs_published(results, buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")



# -- fidelity ---------------------------------------------------------------------------------

def fidelity_table(stacks: list, errors: pd.DataFrame | None, source: str) -> HtmlTable:
    """Per stack profile used: what it is, how many published rows it was fitted to, and its
    median |error| on held-out rows (validate's out-of-sample rows) per quantity."""
    from factory_sim.fidelity.stack_errors import stack_digest

    quantities = [("throughput", "output_tok_s_per_gpu"), ("TPOT", "tpot_ms"), ("TTFT", "ttft_ms")]
    heads = [{"text": t, "title": t, "numeric": n} for t, n in
             (("stack", False), ("framework", False), ("version", False), ("fitted to (rows)", True))]
    heads += [{"text": f"held-out {q} median |error|", "title": f"out-of-sample {col}", "numeric": True}
              for q, col in quantities]
    rows, notes = [], []
    for stack in stacks:
        row = [{"text": stack.name, "value": ""}, {"text": stack.framework, "value": ""},
               {"text": f"{stack.version} ({stack.date})" if stack.date else stack.version, "value": ""},
               {"text": f"{len(stack.fitted_to):,}", "value": repr(float(len(stack.fitted_to)))}]
        mine = errors[(errors["stack"] == stack.name) & (errors["sample"] == "out of sample")] \
            if errors is not None and len(errors) else pd.DataFrame()
        stale = len(mine) and "stack_digest" in mine and str(mine["stack_digest"].iloc[0]) not in (
            "", stack_digest(stack))
        for _, col in quantities:
            q = mine[mine["quantity"] == col] if len(mine) else mine
            if len(q) and not stale:
                e = float(q["median_abs_error"].iloc[0])
                row.append({"text": f"{e:.1%} ({int(q['rows'].iloc[0]):,} rows)", "value": repr(e)})
            else:
                row.append({"text": "-", "value": ""})
        if stale:
            notes.append(f"{stack.name}: its profile has changed since these errors were computed; run "
                         "`factory-sim validate --out DIR` for its current error.")
        elif not len(mine):
            notes.append(f"{stack.name}: no held-out validation rows in {source}.")
        rows.append(row)
    notes.insert(0, f"Held-out rows are published results no stack profile was fitted to; errors from {source}. "
                    "'-': no such rows for that quantity.")
    return HtmlTable("Fidelity of the software stacks used", heads, rows, notes)


