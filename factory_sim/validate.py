"""How far the simulator's predictions are from measured deployments.

Reads measured operating points (one exact serving configuration driven by a closed loop
of clients at fixed input/output lengths, with its measured mean TTFT and TPOT), simulates
exactly that deployment, and reports the signed relative error of each prediction. No
configuration search happens here: the row names the configuration. Rows that cannot be
scored (a model not in the catalog, a quantization not modelled, a configuration that does
not fit) are listed with the reason, never dropped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from factory_sim.errors import ConfigError
from factory_sim.hardware import list_hardware, load_hardware
from factory_sim.metrics import latencies
from factory_sim.models import list_models, load_model
from factory_sim.parallel import map_jobs, worker_count
from factory_sim.perf.memory import plan_memory
from factory_sim.perf.replica import ReplicaShape
from factory_sim.perf.stacks import load_stack
from factory_sim.sim.engine import FleetPlan, PoolPlan, simulate

MEASURED_POINT_COLUMNS = {"system", "model", "backend", "mode", "isl", "osl", "concurrency", "ttft_ms", "tpot_ms"}

# Catalog names for architectures the measured data names differently.
MODEL_ALIASES = {"deepseek_v3": "deepseek_r1"}  # DeepSeek-R1 shares the DeepSeek-V3 architecture

# Weight formats of the measured deployments' quantization modes.
QUANT_TO_PRECISION = {"nvfp4": "fp4", "fp8": "fp8", "fp8_block": "fp8", "bf16": "bf16", "fp16": "bf16",
                      "w4a16_mxfp4": "mxfp4", "mxfp4": "mxfp4"}

# Closed-loop runs: each client sends this many requests; the first and last third are not measured.
REQUESTS_PER_CLIENT = 6
MIN_REQUESTS = 60
MAX_REQUESTS = 12_000
# Prompt tokens a step may add on top of its decode tokens; 8192 is TensorRT-LLM's default
# max_num_tokens and SGLang's default chunked-prefill size (estimate for rows that do not say).
PREFILL_CHUNK_TOKENS = 8192


class Skip(Exception):
    """A row that cannot be scored, with the reason."""


@dataclass(frozen=True)
class Deployment:
    fleet: FleetPlan
    isl: int
    osl: int
    concurrency: int
    config: str


def builtin_measured_points_path() -> Path:
    return Path(str(resources.files("factory_sim") / "data" / "reference" / "measured_points.csv.gz"))


def is_measured_points(df: pd.DataFrame) -> bool:
    return MEASURED_POINT_COLUMNS <= set(df.columns)


def load_points(path: str | Path | None) -> pd.DataFrame:
    p = Path(path) if path else builtin_measured_points_path()
    try:
        df = pd.read_csv(p)
    except FileNotFoundError:
        raise ConfigError("SCENARIOS", f"no such file: {p}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError("SCENARIOS", f"{p} is not a readable CSV file: {exc}") from None
    if not is_measured_points(df):
        missing = ", ".join(sorted(MEASURED_POINT_COLUMNS - set(df.columns)))
        raise ConfigError("SCENARIOS", f"{p} is not a measured-points file: missing columns {missing}")
    return df


def _num(row, key: str, default: float | None = None) -> float | None:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return float(value)


def _text(row, key: str) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _size(row, key: str) -> int:
    """A parallelism size; 0 and empty mean 1 (not used)."""
    value = _num(row, key, 1.0)
    return max(1, int(value))


@cache
def _catalog_names() -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(h.name for h in list_hardware()), frozenset(m.name for m in list_models())


def _precisions(row) -> tuple[str, str]:
    """(FFN/expert weight format, attention weight format) of a row."""
    precision = _text(row, "precision")
    moe = _text(row, "moe_quant") or precision
    gemm = _text(row, "gemm_quant") or precision
    if moe is None or gemm is None:
        raise Skip("precision not given")
    if moe not in QUANT_TO_PRECISION or gemm not in QUANT_TO_PRECISION:
        bad = moe if moe not in QUANT_TO_PRECISION else gemm
        raise Skip(f"quantization '{bad}' is not modelled")
    return QUANT_TO_PRECISION[moe], QUANT_TO_PRECISION[gemm]


def _shape(row, prefix: str, hw, model, stack, precision, attention_precision, path) -> ReplicaShape:
    tp = _size(row, f"{prefix}tp_size")
    dp = _size(row, f"{prefix}attention_dp_size")
    pp = _size(row, f"{prefix}pp_size")
    ep = _size(row, f"{prefix}moe_ep_size") if model.is_moe else 1
    kv = "bf16" if precision == "bf16" else "fp8"
    try:
        shape = ReplicaShape(hardware=hw, model=model, stack=stack, precision=precision,
                             attention_precision=attention_precision, kv_precision=kv,
                             tp=tp, dp_attention=dp, ep=ep, pp=pp, path=path)
        plan_memory(shape)
    except ConfigError as exc:
        raise Skip(exc.message) from None
    return shape



def deployment(row) -> Deployment:
    """The exact deployment a measured row describes, or Skip with the reason."""
    hardware_names, model_names = _catalog_names()
    system, model_name = str(row["system"]), str(row["model"])
    model_name = MODEL_ALIASES.get(model_name, model_name)
    if system not in hardware_names:
        raise Skip(f"system '{system}' has no hardware profile")
    if model_name not in model_names:
        raise Skip(f"model '{row['model']}' is not in the catalog")
    concurrency = _num(row, "concurrency")
    if not concurrency or concurrency < 1:
        raise Skip("no client concurrency given")
    hw, model = load_hardware(system), load_model(model_name)
    stack = load_stack(hw.default_stack)
    precision, attention_precision = _precisions(row)
    if not hw.supports("fp4"):
        # a 4-bit checkpoint on hardware without FP4 runs weight-only (W4A16)
        precision = "mxfp4" if precision == "fp4" else precision
        attention_precision = "bf16" if attention_precision == "fp4" else attention_precision
    c = int(concurrency)
    if row["mode"] == "disagg":
        if _num(row, "prefill_num_workers") is None or _num(row, "decode_num_workers") is None:
            raise Skip("disaggregated row without prefill/decode worker counts")
        pools = []
        for role in ("prefill", "decode"):
            prefix = f"{role}_"
            shape = _shape(row, prefix, hw, model, stack, precision, attention_precision, role)
            workers = _size(row, f"{prefix}num_workers")
            batch = _num(row, f"{prefix}batch_size", float(c)) * shape.dp_attention
            # a decode worker holds at most its batch; clients never wait on an artificial cap
            max_batch = max(int(batch), math.ceil(c / workers)) if role == "decode" else max(int(batch), 1)
            pools.append(PoolPlan(role, role, shape, workers, max_batch, PREFILL_CHUNK_TOKENS + max_batch))
        config = (f"disagg {pools[0].replicas}x[{pools[0].shape.describe()}] + "
                  f"{pools[1].replicas}x[{pools[1].shape.describe()}]")
    else:
        shape = _shape(row, "", hw, model, stack, precision, attention_precision, "aggregated")
        pools = [PoolPlan("aggregated", "aggregated", shape, 1, c, PREFILL_CHUNK_TOKENS + c)]
        config = f"agg 1x[{shape.describe()}]"
    fleet = FleetPlan(str(row.get("id", "row")), tuple(pools), "least_outstanding_tokens")
    return Deployment(fleet, int(row["isl"]), int(row["osl"]), c, f"{config} c={c} {row.get('backend', '')}")


def predict(row, seed: int = 0) -> tuple[float, float, str]:
    """Predicted mean TTFT and mean TPOT in ms for a measured row, and the configuration used."""
    dep = deployment(row)
    n = int(min(MAX_REQUESTS, max(MIN_REQUESTS, REQUESTS_PER_CLIENT * dep.concurrency)))
    tokens_in = np.full(n, dep.isl, dtype=np.int64)
    tokens_out = np.full(n, dep.osl, dtype=np.int64)
    sim = simulate(dep.fleet, tokens_in, tokens_out, concurrency=dep.concurrency, seed=seed)
    tr = sim.trace
    order = np.argsort(tr.arrival_s)
    measured = np.zeros(n, dtype=bool)
    measured[order[n // 3: n - n // 3]] = True
    measured &= tr.done
    if not measured.any():
        raise Skip("no request finished in the measurement window")
    lat = latencies(tr)
    return float(np.nanmean(lat["ttft_s"][measured])) * 1e3, float(np.nanmean(lat["tpot_s"][measured])) * 1e3, \
        dep.config


def _score_rows(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        base = {k: row.get(k) for k in ("id", "system", "model", "backend", "mode", "isl", "osl", "concurrency")}
        try:
            ttft, tpot, config = predict(row)
        except (Skip, ConfigError) as why:
            out.append({**base, "quantity": "", "predicted": np.nan, "published": np.nan, "rel_error": np.nan,
                        "config": "", "skipped": str(why)})
            continue
        for quantity, predicted in (("ttft_ms", ttft), ("tpot_ms", tpot)):
            published = float(row[quantity])
            out.append({**base, "quantity": quantity, "predicted": predicted, "published": published,
                        "rel_error": (predicted - published) / published, "config": config, "skipped": ""})
    return out


def validate_points(points: pd.DataFrame, *, jobs: int | None = None) -> pd.DataFrame:
    """One row per (measured row, quantity) scored, plus one row per skipped measured row."""
    records = points.to_dict("records")
    workers = worker_count(jobs, len(records))
    if workers == 1 or len(records) < 8:
        scored = _score_rows(records)
    else:  # several chunks per process, so a slow chunk does not leave a core idle
        chunks = [records[i::workers * 4] for i in range(workers * 4)]
        scored = [r for part in map_jobs(_score_rows, chunks, workers) for r in part]
    df = pd.DataFrame(scored)
    order = {rid: i for i, rid in enumerate(points["id"])} if "id" in points else {}
    if order:
        df = df.sort_values("id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return df


def error_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per quantity and overall: rows scored, median |error|, share within +-20%, signed median."""
    scored = results[results["skipped"] == ""]
    groups = []
    for quantity, g in scored.groupby("quantity"):
        groups.append(_stats(g, quantity=quantity, group="all"))
        for col in ("system", "model", "backend", "mode"):
            for key, gg in g.groupby(col):
                groups.append(_stats(gg, quantity=quantity, group=f"{col}={key}"))
    return pd.DataFrame(groups)


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
        lines.append("median |error| by group (TTFT / TPOT):")
        wide = breakdown.pivot_table(index="group", columns="quantity", values="median_abs_error")
        rows_n = breakdown.pivot_table(index="group", columns="quantity", values="rows")
        for group, r in wide.iterrows():
            cells = " / ".join(f"{r.get(q, np.nan):.0%}" for q in ("ttft_ms", "tpot_ms"))
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
            xs = np.array([lo, hi])
            ax.plot(xs, xs, "k-", lw=1, label="exact")
            ax.fill_between(xs, xs * 0.8, xs * 1.2, color="grey", alpha=0.2, label="+-20%")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"published {title}")
        ax.set_ylabel(f"predicted {title}")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
