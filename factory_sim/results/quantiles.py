"""Exact percentiles of values spread over many partitions, without gathering them.

A factory's TTFTs are a billion numbers in hundreds of files; no process may hold them all.
Radix selection finds any order statistic exactly in a few passes over the files, each
returning only counts: every float64 maps to a 64-bit key that sorts as the float does;
a pass counts the keys sharing the prefix found so far by their next `LEVEL_BITS` bits, the
counts show which bin holds the wanted rank, and the prefix grows. Once a bin holds few
enough values (`GATHER_MAX`) they are fetched and the rank is picked among them. Percentiles
then interpolate between two order statistics exactly as `numpy.percentile` does, so the
result equals numpy's on the concatenated values, to the bit.

This module is pure NumPy: `fetch` (given by the caller) runs the queries on the partitions,
wherever they are.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL_BITS = 20  # bits a pass adds to the prefix: 2^20 bins at most, sparse (only bins that occur)
GATHER_MAX = 1 << 16  # fetch the values themselves once a bin holds no more than this many
_SIGN = np.uint64(1 << 63)


def float_keys(values: np.ndarray) -> np.ndarray:
    """Sortable uint64 keys of finite float64 values: a < b exactly when key(a) < key(b)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def key_floats(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.uint64)
    return np.where(keys & _SIGN, keys & ~_SIGN, ~keys).view(np.float64)


@dataclass(frozen=True)
class Query:
    """Of `unit`'s keys whose top `bits` bits equal `prefix`: a histogram of their top
    `next_bits` bits, or (next_bits None) the keys themselves."""

    unit: Hashable
    prefix: int
    bits: int
    next_bits: int | None


def answer(sorted_keys: np.ndarray, prefix: int, bits: int, next_bits: int | None):
    """Run one query on one unit's sorted keys: (bins, counts), or the matching keys."""
    if bits == 0:
        sub = sorted_keys
    else:
        lo = prefix << (64 - bits)
        hi = lo + (1 << (64 - bits)) - 1
        i0 = int(np.searchsorted(sorted_keys, np.uint64(lo), side="left"))
        i1 = int(np.searchsorted(sorted_keys, np.uint64(hi), side="right"))
        sub = sorted_keys[i0:i1]
    if next_bits is None:
        return sub.copy()
    bins = sub >> np.uint64(64 - next_bits) if next_bits < 64 else sub
    if bins.size == 0:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])  # sorted: runs of equal bins
    counts = np.diff(np.r_[starts, bins.size]).astype(np.int64)
    return bins[starts], counts


