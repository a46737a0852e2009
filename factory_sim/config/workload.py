"""Workload schemas: who sends what, and when, as the YAML says it.

A WorkloadSpec pairs an arrival process with input/output length distributions (or a real
trace that supplies both). Multi-turn sessions are an arrival process too. The samplers
that turn these into requests are in factory_sim/workload/; validating a trace reference
looks it up in the catalog; whether a replayed trace holds enough requests is checked
when an experiment is assembled (studies/assemble.py), where its request count is known.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from factory_sim.catalog import builtin_names, load, resolve
from factory_sim.config.bounds import (
    MAX_REQUESTS,
    MAX_SIM_S,
    REQUESTS,
    SIM_TIME,
    Rate,
    Seconds,
    Tokens,
    within,
)
from factory_sim.errors import ConfigError

# Nominal lengths are drawn from a share of the nominal; 10x nominal is no nominal any more.
_NominalFraction = Annotated[float, within(0, 10, "a multiple of the nominal length", above=True)]

# Turns one session may have (estimate: agentic coding sessions run tens to a few hundred
# tool-call steps; a thousand is beyond them). All turns of 1024 sessions are drawn at once.
MAX_TURNS = 1000

# Blocks per session in the hash space: hash = session * HASH_STRIDE + block + 1, so a
# session's blocks never collide with another session's while the context fits in
# HASH_STRIDE - 1 blocks (checked when the config is validated).
HASH_STRIDE = 2**24


class FixedLength(BaseModel):
    """Every request has the same length, as in fixed-ISL/OSL benchmark sweeps."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["fixed"] = "fixed"
    tokens: Tokens


class UniformLength(BaseModel):
    """Whole numbers drawn uniformly from [low, high], both ends included."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["uniform"] = "uniform"
    low: Tokens
    high: Tokens

    @model_validator(mode="after")
    def _ordered(self) -> UniformLength:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class NominalLength(BaseModel):
    """InferenceMAX/InferenceX style: a nominal length with each request drawn uniformly
    from low_fraction..high_fraction of it, so the realised mean is below nominal
    (about 0.9x with the default 80-100%)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["nominal"] = "nominal"
    tokens: Tokens
    low_fraction: _NominalFraction = 0.8
    high_fraction: _NominalFraction = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> NominalLength:
        if self.high_fraction < self.low_fraction:
            raise ValueError(
                f"high_fraction ({self.high_fraction}) must be >= low_fraction ({self.low_fraction})"
            )
        return self

    def bounds(self) -> tuple[int, int]:
        """Inclusive whole-token range the draws come from."""
        low = max(1, round(self.low_fraction * self.tokens))
        high = max(low, round(self.high_fraction * self.tokens))
        return low, high


class LognormalLength(BaseModel):
    """Right-skewed lengths (chat and reasoning outputs). `mean` is the arithmetic mean of
    the uncapped distribution and `sigma` the standard deviation of log(length); draws
    above `max_tokens` are cut to it, as a generation limit does."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["lognormal"] = "lognormal"
    mean: Annotated[float, within(1, 2**24, "tokens; the mean of a length is at least one token")]
    sigma: Annotated[float, within(0, 5, "log-space spread; at 5 the mean is 270,000x the median, beyond any "
                                         "measured length distribution", above=True)]
    max_tokens: Tokens | None = None

    @property
    def mu(self) -> float:
        """Location of log(length) that gives the requested arithmetic mean."""
        return float(np.log(self.mean) - self.sigma**2 / 2)


class EmpiricalLength(BaseModel):
    """Resample (with replacement) the lengths of a real trace, keeping its exact shape."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["empirical"] = "empirical"
    trace: str
    column: Literal["input", "output"]
    max_tokens: Tokens | None = None

    @field_validator("trace")
    @classmethod
    def _known_trace(cls, value: str) -> str:
        return check_trace_ref(value)


LengthDist = Annotated[
    FixedLength | UniformLength | NominalLength | LognormalLength | EmpiricalLength,
    Field(discriminator="kind"),
]


