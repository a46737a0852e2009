"""The run's summary as a person reads it: a terminal table that fits 120 columns, and the
notes that keep a comparison honest.

The table is laid out in blocks of column groups (service, latency, cost, and the cache,
autoscaling and fault groups when a run has them), each block repeating the fleet and tier,
so that it wraps by design instead of by the terminal. Under it: what `cost vs ref` is
relative to, where it cannot be computed, that layouts are the experiment's own, each
hardware's cheapest fleet per tier when the experiment gives a hardware several layouts, and
which prices are placeholders. Nothing here computes a result: it formats the summary.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from factory_sim.config.experiment import AGGREGATED, DECODE, PREFILL
from factory_sim.config.hardware import list_hardware
from factory_sim.config.model import list_models
from factory_sim.config.stack import list_stacks
from factory_sim.config.workload import list_workloads
from factory_sim.workload.arrivals import mean_rate_per_s
from factory_sim.workload.generate import mean_input_tokens, mean_output_tokens

TABLE_WIDTH = 120  # characters: the terminal the table must fit
PLACEHOLDER_MARK = "*"


@dataclass(frozen=True)
class Column:
    """A summary column as shown: its header (which says the statistic) and its cell format."""

    name: str
    header: str
    fmt: Callable[[float], str] = str
    left: bool = False  # text columns align left


def _pct(digits: int) -> Callable[[float], str]:
    return lambda v: f"{v:.{digits}%}"


KEYS = (Column("fleet", "fleet", str, True), Column("tier", "tier", str, True))

# (group name, columns): blocks are packed from whole groups where they fit
SUMMARY_GROUPS: tuple[tuple[str, tuple[Column, ...]], ...] = (
    ("service", (
        Column("hardware", "hardware", str, True),
        Column("gpus", "GPUs", lambda v: f"{v:.0f}"),
        Column("offered_req_per_s", "req/s", lambda v: f"{v:.4g}"),
        Column("slo_attainment", "SLO met", _pct(1)),
        Column("tokens_per_s_per_gpu", "out tok/s/GPU", lambda v: f"{v:,.0f}"),
        Column("tokens_per_s_per_user_p50", "tok/s/user p50", lambda v: f"{v:.1f}"),
        Column("goodput_tokens_per_s", "goodput tok/s", lambda v: f"{v:,.0f}"),
        Column("power_kw", "kW", lambda v: f"{v:,.1f}"),
    )),
    ("latency", (
        Column("ttft_p50_s", "TTFT p50 s", lambda v: f"{v:.3f}"),
        Column("ttft_p99_s", "TTFT p99 s", lambda v: f"{v:.3f}"),
        Column("tpot_p50_s", "TPOT p50 ms", lambda v: f"{v * 1e3:.1f}"),
        Column("tpot_p99_s", "TPOT p99 ms", lambda v: f"{v * 1e3:.1f}"),
    )),
    ("cost", (
        Column("usd_per_hour", "$/hour", lambda v: f"{v:,.2f}"),
        Column("usd_per_m_output_tokens", "$/M out", lambda v: f"{v:.4f}"),
        Column("usd_per_m_goodput_tokens", "$/M goodput", lambda v: f"{v:.4f}"),
        Column("cost_ratio_to_reference", "cost vs ref", lambda v: f"{v:.3f}x"),
    )),
)

CACHE_GROUP = ("prefix cache", (
    Column("prefix_hit_rate", "prefix hit", _pct(1)),
    Column("prefill_tokens_saved_per_s", "prefill tok/s saved", lambda v: f"{v:,.0f}"),
))

SCALE_GROUP = ("autoscaling", (
    Column("gpus_held_mean", "GPUs held mean", lambda v: f"{v:,.1f}"),
    Column("gpu_hours_billed", "GPU-hours", lambda v: f"{v:,.1f}"),
    Column("scale_events", "scalings", lambda v: f"{v:.0f}"),
))

FAULT_GROUP = ("faults", (
    Column("availability", "avail run", _pct(2)),
    Column("availability_long_run", "avail long-run", _pct(3)),
    Column("faults_in_run", "faults", lambda v: f"{v:.0f}"),
    Column("requests_retried", "retried in run", lambda v: f"{v:.0f}"),
    Column("requests_failed", "failed in run", lambda v: f"{v:.0f}"),
    Column("goodput_tokens_per_s_no_faults", "goodput no faults", lambda v: f"{v:,.0f}"),
    Column("goodput_lost_fraction", "goodput lost", _pct(1)),
    Column("usd_per_m_goodput_tokens_no_faults", "$/M goodput no faults", lambda v: f"{v:.4f}"),
))


# requests offered and turned away (rejected, timed out or failed): summary.csv has each count
# and share; the table shows the shares when some demand was lost
LOST_GROUP = ("lost demand", (
    Column("lost_share", "lost", _pct(1)),
    Column("rejected_share", "rejected", _pct(1)),
    Column("timed_out_share", "timed out", _pct(1)),
    Column("failed_share", "failed", _pct(1)),
))


def summary_groups(summary: pd.DataFrame) -> list[tuple[str, tuple[Column, ...]]]:
    """The column groups a run's table shows: always service, latency and cost; the prefix
    cache, autoscaling and fault groups when the run has them."""
    groups = list(SUMMARY_GROUPS)
    if "prefix_hit_rate" in summary and (summary["prefix_hit_rate"].fillna(0) > 0).any():
        groups.append(CACHE_GROUP)
    if "gpus_held_mean" in summary and summary["gpus_held_mean"].notna().any():
        groups.append(SCALE_GROUP)
    if "availability" in summary and summary["availability"].notna().any():
        groups.append(FAULT_GROUP)
    if "lost_share" in summary and (summary["lost_share"] > 0).any():  # some demand turned away: how much
        groups.append(LOST_GROUP)
    return groups


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value)))


def cell(value, fmt: Callable) -> str:
    """A formatted value; '-' where there is none (NaN) or it is unbounded (inf)."""
    if is_missing(value):
        return "-"
    return fmt(value)


def text_table(rows: Sequence[Sequence[str]], columns: Sequence[Column],
               groups: Sequence[Sequence[int]] | None = None, keys: int = 0,
               width: int = TABLE_WIDTH) -> str:
    """Aligned text of already formatted rows, in blocks no wider than `width`.

    The first `keys` columns start every block; the others are packed block by block in
    `groups` (lists of column indices), a group kept whole where it fits.
    """
    widths = [max(len(c.header), *(len(r[i]) for r in rows)) if rows else len(c.header)
              for i, c in enumerate(columns)]
    key_idx = list(range(keys))
    groups = list(groups) if groups is not None else [[i] for i in range(keys, len(columns))]

    def span(idx: Iterable[int]) -> int:
        return sum(widths[i] + 2 for i in idx)

    base = span(key_idx) - 2
    blocks: list[list[int]] = []
    current: list[int] = []
    for group in groups:
        if current and base + span(current) + span(group) > width:
            blocks.append(current)
            current = []
        if base + span(group) <= width or not group:
            current += list(group)
            continue
        for i in group:  # a group wider than a block on its own: column by column
            if current and base + span(current) + span([i]) > width:
                blocks.append(current)
                current = []
            current.append(i)
    if current or not blocks:
        blocks.append(current)

    def line(idx: list[int], cells: Sequence[str]) -> str:
        return "  ".join(cells[i].ljust(widths[i]) if columns[i].left else cells[i].rjust(widths[i])
                         for i in idx).rstrip()

    out: list[str] = []
    for b, block in enumerate(blocks):
        idx = key_idx + block
        if b:
            out.append("")
        out.append(line(idx, [c.header for c in columns]))
        out.append("  ".join("-" * widths[i] for i in idx))
        out += [line(idx, r) for r in rows]
    return "\n".join(out)


def _hardware_parts(hardware: str) -> list[str]:
    return [h for h in str(hardware).split("+") if h]


def reference_without_goodput(summary: pd.DataFrame) -> dict[str, str]:
    """Tiers whose reference fleet serves no goodput (so no cost ratio exists), with why."""
    out = {}
    if not len(summary):
        return out
    ref = summary["reference_fleet"].iloc[0]
    for _, r in summary[summary["fleet"] == ref].iterrows():
        cost = r["usd_per_m_goodput_tokens"]
        if not bool(r["feasible"]):
            out[r["tier"]] = f"the reference fleet '{ref}' cannot meet tier {r['tier']} at any load"
        elif is_missing(cost):
            out[r["tier"]] = (f"the reference fleet '{ref}' serves no goodput in tier {r['tier']} "
                              "(no request met the SLO), so there is no cost to compare with")
    return out


NO_FLEET = "none meets the SLO"  # the cheapest-fleet cell of a hardware none of whose fleets serves the tier


def best_by_hardware(summary: pd.DataFrame) -> pd.DataFrame:
    """Per tier and hardware: its cheapest fleet by $ per million goodput tokens, and that cost
    relative to the cheapest fleet of the reference fleet's hardware in the tier.

    Empty unless some hardware has more than one fleet: only then is there a best to pick.
    """
    columns = ["tier", "hardware", "fleet", "fleets", "usd_per_m_goodput_tokens", "cost_ratio_to_best_reference"]
    if not len(summary) or summary.groupby("hardware")["fleet"].nunique().max() < 2:
        return pd.DataFrame(columns=columns)
    ref = summary["reference_fleet"].iloc[0]
    ref_hw = summary.loc[summary["fleet"] == ref, "hardware"].iloc[0]
    rows = []
    for tier, g in summary.groupby("tier", sort=False):
        best = {}
        for hw, h in g.groupby("hardware", sort=False):
            costs = pd.to_numeric(h["usd_per_m_goodput_tokens"], errors="coerce")
            finite = costs[costs.apply(lambda v: not is_missing(v))]
            pick = h.loc[finite.idxmin()] if len(finite) else None
            best[hw] = (pick, h["fleet"].nunique())
        ref_pick = best.get(ref_hw, (None, 0))[0]
        ref_cost = ref_pick["usd_per_m_goodput_tokens"] if ref_pick is not None else math.nan
        for hw, (pick, n) in best.items():
            cost = pick["usd_per_m_goodput_tokens"] if pick is not None else math.nan
            rows.append({"tier": tier, "hardware": hw, "fleet": pick["fleet"] if pick is not None else NO_FLEET,
                         "fleets": n, "usd_per_m_goodput_tokens": cost,
                         "cost_ratio_to_best_reference": cost / ref_cost if not is_missing(ref_cost) else math.nan})
    return pd.DataFrame(rows, columns=columns)


LAYOUT_NOTE = ("Layouts are fixed by the experiment: each fleet runs the parallelism its YAML gives, not each "
               "hardware's best, so a ratio compares these layouts.")
LAYOUT_HINT = ("To compare each hardware at its best, give it several fleets (e.g. a throughput- and a "
               "latency-oriented decode layout): the cheapest of each is then listed per tier.")


def placeholder_note(hardware: Iterable[str]) -> str:
    names = ", ".join(sorted(hardware))
    return (f"{PLACEHOLDER_MARK} placeholder price: the $/GPU-hour of {names} is marked placeholder_price in its "
            "hardware profile (its source flags it as temporary), so these rows' costs and ratios are provisional.")


def summary_rows(summary: pd.DataFrame, placeholder_hardware: Iterable[str] = ()
                 ) -> tuple[list[Column], list[list[int]], list[list[str]]]:
    """The table's columns, its column groups (indices) and its formatted cells.

    `cost vs ref` shows '-' where the reference has no goodput in the tier; the $/hour of
    hardware named in `placeholder_hardware` carries PLACEHOLDER_MARK.
    """
    placeholder = set(placeholder_hardware)
    groups = summary_groups(summary)
    columns = list(KEYS) + [c for _, cols in groups for c in cols]
    group_idx, i = [], len(KEYS)
    for _, cols in groups:
        group_idx.append(list(range(i, i + len(cols))))
        i += len(cols)
    no_ref = reference_without_goodput(summary)
    rows = []
    for _, r in summary.iterrows():
        cells = []
        for c in columns:
            value = r[c.name]
            if c.name == "cost_ratio_to_reference" and r["tier"] in no_ref:
                value = math.nan
            text = cell(value, c.fmt)
            if c.name == "usd_per_hour" and text != "-" and placeholder & set(_hardware_parts(r["hardware"])):
                text += PLACEHOLDER_MARK
            cells.append(text)
        rows.append(cells)
    return columns, group_idx, rows


def reference_hardware(summary: pd.DataFrame) -> str:
    ref = summary["reference_fleet"].iloc[0]
    return str(summary.loc[summary["fleet"] == ref, "hardware"].iloc[0])


def best_columns(ref_hw: str) -> list[Column]:
    return [Column("tier", "tier", str, True), Column("hardware", "hardware", str, True),
            Column("fleet", "cheapest fleet", str, True), Column("fleets", "of", lambda v: f"{v:.0f}"),
            Column("usd_per_m_goodput_tokens", "$/M goodput", lambda v: f"{v:.4f}"),
            Column("cost_ratio_to_best_reference", f"vs best {ref_hw}", lambda v: f"{v:.3f}x")]


def best_table_notes(best: pd.DataFrame, ref_hw: str) -> list[str]:
    """Why a cheapest-fleet row has no cost or no ratio: no fleet of its hardware meets the tier."""
    notes = []
    for tier, g in best.groupby("tier", sort=False):
        none = [str(hw) for hw in g.loc[g["fleet"] == NO_FLEET, "hardware"]]
        if ref_hw in none:
            notes.append(f"No {ref_hw} fleet meets tier {tier} at any load, so there is no ratio to it in that tier.")
        others = [hw for hw in none if hw != ref_hw]
        if others:
            notes.append(f"No {' or '.join(others)} fleet meets tier {tier} at any load.")
    return notes


def table_notes(summary: pd.DataFrame, placeholder_hardware: Iterable[str] = ()) -> dict[str, list[str]]:
    """The sentences under the table: `before` the cheapest-fleet table (what cost vs ref is
    relative to, where it is '-', that layouts are fixed), `after` it (placeholder prices,
    each row's note)."""
    before, after = [], []
    ref = summary["reference_fleet"].iloc[0] if len(summary) else ""
    before.append(f"cost vs ref: $ per million goodput tokens relative to fleet '{ref}' in the same tier.")
    for tier, why in reference_without_goodput(summary).items():
        before.append(f"cost vs ref is '-' in tier {tier}: {why}.")
    best = best_by_hardware(summary)
    if len(best):
        ref_hw = reference_hardware(summary)
        beaten = [str(t) for t in best.loc[(best["hardware"] == ref_hw) & ~best["fleet"].isin([ref, NO_FLEET]), "tier"]]
        if beaten:
            before.append(f"'{ref}' is not the cheapest {ref_hw} fleet in tier {', '.join(beaten)}: the last table "
                          "compares each hardware at its cheapest fleet.")
    before.append(LAYOUT_NOTE)
    if len(best):
        before.append(f"Each hardware's cheapest fleet per tier, relative to the cheapest {ref_hw} fleet:")
        after += best_table_notes(best, ref_hw)
    else:
        before.append(LAYOUT_HINT)
    shown = {h for hw in summary["hardware"] for h in _hardware_parts(hw)} if len(summary) else set()
    if shown & set(placeholder_hardware):
        after.append(placeholder_note(shown & set(placeholder_hardware)))
    for _, r in summary.iterrows():
        if isinstance(r["note"], str) and r["note"]:
            after.append(f"{r['fleet']} / {r['tier']}: {r['note']}")
    return {"before": before, "after": after}


def format_table(summary: pd.DataFrame, *, placeholder_hardware: Iterable[str] = (),
                 width: int = TABLE_WIDTH) -> str:
    """The run's table in blocks of at most `width` characters, and its notes (see summary_rows)."""
    columns, group_idx, rows = summary_rows(summary, placeholder_hardware)
    price = next(i for i, c in enumerate(columns) if c.name == "usd_per_hour")
    if any(r[price].endswith(PLACEHOLDER_MARK) for r in rows):  # keep the digits aligned
        for r in rows:
            r[price] += "" if r[price].endswith(PLACEHOLDER_MARK) else " "
    notes = table_notes(summary, placeholder_hardware)

    def wrap(lines: list[str]) -> list[str]:
        return [textwrap.fill(n, width, subsequent_indent="  ") for n in lines]

    out = [text_table(rows, columns, group_idx, keys=len(KEYS), width=width), ""] + wrap(notes["before"])
    best = best_by_hardware(summary)
    if len(best):
        cols = best_columns(reference_hardware(summary))
        out.append(text_table([[cell(r[c.name], c.fmt) for c in cols] for _, r in best.iterrows()], cols,
                              width=width))
    return "\n".join(out + wrap(notes["after"]))


def _yes_no(v) -> str:
    return "yes" if bool(v) else "no"


def _g4(v) -> str:
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"


PLAN_TABLE = (
    Column("rank", "rank", lambda v: f"{v:.0f}"),
    Column("candidate", "candidate", str, True),
    Column("hardware", "hardware", str, True),
    Column("units", "units", lambda v: f"{v:.0f}"),
    Column("purchase_units", "racks/nodes", lambda v: f"{v:.0f}"),
    Column("gpus", "GPUs", lambda v: f"{v:,.0f}"),
    Column("power_mw", "MW", _g4),
    Column("usd_per_hour", "$/hour", _g4),
    Column("usd_per_m_output_tokens", "$/M out", lambda v: f"{v:.4f}"),
    Column("unit_capacity_req_per_s", "unit max req/s", _g4),
    Column("capacity_req_per_s", "fleet max req/s", _g4),
    Column("headroom", "headroom", _pct(1)),
    Column("slo_attainment", "SLO met at scale", _pct(1)),
    Column("confirmed", "confirmed", _yes_no, True),
    Column("within_power_budget", "in budget", _yes_no, True),
)

FRONTIER_TABLE = (
    Column("hardware", "hardware", str, True),
    Column("fleet", "fleet", str, True),
    Column("concurrency", "clients", lambda v: f"{v:.0f}"),
    Column("tokens_per_s_per_user_p50", "tok/s/user p50", lambda v: f"{v:.1f}"),
    Column("tokens_per_s_per_gpu", "out tok/s/GPU", lambda v: f"{v:,.0f}"),
    Column("ttft_p50_s", "TTFT p50 s", lambda v: f"{v:.3f}"),
    Column("tpot_p50_s", "TPOT p50 ms", lambda v: f"{v * 1e3:.1f}"),
    Column("usd_per_m_output_tokens", "$/M out", lambda v: f"{v:.4f}"),
)

# short words for the metrics whose p5 / p50 / p95 bands are printed
BAND_HEADERS = {"usd_per_m_goodput_tokens": "$/M goodput", "goodput_tokens_per_s": "goodput tok/s",
                "units": "units", "gpus": "GPUs", "power_mw": "MW", "usd_per_hour": "$/hour"}


def band_columns(metrics: Sequence[str]) -> list[Column]:
    """p5 / p50 / p95 columns of each metric, headed e.g. '$/M goodput p95'."""
    return [Column(f"{m}_p{q}", f"{BAND_HEADERS.get(m, m)} p{q}", _g4) for m in metrics for q in (5, 50, 95)]


def frame_text(df: pd.DataFrame, columns: Sequence[Column], keys: int = 1, width: int = TABLE_WIDTH) -> str:
    """Any results frame as an aligned text table of `columns` (those it has), in blocks no
    wider than `width`, each starting with the first `keys` columns."""
    columns = [c for c in columns if c.name in df.columns]
    rows = [[cell(r[c.name], c.fmt) for c in columns] for _, r in df.iterrows()]
    return text_table(rows, columns, keys=keys, width=width)


def placeholder_in_fleets(fleets, cost_basis: str = "tier") -> set[str]:
    """Like placeholder_priced, for fleet specs (a plan's candidates) before they are built."""
    from factory_sim.config.hardware import load_hardware

    if cost_basis != "tier":
        return set()
    named = {f.hardware for f in fleets if f.hardware}
    named |= {pool.hardware for f in fleets for role in ("prefill", "decode", "aggregated")
              for _, pool in f.pools_of(role) if pool.hardware}
    return {hw.name for hw in map(load_hardware, sorted(named)) if hw.placeholder_price}


def format_plan(plan: pd.DataFrame, placeholder_hardware: Iterable[str] = (), width: int = TABLE_WIDTH) -> str:
    """A plan's ranked candidates in blocks of at most `width` characters; the $/hour of
    placeholder-priced hardware marked, with the footnote."""
    placeholder = set(placeholder_hardware)
    flagged = [bool(placeholder & set(_hardware_parts(hw))) for hw in plan["hardware"]]
    columns = list(PLAN_TABLE)
    if any(flagged):
        i = next(j for j, c in enumerate(columns) if c.name == "usd_per_hour")
        price = columns[i].fmt
        plan = plan.assign(usd_per_hour=[cell(v, price) + (PLACEHOLDER_MARK if f and not is_missing(v) else " ")
                                         for v, f in zip(plan["usd_per_hour"], flagged, strict=True)])
        columns[i] = Column("usd_per_hour", columns[i].header, str)
    text = frame_text(plan, columns, keys=2, width=width)
    shown = {h for hw in plan["hardware"] for h in _hardware_parts(hw)} & placeholder
    return text + ("\n" + textwrap.fill(placeholder_note(shown), width, subsequent_indent="  ") if shown else "")


def placeholder_priced(exp) -> set[str]:
    """Hardware of the experiment's fleets priced from a placeholder $/GPU-hour (tier pricing
    only: ownership cost uses the planner's own capital cost)."""
    if exp.cost.basis != "tier":
        return set()
    hardware = (exp.hardware_of(fleet, pool, where) for fleet in exp.fleets
                for role in (PREFILL, DECODE, AGGREGATED) for where, pool in fleet.pools_of(role))
    return {hw.name for hw in hardware if hw.placeholder_price}


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
