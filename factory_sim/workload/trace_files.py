"""Real request traces: load them into one schema so every replay and resample looks alike.

Two file schemas are read:

- Azure LLM inference traces (``.csv`` / ``.csv.gz``): columns TIMESTAMP (a date-time),
  ContextTokens and GeneratedTokens.
- Mooncake traces (``.jsonl`` / ``.jsonl.gz``): one JSON object per line with timestamp
  (milliseconds), input_length, output_length and optionally hash_ids (the prefix KV blocks;
  equal ids mean a reusable prefix).

Built-in copies of four public traces ship in ``factory_sim/data/traces`` (see the README
there for licenses and attribution).
"""

from __future__ import annotations

import math
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from factory_sim.catalog import builtin_names, builtin_path, resolve
from factory_sim.errors import ConfigError

if TYPE_CHECKING:  # pandas is imported when a trace is read: a run without one never needs it
    import pandas as pd

_CSV_SUFFIXES = (".csv", ".csv.gz")
_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")


def list_traces() -> list[str]:
    """Names accepted wherever a trace is asked for, besides a file path."""
    return builtin_names("trace")


def load_trace(name_or_path: str) -> pd.DataFrame:
    """One row per request, sorted by arrival.

    Columns: ``arrival_s`` (float seconds from the first request), ``input_tokens`` and
    ``output_tokens`` (int64), and ``hash_ids`` (list of ints) where the file has them.
    A request always has at least one prompt token and generates at least one token, so
    rows with 0 input or 0 output tokens are clamped to 1. Built-in traces and files are
    cached; every call returns a fresh copy the caller may modify.
    """
    if name_or_path in list_traces():
        cached = _load_builtin(name_or_path)
    else:
        check = _file_key(name_or_path)
        cached = _load_file_cached(*check)
    return _copy(cached)


