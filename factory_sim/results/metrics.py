"""Latency, SLO attainment, goodput and throughput from a request trace.

Pure NumPy over the `Trace` columns, never SimPy: the numbers depend only on the trace, and
a ten-million-request run summarizes in about a second because nothing loops over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from factory_sim.config.experiment import SloTarget
from factory_sim.errors import ConfigError
from factory_sim.results.trace import DONE, FAILED, PENDING, REJECTED, TIMED_OUT, Trace

SUMMARY_KEYS: tuple[str, ...] = (
    "requests",
    "done",
    "rejected",
    "timed_out",
    "failed",
    "retried",
    "unfinished",
    "window_s",
    "offered_req_per_s",
    "ttft_mean_s",
    "ttft_p50_s",
    "ttft_p90_s",
    "ttft_p99_s",
    "tpot_mean_s",
    "tpot_p50_s",
    "tpot_p90_s",
    "tpot_p99_s",
    "e2e_mean_s",
    "e2e_p50_s",
    "e2e_p90_s",
    "e2e_p99_s",
    "slo_attainment",
    "output_tokens_per_s",
    "input_tokens_per_s",
    "tokens_per_s_per_gpu",
    "tokens_per_s_per_user_p50",
    "goodput_tokens_per_s",
    "goodput_req_per_s",
    "goodput_tokens_per_s_per_gpu",
    "prefix_hit_rate",
    "prefill_tokens_saved_per_s",
)

_PERCENTILES = (50.0, 90.0, 99.0)


SloLike = SloTarget | Sequence[SloTarget]


def latencies(trace: Trace) -> dict[str, np.ndarray]:
    """Per-request TTFT, TPOT, end-to-end latency and interactivity; NaN unless done.

    TPOT (and so interactivity) is also NaN for requests with a single output token, which
    have no inter-token gap to measure.
    """
    return _latencies(trace.done, trace.arrival_s, trace.first_token_s, trace.finish_s, trace.output_tokens)


def _latencies(
    done: np.ndarray, arrival: np.ndarray, first: np.ndarray, finish: np.ndarray, output_tokens: np.ndarray
) -> dict[str, np.ndarray]:
    gaps = output_tokens - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(done & (gaps > 0), (finish - first) / gaps, np.nan)
        interactivity = 1.0 / tpot
    return {
        "ttft_s": np.where(done, first - arrival, np.nan),
        "tpot_s": tpot,
        "e2e_s": np.where(done, finish - arrival, np.nan),
        "interactivity_tok_s_user": interactivity,
    }


def meets_slo(trace: Trace, slo: SloLike) -> np.ndarray:
    """Which requests met their SLO; a sequence of targets is indexed by `trace.slo_class`.

    Requests that were rejected, timed out or never finished do not meet it; a request with
    one output token meets the TPOT target vacuously.
    """
    return _meets(latencies(trace), trace.output_tokens, *_targets(trace, slo))


def measurement_window(
    trace: Trace, warmup_s: float = 0.0, cooldown_s: float = 0.0
) -> tuple[float, float]:
    """The closed span of arrival times that is measured, trimming start-up and drain.

    A request counts when its arrival falls in the window, whatever happened to it, so a
    queue that builds up late in the run still shows in the numbers.
    """
    for key, value in (("warmup_s", warmup_s), ("cooldown_s", cooldown_s)):
        if not value >= 0:
            raise ConfigError(key, f"must be a non-negative number of seconds, got {value!r}")
    arrival = trace.arrival_s
    if arrival.size == 0 or np.isnan(arrival).all():
        raise ConfigError(
            "workload", "the run produced no requests; lengthen it or raise the arrival rate"
        )
    first = float(np.nanmin(arrival))
    last = float(np.nanmax(arrival))
    start = first + warmup_s
    end = last - cooldown_s
    if start > end:
        raise ConfigError(
            "warmup_s",
            "warmup_s + cooldown_s leave no measurement window: the run's arrivals span "
            f"{last - first:.6g} s; make warmup_s + cooldown_s smaller than that",
        )
    if not np.any((arrival >= start) & (arrival <= end)):
        raise ConfigError(
            "warmup_s",
            f"no request arrives in the measurement window [{start:.6g}, {end:.6g}] s; "
            "make warmup_s or cooldown_s smaller",
        )
    return start, end


def summarize(
    trace: Trace,
    slo: SloLike,
    *,
    gpus: int,
    warmup_s: float = 0.0,
    cooldown_s: float = 0.0,
) -> dict[str, float]:
    """The headline numbers of a run, keyed by `SUMMARY_KEYS`.

    Throughputs count the tokens of done requests that arrived in the measurement window,
    divided by the window's length. When the window has no length (a single request, or
    all arrivals at one instant as in an offline benchmark), it stretches to the last
    finish of those requests; rates are 0 if nothing finished either.
    """
    scope = _Scope.build(trace, slo, warmup_s, cooldown_s)
    return scope.summary(np.ones(scope.outcome.size, dtype=bool), _check_gpus(gpus))


def summarize_by(
    trace: Trace,
    slo: SloLike,
    by: np.ndarray,
    names: list[str],
    *,
    gpus: int | Sequence[int],
    warmup_s: float = 0.0,
    cooldown_s: float = 0.0,
) -> pd.DataFrame:
    """`summarize` per group (pool, hardware kind, SLO class), one row per name.

    `by` holds a code per request into `names`; requests with any other code (-1 for one
    that never reached a pool) are in no row. All groups share the run's measurement
    window, so their throughputs add up to the run's. `gpus` is the run's GPU count for
    every group, or one count per group so that per-GPU numbers are per pool.
    """
    codes = np.asarray(by)
    if codes.shape != (len(trace),):
        raise ValueError(f"`by` needs one code per request ({len(trace)}), got shape {codes.shape}")
    if isinstance(gpus, (int, np.integer)):
        gpus_per_group = [int(gpus)] * len(names)
    else:
        gpus_per_group = list(gpus)
        if len(gpus_per_group) != len(names):
            raise ValueError(f"`gpus` needs one count per group ({len(names)}), got {len(gpus_per_group)}")
    scope = _Scope.build(trace, slo, warmup_s, cooldown_s)
    rows = [
        scope.summary(codes[scope.measured] == code, _check_gpus(group_gpus))
        for code, group_gpus in enumerate(gpus_per_group)
    ]
    return pd.DataFrame(rows, index=pd.Index(list(names), name="group"), columns=list(SUMMARY_KEYS))


@dataclass(frozen=True)
class _Scope:
    """What every group of one run shares: the window's length and, for each request that
    arrived in it, its outcome, tokens, latencies and SLO verdict. Nothing is computed for
    the requests outside the window."""

    measured: np.ndarray | slice  # which requests of the trace arrived in the window (a mask, or all)
    # the rest: one entry per measured request
    outcome: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    lat: dict[str, np.ndarray]
    meets: np.ndarray
    window_s: float
    retries: np.ndarray
    cached_tokens: np.ndarray

    @classmethod
    def build(cls, trace: Trace, slo: SloLike, warmup_s: float, cooldown_s: float) -> _Scope:
        start, end = measurement_window(trace, warmup_s, cooldown_s)
        arrival = trace.arrival_s
        in_window = (arrival >= start) & (arrival <= end)
        measured = slice(None) if in_window.all() else in_window  # a slice takes views, not copies
        ttft_max, tpot_max = _targets(trace, slo)
        outcome = trace.outcome[measured]
        output_tokens = trace.output_tokens[measured]
        finish = trace.finish_s[measured]
        done = outcome == DONE
        window_s = end - start
        if window_s == 0 and done.any():
            window_s = float(np.max(finish[done])) - start
        lat = _latencies(done, arrival[measured], trace.first_token_s[measured], finish, output_tokens)
        meets = _meets(lat, output_tokens, _measured(ttft_max, measured), _measured(tpot_max, measured))
        return cls(measured, outcome, trace.input_tokens[measured], output_tokens, lat, meets, float(window_s),
                   trace.retries[measured], trace.cached_tokens[measured])

    def summary(self, sel: np.ndarray, gpus: int) -> dict[str, float]:
        """The summary of the measured requests selected by `sel` (a mask over them)."""
        outcome = self.outcome
        done = sel & (outcome == DONE)
        multi = done & (self.output_tokens > 1)
        good = sel & self.meets
        requests = np.count_nonzero(sel)
        out_tokens = float(self.output_tokens[done].sum())
        in_tokens = float(self.input_tokens[done].sum())
        good_tokens = float(self.output_tokens[good].sum())
        good_requests = float(np.count_nonzero(good))
        interactivity = self.lat["interactivity_tok_s_user"][multi]

        result: dict[str, float] = {
            "requests": float(requests),
            "done": float(np.count_nonzero(done)),
            "rejected": float(np.count_nonzero(sel & (outcome == REJECTED))),
            "timed_out": float(np.count_nonzero(sel & (outcome == TIMED_OUT))),
            "failed": float(np.count_nonzero(sel & (outcome == FAILED))),
            "retried": float(np.count_nonzero(sel & (self.retries > 0))),
            "unfinished": float(np.count_nonzero(sel & (outcome == PENDING))),
            "window_s": self.window_s,
            "offered_req_per_s": self._per_s(requests),
        }
        result |= _stats("ttft", self.lat["ttft_s"][done])
        result |= _stats("tpot", self.lat["tpot_s"][multi])
        result |= _stats("e2e", self.lat["e2e_s"][done])
        output_tokens_per_s = self._per_s(out_tokens)
        goodput_tokens_per_s = self._per_s(good_tokens)
        result |= {
            "slo_attainment": good_requests / requests if requests else float("nan"),
            "output_tokens_per_s": output_tokens_per_s,
            "input_tokens_per_s": self._per_s(in_tokens),
            "tokens_per_s_per_gpu": output_tokens_per_s / gpus,
            "tokens_per_s_per_user_p50": (
                float(np.median(interactivity)) if interactivity.size else float("nan")
            ),
            "goodput_tokens_per_s": goodput_tokens_per_s,
            "goodput_req_per_s": self._per_s(good_requests),
            "goodput_tokens_per_s_per_gpu": goodput_tokens_per_s / gpus,
            # share of the served prompt tokens a prefix cache spared the prefill
            "prefix_hit_rate": float(self.cached_tokens[done].sum()) / in_tokens if in_tokens else 0.0,
            "prefill_tokens_saved_per_s": self._per_s(float(self.cached_tokens[done].sum())),
        }
        return result

    def _per_s(self, amount: float) -> float:
        return float(amount) / self.window_s if self.window_s > 0 else 0.0


def _stats(prefix: str, values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        mean = p50 = p90 = p99 = float("nan")
    else:
        mean = float(values.mean())
        p50, p90, p99 = (float(p) for p in np.percentile(values, _PERCENTILES))
    return {
        f"{prefix}_mean_s": mean,
        f"{prefix}_p50_s": p50,
        f"{prefix}_p90_s": p90,
        f"{prefix}_p99_s": p99,
    }


def _meets(lat: dict[str, np.ndarray], output_tokens: np.ndarray, ttft_max, tpot_max) -> np.ndarray:
    # NaN latencies (not done) compare False, so unfinished requests fail the TTFT test.
    ttft_ok = lat["ttft_s"] <= ttft_max
    tpot_ok = (output_tokens <= 1) | (lat["tpot_s"] <= tpot_max)
    return ttft_ok & tpot_ok


def _measured(target: float | np.ndarray, measured: np.ndarray | slice) -> float | np.ndarray:
    """A target for the measured requests: per request when targets differ by SLO class."""
    return target[measured] if isinstance(target, np.ndarray) else target


def _targets(trace: Trace, slo: SloLike) -> tuple[float | np.ndarray, float | np.ndarray]:
    if isinstance(slo, SloTarget):
        return slo.ttft_s, slo.tpot_s
    targets = list(slo)
    if not targets:
        raise ConfigError("slo", "give at least one SLO target")
    codes = trace.slo_class
    if codes.size:
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= len(targets):
            bad = low if low < 0 else high
            raise ConfigError(
                "slo",
                f"requests carry SLO class code {bad} but only {len(targets)} target(s) were "
                f"given ({', '.join(t.name for t in targets)}); give one target per class",
            )
    ttft = np.array([t.ttft_s for t in targets], dtype=float)
    tpot = np.array([t.tpot_s for t in targets], dtype=float)
    return ttft[codes], tpot[codes]


def _check_gpus(gpus: int) -> int:
    if not gpus > 0:
        raise ValueError(f"gpus must be a positive count, got {gpus!r}")
    return int(gpus)
