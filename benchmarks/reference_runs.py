"""Before/after check for speed work that must not move a number: run a fixed set of simulations
and keep every trace array and the SimPy event count of each, then compare two such records
byte for byte.

    python benchmarks/reference_runs.py record OUT.npz [--window-s 60] [--only NAME ...]
    python benchmarks/reference_runs.py compare BEFORE.npz AFTER.npz

The runs: the peer case (100,000 requests), the fleet case at 100,000 requests, one window of
each kind of cell of benchmarks/factory_10k_case.yaml (DeepSeek-R1, Kimi-K2, gpt-oss-120b with
its sliding-window layers, Llama-3.3-70B; faults and failover included), and every shipped
experiment that is not a sweep, plan, frontier or factory at 3,000 requests (prefix cache,
faults, autoscaling, sessions, mixed fleets, multi-token prediction). Record on the old commit
and on the new one (same machine, same package versions); compare prints each run as same /
DIFF / MISSING and exits 1 on any difference. Together with `benchmarks/summaries.py compare`
(every shipped CSV) it is the evidence that a speed change is only a speed change.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FACTORY_CASE = HERE / "factory_10k_case.yaml"
EXPERIMENT_REQUESTS = 3_000


def _arrays(sim) -> dict[str, np.ndarray]:
    tr = sim.trace
    out = {f.name: getattr(tr, f.name) for f in dataclasses.fields(tr) if isinstance(getattr(tr, f.name), np.ndarray)}
    out["events"] = np.array([sim.events, sim.steps], dtype=np.int64)
    return out


def _experiment(path: Path, requests: int | None) -> list:
    from factory_sim.studies.assemble import load_experiment
    from factory_sim.studies.run import run_experiment

    exp = load_experiment(path, **({"requests": requests} if requests else {}))
    result = run_experiment(exp, jobs=1)
    return [point.sim for _, point in sorted(result.points.items())]


def _fleet() -> list:
    sys.path.insert(0, str(HERE))
    from run import FLEET_CASE, fleet_plan

    from factory_sim.studies.assemble import load_experiment
    from factory_sim.studies.run import simulate_point

    exp = load_experiment(FLEET_CASE, requests=100_000)
    return [simulate_point(exp, fleet_plan(exp), exp.load.rate_per_s, cap_overload=False).sim]


def _cell(name: str, window_s: float) -> list:
    from factory_sim.catalog import read_mapping
    from factory_sim.config.factory import parse_factory
    from factory_sim.studies.assemble_factory import resolve_factory
    from factory_sim.studies.factory import simulate_window, window_jobs

    raw = read_mapping(FACTORY_CASE, "factory") | {"duration_s": window_s, "window_s": window_s}
    factory = resolve_factory(parse_factory(raw, str(FACTORY_CASE)), FACTORY_CASE, FACTORY_CASE.parent)
    with tempfile.TemporaryDirectory() as out:
        job = next(j for j in window_jobs(factory, Path(out)) if j.cell == name and j.window == 0)
        _, sim, _ = simulate_window(job)
    return [] if sim is None else [sim]


def runs(window_s: float) -> dict:
    """name -> a function returning that run's simulations."""
    from factory_sim.studies.assemble_factory import load_factory

    out = {"peer": lambda: _experiment(HERE / "peer_case.yaml", None), "fleet_100k": _fleet}
    seen = set()
    for cell in load_factory(FACTORY_CASE).cells:
        if cell.spec_index not in seen:
            seen.add(cell.spec_index)
            out[f"cell_{cell.name}"] = lambda name=cell.name: _cell(name, window_s)
    for path in sorted((ROOT / "experiments").glob("*.yaml")):
        if not path.stem.startswith(("sweep_", "plan_", "factory", "seed_claims")):
            out[f"exp_{path.stem}"] = lambda path=path: _experiment(path, EXPERIMENT_REQUESTS)
    return out


def record(out: Path, window_s: float, only: list[str] | None) -> int:
    arrays: dict[str, np.ndarray] = {}
    for name, fn in runs(window_s).items():
        if only and name not in only:
            continue
        started = time.process_time()
        sims = fn()
        for i, sim in enumerate(sims):
            for key, values in _arrays(sim).items():
                arrays[f"{name}/{i}/{key}"] = values
        events = sum(s.events for s in sims)
        requests = sum(len(s.trace) for s in sims)
        print(f"{name}: {len(sims)} simulation(s), {requests:,} requests, {events:,} events, "
              f"{time.process_time() - started:.1f} CPU-s", flush=True)
    np.savez_compressed(out, **arrays)
    return 0


def compare(before: Path, after: Path) -> int:
    a, b = np.load(before), np.load(after)
    differ = 0
    runs_of = sorted({k.split("/")[0] for k in a.files})
    for name in runs_of:
        keys = [k for k in a.files if k.split("/")[0] == name]
        if not any(k.split("/")[0] == name for k in b.files):
            print(f"MISSING {name} (only in {before})")
            differ += 1
            continue
        bad = [k for k in keys if k not in b.files or a[k].dtype != b[k].dtype or a[k].tobytes() != b[k].tobytes()]
        extra = [k for k in b.files if k.split("/")[0] == name and k not in a.files]
        status = "same" if not bad and not extra else "DIFF"
        print(f"{status:<7} {name} ({len(keys)} arrays){': ' + ', '.join((bad + extra)[:5]) if bad or extra else ''}")
        differ += status != "same"
    for name in sorted({k.split("/")[0] for k in b.files} - set(runs_of)):
        print(f"MISSING {name} (only in {after})")
        differ += 1
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    rec = sub.add_parser("record", help="run the reference simulations and keep their traces")
    rec.add_argument("out", type=Path)
    rec.add_argument("--window-s", type=float, default=60.0,
                     help="each factory cell's recorded window, a whole number of minutes (default 60)")
    rec.add_argument("--only", action="append", help="only this run (repeatable; names as `record` prints them)")
    cmp_ = sub.add_parser("compare", help="compare two records byte for byte")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.what == "record":
        return record(args.out, args.window_s, args.only)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
