"""Words for result columns and experiment fields, so tables, plots and reports never show
a snake_case column name to a reader.

`label(column)` is the long form (a plot axis, a report's table header); the short headers of
the terminal table live with its columns in results/tables.py.
"""

from __future__ import annotations

import re

# column -> words, with the unit of the column's own values
COLUMN_LABELS: dict[str, str] = {
    "fleet": "fleet",
    "tier": "SLO tier",
    "hardware": "hardware",
    "gpus": "GPUs",
    "offered_req_per_s": "offered load (requests/s)",
    "concurrency": "closed-loop clients",
    "tokens_per_s_per_gpu": "output tokens/s per GPU",
    "tokens_per_s_per_user_p50": "output tokens/s per user (median)",
    "ttft_p50_s": "time to first token, median (s)",
    "ttft_p99_s": "time to first token, p99 (s)",
    "tpot_p50_s": "time per output token, median (s)",
    "tpot_p99_s": "time per output token, p99 (s)",
    "slo_attainment": "share of requests meeting the SLO",
    "goodput_tokens_per_s": "goodput (output tokens/s meeting the SLO)",
    "output_tokens_per_s": "output tokens/s",
    "power_kw": "power (kW)",
    "usd_per_hour": "cost ($/hour)",
    "usd_per_m_output_tokens": "$ per million output tokens",
    "usd_per_m_goodput_tokens": "$ per million goodput tokens",
    "usd_per_m_input_tokens": "$ per million input tokens",
    "usd_per_m_total_tokens": "$ per million input + output tokens",
    "tokens_per_s_per_mw": "output tokens/s per MW",
    "cost_ratio_to_reference": "cost per goodput token vs the reference fleet",
    "reference_fleet": "reference fleet",
    "requests_measured": "requests measured",
    "feasible": "meets the tier at some load",
    "note": "note",
    "prefix_hit_rate": "prefix-cache hit rate",
    "prefill_tokens_saved_per_s": "prefill tokens/s saved by the prefix cache",
    "gpus_held_mean": "GPUs held (mean)",
    "gpu_hours_billed": "GPU-hours billed",
    "scale_events": "scaling events",
    "availability": "availability in the run",
    "availability_long_run": "long-run availability",
    "faults_in_run": "faults in the run",
    "requests_retried": "requests retried",
    "requests_failed": "requests failed",
    "goodput_tokens_per_s_no_faults": "goodput without faults (output tokens/s)",
    "goodput_lost_fraction": "share of goodput lost to faults",
    "usd_per_m_goodput_tokens_no_faults": "$ per million goodput tokens without faults",
    # frontier
    "on_frontier": "on the frontier",
    "tokens_per_s_per_user": "output tokens/s per user",
    # plans
    "rank": "rank",
    "candidate": "candidate",
    "units": "units",
    "purchase_units": "racks or nodes",
    "power_mw": "power (MW)",
    "unit_capacity_req_per_s": "one unit's capacity (requests/s)",
    "capacity_req_per_s": "capacity (requests/s)",
    "headroom": "headroom over the demand",
    "demand_req_per_s": "demand (requests/s)",
    "confirmed": "confirmed at full scale",
    "within_power_budget": "within the power budget",
    "feasible_share": "share of draws it can serve",
    "samples": "draws",
    # validation
    "predicted": "predicted",
    "published": "published",
    "rel_error": "relative error",
    "median_abs_error": "median |error|",
    "within_20pct": "share within ±20%",
    "median_signed_error": "median signed error",
    "rows": "rows",
    "quantity": "quantity",
    "group": "group",
}

_QUANTILE = re.compile(r"^(.*)_p(\d+)$")


def label(column: str) -> str:
    """Words for a result column; band columns (`X_p5`, `X_p95`) read as "X, p5"."""
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column]
    m = _QUANTILE.match(column)
    if m and m.group(1) in COLUMN_LABELS:
        return f"{COLUMN_LABELS[m.group(1)]}, p{m.group(2)}"
    return column.replace("_", " ")


# the last step of an experiment field path -> words
FIELD_LABELS: dict[str, str] = {
    "replicas": "replicas",
    "tp": "tensor-parallel size",
    "ep": "expert-parallel size",
    "pp": "pipeline stages",
    "dp_attention": "attention data-parallel ranks",
    "max_batch": "most sequences per replica",
    "max_batch_tokens": "step token budget",
    "rate_per_s": "request rate (requests/s)",
    "concurrency": "closed-loop clients",
    "tier": "price tier",
    "price_scale": "price scale",
    "hardware": "hardware",
    "precision": "precision",
    "kv_precision": "KV-cache precision",
    "stack": "software stack",
    "router": "router",
    "requests": "requests per simulation",
    "target_attainment": "SLO attainment target",
    "ttft_s": "TTFT target (s)",
    "tpot_s": "TPOT target (s)",
    "workload": "workload",
    "model": "model",
    "seed": "seed",
}

# path steps that only say where a field sits
_CONTAINERS = {"fleets", "load", "cost", "workload", "arrivals", "stack_overrides", "slo_tiers", "uncertainty",
               "inputs", "demand", "candidates"}
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_label(path: str) -> str:
    """Words for a swept or uncertain field: 'fleets.gb300_fp4.decode.dp_attention' ->
    'gb300_fp4 decode: attention data-parallel ranks'; 'cost.tier' -> 'price tier'."""
    steps = [(m.group(1), m.group(2)) for m in _STEP.finditer(path)]
    if not steps or steps[-1][0] is None:
        return path
    leaf = steps[-1][0]
    words = FIELD_LABELS.get(leaf, leaf.replace("_", " "))
    context = []
    for i, (name, index) in enumerate(steps[:-1]):
        if index is not None:
            owner = steps[i - 1][0] if i else ""
            context.append(f"{(owner or 'item').rstrip('s')} {int(index) + 1}")
        elif name not in _CONTAINERS:
            context.append(name.replace("_", " ") if name in ("prefill", "decode", "aggregated") else name)
    if leaf == "rate_per_s" and "arrivals" in [s for s, _ in steps]:
        words = "arrival rate (requests/s)"
    return f"{' '.join(context)}: {words}" if context else words


def sentence(words: str) -> str:
    """A label as a title: its first letter capitalised."""
    return words[:1].upper() + words[1:]
