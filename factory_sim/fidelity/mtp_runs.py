"""Which measured points were MTP runs, read from their InferenceX twins.

The measured points (aiconfigurator's silicon sample) do not say whether a run drafted tokens
with DeepSeek's MTP module, but many of their aggregated TensorRT-LLM DeepSeek-R1 rows are the
InferenceX recipes re-run (same images, parallelism, lengths and client counts), and InferenceX
does say. The same configuration comes in two families: e.g. B200 FP8 TP8, 1k/1k, 4 clients
measures 10.30 ms per token with image 1.2.0rc6.post2 (InferenceX without MTP: 10.34) and
5.38 ms with 1.2.0rc6.post3 (InferenceX with MTP: 5.67). Scored as one family, the MTP runs
pull a profile's base step fast, which is why the measured points and the InferenceX points
without MTP seemed to disagree on the same engine.

A row is labelled by its twins: InferenceX points of the same hardware, model, precision,
aggregated parallelism (TP, attention DP, EP), lengths and clients. It is an MTP run when its
TPOT is nearer (in log) the twins' median with MTP than without, or, with twins of one kind
only, when it is within TWIN_TOLERANCE of MTP twins or more than NO_MTP_GAP below twins
without MTP. An image whose labelled rows (MIN_IMAGE_ROWS or more) all agree labels its other
rows of that system, model and mode the same way; where they disagree (H200 1.1.0rc2.post2
ran both), the others stay unlabelled, and so do disaggregated rows (their twins would need
worker counts the two files state differently).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from factory_sim.config.model import load_model
from factory_sim.errors import ConfigError
from factory_sim.fidelity.deployments import MODEL_ALIASES, Skip, catalog_names, row_parallel_sizes
from factory_sim.fidelity.inferencex import (
    MTP_DRAFTS_WITH_ATTENTION_DP,
    MTP_DRAFTS_WITHOUT_ATTENTION_DP,
    measured_row,
)

# A TPOT within 10% of its twins' is the same run (repeat runs of one InferenceX configuration
# on different days spread by 1-5%: e.g. B200 FP4 TP4 1k/1k at 4 clients 8.35-8.52 ms, Dec 2025).
TWIN_TOLERANCE = 0.10
# MTP at InferenceX's acceptance makes these configurations 1.2-2.3x faster per token; a run
# more than 20% faster than its twins without MTP is not the same run without it.
NO_MTP_GAP = 0.20
MIN_IMAGE_ROWS = 3
KEY = ("system", "model", "precision", "tp", "dp", "ep", "isl", "osl", "concurrency")


def _measured_key(row: dict) -> tuple | None:
    _, models = catalog_names()
    name = MODEL_ALIASES.get(str(row["model"]), str(row["model"]))
    if name not in models or row.get("mode") != "agg" or not row.get("concurrency") > 0:
        return None
    model = load_model(name)
    if not model.mtp_layers:  # no MTP module: nothing to label
        return None
    try:
        tp, dp, ep, _ = row_parallel_sizes(row, "", model)
    except (Skip, ConfigError, ValueError, TypeError):
        return None
    return (str(row["system"]), name, str(row["precision"]), tp, dp, ep, int(row["isl"]), int(row["osl"]),
            int(row["concurrency"]))


def _twins(inferencex: pd.DataFrame) -> dict[tuple, dict[bool, list[float]]]:
    """{key: {mtp: [TPOT ms of each twin]}} of the aggregated InferenceX points."""
    out: dict[tuple, dict[bool, list[float]]] = {}
    for p in inferencex.to_dict("records"):
        tpot = p.get("tpot_ms")
        if not (isinstance(tpot, float | int) and tpot > 0) or str(p.get("disaggregated")).lower() == "true":
            continue
        try:
            row, extra = measured_row(p)
        except (Skip, ConfigError, ValueError, TypeError):
            continue
        key = (row["system"], row["model"], row["precision"], row["tp_size"], row["attention_dp_size"],
               row["moe_ep_size"], row["isl"], row["osl"], row["concurrency"])
        out.setdefault(key, {False: [], True: []})[bool(extra["mtp_drafts"])].append(float(tpot))
    return out


def _label(tpot: float, twins: dict[bool, list[float]]) -> tuple[bool | None, str]:
    with_mtp = float(np.median(twins[True])) if twins[True] else None
    without = float(np.median(twins[False])) if twins[False] else None
    if with_mtp and without:
        mtp = abs(math.log(tpot / with_mtp)) < abs(math.log(tpot / without))
        return mtp, f"TPOT {tpot:.3g} ms; InferenceX twins {with_mtp:.3g} ms with MTP, {without:.3g} without"
    if with_mtp and abs(tpot / with_mtp - 1) <= TWIN_TOLERANCE:
        return True, f"TPOT {tpot:.3g} ms; InferenceX twins {with_mtp:.3g} ms with MTP"
    if without and tpot < without * (1 - NO_MTP_GAP):
        return True, f"TPOT {tpot:.3g} ms; InferenceX twins {without:.3g} ms without MTP"
    if without and abs(tpot / without - 1) <= TWIN_TOLERANCE:
        return False, f"TPOT {tpot:.3g} ms; InferenceX twins {without:.3g} ms without MTP"
    return None, ""


def label_mtp_runs(points: pd.DataFrame, inferencex: pd.DataFrame) -> pd.DataFrame:
    """`points` with `mtp_draft_tokens` (0 where not an MTP run or not known) and `mtp_evidence`
    (why: its twins, its image's, or "" where unlabelled)."""
    twins = _twins(inferencex)
    labels: list[bool | None] = []
    evidence: list[str] = []
    for row in points.to_dict("records"):
        key = _measured_key(row)
        label, why = (None, "")
        if key is not None and key in twins and row.get("tpot_ms", 0) > 0:
            label, why = _label(float(row["tpot_ms"]), twins[key])
        labels.append(label)
        evidence.append(why)
    out = points.copy()
    image = ["system", "model", "mode", "backend", "backend_version"]
    position = {i: n for n, i in enumerate(out.index)}
    for _, g in out.groupby(image, dropna=True):
        known = [labels[position[i]] for i in g.index if labels[position[i]] is not None]
        if len(known) >= MIN_IMAGE_ROWS and len(set(known)) == 1:
            for i in g.index:
                if labels[position[i]] is None:
                    labels[position[i]] = known[0]
                    evidence[position[i]] = (f"image {g['backend_version'].iloc[0]}: its {len(known)} rows with "
                                             f"InferenceX twins are all {'MTP' if known[0] else 'non-MTP'} runs")
    drafts = []
    for label, row in zip(labels, out.to_dict("records"), strict=True):
        dp = row.get("attention_dp_size")
        drafts.append(0 if not label else MTP_DRAFTS_WITH_ATTENTION_DP if dp and dp > 1
                      else MTP_DRAFTS_WITHOUT_ATTENTION_DP)
    out["mtp_draft_tokens"] = drafts
    out["mtp_evidence"] = evidence
    return out
