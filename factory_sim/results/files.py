"""Results written to disk: summary, per-request traces and the experiment used.

Files are written atomically (a temporary file in the same folder, then a rename), so an
interrupted run leaves either the previous file or the new one, never half of one. A new
file gets the permissions any program of the user's would give it (0666 less the umask); a
replaced file keeps its own.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from factory_sim.errors import ConfigError


def _umask() -> int:
    """The process umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp creates the file 0600; the result is the user's, readable as their umask allows
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(out_dir: str | Path, summary: pd.DataFrame, traces: pd.DataFrame, *,
                  trace_format: str = "parquet", experiment_yaml: str | None = None) -> list[Path]:
    """summary.csv, the per-request traces (Parquet or gzip CSV), and the experiment used."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a folder; name a folder for the results")
    written = []
    target = out / "summary.csv"
    atomic_write(target, lambda p: summary.to_csv(p, index=False))
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
        atomic_write(target, lambda p: traces.to_csv(p, index=False, compression="gzip"))
    written.append(target)
    if experiment_yaml is not None:
        target = out / "experiment.yaml"
        atomic_write(target, lambda p: p.write_text(experiment_yaml))
        written.append(target)
    return written
