"""Factory benchmark: what the 100,000-GPU hour costs, per task and per worker.

Three measurements, each task in a fresh Python process (so its wall time includes
importing factory-sim and parsing its cell, and its peak memory is its own):

    cost      one short window of every kind of cell of benchmarks/factory_case.yaml (the first
              copy of each `cells:` entry): simulated requests per wall-second per kind; then the
              hour's wall time on N workers, extrapolated from the measured rates and the front
              door's expected request count of each of the case's 2,004 tasks
    memory    the case's largest task (most expected requests) at its full length
    scaling   experiments/factory_small.yaml on 1 and on 2 local worker processes: simulated
              requests per wall-second, the whole run (tasks and metrics) timed

    python benchmarks/factory.py                     # all three (about ten minutes on two cores)
    python benchmarks/factory.py --only cost         # (repeat --only for several)
    python benchmarks/factory.py --cost-window-s 60  # shorter cost windows, for a quick look
    python benchmarks/factory.py --workers 64 128    # cluster sizes to extrapolate to
    python benchmarks/factory.py --only cost --case benchmarks/factory_10k_case.yaml --workers 2
                                                     # another factory file: its own tasks
    python benchmarks/factory.py --only cost --rates-from RUN/manifest.json --workers 64
                                                     # the rates of a whole run's tasks (e.g. the
                                                     # 10,000-GPU hour's) instead of short windows

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASE = HERE / "factory_case.yaml"
SMALL = HERE.parent / "experiments" / "factory_small.yaml"


# -- in a fresh process: one task ---------------------------------------------------------
def one_task(case: str, overrides: dict, cell: str, window: int) -> dict:
    """Run one task of the case (with top-level overrides) into a scratch folder; its stats."""
    started = time.perf_counter()
    from factory_sim.catalog import read_mapping
    from factory_sim.config.factory import parse_factory
    from factory_sim.studies.assemble_factory import resolve_factory
    from factory_sim.studies.factory import run_window, window_jobs

    raw = read_mapping(case, "factory") | overrides
    factory = resolve_factory(parse_factory(raw, case), case, Path(case).parent)
    resolved = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        job = next(j for j in window_jobs(factory, Path(out)) if j.cell == cell and j.window == window)
        stats = run_window(job)
    stats["expected_requests"] = job.expected_requests
    stats["resolve_s"] = resolved - started  # the whole factory's, which a worker never does
    return stats


def _fresh(case: Path, overrides: dict, cell: str, window: int = 0) -> dict:
    arg = json.dumps({"case": str(case), "overrides": overrides, "cell": cell, "window": window})
    proc = subprocess.run([sys.executable, __file__, "--_task", arg], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the measurements ------------------------------------------------------------------------
def _case(case: Path = CASE):
    from factory_sim.studies.assemble_factory import load_factory
    from factory_sim.studies.factory import window_jobs

    factory = load_factory(case)
    return factory, window_jobs(factory, Path(tempfile.gettempdir()) / "factory_case_unused")


def makespan_s(durations: list[float], workers: int, in_order: bool = False) -> float:
    """The length of a schedule of the tasks on `workers` workers, each task going to the first
    free worker: longest first, or (in_order) in the order given."""
    loads = [0.0] * workers
    for d in (durations if in_order else sorted(durations, reverse=True)):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def rates_from_manifest(path: Path, kinds: dict) -> dict[int, float]:
    """Simulated requests per CPU-second of each kind of cell over a whole run's tasks (its
    manifest.json): what the tasks cost at full length on the machine that ran them. A task's
    cell is named `<kind>-<copy>`, so the run may be of another factory with the same kinds
    (factory_10k_case.yaml's for factory_case.yaml's)."""
    tasks = json.loads(Path(path).read_text())["tasks"].values()
    by_name = {spec_name: i for i, spec_name in kinds.items()}
    requests, cpu = {}, {}
    for t in tasks:
        i = by_name.get(t["cell"].rsplit("-", 1)[0])
        if i is not None:
            requests[i] = requests.get(i, 0) + t["requests_simulated"]
            cpu[i] = cpu.get(i, 0.0) + t["cpu_s"]
    missing = sorted(name for name, i in by_name.items() if not cpu.get(i))
    if missing:
        raise SystemExit(f"{path}: no task of {', '.join(missing)}; the run must hold every kind of cell of the case")
    return {i: requests[i] / cpu[i] for i in by_name.values()}


def measure_cost(window_s: float, workers: list[int], case: Path = CASE, rates_from: Path | None = None) -> dict:
    factory, jobs = _case(case)
    spec = factory.spec
    kinds = {}
    for c in factory.cells:
        kinds.setdefault(c.spec_index, c)
    if rates_from is not None:
        rates = rates_from_manifest(rates_from, {i: spec.cells[i].name for i in kinds})
        print(f"cost: the tasks of the whole run in {rates_from}, per kind of cell")
        print(f"{'cell kind':<14}{'req/CPU-s':>11}")
        for i, r in rates.items():
            print(f"{spec.cells[i].name:<14}{r:>11,.0f}")
    else:
        rates = _measured_rates(case, spec, kinds, window_s)
    index = {c.name: c.spec_index for c in factory.cells}
    durations = [j.expected_requests / rates[index[j.cell]] for j in jobs]
    total_requests = sum(j.expected_requests for j in jobs)
    core_s = sum(durations)
    print(f"\n{Path(case).name}, the hour: {len(jobs):,} tasks, {total_requests / 1e9:.3f} billion requests "
          f"simulated (warm-up and look-ahead included), {core_s / 3600:.1f} CPU-hours at the measured rates "
          f"({total_requests / core_s:,.0f} requests per CPU-second)")
    print(f"longest task: {max(durations) / 60:.1f} min")
    out = {"rates": {spec.cells[i].name: r for i, r in rates.items()}, "core_s": core_s,
           "requests": total_requests, "longest_task_s": max(durations), "makespan_s": {}}
    for w in workers:
        span = makespan_s(durations, w)
        out["makespan_s"][w] = span
        bound = "the longest task" if max(durations) >= core_s / w else f"the CPU-seconds / {w}"
        print(f"on {w:>3} workers: {span / 60:6.1f} min (tasks longest first; {core_s / w / 60:.1f} min if "
              f"perfectly balanced, {max(durations) / 60:.1f} min the longest task: set by {bound})")
    if Path(case) == CASE:
        tenth = makespan_s([d / 10 for d in durations], 2)  # a 10,000-GPU factory of the same mix
        print(f"a 10,000-GPU factory of the same mix (every task a tenth as long) on this machine's 2 workers: "
              f"{tenth / 60:.1f} min")
        out["ten_thousand_gpus_on_2_workers_s"] = tenth
    return out


def _measured_rates(case: Path, spec, kinds: dict, window_s: float) -> dict[int, float]:
    overrides = {"duration_s": window_s, "window_s": window_s}
    print(f"cost: one {window_s:g} s window (+{spec.warmup_length_s:g} s warm-up, +{spec.lookahead_length_s:g} s "
          f"look-ahead) of each kind of cell, each in a fresh process", flush=True)
    rates = {}
    print(f"{'cell kind':<14}{'GPUs':>6}{'copies':>8}{'requests':>11}{'wall s':>8}{'CPU s':>8}{'req/CPU-s':>11}"
          f"{'events/req':>11}{'peak MB':>9}")
    for i, cell in kinds.items():
        s = _fresh(case, overrides, cell.name)
        rates[i] = s["requests_simulated"] / s["cpu_s"]
        copies = spec.cells[i].count
        print(f"{spec.cells[i].name:<14}{cell.gpus:>6}{copies:>8}{s['requests_simulated']:>11,}{s['wall_s']:>8.1f}"
              f"{s['cpu_s']:>8.1f}{rates[i]:>11,.0f}{s['events'] / s['requests_simulated']:>11.2f}"
              f"{s['peak_rss_mb']:>9,.0f}", flush=True)
    return rates


def measure_memory() -> dict:
    factory, jobs = _case()
    job = max(jobs, key=lambda j: j.expected_requests)
    print(f"memory: the largest task, {job.cell} window {job.window} ({job.expected_requests:,.0f} expected "
          "requests), in a fresh process", flush=True)
    s = _fresh(CASE, {}, job.cell, job.window)
    print(f"{s['requests_simulated']:,} requests simulated ({s['rows']:,} recorded) in {s['wall_s']:.1f} s wall, "
          f"{s['cpu_s']:.1f} s CPU ({s['requests_simulated'] / s['cpu_s']:,.0f} per CPU-second), "
          f"{s['events'] / s['requests_simulated']:.2f} events per request, peak {s['peak_rss_mb']:,.0f} MB")
    return s


def measure_scaling() -> dict:
    out = {}
    for jobs in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "factory_sim.cli", "run", str(SMALL), "--out", tmp,
                                   "--jobs", str(jobs), "--quiet"], capture_output=True, text=True)
            wall = time.perf_counter() - started
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            tasks = json.loads((Path(tmp) / "manifest.json").read_text())["tasks"]
            # in the order run_factory hands them out: most expected requests first
            from factory_sim.studies.assemble_factory import load_factory
            from factory_sim.studies.factory import window_jobs

            order = sorted(window_jobs(load_factory(SMALL), Path(tmp)), key=lambda j: -j.expected_requests)
            tasks = [tasks[j.task_id] for j in order]
        requests = sum(t["requests_simulated"] for t in tasks)
        task_s = sum(t["wall_s"] for t in tasks)
        cpu = [t["cpu_s"] for t in tasks]
        peak = max(t["peak_rss_mb"] for t in tasks)
        out[jobs] = {"wall_s": wall, "requests": requests, "rate": requests / wall, "task_s": task_s,
                     "task_cpu_s": sum(cpu), "peak_rss_mb": peak, "cpu": cpu}
        print(f"scaling: factory_small on {jobs} worker(s): {requests:,} requests in {wall:.1f} s wall "
              f"({requests / wall:,.0f} per wall-second); tasks {task_s:.1f} s wall, {sum(cpu):.1f} s CPU in all; "
              f"worker peak {peak:,.0f} MB", flush=True)
    print(f"2 workers / 1 worker, measured: {out[2]['rate'] / out[1]['rate']:.2f}x")
    # what two free cores would give: the run's serial part (start-up, resolving the factory, the
    # metrics) plus the tasks' CPU seconds scheduled longest first on one or on two workers
    serial = out[1]["wall_s"] - out[1]["task_s"]
    one = serial + sum(out[1]["cpu"])
    two = serial + makespan_s(out[1]["cpu"], 2, in_order=True)
    best = serial + makespan_s(out[1]["cpu"], 2)
    print(f"2 workers / 1 worker, from the tasks' CPU seconds and a {serial:.1f} s serial part: {one / two:.2f}x "
          f"in the order the tasks are handed out, {one / best:.2f}x longest first (what two otherwise idle "
          "cores would give)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=("cost", "memory", "scaling"))
    parser.add_argument("--cost-window-s", type=float, default=120.0, help="recorded window per kind (default 120)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 64], help="cluster sizes (default 2 64)")
    parser.add_argument("--case", type=Path, default=CASE,
                        help="the factory file whose cells are costed and whose tasks are extrapolated, for "
                             "--only cost (default benchmarks/factory_case.yaml)")
    parser.add_argument("--rates-from", type=Path, metavar="MANIFEST",
                        help="for --only cost: each kind's rate from the tasks of a whole run (its manifest.json, "
                             "e.g. of factory_10k_case.yaml) instead of measuring short windows")
    parser.add_argument("--_task", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._task:
        a = json.loads(args._task)
        print(json.dumps(one_task(a["case"], a["overrides"], a["cell"], a["window"])))
        return 0
    for what in args.only or ["cost", "memory", "scaling"]:
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        {"cost": lambda: measure_cost(args.cost_window_s, args.workers, args.case.resolve(), args.rates_from),
         "memory": measure_memory, "scaling": measure_scaling}[what]()
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