def _file_key(name_or_path: str) -> tuple[str, int, int]:
    """Cache key that changes when the file does, so an edited trace is re-read."""
    _, file, _ = resolve("trace", name_or_path, field=str(name_or_path))
    path = Path(file).resolve()
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def _copy(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy(deep=True)
    if "hash_ids" in out.columns:
        out["hash_ids"] = [list(ids) for ids in df["hash_ids"]]
    return out


@cache
def _load_builtin(name: str) -> pd.DataFrame:
    return _parse(builtin_path("trace", name), label=name)


@lru_cache(maxsize=8)
def _load_file_cached(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    return _parse(Path(path), label=Path(path).name)


def _parse(path: Path, label: str) -> pd.DataFrame:
    import pandas as pd

    if path.name.endswith(_CSV_SUFFIXES):
        arrival_s, input_tokens, output_tokens, hash_ids = _parse_azure_csv(path, label)
    else:
        arrival_s, input_tokens, output_tokens, hash_ids = _parse_mooncake_jsonl(path, label)
    df = pd.DataFrame(
        {
            "arrival_s": arrival_s - arrival_s.min(),
            "input_tokens": np.maximum(input_tokens, 1),
            "output_tokens": np.maximum(output_tokens, 1),
        }
    )
    if hash_ids is not None:
        df["hash_ids"] = hash_ids
    return df.sort_values("arrival_s", kind="stable").reset_index(drop=True)


def _parse_azure_csv(
    path: Path, label: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, None]:
    import pandas as pd

    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise ConfigError(
            f"{label}:1", f"the file is empty; expected a header {','.join(_AZURE_COLUMNS)}"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(label, f"cannot read as CSV: {exc}") from None
    missing = [c for c in _AZURE_COLUMNS if c not in raw.columns]
    if missing:
        raise ConfigError(
            f"{label}:1",
            f"missing column(s) {', '.join(missing)}; the header must name {', '.join(_AZURE_COLUMNS)}",
        )
    if raw.empty:
        raise ConfigError(f"{label}:2", "the file has a header but no requests")
    # Line numbers: the header is line 1, so row i is on line i + 2.
    stamps = pd.to_datetime(raw["TIMESTAMP"].str.strip(), format="ISO8601", errors="coerce")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise ConfigError(
            f"{label}:{i + 2}",
            f"TIMESTAMP {raw['TIMESTAMP'].iloc[i]!r} is not a date-time (expected e.g. 2023-11-16 18:17:03.98)",
        )
    arrival_s = (stamps - stamps.min()).dt.total_seconds().to_numpy(dtype=np.float64)
    input_tokens = _whole_numbers(raw["ContextTokens"], "ContextTokens", label, first_line=2)
    output_tokens = _whole_numbers(raw["GeneratedTokens"], "GeneratedTokens", label, first_line=2)
    return arrival_s, input_tokens, output_tokens, None


def _whole_numbers(column: pd.Series, name: str, label: str, first_line: int) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(column.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    whole = np.isfinite(values) & (values == np.round(values))
    bad = np.flatnonzero(~whole)
    if bad.size:
        i = int(bad[0])
        raise ConfigError(
            f"{label}:{i + first_line}", f"{name} is not a whole number (got {column.iloc[i]!r})"
        )
    negative = np.flatnonzero(values < 0)
    if negative.size:
        i = int(negative[0])
        raise ConfigError(
            f"{label}:{i + first_line}",
            f"{name} is negative (got {column.iloc[i]!r}); token counts must be >= 0",
        )
    return values.astype(np.int64)


def _parse_mooncake_jsonl(
    path: Path, label: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[int]] | None]:
    import gzip
    import json

    opener = gzip.open if path.name.endswith(".gz") else open
    timestamps: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    hash_ids: list[list[int]] = []
    hash_line: int | None = None  # first line that had hash_ids, to report inconsistency
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{label}:{line_no}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(
                        where, f"malformed JSON ({exc.msg} at column {exc.colno})"
                    ) from None
                if not isinstance(record, dict):
                    raise ConfigError(
                        where, "each line must be a JSON object with " + ", ".join(_MOONCAKE_KEYS)
                    )
                missing = [k for k in _MOONCAKE_KEYS if k not in record]
                if missing:
                    raise ConfigError(
                        where,
                        f"missing key(s) {', '.join(missing)}; "
                        f"each line needs {', '.join(_MOONCAKE_KEYS)}",
                    )
                timestamps.append(_json_number(record, "timestamp", where, whole=False))
                inputs.append(int(_json_number(record, "input_length", where, whole=True)))
                outputs.append(int(_json_number(record, "output_length", where, whole=True)))
                if "hash_ids" in record:
                    if hash_line is None:
                        if len(timestamps) > 1:
                            raise ConfigError(
                                where,
                                "hash_ids appears here but not on earlier lines; "
                                "give it on every line or none",
                            )
                        hash_line = line_no
                    hash_ids.append(_json_hash_ids(record["hash_ids"], where))
                elif hash_line is not None:
                    raise ConfigError(
                        where,
                        f"missing hash_ids (line {hash_line} has them); give it on every line or none",
                    )
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ConfigError(label, f"cannot read as JSON lines: {exc}") from None
    if not timestamps:
        raise ConfigError(f"{label}:1", "the file is empty; expected one JSON object per line")
    return (
        np.asarray(timestamps, dtype=np.float64) / 1000.0,
        np.asarray(inputs, dtype=np.int64),
        np.asarray(outputs, dtype=np.int64),
        hash_ids if hash_line is not None else None,
    )


def _json_number(record: dict, key: str, where: str, whole: bool) -> float:
    value = record[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (whole and value != round(value)):
        kind = "a whole number" if whole else "a number"
        raise ConfigError(where, f"{key} is not {kind} (got {value!r})")
    if value < 0:
        raise ConfigError(where, f"{key} is negative (got {value!r}); it must be >= 0")
    return float(value)


def _json_hash_ids(value: object, where: str) -> list[int]:
    ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok:
        raise ConfigError(where, f"hash_ids must be a list of integers (got {value!r})")
    return value
