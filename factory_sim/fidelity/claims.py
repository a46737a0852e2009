"""The vendor claims, measured beside simulated, from InferenceX validation results.

Two claims are read from the same results (`inferencex_validation.csv`, one row per point and
quantity, with the published and the predicted value):
- Blackwell racks vs Hopper for DeepSeek-R1 at 20..150 tokens/s/user: the ratio of output
  tokens/s/GPU (`inferencex_report.hardware_ratios`, each hardware's frontier envelope) and the
  ratio of $ per million output tokens, both priced from the same hardware profiles' $/GPU-hour
  tier (`cost_ratios`): H200's $/M over the other's, so 15x means 15 times cheaper; at each
  interactivity and over a band around it, with how far one point moves each
  (`envelopes`).
- "TensorRT-LLM cut cost per token 5x within two months of Blackwell's launch": TensorRT-LLM's
  $/M output tokens on B200 and GB200 NVL72 at fixed interactivity, per month of the results,
  measured and simulated (`cost_over_dates`), and each month's cost against the earliest
  month's.

$/M output tokens = $/GPU-hour / (output tokens/s/GPU x 3600) x 1e6, the InferenceX app's own
formula (calibration.csv CAL-064 cites it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from factory_sim.config.hardware import load_hardware
from factory_sim.fidelity.envelopes import BAND_WIDTH, envelope_at, frontier_envelope
from factory_sim.fidelity.inferencex import HARDWARE, RATIO_INTERACTIVITY
from factory_sim.fidelity.inferencex_report import (
    _points_frame,
    band_cell,
    hardware_ratios,
    ratio_cell,
    scored,
    sensitivity_cell,
)

TIER = "hyperscaler"


def usd_per_gpu_hour(hardware: str, tier: str = TIER) -> float:
    """$/GPU-hour of an InferenceX hardware name, from its hardware profile's price tier."""
    return float(getattr(load_hardware(HARDWARE.get(hardware, hardware)).usd_per_gpu_hour, tier))


def usd_per_m_tokens(usd_per_hour: float, tok_s_per_gpu: np.ndarray | float) -> np.ndarray | float:
    return usd_per_hour / (np.asarray(tok_s_per_gpu, dtype=float) * 3600.0) * 1e6


def cost_ratios(results: pd.DataFrame, *, model: str = "DeepSeek-R1-0528", reference: str = "h200",
                others: Sequence[str] = ("gb200_nvl72", "b200"), targets: Sequence[float] = RATIO_INTERACTIVITY,
                tier: str = TIER, width: float = BAND_WIDTH, between: str = "loglog") -> pd.DataFrame:
    """`hardware_ratios` with, per ratio of tokens/s/GPU (at the point, over the band, and with
    one point removed), the ratio of $/M output tokens (reference's over the other's) at the same
    prices: tokens ratio x price(reference) / price(other). Over the band this is exact too: the
    band reading is a geometric mean, and the price is the same across it."""
    r = hardware_ratios(results, model=model, reference=reference, others=others, targets=targets, width=width,
                        between=between)
    price = r["hardware"].map(lambda hw: usd_per_gpu_hour(reference, tier) / usd_per_gpu_hour(hw, tier))
    for kind in ("measured", "measured_scored", "simulated"):
        for reading in ("ratio", "band_ratio"):
            r[f"{kind}_cost_{reading}"] = r[f"{kind}_{reading}"] * price
    return r


