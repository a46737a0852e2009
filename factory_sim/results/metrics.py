"""Latency, SLO attainment, goodput and throughput from a request trace.

Pure NumPy over the `Trace` columns, never SimPy: the numbers depend only on the trace, and
a ten-million-request run summarizes in about a second because nothing loops over rows.

Rates are the measured requests' tokens over their arrival window while the fleet keeps up
with them. A fleet that does not (an unbounded queue under overload) serves its backlog
long after the window: its rates are then what it served while serving those requests,
and the summary says it never reached steady state (`steady_state` 0), as it does for a
run whose arrivals end before its median request is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from factory_sim.config.experiment import SloTarget
from factory_sim.errors import ConfigError
from factory_sim.results.trace import DONE, FAILED, PENDING, REJECTED, TIMED_OUT, Trace

if TYPE_CHECKING:  # pandas is imported where a frame is built: a simulation alone never needs it
    import pandas as pd

SUMMARY_KEYS: tuple[str, ...] = (
    "requests",
    "done",
    "rejected",
    "timed_out",
    "failed",
    "retried",
    "unfinished",
    "window_s",
    "steady_state",
    "served_rate_ratio",
    "ttft_growth",
    "rate_interval_s",
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

# The served interval of a run is the span over which the middle 80% of its measured requests
# finished: the fleet was serving them throughout, while the first and last few overlap the
# run's ramp-up and drain (its percentiles, as np.percentile takes them).
SERVED_INTERVAL_PERCENTILES = (10.0, 90.0)
# A fleet falls behind its measured requests when both of two estimates of its overload say
# so. Over their served interval it emits less than this share of the output tokens per
# second they brought in their arrival window: a fleet at n times its capacity shows about
# 1/n (0.02-0.04 at 10x), while runs that keep up show 0.93-1.09 on every shipped experiment
# (sampling, and the ramps of diurnal and session traffic), but also far less when their
# requests are served after the arrivals end (a run hardly longer than its latency). And
# their time to first token grows along the window by more than MIN_TTFT_GROWTH seconds per
# second of arrivals, as a queue fed n times faster than it drains grows by n - 1: a fleet
# that keeps up shows none. Both thresholds mean the same overload, 1.25x; they are a
# convention of this tool, not measured constants.
STEADY_MIN_SERVED_RATIO = 0.8
MIN_TTFT_GROWTH = 1 / STEADY_MIN_SERVED_RATIO - 1
# Measured requests needed to judge either (a third of them on each side of the window).
_MIN_TO_JUDGE = 6


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

    When the fleet fell behind (see STEADY_MIN_SERVED_RATIO), every rate but the offered one
    is instead what the fleet served over the measured requests' served interval, and
    `steady_state` is 0; it is 0 too, with the rates over the window, when the run's arrivals
    span less than its median request takes (the run ended before the fleet filled).
    `rate_interval_s` is the length the rates are over either way.
    """
    scope = _Scope.build(trace, slo, warmup_s, cooldown_s)
    return scope.summary(None, _check_gpus(gpus))


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
    import pandas as pd

    scope = _Scope.build(trace, slo, warmup_s, cooldown_s)
    rows = [
        scope.summary(codes == code, _check_gpus(group_gpus))
        for code, group_gpus in enumerate(gpus_per_group)
    ]
    return pd.DataFrame(rows, index=pd.Index(list(names), name="group"), columns=list(SUMMARY_KEYS))


