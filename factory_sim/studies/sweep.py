"""What-if sweeps: one base experiment, many variations, every point's rows kept.

A sweep file names a base experiment and the fields to vary, as a grid (every combination)
and/or a zip (lists varied together). Points run in parallel processes; each finished point
is appended to the results file at once, so an interrupted sweep started again skips the
points already done and loses none.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from factory_sim.catalog import parse, read_mapping
from factory_sim.config.sweep import SweepAxes, SweepSpec
from factory_sim.errors import ConfigError
from factory_sim.results.files import atomic_write, finite
from factory_sim.studies.assemble import default_experiment_path, parse_experiment
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
    return hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_sweep(path: str | Path) -> tuple[SweepSpec, dict]:
    p = Path(path)
    raw = read_mapping(p, "sweep", "a mapping with `base:` and `sweep:`")
    spec = parse(SweepSpec, raw, str(p))
    if isinstance(spec.base, dict):
        base = copy.deepcopy(spec.base)
    else:
        base_path = default_experiment_path() if spec.base == "default" else (p.parent / spec.base)
        base = read_mapping(base_path, "base experiment")
    return spec, base


def build_point(base: dict, overrides: dict[str, Any], source: str):
    raw = copy.deepcopy(base)
    for path, value in overrides.items():
        set_field(raw, path, value)
    return parse_experiment(raw, source=f"{source} point {overrides}")


def _run_point(args) -> tuple[str, dict, pd.DataFrame | str]:
    from factory_sim.studies.run import run_experiment

    key, overrides, base, source = args
    try:
        exp = build_point(base, overrides, source)
        return key, overrides, run_experiment(exp, jobs=1).summary
    except ConfigError as exc:
        return key, overrides, str(exc)


def _done_keys(results: Path) -> set[str]:
    """Points completely written; a torn point (an interrupted write) is dropped from the file."""
    if not results.exists() or results.stat().st_size == 0:
        return set()
    df = pd.read_csv(results, on_bad_lines="skip")
    if "point_key" not in df or "point_rows" not in df:
        raise ConfigError("--out", f"{results} is not a sweep results file; name a new file")
    # a torn last line lacks its trailing point_rows value
    rows = df.groupby("point_key").agg(n=("point_rows", "size"), want=("point_rows", "max"),
                                       whole=("point_rows", lambda s: s.notna().all()))
    complete = set(rows.index[(rows.n == rows.want) & rows.whole])
    if len(complete) != len(rows):
        kept = df[df.point_key.isin(complete)]
        atomic_write(results, lambda p: kept.to_csv(p, index=False))
    return complete


def _append(results: Path, rows: pd.DataFrame) -> None:
    header = not results.exists() or results.stat().st_size == 0
    text = finite(rows).to_csv(index=False, header=header)
    with open(results, "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def run_sweep(spec: SweepSpec, base: dict, results: Path, *, jobs: int | None = None, source: str = "sweep",
              progress: bool = True, scheduler: str | None = None) -> pd.DataFrame:
    """Run every point not yet in `results`, appending each as it finishes; returns all rows.

    Points run in local processes, or on an existing Dask cluster when `scheduler` names
    one (tcp://HOST:PORT, or a distributed.Client / LocalCluster address).
    """
    points = sweep_points(spec.sweep)
    for overrides in points[:1]:
        build_point(base, overrides, source)  # a bad field path or value fails before any work
    done = _done_keys(results)
    todo = [(point_key(o), o) for o in points if point_key(o) not in done]
    total, started, finished = len(points), time.perf_counter(), len(points) - len(todo)
    failures: list[str] = []
    if progress and finished:
        print(f"{spec.name}: {finished} of {total} points already in {results}, skipping them", file=sys.stderr)
    args = [(k, o, base, source) for k, o in todo]

    def record(key, overrides, outcome):
        nonlocal finished
        finished += 1
        if isinstance(outcome, str):
            failures.append(f"{overrides}: {outcome}")
        else:
            rows = outcome.copy()
            for i, (path, value) in enumerate(overrides.items()):
                rows.insert(i, path, json.dumps(value) if isinstance(value, (dict, list)) else value)
            rows.insert(0, "point_key", key)
            rows["point_rows"] = len(rows)
            _append(results, rows)
        if progress:
            elapsed = time.perf_counter() - started
            ran = finished - (total - len(todo))
            eta = elapsed / ran * (total - finished) if ran else float("nan")
            bar = "#" * int(30 * finished / total)
            print(f"\r{spec.name}: [{bar:<30}] {finished}/{total} points, {elapsed:.0f} s, ETA {eta:.0f} s",
                  end="" if finished < total else "\n", file=sys.stderr, flush=True)

    for outcome in as_finished(_run_point, args, jobs=jobs, scheduler=scheduler):
        record(*outcome)
    if failures:
        raise ConfigError("sweep", f"{len(failures)} point(s) are invalid and were not run: " + "; ".join(failures))
    return pd.read_csv(results) if results.exists() else pd.DataFrame()
