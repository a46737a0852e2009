"""Results written to disk: summary, per-request traces and the experiment used.

Files are written atomically (a temporary file in the same folder, then a rename), so an
interrupted run leaves either the previous file or the new one, never half of one. A new
file gets the permissions any program of the user's would give it (0666 less the umask); a
replaced file keeps its own.

A destination is checked before any work (`check_folder`, `check_file`): a folder under a
file, one the user may not write in, or a name the file system refuses costs a second, not
the run. If writing still fails (a full disk), `saving` says so in one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
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


def check_folder(path: str | Path, option: str) -> None:
    """Refuse now a folder that cannot be made, or written in; leaves nothing behind."""
    folder = Path(path)
    if _exists(folder, option) and not folder.is_dir():
        raise ConfigError(option, f"{folder} exists and is not a folder; name a folder for the results")
    _probe(folder, [], option)


def check_file(path: str | Path, option: str, what: str = "the results file") -> None:
    """Refuse now a file that cannot be written (atomically, beside it) in its folder."""
    target = Path(path)
    if _exists(target, option) and target.is_dir():
        raise ConfigError(option, f"{target} is a folder; name {what}")
    _probe(target.parent, [target.name], option)


def _exists(path: Path, option: str) -> bool:
    try:
        return path.exists()
    except OSError as exc:  # a name too long, a loop of links
        raise ConfigError(option, _cannot_write(path, exc) + "; choose another destination") from None


def _probe(folder: Path, names: list[str], option: str) -> None:
    """Make the missing folders, create and remove a temporary file (and each of `names` that
    does not exist yet, with the longer temporary name atomic_write uses), then remove the
    folders it made."""
    made: list[Path] = []
    try:
        for part in reversed([folder, *folder.parents]):
            if not part.exists():
                part.mkdir()
                made.append(part)
        for name in names or [".factory-sim-probe"]:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(tmp)
            target = folder / name
            if names and not target.exists():
                target.open("x").close()
                target.unlink()
            elif names:
                target.open("a").close()
    except OSError as exc:
        raise ConfigError(option, _cannot_write(folder, exc) + "; choose another destination") from None
    finally:
        for part in reversed(made):
            with contextlib.suppress(OSError):
                part.rmdir()


def _cannot_write(path: Path, exc: OSError) -> str:
    """The reason a write failed, in the user's terms."""
    where = Path(exc.filename) if isinstance(exc.filename, str) else path
    if exc.errno == errno.ENOTDIR or isinstance(exc, FileExistsError):
        above = next((p for p in where.parents if p.exists() and not p.is_dir()), None)
        return f"cannot write under {above or where}: it is a file, not a folder"
    if exc.errno == errno.ENAMETOOLONG:
        longest = max(where.parts, key=len)
        return (f"the name is too long for the file system ({len(longest.encode())} bytes in "
                f"'{longest[:40]}...'; 255 is the usual limit, less room is left for a temporary name)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write in {path}: {exc.strerror.lower()}"
    return f"cannot write in {path}: {exc.strerror or exc}"


@contextlib.contextmanager
def saving(option: str, path: str | Path) -> Iterator[None]:
    """Turn a failed write into a one-line error that says what was computed is not saved."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(option, f"{_cannot_write(Path(path), exc)}: the results shown above were computed "
                                  "but not saved") from None


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
