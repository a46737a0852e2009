"""Report: the summary DataFrame as a terminal table, and results written to disk.

Files are written atomically (a temporary file in the same folder, then a rename), so an
interrupted run leaves either the previous file or the new one, never half of one.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from factory_sim.errors import ConfigError

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


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(out_dir: str | Path, summary: pd.DataFrame, traces: pd.DataFrame, *,
                  trace_format: str = "parquet", experiment_yaml: str | None = None) -> list[Path]:
    """summary.csv, the per-request traces (Parquet or gzip CSV), and the experiment used."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a folder; name a folder for the results")
    written = []
    target = out / "summary.csv"
    atomic_write(target, lambda p: summary.to_csv(p, index=False))
    written.append(target)
    if trace_format == "parquet":
        target = out / "traces.parquet"
        frame = traces.copy()
        for col in frame.columns:  # categorical columns with mixed levels are stored as text
            if isinstance(frame[col].dtype, pd.CategoricalDtype):
                frame[col] = frame[col].astype(str)
        atomic_write(target, lambda p: frame.to_parquet(p, index=False))
    else:
        target = out / "traces.csv.gz"
        atomic_write(target, lambda p: traces.to_csv(p, index=False, compression="gzip"))
    written.append(target)
    if experiment_yaml is not None:
        target = out / "experiment.yaml"
        atomic_write(target, lambda p: p.write_text(experiment_yaml))
        written.append(target)
    return written
