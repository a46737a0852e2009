"""What-if sweeps: one base experiment, many variations, every point's rows kept.

A sweep file names a base experiment and the fields to vary, as a grid (every combination)
and/or a zip (lists varied together). Points run in parallel processes; each finished point
is appended to the results file at once, so an interrupted sweep started again skips the
points already done and loses none.

A point is done when the file holds it for the same whole experiment: its resolved
settings (base, varied fields, the model, workload, hardware and stack files they name) and
the factory-sim version. A point the file holds for other settings is stale: the sweep stops
before any work and says how to start fresh, rather than hand back old numbers.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from factory_sim import __version__
from factory_sim.catalog import FILE_KEYS, anchored, check_kind, parse, read_mapping, resolve
from factory_sim.config.experiment import Experiment
from factory_sim.config.sweep import SweepAxes, SweepSpec
from factory_sim.errors import ConfigError
from factory_sim.results.files import atomic_write, finite
from factory_sim.studies.assemble import default_experiment_path, fleet_layouts, parse_experiment
from factory_sim.studies.workers import as_finished

_PATH_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """'fleets[0].decode.replicas' -> ['fleets', 0, 'decode', 'replicas']."""
    steps: list[str | int] = []
    pos = 0
    for m in _PATH_STEP.finditer(path):
        if m.start() != pos and path[pos:m.start()] != ".":
            break
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if pos != len(path) or not steps:
        raise ConfigError(f"sweep.{path}",
                          "not a field path; write it like fleets[0].decode.replicas or load.rate_per_s")
    return steps


def set_field(raw: dict, path: str, value: Any) -> None:
    """Set a dotted field in an experiment mapping; a list of named items may be indexed by name."""
    steps = parse_path(path)
    node: Any = raw
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(node, list):
            if isinstance(step, str):  # fleets.h200_fp8 -> the fleet named h200_fp8
                match = [j for j, item in enumerate(node) if isinstance(item, dict) and item.get("name") == step]
                if not match:
                    raise ConfigError(f"sweep.{path}", f"no item named '{step}' in this list")
                step = match[0]
            if not 0 <= step < len(node):
                raise ConfigError(f"sweep.{path}", f"index {step} is out of range (the list has {len(node)} items)")
        elif not isinstance(node, dict):
            raise ConfigError(f"sweep.{path}", "goes inside a value that is not a mapping or list")
        if last:
            node[step] = value
        else:
            if isinstance(node, dict) and step not in node:
                node[step] = {}
            node = node[step]


def sweep_points(axes: SweepAxes) -> list[dict[str, Any]]:
    """Every combination: the grid's product, each paired with every zipped tuple."""
    grid_keys = list(axes.grid)
    grid = [dict(zip(grid_keys, combo, strict=True)) for combo in itertools.product(*axes.grid.values())]
    zip_keys = list(axes.zip)
    zipped = [dict(zip(zip_keys, vals, strict=True)) for vals in zip(*axes.zip.values(), strict=True)] or [{}]
    return [{**g, **z} for g in grid for z in zipped]


def point_key(overrides: dict[str, Any]) -> str:
    """Which point of the sweep: its varied fields."""
    return _digest(overrides)


def experiment_key(exp: Experiment) -> str:
    """What the point computes: the whole resolved experiment, every file it names (by content
    for the YAML ones, size and time for a trace) and the factory-sim version."""
    pools = {p.name: {"hardware": p.shape.hardware.model_dump(mode="json"),
                      "stack": p.shape.stack.model_dump(mode="json")}
             for layout in fleet_layouts(exp) for p in layout.pools}
    workload = exp.workload_spec
    traces = {}
    for ref in (getattr(workload.arrivals, "trace", None), getattr(workload.input_tokens, "trace", None),
                getattr(workload.output_tokens, "trace", None)):
        if ref is not None:
            _, file, builtin = resolve("trace", ref)
            stat = Path(str(file)).stat()
            traces[ref] = "built-in" if builtin else [stat.st_size, stat.st_mtime_ns]
    return _digest({"version": __version__, "experiment": exp.model_dump(mode="json"),
                    "model": exp.model_spec.model_dump(mode="json"), "workload": workload.model_dump(mode="json"),
                    "pools": pools, "traces": traces})