def format_cost_ratios(r: pd.DataFrame, reference: str = "h200", width: float = BAND_WIDTH,
                       between: str = "loglog") -> str:
    kinds = ("measured", "measured_scored", "simulated")
    lines = [f"{reference} / other, DeepSeek-R1: tokens/s/GPU ratio and $/M-token ratio ({TIER} $/GPU-hour on both "
             "sides): measured (all points) | measured (points scored) | simulated (same points); each envelope "
             + ("interpolated in log-log between its points" if between == "loglog" else
                "read as the best point at >= each interactivity")
             + "; 'at': at the interactivity, 'band': geometric mean over "
             f"+-{width:.0%} of it (* cut where an envelope ends sooner); in brackets the tokens/s/GPU ratio with "
             "the one point of the other side's, of the reference's envelope removed that moves it most (- : the "
             "target is not reached without it; ! : one removal moves it more than 25%); - : not reached"]
    for (isl, osl, hw), g in r.groupby(["isl", "osl", "hardware"], sort=True):
        lines.append(f"  {hw} vs {reference}, {isl}/{osl}             tokens/s/GPU                  $/M tokens"
                     "         one point removed (measured scored | simulated)")
        for _, x in g.sort_values("interactivity_tok_s_user").iterrows():
            for reading, label, drop in (("ratio", "at", "ratio"), ("band_ratio", "band", "band")):
                tokens = [ratio_cell(x[f"{k}_ratio"]) if reading == "ratio" else band_cell(x, k, width) for k in kinds]
                lines.append(f"    {x['interactivity_tok_s_user']:>5g} tok/s/user {label:>4}: "
                             + " | ".join(f"{t:>7}" for t in tokens)
                             + "    " + " | ".join(f"{ratio_cell(x[f'{k}_cost_{reading}']):>7}" for k in kinds)
                             + "    " + " | ".join(sensitivity_cell(x, k, drop) for k in ("measured_scored",
                                                                                           "simulated")))
    return "\n".join(lines)


def best_at(interactivity: np.ndarray, tok_s_per_gpu: np.ndarray, targets: Sequence[float]) -> np.ndarray:
    """Highest tokens/s/GPU of any point at >= each target interactivity (NaN where none is): the
    envelope's "step" reading, which unlike the interpolated one never falls when points are
    added (a month's runs can only add to what the software had shown)."""
    return envelope_at(*frontier_envelope(interactivity, tok_s_per_gpu), targets, between="step")


def cost_over_dates(results: pd.DataFrame, *, framework: Sequence[str] = ("trtllm", "dynamo-trtllm"),
                    model: str = "DeepSeek-R1-0528",
                    hardware: Sequence[str] = ("b200", "gb200_nvl72"), targets: Sequence[float] = (20.0, 50.0, 100.0),
                    tier: str = TIER) -> pd.DataFrame:
    """$/M output tokens per (hardware, sequence length, month of the results) at each
    interactivity, from the best point at or above it among every point dated up to that month
    (`best_at`: the best the software had shown by then, so a month that ran few
    configurations does not read as a regression): measured over all points, measured and
    simulated over the points scored; and each against the earliest month's (`*_vs_first`:
    earliest cost / this cost, so 5 means 5x cheaper)."""
    res = results[results["framework"].isin(framework) & (results["model"] == model)
                  & results["hardware"].isin(hardware)]
    month = res.drop_duplicates("point_id").set_index("point_id")["date"].astype(str).str[:7]
    rows = []
    for kind in ("measured", "measured_scored", "simulated"):
        f = _points_frame(res, kind)
        f["month"] = f["point_id"].map(month)
        for (hw, isl, osl), gs in f.groupby(["hardware", "isl", "osl"]):
            price = usd_per_gpu_hour(hw, tier)
            for m in sorted(gs["month"].dropna().unique()):
                g = gs[gs["month"] <= m]
                tps = best_at(g["interactivity_tok_s_user"].to_numpy(), g["output_tok_s_per_gpu"].to_numpy(),
                              targets)
                rows.extend({"hardware": hw, "isl": int(isl), "osl": int(osl), "month": m,
                             "interactivity_tok_s_user": t, "kind": kind,
                             "usd_per_m": float(usd_per_m_tokens(price, v)) if np.isfinite(v) else np.nan}
                            for t, v in zip(targets, tps, strict=True))
    keys = ["hardware", "isl", "osl", "interactivity_tok_s_user", "month"]
    if not rows:
        return pd.DataFrame(columns=keys)
    df = pd.DataFrame(rows).pivot_table(index=keys, columns="kind", values="usd_per_m", aggfunc="first",
                                        dropna=False)
    df = df.reindex(columns=["measured", "measured_scored", "simulated"]).add_prefix("usd_per_m_").reset_index()
    df.columns.name = None
    df = df.dropna(subset=[c for c in df.columns if c.startswith("usd_per_m_")], how="all")
    df = df.sort_values(keys).reset_index(drop=True)
    for kind in ("measured", "measured_scored", "simulated"):
        col = f"usd_per_m_{kind}"
        first = df.groupby(keys[:-1])[col].transform(lambda s: s.dropna().iloc[0] if s.notna().any() else np.nan)
        df[f"{kind}_vs_first"] = first / df[col]
    return df


