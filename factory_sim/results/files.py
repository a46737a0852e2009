"""Results written to disk: summary, per-request traces and the experiment used.

Files are written atomically (a temporary file in the same folder, then a rename), so an
interrupted run leaves either the previous file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from factory_sim.errors import ConfigError


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finite(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with infinities as missing values: a cost per token of a fleet that served
    nothing is inf in Python (it sorts last), and no value in a file or a printed table."""
    numeric = frame.select_dtypes(include="number").columns
    if not len(numeric) or not np.isinf(frame[numeric].to_numpy(dtype=float)).any():
        return frame
    out = frame.copy()
    out[numeric] = out[numeric].replace([np.inf, -np.inf], np.nan)
    return out


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """A table as CSV, atomically; missing and infinite numbers are empty fields."""
    clean = finite(frame)
    atomic_write(Path(path), lambda p: clean.to_csv(p, index=False))


def write_results(out_dir: str | Path, summary: pd.DataFrame, traces: pd.DataFrame, *,
                  trace_format: str = "parquet", experiment_yaml: str | None = None) -> list[Path]:
    """summary.csv, the per-request traces (Parquet or gzip CSV), and the experiment used."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a folder; name a folder for the results")
    written = []
    target = out / "summary.csv"
    write_csv(target, summary)
    written.append(target)
    if trace_format == "parquet":
        target = out / "traces.parquet"
        frame = traces.copy()
        for col in frame.columns:  # categorical columns with mixed levels are stored as text
            if isinstance(frame[col].dtype, pd.CategoricalDtype):
                frame[col] = frame[col].astype(str)
        atomic_write(target, lambda p: frame.to_parquet(p, index=False))
    else:
        target = out / "traces.csv.gz"
        clean = finite(traces)
        atomic_write(target, lambda p: clean.to_csv(p, index=False, compression="gzip"))
    written.append(target)
    if experiment_yaml is not None:
        target = out / "experiment.yaml"
        atomic_write(target, lambda p: p.write_text(experiment_yaml))
        written.append(target)
    return written