def merge_histograms(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum sparse histograms (bins, counts) into one, bins ascending."""
    parts = [p for p in parts if p[0].size]
    if not parts:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    bins = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    uniq, inverse = np.unique(bins, return_inverse=True)
    return uniq, np.bincount(inverse, weights=counts, minlength=uniq.size).astype(np.int64)


@dataclass
class _Search:
    units: tuple
    rank: int  # 0-based, among the keys with `prefix`
    prefix: int = 0
    bits: int = 0
    count: int = 0  # keys with `prefix`
    key: int | None = None


def select(units_of: dict[Hashable, Sequence[Hashable]], ranks: dict[Hashable, Sequence[int]],
           level0: dict[Hashable, tuple[np.ndarray, np.ndarray]],
           fetch: Callable[[list[Query]], dict[Query, object]]) -> dict[tuple[Hashable, int], float]:
    """The `rank`-th smallest value (0-based) of each group, for every rank asked.

    `units_of[group]`: the units whose values make up the group; `level0[unit]`: the unit's
    histogram of its keys' top LEVEL_BITS bits (from the pass that read it first); `fetch`
    answers a list of queries. Returns {(group, rank): value}.
    """
    searches = {(g, r): _Search(units=tuple(units_of[g]), rank=int(r)) for g, rs in ranks.items() for r in rs}
    hists = {g: merge_histograms([level0[u] for u in units_of[g] if u in level0]) for g in ranks}
    for (g, _), s in searches.items():
        _descend(s, *hists[g], LEVEL_BITS)
    while True:
        pending = [s for s in searches.values() if s.key is None]
        if not pending:
            break
        queries = {}
        for s in pending:
            nxt = None if _gather(s) else min(s.bits + LEVEL_BITS, 64)
            for u in s.units:
                queries[Query(u, s.prefix, s.bits, nxt)] = None
        answers = fetch(list(queries))
        for s in pending:
            nxt = None if _gather(s) else min(s.bits + LEVEL_BITS, 64)
            got = [answers[Query(u, s.prefix, s.bits, nxt)] for u in s.units]
            if nxt is None:
                keys = np.concatenate(got) if got else np.empty(0, dtype=np.uint64)
                s.key = int(np.partition(keys, s.rank)[s.rank])
            else:
                _descend(s, *merge_histograms(got), nxt)
    return {gr: float(key_floats(np.array([s.key], dtype=np.uint64))[0]) for gr, s in searches.items()}


def _gather(s: _Search) -> bool:
    return s.count <= GATHER_MAX


def _descend(s: _Search, bins: np.ndarray, counts: np.ndarray, bits: int) -> None:
    """Narrow the search to the bin holding its rank; settle it when the prefix is the whole key."""
    cum = np.cumsum(counts)
    i = int(np.searchsorted(cum, s.rank, side="right"))
    if i >= bins.size:
        raise ValueError(f"rank {s.rank} is beyond the {int(cum[-1]) if cum.size else 0} values of the group")
    s.rank -= int(cum[i - 1]) if i else 0
    s.prefix, s.bits = int(bins[i]), bits
    s.count = int(counts[i])
    if bits == 64:
        s.key = s.prefix


def percentile_ranks(n: int, percentiles: Sequence[float]) -> dict[float, tuple[int, int, float]]:
    """For each percentile: (lower rank, upper rank, weight) as numpy.percentile's linear
    method interpolates between two order statistics of n values."""
    out = {}
    for p in percentiles:
        virtual = (n - 1) * np.true_divide(p, 100)
        lo = int(np.floor(virtual))
        out[p] = (lo, min(lo + 1, n - 1), float(virtual - lo))
    return out


def interpolate(a: float, b: float, gamma: float) -> float:
    """numpy.percentile's interpolation between neighbours a <= b (its `_lerp`, to the bit)."""
    a64, b64, t = np.float64(a), np.float64(b), np.float64(gamma)
    diff = b64 - a64
    return float(b64 - diff * (1 - t)) if t >= 0.5 else float(a64 + diff * t)


def exact_percentiles(units_of: dict[Hashable, Sequence[Hashable]], counts: dict[Hashable, int],
                      level0: dict[Hashable, tuple[np.ndarray, np.ndarray]],
                      fetch: Callable[[list[Query]], dict[Query, object]],
                      percentiles: Sequence[float] = (50.0, 90.0, 99.0)) -> dict[Hashable, dict[float, float]]:
    """{group: {percentile: value}} equal to numpy.percentile over each group's values
    (NaN for an empty group). `counts[group]` is how many values the group has."""
    plans = {g: percentile_ranks(counts[g], percentiles) for g in units_of if counts[g] > 0}
    ranks = {g: sorted({r for lo, hi, _ in plan.values() for r in (lo, hi)}) for g, plan in plans.items()}
    values = select({g: units_of[g] for g in plans}, ranks, level0, fetch)
    out: dict[Hashable, dict[float, float]] = {}
    for g in units_of:
        if g not in plans:
            out[g] = {p: float("nan") for p in percentiles}
            continue
        out[g] = {p: interpolate(values[(g, lo)], values[(g, hi)], gamma) for p, (lo, hi, gamma) in plans[g].items()}
    return out