def format_cost_over_dates(df: pd.DataFrame) -> str:
    def cell(v: float, fmt: str) -> str:
        return format(v, fmt) if np.isfinite(v) else "-"

    lines = ["TensorRT-LLM $/M output tokens by month (best point at >= each interactivity among the points "
             "up to that month): measured (all points) | measured (scored) | simulated (same points); in brackets the "
             "earliest month's cost / this month's"]
    for (hw, isl, osl, t), g in df.groupby(["hardware", "isl", "osl", "interactivity_tok_s_user"], sort=True):
        lines.append(f"  {hw} {isl}/{osl} at {t:g} tok/s/user")
        for _, x in g.iterrows():
            lines.append(f"    {x['month']}: " + " | ".join(
                f"${cell(x[f'usd_per_m_{k}'], '.3f')} [{cell(x[f'{k}_vs_first'], '.1f')}x]"
                for k in ("measured", "measured_scored", "simulated")))
    return "\n".join(lines)


def envelope_points(results: pd.DataFrame, *, model: str = "DeepSeek-R1-0528",
                    hardware: Sequence[str] = ("gb200_nvl72", "h200"), targets: Sequence[float] = (50.0, 75.0)
                    ) -> pd.DataFrame:
    """The points that set each hardware's envelope at each interactivity, and their errors.

    A ratio of envelopes is only as right as the few points that set them: per kind
    ("measured_scored": the published values of the points scored; "simulated": the
    predictions), sequence length, hardware and target, the envelope points that bracket the
    target (the two that `envelopes.envelope_at` interpolates between; one below the slowest point),
    with each point's error on tokens/s/GPU and interactivity and the configuration it ran."""
    errors = scored(results).pivot_table(index="point_id", columns="quantity", values="rel_error", aggfunc="first")
    meta = results.drop_duplicates("point_id").set_index("point_id")
    rows = []
    for kind in ("measured_scored", "simulated"):
        f = _points_frame(results, kind)
        f = f[(f["model"] == model) & f["hardware"].isin(hardware)]
        for (isl, osl, hw), g in f.groupby(["isl", "osl", "hardware"]):
            xs, ys = frontier_envelope(g["interactivity_tok_s_user"].to_numpy(), g["output_tok_s_per_gpu"].to_numpy())
            for t in targets:
                if not len(xs) or t > xs[-1]:
                    continue
                j = int(np.searchsorted(xs, t))
                for i in sorted({max(j - 1, 0), min(j, len(xs) - 1)}):
                    pid = g.loc[(g["interactivity_tok_s_user"] == xs[i]) & (g["output_tok_s_per_gpu"] == ys[i]),
                                "point_id"].iloc[0]
                    err = errors.loc[pid] if pid in errors.index else pd.Series(dtype=float)
                    rows.append({"kind": kind, "isl": int(isl), "osl": int(osl), "hardware": hw,
                                 "interactivity_target": t, "point_id": pid, "interactivity_tok_s_user": xs[i],
                                 "output_tok_s_per_gpu": ys[i],
                                 "tok_s_per_gpu_error": float(err.get("output_tok_s_per_gpu", np.nan)),
                                 "interactivity_error": float(err.get("interactivity_tok_s_user", np.nan)),
                                 "framework": meta.loc[pid, "framework"], "config": meta.loc[pid].get("config", "")})
    return pd.DataFrame(rows)


def format_envelope_points(df: pd.DataFrame) -> str:
    lines = ["points setting each envelope at each interactivity (kind: measured = published values of the scored "
             "points, simulated = predictions): interactivity, tokens/s/GPU, that point's error on tokens/s/GPU and "
             "on interactivity, framework, configuration"]
    for _, x in df.iterrows():
        lines.append(f"  {x['kind']:<15} {x['isl']}/{x['osl']} {x['hardware']:<12} at {x['interactivity_target']:g}: "
                     f"{x['interactivity_tok_s_user']:6.1f} tok/s/user {x['output_tok_s_per_gpu']:8.1f} tok/s/GPU "
                     f"({x['tok_s_per_gpu_error']:+.0%}, {x['interactivity_error']:+.0%}) {x['framework']} "
                     f"{x['point_id']} {x['config']}")
    return "\n".join(lines)