class SessionArrivals(BaseModel):
    """Sessions start as a Poisson process (`rate_per_s` sessions per second); each has
    `turns` turns, `think_time_s` apart (from one turn's finish to the next one's arrival).

    A turn's prompt is the previous turn's prompt and answer plus new tokens from the
    workload's `input_tokens`; the first turn's is `system_prompt_tokens` (shared by every
    session) plus new tokens. A session ends early when its next prompt would exceed
    `max_context_tokens`. `block_tokens` is the KV block size the prompt hashes use.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["sessions"] = "sessions"
    rate_per_s: Rate = Field(description="sessions started per second")
    turns: LengthDist
    system_prompt_tokens: Annotated[int, within(0, 2**24, "tokens; beyond the longest context published")] = 0
    think_time_s: Seconds = 0.0
    think_distribution: Literal["exponential", "fixed"] = "exponential"
    # 131,072 tokens: max_position_embeddings of Llama-3.1, Kimi K2 and gpt-oss-120b (their
    # config.json; see factory_sim/data/models). Set it to the served model's window.
    max_context_tokens: Tokens = 131072
    block_tokens: Annotated[int, within(1, 65536, "tokens per KV block; engines use 16 to 512")] = 64

    @model_validator(mode="after")
    def _turns_bounded(self) -> SessionArrivals:
        t = self.turns
        most = {"fixed": lambda: t.tokens, "uniform": lambda: t.high, "nominal": lambda: t.bounds()[1]}.get(
            t.kind, lambda: t.max_tokens)()
        if most is None:
            raise ValueError(f"turns: a {t.kind} number of turns needs max_tokens (the most turns of a session, "
                             f"at most {MAX_TURNS:,})")
        if most > MAX_TURNS:
            raise ValueError(f"turns: a session may have at most {MAX_TURNS:,} turns (agentic sessions run tens to "
                             f"a few hundred steps; every session's turns are drawn at once), got up to {most:,}")
        return self

    @model_validator(mode="after")
    def _fits(self) -> SessionArrivals:
        if self.system_prompt_tokens >= self.max_context_tokens:
            raise ValueError(
                f"system_prompt_tokens ({self.system_prompt_tokens}) must be below "
                f"max_context_tokens ({self.max_context_tokens}), or no turn has room for new tokens"
            )
        if math.ceil(self.max_context_tokens / self.block_tokens) >= HASH_STRIDE:
            raise ValueError(
                f"block_tokens ({self.block_tokens}) is too small for max_context_tokens "
                f"({self.max_context_tokens}): a prompt may span at most {HASH_STRIDE - 1} blocks"
            )
        return self


class PoissonArrivals(BaseModel):
    """Independent users: exponential gaps (MLPerf Server's arrival model)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["poisson"] = "poisson"
    rate_per_s: Rate


class GammaArrivals(BaseModel):
    """Bursty traffic: gamma-distributed gaps with coefficient of variation `cv`
    (cv = 1 is Poisson, cv > 1 burstier, cv < 1 more regular)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["gamma"] = "gamma"
    rate_per_s: Rate
    cv: Annotated[float, within(0.01, 100, "coefficient of variation of the gaps; outside 0.01-100 the gamma "
                                           "draws underflow to zero gaps or one giant one")]


class DiurnalArrivals(BaseModel):
    """A day's traffic: Poisson arrivals whose rate follows a cosine from
    `trough_rate_per_s` at `trough_at_s` (and every `period_s` after it) up to
    `peak_rate_per_s` half a period later. The mean rate is (peak + trough) / 2.

    rate(t) = trough + (peak - trough) * (1 - cos(2 pi (t - trough_at_s) / period_s)) / 2
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["diurnal"] = "diurnal"
    peak_rate_per_s: Rate
    trough_rate_per_s: Annotated[float, within(0, 1e7, "requests per second; 0 is an idle trough")]
    period_s: Annotated[float, within(1, MAX_SIM_S, SIM_TIME)] = 86400.0
    trough_at_s: Annotated[float, within(-MAX_SIM_S, MAX_SIM_S, SIM_TIME)] = 0.0

    @model_validator(mode="after")
    def _peak_above_trough(self) -> DiurnalArrivals:
        if self.peak_rate_per_s < self.trough_rate_per_s:
            raise ValueError(
                f"peak_rate_per_s ({self.peak_rate_per_s}) must be >= "
                f"trough_rate_per_s ({self.trough_rate_per_s})"
            )
        return self

    @property
    def rate_per_s(self) -> float:
        """The mean rate over a period, so code that asks any open-loop process for its
        rate gets the offered load."""
        return (self.peak_rate_per_s + self.trough_rate_per_s) / 2


class ClosedLoopArrivals(BaseModel):
    """A fixed number of clients, each sending its next request `think_time_s` after its
    previous one finished, as benchmark harnesses do. Arrival times depend on the
    simulated latencies, so the simulation engine generates them."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["closed_loop"] = "closed_loop"
    concurrency: Annotated[int, within(1, MAX_REQUESTS, "clients; each holds a request of the run")]
    think_time_s: Seconds = 0.0


class TraceArrivals(BaseModel):
    """Replay a real trace's timestamps (from its first request), divided by `time_scale`
    (2 = twice as fast). `use_lengths` also takes each request's input/output lengths from
    the trace. `loop` repeats the trace back to back when more requests are asked for than
    it holds, one mean gap apart."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    kind: Literal["trace"] = "trace"
    trace: str
    time_scale: Annotated[float, within(1e-4, 1e6, "speed-up of the trace's clock; outside this range its "
                                                   "hour spans years or arrivals closer than microseconds")] = 1.0
    use_lengths: bool = True
    loop: bool = False

    @field_validator("trace")
    @classmethod
    def _known_trace(cls, value: str) -> str:
        return check_trace_ref(value)


Arrivals = Annotated[
    PoissonArrivals | GammaArrivals | DiurnalArrivals | ClosedLoopArrivals | TraceArrivals | SessionArrivals,
    Field(discriminator="kind"),
]


class WorkloadSpec(BaseModel):
    """One workload. Lengths are required unless a trace replay supplies them."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = "custom"
    description: str = ""
    arrivals: Arrivals
    input_tokens: LengthDist | None = Field(default=None, validate_default=True)
    output_tokens: LengthDist | None = Field(default=None, validate_default=True)
    requests: Annotated[int, within(1, MAX_REQUESTS, REQUESTS)] = 2000
    # greedy: the most likely token, as the benchmarks the stack profiles were fitted to decode;
    # stochastic: sampled at a temperature above 0, as chat traffic is, priced by the stack's
    # stochastic_sampling_step_s on every step
    sampling: Literal["greedy", "stochastic"] = "greedy"

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



def load_workload(name_or_path: str | Path) -> WorkloadSpec:
    """A built-in workload by name or a workload YAML file (named after the file if it has no `name`)."""
    return load("workload", name_or_path, WorkloadSpec, name_from_file=True)


def list_workloads() -> list[WorkloadSpec]:
    return [load_workload(n) for n in builtin_names("workload")]


def check_trace_ref(name_or_path: str) -> str:
    """A trace that names neither a built-in nor a file fails at validation, against the field that names it."""
    try:
        resolve("trace", name_or_path)
    except ConfigError as exc:
        raise ValueError(exc.message) from None
    return name_or_path
