"""Error of each software-stack profile against published results, held-out rows apart.

`validate` scores rows of many deployments; a planner wants to know, for the stacks their
own experiment uses, how close the model came on rows the stack was not fitted to. This
groups validate's results by the stack profile each row ran (its `config` says
`stack=NAME`) and by in-sample / out-of-sample (held out: not in any profile's
`fitted_to`), and stamps each stack with a digest of its profile, so that a stored table
can tell when a profile has changed since it was computed.

A table computed from the built-in reference data ships as data/reference/fidelity_by_stack.csv
(`factory-sim validate --out DIR` writes it as DIR/fidelity_by_stack.csv).
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

STACK_ERROR_COLUMNS = ["stack", "quantity", "sample", "rows", "median_abs_error", "within_20pct",
                       "median_signed_error", "stack_digest"]
SNAPSHOT_NAME = "fidelity_by_stack.csv"
_STACK = re.compile(r"\bstack=(\S+)")


def stack_of(config: str) -> str:
    """The stack profile named in a validate `config` string ('' when none)."""
    m = _STACK.search(str(config or ""))
    return m.group(1) if m else ""


# Fields added after the shipped snapshot was computed, at the values every profile then had:
# left out of the digest while they keep those values, so adding them invalidated nothing.
_DIGEST_DEFAULTS = {"step_time_backend": "roofline", "aiconfigurator_version": None,
                    "scheduler_recv_interval_steps": 0, "ep_peer_latency_s": 0.0, "first_token_from_decode": False,
                    "prefill_steps_alone": False,
                    "mla_layer_overhead_s": 0.0, "adp_rank_jitter_s": 0.0,
                    "prefill_moe_latency_s_per_gparam": 0.0, "prefill_moe_overhead_s_per_gparam": 0.0,
                    "fp4_gemm_half_efficiency_tokens": None, "mla_dp_attention_efficiency": None,
                    "fp4_gemm_rolloff_fp4_fp8_ratio": None, "mtp_acceptance_sd": None,
                    "mla_dp_seq_overhead_s": 0.0, "frontend_s_per_streamed_token": 0.0,
                    "stochastic_sampling_step_s": 0.0}


def stack_digest(stack) -> str:
    """A short digest of a stack profile's values: it changes when any constant does."""
    values = stack.model_dump(mode="json")
    for name, default in _DIGEST_DEFAULTS.items():
        if name in values and values[name] == default:
            del values[name]
    text = json.dumps(values, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def error_by_stack(*results: pd.DataFrame | None) -> pd.DataFrame:
    """Median |relative error|, share within +-20% and median signed error per stack, quantity
    and sample, over the scored rows of validate's results (measured points and/or
    throughput rows)."""
    from factory_sim.config.stack import load_stack

    frames = [r for r in results if r is not None and len(r)]
    if not frames:
        return pd.DataFrame(columns=STACK_ERROR_COLUMNS)
    scored = pd.concat([f[["quantity", "rel_error", "config", "sample", "skipped"]] for f in frames],
                       ignore_index=True)
    scored = scored[scored["skipped"].fillna("") == ""].copy()
    scored["stack"] = scored["config"].map(stack_of)
    scored = scored[scored["stack"] != ""]
    rows = []
    digests: dict[str, str] = {}
    for (stack, quantity, sample), g in scored.groupby(["stack", "quantity", "sample"]):
        if stack not in digests:
            try:
                digests[stack] = stack_digest(load_stack(stack))
            except Exception:  # noqa: BLE001 - a profile not in the catalog has no digest to compare
                digests[stack] = ""
        err = g["rel_error"].to_numpy(dtype=float)
        rows.append({"stack": stack, "quantity": quantity, "sample": sample, "rows": len(g),
                     "median_abs_error": float(np.median(np.abs(err))),
                     "within_20pct": float(np.mean(np.abs(err) <= 0.2)),
                     "median_signed_error": float(np.median(err)), "stack_digest": digests[stack]})
    return pd.DataFrame(rows, columns=STACK_ERROR_COLUMNS)


def shipped_snapshot_path() -> Path:
    return Path(str(resources.files("factory_sim") / "data" / "reference" / SNAPSHOT_NAME))


def load_stack_errors(path: Path | None = None) -> pd.DataFrame | None:
    """A stored error-by-stack table (default: the one shipped), or None when there is none."""
    p = path or shipped_snapshot_path()
    if not p.exists():
        return None
    text = {c: str for c in ("stack", "quantity", "sample", "stack_digest")}  # a digest may look like a number
    return pd.read_csv(p, dtype=text, keep_default_na=False)
