"""Workloads: who sends what, and when.

A WorkloadSpec pairs an arrival process with input/output length distributions (or a real
trace that supplies both). Multi-turn sessions are an arrival process too: each session's
turns resend the conversation so far, so their prompts share prefixes. Ready-made
workloads live in ``factory_sim/data/workloads``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from factory_sim.errors import ConfigError
from factory_sim.workload.arrivals import (
    Arrivals,
    ClosedLoopArrivals,
    DiurnalArrivals,
    GammaArrivals,
    PoissonArrivals,
    TraceArrivals,
    arrival_times,
    mean_rate_per_s,
    trace_requests,
)
from factory_sim.workload.lengths import (
    EmpiricalLength,
    FixedLength,
    LengthDist,
    LognormalLength,
    NominalLength,
    UniformLength,
    mean_length,
    sample_lengths,
)
from factory_sim.workload.sessions import SessionArrivals, session_requests
from factory_sim.workload.traces import list_traces, load_trace
from factory_sim.yamlio import parse_mapping, validate

__all__ = [
    "Arrivals",
    "ClosedLoopArrivals",
    "DiurnalArrivals",
    "EmpiricalLength",
    "FixedLength",
    "GammaArrivals",
    "LengthDist",
    "LognormalLength",
    "NominalLength",
    "PoissonArrivals",
    "RequestBatch",
    "SessionArrivals",
    "TraceArrivals",
    "UniformLength",
    "WorkloadSpec",
    "arrival_times",
    "generate_requests",
    "list_traces",
    "list_workloads",
    "load_trace",
    "load_workload",
    "mean_length",
    "mean_rate_per_s",
    "sample_lengths",
    "workloads_table",
]


class WorkloadSpec(BaseModel):
    """One workload. Lengths are required unless a trace replay supplies them."""

    model_config = ConfigDict(extra="forbid")
    name: str = "custom"
    description: str = ""
    arrivals: Arrivals
    input_tokens: LengthDist | None = Field(default=None, validate_default=True)
    output_tokens: LengthDist | None = Field(default=None, validate_default=True)
    requests: int = Field(default=2000, ge=1)

    @field_validator("input_tokens", "output_tokens")
    @classmethod
    def _lengths_from_one_place(cls, value: LengthDist | None, info: ValidationInfo) -> LengthDist | None:
        arrivals = info.data.get("arrivals")
        if arrivals is None:  # arrivals itself was invalid; that error is reported instead
            return value
        from_trace = isinstance(arrivals, TraceArrivals) and arrivals.use_lengths
        if from_trace and value is not None:
            raise ValueError(
                f"{info.field_name} is taken from the trace because arrivals.use_lengths is true; "
                f"remove {info.field_name} or set arrivals.use_lengths: false"
            )
        if not from_trace and value is None:
            raise ValueError(
                f"{info.field_name} is required (e.g. {{kind: fixed, tokens: 1024}}) unless "
                "arrivals is a trace with use_lengths: true"
            )
        return value

    @model_validator(mode="after")
    def _trace_long_enough(self) -> WorkloadSpec:
        arr = self.arrivals
        if isinstance(arr, TraceArrivals) and not arr.loop:
            rows = len(load_trace(arr.trace))
            if self.requests > rows:
                raise ValueError(
                    f"requests ({self.requests}) exceeds the {rows} requests in trace {arr.trace!r}; "
                    f"set requests <= {rows} or arrivals.loop: true"
                )
        return self

    def mean_input_tokens(self) -> float:
        """Expected prompt tokens per request."""
        return self._mean_tokens(self.input_tokens, "input_tokens")

    def mean_output_tokens(self) -> float:
        """Expected generated tokens per request."""
        return self._mean_tokens(self.output_tokens, "output_tokens")

    def _mean_tokens(self, dist: LengthDist | None, column: str) -> float:
        if isinstance(self.arrivals, SessionArrivals):
            # A prompt holds the whole conversation so far, so its mean depends on the turn
            # count, the answers and the context limit: take it from one seeded draw.
            batch = generate_requests(self, np.random.default_rng(0))
            return float(getattr(batch, column).mean())
        if dist is not None:
            return mean_length(dist)
        assert isinstance(self.arrivals, TraceArrivals)
        return float(trace_requests(self.arrivals, self.requests)[column].mean())


# Tokens per KV block behind the Mooncake traces' hash_ids. Source: the traces of Qin et
# al., "Mooncake: Trading More Storage for Less Computation", FAST 2025
# (https://github.com/kvcache-ai/Mooncake, FAST25-release/traces/), whose hash_ids are
# remapped 512-token block hashes; every row of both built-in Mooncake traces has exactly
# ceil(input_length / 512) of them.
MOONCAKE_BLOCK_TOKENS = 512


@dataclass
class RequestBatch:
    """The requests of one run, as columns.

    arrival_s is None for a closed loop. For sessions it holds the first turns' start
    times and NaN for later turns, which arrive think_s after the previous turn of their
    session finishes (next_turn links the turns). block_hashes lists, per request, the
    hashes of its prompt's KV blocks of block_tokens tokens in order (the last one may be
    partly filled); equal hashes mean the same prefix. Fields a workload does not have
    are None.
    """

    arrival_s: np.ndarray | None
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    block_hashes: list[tuple[int, ...]] | None = None
    block_tokens: int | None = None
    next_turn: np.ndarray | None = None
    think_s: np.ndarray | None = None
    session: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.input_tokens.size)


def generate_requests(
    spec: WorkloadSpec,
    rng: np.random.Generator,
    rate_per_s: float | None = None,
    n: int | None = None,
) -> RequestBatch:
    """Draw `n` requests (default `spec.requests`), at `rate_per_s` if given.

    `rate_per_s` is in requests per second for every arrival kind: it sets the workload's
    mean_rate_per_s (for sessions, the session rate becomes rate_per_s / mean turns).
    Arrivals, input lengths and output lengths come from three child generators spawned
    from `rng` (sessions add two more, for turn counts and think times), so changing the
    rate changes only the times, never the lengths. Sessions give `n` turns, the last
    session cut short if needed.
    """
    count = spec.requests if n is None else n
    if count < 0:
        raise ValueError(f"n must be >= 0, got {count}")
    arr = spec.arrivals
    if isinstance(arr, SessionArrivals):
        assert spec.input_tokens is not None and spec.output_tokens is not None
        fields = session_requests(arr, spec.input_tokens, spec.output_tokens, count, tuple(rng.spawn(5)), rate_per_s)
        return RequestBatch(**fields)
    arrival_rng, input_rng, output_rng = rng.spawn(3)
    if isinstance(arr, TraceArrivals) and arr.use_lengths:
        rows = trace_requests(arr, count, rate_per_s)
        hashes = None
        if "hash_ids" in rows.columns:
            hashes = [tuple(ids) for ids in rows["hash_ids"]]
        return RequestBatch(
            arrival_s=rows["arrival_s"].to_numpy(),
            input_tokens=rows["input_tokens"].to_numpy(dtype=np.int64),
            output_tokens=rows["output_tokens"].to_numpy(dtype=np.int64),
            block_hashes=hashes,
            block_tokens=None if hashes is None else MOONCAKE_BLOCK_TOKENS,
        )
    assert spec.input_tokens is not None and spec.output_tokens is not None
    if isinstance(arr, ClosedLoopArrivals):
        times = None
    else:
        times = arrival_times(arr, count, arrival_rng, rate_per_s)
    return RequestBatch(
        arrival_s=times,
        input_tokens=sample_lengths(spec.input_tokens, count, input_rng),
        output_tokens=sample_lengths(spec.output_tokens, count, output_rng),
    )


def _builtin_dir():
    return resources.files("factory_sim") / "data" / "workloads"


def _builtin_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _builtin_dir().iterdir() if p.name.endswith(".yaml"))


def load_workload(name_or_path: str) -> WorkloadSpec:
    """A built-in workload by name (see list_workloads) or a workload YAML file.

    A file without a `name` is named after the file.
    """
    names = _builtin_names()
    if name_or_path in names:
        text = (_builtin_dir() / f"{name_or_path}.yaml").read_text(encoding="utf-8")
        return _parse_workload(text, f"{name_or_path}.yaml", name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        close = difflib.get_close_matches(name_or_path, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            name_or_path,
            f"unknown workload{hint}; use one of {', '.join(names)} or a path to a workload YAML file",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(name_or_path, f"cannot read the file: {exc}") from None
    return _parse_workload(text, name_or_path, path.stem)


def _parse_workload(text: str, source: str, default_name: str) -> WorkloadSpec:
    data = parse_mapping(text, source, "a workload mapping with at least `arrivals:`")
    data.setdefault("name", default_name)
    return validate(WorkloadSpec, data, source)


def list_workloads() -> list[WorkloadSpec]:
    """Every built-in workload, by name."""
    return [load_workload(name) for name in _builtin_names()]


def workloads_table() -> pd.DataFrame:
    """What the built-in workloads are, side by side, for choosing one."""
    rows = [
        {
            "name": spec.name,
            "description": spec.description,
            "arrivals": spec.arrivals.kind,
            "rate_per_s": mean_rate_per_s(spec.arrivals),
            "mean_input_tokens": spec.mean_input_tokens(),
            "mean_output_tokens": spec.mean_output_tokens(),
        }
        for spec in list_workloads()
    ]
    return pd.DataFrame(rows)