@dataclass(frozen=True)
class _Scope:
    """What every group of one run shares: the window's length and, for each request that
    arrived in it, its outcome, tokens, latencies and SLO verdict; and, when the fleet did not
    keep up, the served interval whose tokens the rates count instead."""

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
    served: _Served | None  # None: the fleet kept up (or served nothing), rates are over the window
    served_rate_ratio: float
    ended_before_filled: bool  # arrivals spanned less than the median request took: no steady state
    ttft_growth: float

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
        served, ratio, short, growth = None, float("nan"), False, float("nan")
        lat = _latencies(done, arrival[measured], trace.first_token_s[measured], finish, output_tokens)
        if window_s == 0 and done.any():  # the window already spans the time the requests were served
            window_s = float(np.max(finish[done])) - start
        else:
            growth = ttft_growth(trace, measured)
            served, ratio = _Served.check(trace, measured, float(output_tokens[done].sum()), float(window_s),
                                          growth, ttft_max, tpot_max)
            if done.any():
                span_s = float(np.nanmax(arrival) - np.nanmin(arrival))
                short = bool(np.median(lat["e2e_s"][done]) > span_s)
        meets = _meets(lat, output_tokens, _measured(ttft_max, measured), _measured(tpot_max, measured))
        return cls(measured, outcome, trace.input_tokens[measured], output_tokens, lat, meets, float(window_s),
                   trace.retries[measured], trace.cached_tokens[measured], served, ratio, short, growth)

    def summary(self, group: np.ndarray | None, gpus: int) -> dict[str, float]:
        """The summary of the requests in `group` (a mask over the whole trace; None: all)."""
        sel = np.ones(self.outcome.size, dtype=bool) if group is None else group[self.measured]
        outcome = self.outcome
        done = sel & (outcome == DONE)
        multi = done & (self.output_tokens > 1)
        good = sel & self.meets
        requests = np.count_nonzero(sel)
        out_tokens = float(self.output_tokens[done].sum())
        in_tokens = float(self.input_tokens[done].sum())
        good_tokens = float(self.output_tokens[good].sum())
        good_requests = float(np.count_nonzero(good))
        cached_tokens = float(self.cached_tokens[done].sum())
        interactivity = self.lat["interactivity_tok_s_user"][multi]
        served = self.served
        if served is not None:  # what the fleet served over the served interval, not what arrived
            out_tokens, in_tokens, good_tokens, good_requests, cached_tokens = served.amounts(group)

        result: dict[str, float] = {
            "requests": float(requests),
            "done": float(np.count_nonzero(done)),
            "rejected": float(np.count_nonzero(sel & (outcome == REJECTED))),
            "timed_out": float(np.count_nonzero(sel & (outcome == TIMED_OUT))),
            "failed": float(np.count_nonzero(sel & (outcome == FAILED))),
            "retried": float(np.count_nonzero(sel & (self.retries > 0))),
            "unfinished": float(np.count_nonzero(sel & (outcome == PENDING))),
            "window_s": self.window_s,
            "steady_state": 0.0 if served is not None or self.ended_before_filled else 1.0,
            "served_rate_ratio": self.served_rate_ratio,
            "ttft_growth": self.ttft_growth,
            "rate_interval_s": served.length_s if served is not None else self.window_s,
            "offered_req_per_s": float(requests) / self.window_s if self.window_s > 0 else 0.0,
        }
        result |= _stats("ttft", self.lat["ttft_s"][done])
        result |= _stats("tpot", self.lat["tpot_s"][multi])
        result |= _stats("e2e", self.lat["e2e_s"][done])
        output_tokens_per_s = self._per_s(out_tokens)
        goodput_tokens_per_s = self._per_s(good_tokens)
        result |= {
            "slo_attainment": float(np.count_nonzero(good)) / requests if requests else float("nan"),
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
            "prefix_hit_rate": cached_tokens / in_tokens if in_tokens else 0.0,
            "prefill_tokens_saved_per_s": self._per_s(cached_tokens),
        }
        return result

    def _per_s(self, amount: float) -> float:
        interval_s = self.served.length_s if self.served is not None else self.window_s
        return float(amount) / interval_s if interval_s > 0 else 0.0


