"""Tables a person reads: the summary of a run, and the built-in catalog (`factory-sim list`).

files.py writes results to disk.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from factory_sim.config.hardware import list_hardware
from factory_sim.config.model import list_models
from factory_sim.config.stack import list_stacks
from factory_sim.config.workload import list_workloads
from factory_sim.workload.arrivals import mean_rate_per_s
from factory_sim.workload.generate import mean_input_tokens, mean_output_tokens

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
    if "lost_share" in summary and (summary["lost_share"] > 0).any():  # some demand turned away: how much
        table = table + (("lost_share", "lost", lambda v: f"{v:.1%}"),)
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


# --- the built-in catalog, one row per entry ---------------------------------------------


def hardware_table() -> pd.DataFrame:
    """One row per built-in profile, the columns a planner compares first."""
    return pd.DataFrame([
        {
            "name": hw.name,
            "display_name": hw.display_name,
            "gpus_per_scaleup_domain": hw.gpus_per_scaleup_domain,
            "hbm_gb": hw.hbm_gb,
            "hbm_tb_per_s": hw.hbm_tb_per_s,
            "bf16_tflops": hw.dense_tflops["bf16"],
            "fp8_tflops": hw.dense_tflops["fp8"],
            "fp4_tflops": hw.dense_tflops.get("fp4", float("nan")),
            "nvlink_gb_per_s_per_gpu": hw.nvlink_gb_per_s_per_gpu,
            "gpu_tdp_w": hw.gpu_tdp_w,
            "allin_kw_per_gpu": hw.allin_kw_per_gpu,
            "usd_per_gpu_hour_hyperscaler": hw.usd_per_gpu_hour.hyperscaler,
        }
        for hw in list_hardware()
    ])


def models_table() -> pd.DataFrame:
    """One row per catalog model; params are computed from the architecture, in billions."""
    table = pd.DataFrame([
        {
            "name": m.name,
            "display_name": m.display_name,
            "attention": m.attention,
            "layers": m.layers,
            "experts": m.n_routed_experts,
            "top_k": m.top_k,
            "total_params_b": m.total_params / 1e9,
            "active_params_b": m.active_params_per_token / 1e9,
            "kv_bytes_per_token_fp8": m.kv_bytes_per_token(1.0),
            "kv_bytes_per_token_bf16": m.kv_bytes_per_token(2.0),
            # linear-attention state a sequence holds whatever its length (hybrid models)
            "state_mb_per_seq": m.linear_state_bytes_per_seq / 1e6,
        }
        for m in list_models()
    ])
    return table.astype({"experts": "Int64", "top_k": "Int64"})


def stacks_table() -> pd.DataFrame:
    """The built-in profiles, one row each: what picks them (framework, generation, date) and
    the choices that change results beyond the efficiency constants."""
    return pd.DataFrame([
        {"name": s.name, "framework": s.framework, "generation": s.generation, "date": s.date,
         "version": s.version, "kv_allocation": s.kv_allocation, "adp_balance_steps": s.adp_balance_timeout_steps,
         "fitted_rows": len(s.fitted_to), "description": s.description}
        for s in list_stacks()
    ])


def workloads_table() -> pd.DataFrame:
    """What the built-in workloads are, side by side, for choosing one."""
    return pd.DataFrame([
        {
            "name": spec.name,
            "description": spec.description,
            "arrivals": spec.arrivals.kind,
            "rate_per_s": mean_rate_per_s(spec.arrivals),
            "mean_input_tokens": mean_input_tokens(spec),
            "mean_output_tokens": mean_output_tokens(spec),
        }
        for spec in list_workloads()
    ])
