"""A factory's traces on disk: one Parquet partition per cell and time window.

A task writes its window's requests (those that arrived in it) to
`partitions/cell=NAME/window=K/part.parquet`, atomically (a temporary file, then a rename),
so a partition on disk is always whole. Readers take only the columns they need, and the
reductions here turn one partition into small sums and histograms, so that factory metrics
are computed without any process holding more than one partition.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from factory_sim.results.quantiles import LEVEL_BITS, answer, float_keys
from factory_sim.results.trace import DONE, FAILED, PENDING, REJECTED, TIMED_OUT

# (column, Arrow type); tenant, routed_from and pool are dictionary-encoded strings
SCHEMA = pa.schema([
    ("tenant", pa.dictionary(pa.int16(), pa.string())),
    ("step", pa.int32()),  # the front-door step the request arrived in
    ("routed_from", pa.dictionary(pa.int16(), pa.string())),  # the cell it was failed over from; "" if none
    ("arrival_s", pa.float64()),
    ("first_token_s", pa.float64()),
    ("finish_s", pa.float64()),
    ("ttft_s", pa.float64()),  # NaN unless done
    ("tpot_s", pa.float64()),  # NaN unless done with more than one output token
    ("input_tokens", pa.int32()),
    ("output_tokens", pa.int32()),
    ("outcome", pa.int8()),  # factory_sim.results.trace outcome codes
    ("reason", pa.int8()),
    ("retries", pa.int8()),
    ("met_slo", pa.bool_()),
    ("pool", pa.dictionary(pa.int16(), pa.string())),
])
LATENCIES = ("ttft_s", "tpot_s")


def partition_path(root: Path, cell: str, window: int) -> Path:
    return Path(root) / "partitions" / f"cell={cell}" / f"window={window}" / "part.parquet"


def dictionary(codes: np.ndarray, names: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int16)), pa.array(names, pa.string()))


def write_partition(path: Path, columns: dict[str, pa.Array | np.ndarray]) -> None:
    """Write one partition atomically: whole, or not at all."""
    table = pa.table({name: columns[name] for name in SCHEMA.names}, schema=SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _codes(table: pa.Table, name: str) -> tuple[np.ndarray, list[str]]:
    col = table.column(name).combine_chunks()
    if not isinstance(col, pa.DictionaryArray):
        col = col.dictionary_encode()
    return col.indices.to_numpy(zero_copy_only=False).astype(np.int64), col.dictionary.to_pylist()


SUM_COLUMNS = ("requests", "done", "rejected", "timed_out", "failed", "unfinished", "retried", "met_slo",
               "routed_in", "input_tokens_done", "output_tokens_done", "goodput_tokens", "ttft_s_count",
               "tpot_s_count")


@dataclass
class PartitionSummary:
    """What metrics need of one partition: per tenant, sums and latency histograms; per
    (tenant, step, routed_from), request counts (to check the front door's books)."""

    sums: dict[str, dict[str, float]] = field(default_factory=dict)  # tenant -> SUM_COLUMNS
    steps: list[tuple[str, int, str, int]] = field(default_factory=list)  # (tenant, step, routed_from, requests)
    level0: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # (tenant, latency)


def summarize_partition(path: Path) -> PartitionSummary:
    """One pass over a partition's columns that metrics need (not its times, reasons or pools)."""
    table = pq.read_table(path, columns=["tenant", "step", "routed_from", "outcome", "retries", "input_tokens",
                                         "output_tokens", "met_slo", *LATENCIES])
    out = PartitionSummary()
    if table.num_rows == 0:
        return out
    tenant, names = _codes(table, "tenant")
    routed, sources = _codes(table, "routed_from")
    step = table.column("step").to_numpy()
    outcome = table.column("outcome").to_numpy()
    met = table.column("met_slo").to_numpy(zero_copy_only=False)
    in_tok = table.column("input_tokens").to_numpy().astype(np.int64)
    out_tok = table.column("output_tokens").to_numpy().astype(np.int64)
    retries = table.column("retries").to_numpy()
    lat = {name: table.column(name).to_numpy() for name in LATENCIES}
    done = outcome == DONE
    k = len(names)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(tenant[mask], minlength=k)

    def total(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.bincount(tenant[mask], weights=values[mask], minlength=k)

    sums = {
        "requests": np.bincount(tenant, minlength=k),
        "done": count(done),
        "rejected": count(outcome == REJECTED),
        "timed_out": count(outcome == TIMED_OUT),
        "failed": count(outcome == FAILED),
        "unfinished": count(outcome == PENDING),
        "retried": count(retries > 0),
        "met_slo": count(met),
        "routed_in": count(routed != sources.index("") if "" in sources else np.ones_like(met)),
        "input_tokens_done": total(in_tok, done),
        "output_tokens_done": total(out_tok, done),
        "goodput_tokens": total(out_tok, met),
        "ttft_s_count": count(~np.isnan(lat["ttft_s"])),
        "tpot_s_count": count(~np.isnan(lat["tpot_s"])),
    }
    for code, name in enumerate(names):
        if sums["requests"][code]:
            out.sums[name] = {c: float(sums[c][code]) for c in SUM_COLUMNS}
    combined = (tenant * (len(sources) + 1) + routed) * (1 << 32) + (step.astype(np.int64) + (1 << 31))
    uniq, counts = np.unique(combined, return_counts=True)
    for value, n in zip(uniq.tolist(), counts.tolist(), strict=True):
        pair, s = divmod(value, 1 << 32)
        t, r = divmod(pair, len(sources) + 1)
        out.steps.append((names[t], s - (1 << 31), sources[r], n))
    for name in LATENCIES:
        for code, tname in enumerate(names):
            keys = _sorted_keys(lat[name], tenant == code)
            if keys.size:
                out.level0[(tname, name)] = answer(keys, 0, 0, LEVEL_BITS)
    return out


def _sorted_keys(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    v = values[mask]
    return np.sort(float_keys(v[~np.isnan(v)]))


def answer_partition(path: Path, queries: list[tuple[str, str, int, int, int | None]]) -> list:
    """Answer radix-selection queries (tenant, latency, prefix, bits, next_bits) on one partition."""
    needed = sorted({q[1] for q in queries})
    table = pq.read_table(path, columns=["tenant", *needed])
    tenant, names = _codes(table, "tenant")
    keys: dict[tuple[str, str], np.ndarray] = {}
    results = []
    for tname, latency, prefix, bits, next_bits in queries:
        if (tname, latency) not in keys:
            code = names.index(tname) if tname in names else -1
            keys[(tname, latency)] = _sorted_keys(table.column(latency).to_numpy(), tenant == code)
        results.append(answer(keys[(tname, latency)], prefix, bits, next_bits))
    return results