def _digest(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_sweep(path: str | Path) -> tuple[SweepSpec, dict]:
    p = Path(path)
    raw = read_mapping(p, "sweep", "a mapping with `base:` and `sweep:`")
    for axis in ("grid", "zip"):  # a varied file name is found beside the sweep file too
        values = raw.get("sweep", {}).get(axis) if isinstance(raw.get("sweep"), dict) else None
        for field, options in (values.items() if isinstance(values, dict) else ()):
            kind = FILE_KEYS.get(str(field).rsplit(".", 1)[-1])
            if kind and isinstance(options, list):
                values[field] = [anchored(kind, o, p.parent) if isinstance(o, str) else o for o in options]
    check_kind(raw, SweepSpec, str(p), "sweep")
    spec = parse(SweepSpec, raw, str(p))
    if isinstance(spec.base, dict):
        base = copy.deepcopy(spec.base)
    else:
        base_path = default_experiment_path() if spec.base == "default" else (p.parent / spec.base)
        base = read_mapping(base_path, "base experiment")
        check_kind(base, Experiment, str(base_path), "experiment")
    return spec, base


def build_point(base: dict, overrides: dict[str, Any], source: str):
    raw = copy.deepcopy(base)
    for path, value in overrides.items():
        set_field(raw, path, value)
    return parse_experiment(raw, source=f"{source} point {overrides}")


def _run_point(args) -> tuple[str, str, dict, pd.DataFrame | str]:
    from factory_sim.studies.run import run_experiment

    key, exp_key, overrides, base, source = args
    try:
        exp = build_point(base, overrides, source)
        return key, exp_key, overrides, run_experiment(exp, jobs=1).summary
    except ConfigError as exc:
        return key, exp_key, overrides, str(exc)


def _done_points(results: Path) -> dict[str, str]:
    """{point_key: experiment_key} of the points completely written ("" for a file from before
    experiment keys); a torn point (an interrupted write) is dropped from the file."""
    if not results.exists() or results.stat().st_size == 0:
        return {}
    try:
        df = pd.read_csv(results, on_bad_lines="skip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        df = pd.DataFrame()
    if "point_key" not in df or "point_rows" not in df:
        raise ConfigError("--out", f"{results} is not a sweep results file; name a new file")
    # a torn last line lacks its trailing point_rows value
    rows = df.groupby("point_key").agg(n=("point_rows", "size"), want=("point_rows", "max"),
                                       whole=("point_rows", lambda s: s.notna().all()))
    complete = set(rows.index[(rows.n == rows.want) & rows.whole])
    if len(complete) != len(rows):
        kept = df[df.point_key.isin(complete)]
        atomic_write(results, lambda p: finite(kept).to_csv(p, index=False))
    df = df[df.point_key.isin(complete)]
    if "experiment_key" not in df:
        return dict.fromkeys(complete, "")
    return dict(zip(df.point_key, df.experiment_key.astype(str), strict=True))


def _append(results: Path, rows: pd.DataFrame) -> None:
    header = not results.exists() or results.stat().st_size == 0
    text = finite(rows).to_csv(index=False, header=header)
    with open(results, "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def run_sweep(spec: SweepSpec, base: dict, results: Path, *, jobs: int | None = None, source: str = "sweep",
              progress: bool = True, scheduler: str | None = None, quiet: bool = False) -> pd.DataFrame:
    """Run every point not yet in `results`, appending each as it finishes; returns all rows.

    Points run in local processes, or on an existing Dask cluster when `scheduler` names
    one (tcp://HOST:PORT, or a distributed.Client / LocalCluster address).
    `progress` draws a bar on stderr; unless `quiet`, a line says which points were already done.
    """
    points = sweep_points(spec.sweep)
    keyed, failures = [], []
    for i, overrides in enumerate(points):  # every point resolved before any work
        try:
            exp = build_point(base, overrides, source)
        except ConfigError as exc:
            if i == 0:
                raise  # a bad field path or value: nothing of the sweep would run
            failures.append(f"{overrides}: {exc}")
            continue
        keyed.append((point_key(overrides), experiment_key(exp), overrides))
    done = _done_points(results)
    stale = [o for k, e, o in keyed if k in done and done[k] != e]
    if stale:
        raise ConfigError("--out", f"{results} holds {len(stale)} of these {len(points)} points computed with "
                                   "other settings (the base experiment, a file it names or the factory-sim "
                                   "version changed since), so their numbers would be stale; to start fresh, "
                                   f"delete {results} or give another --out")
    todo = [(k, e, o) for k, e, o in keyed if k not in done]
    total, finished = len(points), len(points) - len(todo) - len(failures)
    if not quiet and finished:
        print(f"{spec.name}: {finished} of {total} points already in {results}, skipping them", file=sys.stderr)
    if progress and failures:
        print(f"{spec.name}: {len(failures)} point(s) are invalid and will not run", file=sys.stderr)
    args = [(k, e, o, base, source) for k, e, o in todo]
    total -= len(failures)

    def record(key, exp_key, overrides, outcome):
        nonlocal finished
        finished += 1
        if isinstance(outcome, str):
            failures.append(f"{overrides}: {outcome}")
        else:
            rows = outcome.copy()
            for i, (path, value) in enumerate(overrides.items()):
                rows.insert(i, path, json.dumps(value) if isinstance(value, (dict, list)) else value)
            rows.insert(0, "point_key", key)
            rows.insert(1, "experiment_key", exp_key)
            rows["point_rows"] = len(rows)
            _append(results, rows)
        bar.update(1)

    with tqdm(total=total, initial=finished, desc=spec.name, unit=" point", disable=not progress, leave=False,
              file=sys.stderr, dynamic_ncols=True) as bar:
        for outcome in as_finished(_run_point, args, jobs=jobs, scheduler=scheduler):
            record(*outcome)
    if failures:
        raise ConfigError("sweep", f"{len(failures)} point(s) are invalid and were not run: " + "; ".join(failures))
    return pd.read_csv(results) if results.exists() else pd.DataFrame()
