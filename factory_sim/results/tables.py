"""The summary DataFrame as a table a person reads in a terminal (files.py writes it to disk)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

# (summary column, header, formatter)
_TABLE = (
    ("fleet", "fleet", str),
    ("tier", "tier", str),
    ("hardware", "hardware", str),
    ("gpus", "GPUs", lambda v: f"{v:.0f}"),
    ("offered_req_per_s", "req/s", lambda v: f"{v:.4g}"),
    ("tokens_per_s_per_gpu", "tok/s/GPU", lambda v: f"{v:,.0f}"),
    ("tokens_per_s_per_user_p50", "tok/s/user", lambda v: f"{v:.1f}"),
    ("ttft_p50_s", "TTFT p50 s", lambda v: f"{v:.3f}"),
    ("ttft_p99_s", "TTFT p99 s", lambda v: f"{v:.3f}"),
    ("tpot_p50_s", "TPOT p50 ms", lambda v: f"{v * 1e3:.1f}"),
    ("tpot_p99_s", "TPOT p99 ms", lambda v: f"{v * 1e3:.1f}"),
    ("slo_attainment", "SLO met", lambda v: f"{v:.1%}"),
    ("goodput_tokens_per_s", "goodput tok/s", lambda v: f"{v:,.0f}"),
    ("power_kw", "kW", lambda v: f"{v:,.1f}"),
    ("usd_per_hour", "$/hour", lambda v: f"{v:,.2f}"),
    ("usd_per_m_output_tokens", "$/M out", lambda v: f"{v:.4f}"),
    ("usd_per_m_goodput_tokens", "$/M goodput", lambda v: f"{v:.4f}"),
    ("cost_ratio_to_reference", "cost vs ref", lambda v: f"{v:.3f}x"),
)

# shown when some fleet has a prefix cache
_CACHE_TABLE = (
    ("prefix_hit_rate", "prefix hit", lambda v: f"{v:.1%}"),
    ("prefill_tokens_saved_per_s", "prefill tok/s saved", lambda v: f"{v:,.0f}"),
)

# shown when some pool autoscales
_SCALE_TABLE = (
    ("gpus_held_mean", "GPUs held (mean)", lambda v: f"{v:,.1f}"),
    ("gpu_hours_billed", "GPU-hours", lambda v: f"{v:,.1f}"),
    ("scale_events", "scalings", lambda v: f"{v:.0f}"),
)

# shown when the experiment has faults on
_FAULT_TABLE = (
    ("availability", "avail run", lambda v: f"{v:.2%}"),
    ("availability_long_run", "avail long-run", lambda v: f"{v:.3%}"),
    ("faults_in_run", "faults", lambda v: f"{v:.0f}"),
    ("requests_retried", "retried in run", lambda v: f"{v:.0f}"),
    ("requests_failed", "failed in run", lambda v: f"{v:.0f}"),
    ("goodput_tokens_per_s_no_faults", "goodput no faults", lambda v: f"{v:,.0f}"),
    ("goodput_lost_fraction", "goodput lost", lambda v: f"{v:.1%}"),
    ("usd_per_m_goodput_tokens_no_faults", "$/M goodput no faults", lambda v: f"{v:.4f}"),
)


def _cell(value, fmt: Callable) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "-"
    return fmt(value)


def format_table(summary: pd.DataFrame) -> str:
    """Aligned text table; rows a fleet cannot serve show '-' and their reason below."""
    table = _TABLE
    if "prefix_hit_rate" in summary and (summary["prefix_hit_rate"].fillna(0) > 0).any():
        table = table + _CACHE_TABLE
    if "gpus_held_mean" in summary and summary["gpus_held_mean"].notna().any():
        table = table + _SCALE_TABLE
    if "availability" in summary and summary["availability"].notna().any():
        table = table + _FAULT_TABLE
    headers = [h for _, h, _ in table]
    rows = [[_cell(r[c], f) for c, _, f in table] for _, r in summary.iterrows()]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    left = {0, 1, 2}

    def line(cells):
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in pairs)

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    ref = summary["reference_fleet"].iloc[0] if len(summary) else ""
    out.append("")
    out.append(f"cost vs ref: $ per million goodput tokens relative to fleet '{ref}' in the same tier.")
    for _, r in summary.iterrows():
        if isinstance(r["note"], str) and r["note"]:
            out.append(f"{r['fleet']} / {r['tier']}: {r['note']}")
    return "\n".join(out)