@dataclass(frozen=True)
class _Served:
    """The served interval of a fleet that did not keep up, and what it served in it.

    Tokens are counted when they were produced: a request's first output token at its first
    token, the others evenly from then to its finish; its prompt tokens evenly over its
    prefill. A request counts toward goodput requests when it finishes in the interval.
    Every request of the trace counts, measured or not: in the interval the fleet served the
    backlog the measured requests queued behind, and the requests that queued behind them.
    """

    from_s: float
    to_s: float
    output_tokens: np.ndarray  # per request of the trace, produced in the interval
    input_tokens: np.ndarray
    cached_tokens: np.ndarray
    finished: np.ndarray  # per request: done, and finished in the interval
    meets: np.ndarray  # per request of the trace: met its SLO

    @property
    def length_s(self) -> float:
        return self.to_s - self.from_s

    @classmethod
    def check(cls, trace: Trace, measured: np.ndarray | slice, measured_output_tokens: float, window_s: float,
              growth: float, ttft_max, tpot_max) -> tuple[_Served | None, float]:
        """(the served interval if the fleet did not keep up, else None; the ratio of the output
        tokens per second it served then to those the measured requests brought per second)."""
        done = trace.done
        measured_done = done[measured]
        if not measured_done.any() or not window_s > 0 or not measured_output_tokens > 0:
            return None, float("nan")  # nothing served: nothing to compare
        from_s, to_s = served_interval(trace, measured)
        if not to_s > from_s:
            return None, float("nan")
        output = served_output_tokens(trace, from_s, to_s)
        ratio = float(output.sum()) / (to_s - from_s) / (measured_output_tokens / window_s)
        if ratio >= STEADY_MIN_SERVED_RATIO or not growth > MIN_TTFT_GROWTH:
            return None, ratio
        prefill = _spread(trace.prefill_start_s, trace.prefill_end_s, from_s, to_s) * done
        with np.errstate(invalid="ignore"):
            finished = done & (trace.finish_s >= from_s) & (trace.finish_s <= to_s)
        meets = _meets(latencies(trace), trace.output_tokens, ttft_max, tpot_max)
        return cls(from_s, to_s, output, trace.input_tokens * prefill, trace.cached_tokens * prefill,
                   finished, meets), ratio

    def amounts(self, group: np.ndarray | None) -> tuple[float, float, float, float, float]:
        """Output, input, goodput output tokens, goodput requests and cache-spared prompt tokens
        the fleet served in the interval, of the requests in `group` (None: all)."""
        sel = slice(None) if group is None else group
        output, meets = self.output_tokens[sel], self.meets[sel]
        return (float(output.sum()), float(self.input_tokens[sel].sum()), float(output[meets].sum()),
                float(np.count_nonzero(self.finished[sel] & meets)), float(self.cached_tokens[sel].sum()))


def ttft_growth(trace: Trace, measured: np.ndarray | slice) -> float:
    """Seconds the time to first token grew per second of arrivals across the measured done
    requests: between the medians of their first and last thirds (by arrival). NaN when too
    few requests or no arrival span to tell."""
    done = trace.done[measured]
    arrival = trace.arrival_s[measured][done]
    if arrival.size < _MIN_TO_JUDGE:
        return float("nan")
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order]
    ttft = (trace.first_token_s[measured][done] - trace.arrival_s[measured][done])[order]
    third = arrival.size // 3
    span = float(np.median(arrival[-third:]) - np.median(arrival[:third]))
    if not span > 0:
        return float("nan")
    return float(np.median(ttft[-third:]) - np.median(ttft[:third])) / span


def served_interval(trace: Trace, measured: np.ndarray | slice) -> tuple[float, float]:
    """When the measured requests were served: the span over which the middle of them finished
    (SERVED_INTERVAL_PERCENTILES); when those finish together (a few requests, one batch), from
    their first first token to their last finish."""
    done = trace.done
    finish = trace.finish_s[measured][done[measured]]
    from_s, to_s = (float(t) for t in np.percentile(finish, SERVED_INTERVAL_PERCENTILES))
    if not to_s > from_s:
        from_s, to_s = float(np.min(trace.first_token_s[measured][done[measured]])), float(finish.max())
    return from_s, to_s


def served_output_tokens(trace: Trace, from_s: float, to_s: float) -> np.ndarray:
    """Per request, the output tokens produced in [from_s, to_s]: the first at its first-token
    time, the others evenly over its decode up to its finish. Only done requests count."""
    done = trace.done
    first, finish = trace.first_token_s, trace.finish_s
    with np.errstate(invalid="ignore"):
        first_in = done & (first >= from_s) & (first <= to_s)
    rest = np.where(done, trace.output_tokens - 1, 0) * _spread(first, finish, from_s, to_s)
    return np.where(first_in, 1.0, 0.0) + np.where(done, rest, 0.0)


def _spread(begin: np.ndarray, end: np.ndarray, from_s: float, to_s: float) -> np.ndarray:
    """Share of each [begin, end] inside [from_s, to_s]; an instant counts whole if inside. 0 where NaN."""
    with np.errstate(invalid="ignore"):
        length = end - begin
        overlap = np.clip(np.minimum(end, to_s) - np.maximum(begin, from_s), 0.0, None)
        share = np.where(length > 0, overlap / np.where(length > 0, length, 1.0),
                         ((end >= from_s) & (end <= to_s)).astype(float))
    return np.nan_to_num(share, nan=0.0)


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
