"""Run a factory: every cell's time windows as independent tasks, traces to Parquet, metrics from them.

`run_factory` takes a resolved factory (studies/assemble_factory.py: each cell's fleet, as an
experiment would build it, with its analytic capacity and power for the front door) and
runs one task per cell and time window, on local processes or on a Dask cluster. A task
draws its own requests from the front door (workload/front_door.py), simulates the cell's
fleet on them with the experiment's event loop, and writes the requests that arrived in its
window to its Parquet partition, returning only a few numbers. Factory metrics are then computed from the
partitions (results/partitions.py, results/factory_metrics.py), one partition at a time, so
no process ever holds more than one cell's window of requests.

A task's partition is kept with a key: a hash of everything its result depends on (the
cell's resolved configuration, its tenants, the front door's decisions for its steps, the
seed, the window, the tool version). A run started again reuses every partition whose key
still matches and recomputes the others, so a killed run resumes and a changed factory
recomputes only what changed.

What a window is, and what it is not: each window is simulated from an empty fleet, with
the `warmup_s` of arrivals before it and `lookahead_s` after it simulated too but not
recorded. Queues and batches reach the state they would have had when the warm-up is
longer than the time a request spends in the cell; the autoscaler starts each window from
the pool's `replicas`, and random faults are drawn anew in each window.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from factory_sim import __version__
from factory_sim.config.experiment import Experiment
from factory_sim.errors import ConfigError
from factory_sim.results.factory_metrics import factory_metrics
from factory_sim.results.files import atomic_write
from factory_sim.results.partitions import (
    SUM_COLUMNS,
    answer_partition,
    dictionary,
    partition_path,
    summarize_partition,
    write_partition,
)
from factory_sim.results.quantiles import Query
from factory_sim.sim.engine import FleetLayout, simulate
from factory_sim.studies.assemble import fault_settings, fleet_layouts, parse_experiment
from factory_sim.studies.assemble_factory import Factory, load_factory, resolve_factory
from factory_sim.studies.workers import worker_count
from factory_sim.workload.front_door import FrontDoor, name_key

__all__ = ["Factory", "FactoryResult", "Workers", "load_factory", "resolve_factory", "run_factory", "run_window",
           "window_jobs"]

# -- one task: a cell's time window -------------------------------------------------------


@dataclass(frozen=True)
class WindowJob:
    """Everything a worker needs to simulate one cell's window; small and picklable."""

    cell: str
    cell_index: int
    window: int
    start_s: float
    end_s: float
    warmup_s: float
    lookahead_s: float
    experiment: str
    tenants: tuple[int, ...]  # front-door tenant indices, in the cell's traffic-class order
    front_door: FrontDoor
    seed: int
    partition: str
    key: str
    expected_requests: float

    @property
    def task_id(self) -> str:
        return f"cell={self.cell}/window={self.window}"


def window_jobs(factory: Factory, out: Path) -> list[WindowJob]:
    spec, fd = factory.spec, factory.front_door
    step = spec.step_s
    jobs = []
    digests: dict[tuple[int, int], str] = {}

    def decisions(t: int, j: int) -> str:
        """A digest of everything the front door decides for tenant t in step j."""
        if (t, j) not in digests:
            tenant = fd.tenants[t]
            data = [fd.expected_arrivals(t, j), fd.shed_fraction(j),
                    [(fd.cells[x], w, fd.up(x, j)) for x, w in zip(tenant.cells, tenant.weights, strict=True)]]
            digests[(t, j)] = hashlib.sha256(json.dumps(data).encode()).hexdigest()
        return digests[(t, j)]

    for cell in factory.cells:
        c = factory.cell_index(cell.name)
        tenants = tuple(next(j for j, t in enumerate(fd.tenants) if t.name == name) for name in cell.tenants)
        for k, (start, end) in enumerate(spec.windows()):
            j0 = round((start - spec.warmup_length_s) / step)
            j1 = round((end + spec.lookahead_length_s) / step)
            key_data = {"version": __version__, "cell": cell.experiment, "window": [start, end],
                        "warmup_s": spec.warmup_length_s, "lookahead_s": spec.lookahead_length_s, "step_s": step,
                        "seed": spec.seed, "failover": fd.failover,
                        "tenants": [spec.tenants[t].model_dump(mode="json") for t in tenants],
                        "front_door": [decisions(t, j) for t in tenants for j in range(j0, j1)]}
            key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()
            expected = sum(fd.expected_arrivals(t, j) * fd.tenants[t].weights[fd.tenants[t].cells.index(c)]
                           / sum(fd.tenants[t].weights) for t in tenants for j in range(j0, j1))
            jobs.append(WindowJob(cell=cell.name, cell_index=c, window=k, start_s=start, end_s=end,
                                  warmup_s=spec.warmup_length_s, lookahead_s=spec.lookahead_length_s,
                                  experiment=cell.experiment, tenants=tenants, front_door=fd, seed=spec.seed,
                                  partition=str(partition_path(out, cell.name, k)), key=key,
                                  expected_requests=expected))
    return jobs


@functools.lru_cache(maxsize=8)
def _parsed(experiment: str) -> tuple[Experiment, FleetLayout]:
    exp = parse_experiment(json.loads(experiment))
    return exp, fleet_layouts(exp)[0]


def cell_requests(job: WindowJob) -> dict[str, np.ndarray]:
    """The requests the cell simulates in this window (warm-up and look-ahead included), by arrival."""
    fd = job.front_door
    j0 = round((job.start_s - job.warmup_s) / fd.step_s)
    j1 = round((job.end_s + job.lookahead_s) / fd.step_s)
    cols: dict[str, list] = {"arrival_s": [], "input_tokens": [], "output_tokens": [], "tenant": [], "step": [],
                             "source": []}
    for code, t in enumerate(job.tenants):
        for j in range(j0, j1):
            for g in fd.requests(t, j, job.cell_index):
                n = g.arrival_s.size
                cols["arrival_s"].append(g.arrival_s)
                cols["input_tokens"].append(g.input_tokens)
                cols["output_tokens"].append(g.output_tokens)
                cols["tenant"].append(np.full(n, code, dtype=np.int16))
                cols["step"].append(np.full(n, j, dtype=np.int32))
                cols["source"].append(np.full(n, g.source, dtype=np.int32))
    dtypes = {"arrival_s": np.float64, "input_tokens": np.int64, "output_tokens": np.int64, "tenant": np.int16,
              "step": np.int32, "source": np.int32}
    out = {k: np.concatenate(v) if v else np.empty(0, dtype=dtypes[k]) for k, v in cols.items()}
    order = np.argsort(out["arrival_s"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def simulate_window(job: WindowJob):
    """Simulate the cell over the window's span: (requests, SimResult or None, the span's origin)."""
    exp, plan = _parsed(job.experiment)
    req = cell_requests(job)
    origin = job.start_s - job.warmup_s
    if req["arrival_s"].size == 0:
        return req, None, origin
    extra = {}
    if exp.faults_on:
        fp = fault_settings(exp, plan)
        span = job.end_s + job.lookahead_s - origin
        extra["faults"] = dataclasses.replace(fp, injections=tuple(
            dataclasses.replace(inj, at_s=inj.at_s - origin) for inj in fp.injections
            if origin <= inj.at_s < origin + span))
    classes = exp.traffic_classes
    longest = int(req["output_tokens"].max()) - 1
    slack = max(c.ttft_s + longest * c.tpot_s for c in classes)  # past this, an unfinished request missed its SLO
    until = (job.end_s + job.lookahead_s - origin) + slack
    seed = int(np.random.SeedSequence([job.seed, name_key(job.cell), job.window]).generate_state(1)[0])
    sim = simulate(plan, req["input_tokens"], req["output_tokens"], arrival_s=req["arrival_s"] - origin, seed=seed,
                   until_s=until, slo_class=req["tenant"], latency_critical=exp.latency_critical_classes(),
                   slo_class_names=[c.name for c in classes], **extra)
    return req, sim, origin


def run_window(job: WindowJob) -> dict:
    """A task: simulate one cell's window and write the requests that arrived in it to its partition.
    Returns a few numbers (never the trace)."""
    from factory_sim.results.metrics import latencies, meets_slo

    started, cpu_started = time.perf_counter(), time.process_time()
    exp, plan = _parsed(job.experiment)
    req, sim, origin = simulate_window(job)
    step = job.front_door.step_s
    rec = (req["step"] >= round(job.start_s / step)) & (req["step"] < round(job.end_s / step))
    n = int(np.count_nonzero(rec))
    tenant_names = [c.name for c in exp.traffic_classes]
    sources = sorted({int(s) for s in req["source"][rec]} - {job.cell_index})
    source_names = ["", *(job.front_door.cells[s] for s in sources)]
    routed = np.zeros(n, dtype=np.int16)
    for code, s in enumerate(sources, start=1):
        routed[req["source"][rec] == s] = code
    if sim is not None:
        tr = sim.trace
        lat = latencies(tr)
        met = meets_slo(tr, exp.slo_evaluations[0][1])
        pool_names = tr.pool_names + [""]
        pool = np.where(tr.pool[rec] >= 0, tr.pool[rec], len(tr.pool_names))
        columns = {
            "first_token_s": tr.first_token_s[rec] + origin, "finish_s": tr.finish_s[rec] + origin,
            "ttft_s": lat["ttft_s"][rec], "tpot_s": lat["tpot_s"][rec], "outcome": tr.outcome[rec],
            "reason": tr.reason[rec], "retries": np.minimum(tr.retries[rec], 127).astype(np.int8),
            "met_slo": met[rec], "pool": dictionary(pool, pool_names),
        }
        events = sim.events
    else:
        nan = np.full(n, np.nan)
        columns = {"first_token_s": nan, "finish_s": nan, "ttft_s": nan, "tpot_s": nan,
                   "outcome": np.zeros(n, np.int8), "reason": np.zeros(n, np.int8), "retries": np.zeros(n, np.int8),
                   "met_slo": np.zeros(n, bool), "pool": dictionary(np.zeros(n), [""])}
        events = 0
    columns |= {"tenant": dictionary(req["tenant"][rec], tenant_names), "step": req["step"][rec],
                "routed_from": dictionary(routed, source_names), "arrival_s": req["arrival_s"][rec],
                "input_tokens": req["input_tokens"][rec].astype(np.int32),
                "output_tokens": req["output_tokens"][rec].astype(np.int32)}
    path = Path(job.partition)
    write_partition(path, {k: v if isinstance(v, pa.Array) else np.asarray(v) for k, v in columns.items()})
    stats = {
        "cell": job.cell, "window": job.window, "key": job.key, "rows": n,
        "requests_simulated": int(req["arrival_s"].size), "events": int(events),
        "recorded_s": job.end_s - job.start_s, "gpu_s": _gpu_s_held(plan, sim, job.start_s - origin,
                                                                    job.end_s - origin),
        "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu_started,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "pid": os.getpid(),
    }
    atomic_write(path.with_name("meta.json"), lambda p: p.write_text(json.dumps(stats, indent=1)))
    return stats


def _gpu_s_held(plan: FleetLayout, sim, lo: float, hi: float) -> dict[str, float]:
    """GPU-seconds each hardware kind was held over [lo, hi) of the simulation's clock:
    what the autoscaler held, or the whole pool."""
    out: dict[str, float] = {}
    for i, pool in enumerate(plan.pools):
        hw = pool.shape.hardware.name
        steps = sim.scaling.held.get(i) if sim is not None and sim.scaling is not None else None
        if steps:
            times = [t for t, _ in steps] + [math.inf]
            replica_s = sum(n * max(0.0, min(hi, t1) - max(lo, t0))
                            for (t0, n), t1 in zip(steps, times[1:], strict=True))
        else:
            replica_s = pool.replicas * (hi - lo)
        out[hw] = out.get(hw, 0.0) + replica_s * pool.shape.gpus
    return out


# -- where tasks run ------------------------------------------------------------------------


class Workers:
    """Local processes (one per core by default), this process (jobs=1), or a Dask cluster."""

    def __init__(self, jobs: int | None = None, scheduler: str | None = None):
        self.jobs, self.scheduler = jobs, scheduler
        self._client = None
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Workers:
        if self.scheduler:
            try:
                from dask.distributed import Client
            except ImportError:
                raise ConfigError("--scheduler", "running on a Dask cluster needs the dask extra: "
                                                 "pip install 'factory-sim[dask]'") from None
            try:
                self._client = Client(self.scheduler, timeout="5s")
            except (OSError, TimeoutError) as exc:
                raise ConfigError("--scheduler",
                                  f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from None
        elif worker_count(self.jobs, 2) > 1:
            self._pool = ProcessPoolExecutor(max_workers=worker_count(self.jobs, 1 << 30))
        return self

    def __exit__(self, *exc) -> None:
        if self._client is not None:
            self._client.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def unordered(self, fn: Callable, args: Sequence) -> Iterator:
        """fn(a) for every a, yielded as each finishes."""
        if self._client is not None:
            from dask.distributed import as_completed as dask_completed

            for fut in dask_completed(self._client.map(fn, list(args), pure=False)):
                yield fut.result()
        elif self._pool is not None:
            futures = [self._pool.submit(fn, a) for a in args]
            for fut in as_completed(futures):
                yield fut.result()
        else:
            for a in args:
                yield fn(a)

    def map(self, fn: Callable, args: Sequence) -> list:
        """[fn(a) for a in args], in order."""
        if self._client is not None:
            return self._client.gather(self._client.map(fn, list(args), pure=False))
        if self._pool is not None:
            return list(self._pool.map(fn, args))
        return [fn(a) for a in args]


# -- the run ------------------------------------------------------------------------------


@dataclass
class FactoryResult:
    metrics: pd.DataFrame  # one row per (by, group): see results/factory_metrics.py
    ledger: pd.DataFrame  # the front door's books per tenant, step and cell
    power: pd.DataFrame  # per step: expected draw, budget, shed share
    stats: list[dict] = field(default_factory=list)  # per task (run now or reused)
    ran: int = 0
    reused: int = 0
    wall_s: float = 0.0
    files: list[Path] = field(default_factory=list)


def run_factory(factory: Factory, out: str | Path, *, jobs: int | None = None, scheduler: str | None = None,
                progress: bool | None = None) -> FactoryResult:
    """Run every cell window not already in `out`, then compute the factory's metrics.

    `progress`: None shows a bar on a terminal only, False never, True always.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a folder; name a folder for the factory's results")
    started = time.perf_counter()
    jobs_all = window_jobs(factory, out)
    done = {j.task_id: _finished(j) for j in jobs_all}
    done = {k: v for k, v in done.items() if v is not None}
    todo = sorted((j for j in jobs_all if j.task_id not in done), key=lambda j: -j.expected_requests)
    stats = dict(done)
    manifest = out / "manifest.json"
    with Workers(jobs, scheduler) as workers:
        bar = _Progress(factory, jobs_all, done, progress)
        try:
            for s in workers.unordered(run_window, todo):
                stats[f"cell={s['cell']}/window={s['window']}"] = s
                _write_manifest(manifest, factory, stats)
                bar.finished(s)
        finally:
            bar.close()
        _write_manifest(manifest, factory, stats)
        ordered = [stats[j.task_id] for j in jobs_all]
        metrics, ledger, power = _metrics(factory, jobs_all, ordered, workers)
    files = _write_outputs(out, factory, metrics, ledger, power)
    return FactoryResult(metrics=metrics, ledger=ledger, power=power, stats=ordered, ran=len(todo),
                         reused=len(done), wall_s=time.perf_counter() - started, files=[manifest, *files])


def _finished(job: WindowJob) -> dict | None:
    """The task's stats if its partition is on disk under the same key."""
    part = Path(job.partition)
    meta = part.with_name("meta.json")
    if not (part.is_file() and meta.is_file()):
        return None
    try:
        stats = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    return stats if stats.get("key") == job.key else None


def _write_manifest(path: Path, factory: Factory, stats: dict) -> None:
    body = {"factory": factory.spec.name, "version": __version__, "seed": factory.spec.seed,
            "tasks": {k: stats[k] for k in sorted(stats)}}
    atomic_write(path, lambda p: p.write_text(json.dumps(body, indent=1)))


class _Progress:
    """One bar for the whole factory: tasks, cells done, simulated time, requests/s."""

    def __init__(self, factory: Factory, jobs: list[WindowJob], done: dict, show: bool | None):
        from tqdm import tqdm

        self.windows = {}
        for j in jobs:
            self.windows.setdefault(j.cell, set()).add(j.window)
        self.done = {}
        for s in done.values():
            self.done.setdefault(s["cell"], set()).add(s["window"])
        self.total_s = sum(j.end_s - j.start_s for j in jobs)
        self.sim_s = sum(s["recorded_s"] for s in done.values())
        self.requests, self.started = 0, time.perf_counter()
        self.bar = tqdm(total=len(jobs), initial=len(done), unit="task", desc=factory.spec.name,
                        disable=(not show) if show is not None else None, file=sys.stderr, dynamic_ncols=True)
        self._postfix()

    def finished(self, s: dict) -> None:
        self.done.setdefault(s["cell"], set()).add(s["window"])
        self.sim_s += s["recorded_s"]
        self.requests += s["requests_simulated"]
        self._postfix()
        self.bar.update(1)

    def _postfix(self) -> None:
        cells = sum(self.done.get(c, set()) >= w for c, w in self.windows.items())
        rate = self.requests / max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"cells {cells}/{len(self.windows)}, simulated {self.sim_s / 3600:.2f}/"
                                 f"{self.total_s / 3600:.2f} cell-h, {rate:,.0f} req/s", refresh=False)

    def close(self) -> None:
        self.bar.close()


def front_door_ledger(factory: Factory) -> pd.DataFrame:
    """The front door's books: per tenant, recorded step and cell, where every arrival went."""
    fd, spec = factory.front_door, factory.spec
    rows = []
    for k, (start, end) in enumerate(spec.windows()):
        for j in range(round(start / spec.step_s), round(end / spec.step_s)):
            for t, tenant in enumerate(fd.tenants):
                split = fd.split(t, j)
                served = split.served
                for a, c in enumerate(tenant.cells):
                    rows.append({
                        "tenant": tenant.name, "step": j, "window": k, "cell": fd.cells[c],
                        "arrivals_intended": int(split.intended[a]),
                        "failed_over_out": int(split.moved[a].sum() - split.moved[a, a]),
                        "failed_over_in": int(split.moved[:, a].sum() - split.moved[a, a]),
                        "rejected_no_cell": int(split.unrouted[a]),
                        "rejected_power_cap": int(split.shed[:, a].sum()),
                        "served_by_cell": int(served[:, a].sum()),
                        "of_which_failed_over": int(served[:, a].sum() - served[a, a]),
                    })
    return pd.DataFrame(rows)


def power_frame(factory: Factory) -> pd.DataFrame:
    fd, spec = factory.front_door, factory.spec
    rows = []
    for j in range(0, round(spec.duration_s / spec.step_s)):
        draw = fd.power_kw(j)
        rows.append({"step": j, "start_s": j * spec.step_s, "offered_req_per_s": float(fd.offered_req_per_s(j).sum()),
                     "shed_fraction": fd.shed_fraction(j), "draw_mw": float(draw.sum()) / 1000,
                     "budget_mw": spec.site.power_budget_mw, "cells_down": sum(not fd.up(c, j)
                                                                               for c in range(len(fd.cells)))})
    return pd.DataFrame(rows)


def _metrics(factory: Factory, jobs: list[WindowJob], stats: list[dict], workers: Workers):
    spec, fd = factory.spec, factory.front_door
    paths = [j.partition for j in jobs]
    summaries = workers.map(summarize_partition, [Path(p) for p in paths])
    ledger = front_door_ledger(factory)
    _check_books(ledger, jobs, summaries)
    # one row per (cell, window, tenant the cell serves), zero where nothing arrived
    rows, level0 = [], {}
    for job, summary in zip(jobs, summaries, strict=True):
        cell = factory.cells[job.cell_index]
        for t in cell.tenants:
            sums = summary.sums.get(t, dict.fromkeys(SUM_COLUMNS, 0.0))
            rows.append({"cell": job.cell, "window": job.window, "tenant": t, **sums})
        for (t, latency), hist in summary.level0.items():
            level0[(job.cell, job.window, t, latency)] = hist
    units = pd.DataFrame(rows)
    rejected = (ledger.assign(rejected_at_front_door=ledger["rejected_no_cell"] + ledger["rejected_power_cap"])
                .groupby(["cell", "window", "tenant"], as_index=False)["rejected_at_front_door"].sum())
    units = units.merge(rejected, on=["cell", "window", "tenant"], how="left").fillna({"rejected_at_front_door": 0})
    costs = []
    for job, s in zip(jobs, stats, strict=True):
        cell = factory.cells[job.cell_index]
        steps = range(round(job.start_s / spec.step_s), round(job.end_s / spec.step_s))
        energy_mwh = sum(float(fd.power_kw(j)[job.cell_index]) for j in steps) * spec.step_s / 3600 / 1000
        energy_usd = energy_mwh * spec.site.usd_per_mwh
        usd = sum(gpu_s / 3600 * cell.usd_per_gpu_hour[hw] for hw, gpu_s in s["gpu_s"].items())
        if spec.cost.basis == "tco":
            usd += energy_usd
        costs.append({"cell": job.cell, "window": job.window, "usd": usd, "energy_mwh": energy_mwh,
                      "energy_usd": energy_usd})
    cells = pd.DataFrame([{"cell": c.name, "model": c.model, "hardware": c.hardware, "gpus": c.gpus,
                           "provisioned_mw": c.peak_kw / 1000} for c in factory.cells]).set_index("cell")
    where = {(j.cell, j.window): Path(j.partition) for j in jobs}

    def fetch(queries: list[Query]) -> dict[Query, object]:
        by_part: dict[Path, list[Query]] = {}
        for q in queries:
            cell, window, _, _ = q.unit
            by_part.setdefault(where[(cell, window)], []).append(q)
        items = list(by_part.items())
        answers = workers.map(_answer, [(p, [(q.unit[2], q.unit[3], q.prefix, q.bits, q.next_bits) for q in qs])
                                        for p, qs in items])
        return {q: a for (_, qs), ans in zip(items, answers, strict=True) for q, a in zip(qs, ans, strict=True)}

    metrics = factory_metrics(units, pd.DataFrame(costs), cells, spec.windows(), level0, fetch)
    return metrics, ledger, power_frame(factory)


def _answer(args):
    path, queries = args
    return answer_partition(path, queries)


def _check_books(ledger: pd.DataFrame, jobs: list[WindowJob], summaries) -> None:
    """Every arrival is served by one cell, rejected at the front door, or failed over, exactly
    once: the partitions must hold exactly the requests the front door sent each cell."""
    fd = jobs[0].front_door if jobs else None
    expected: dict[tuple, int] = {}
    for t, tenant in enumerate(fd.tenants if fd else ()):
        for j in sorted(set(ledger["step"])):
            served = fd.split(t, j).served
            for a, b in zip(*np.nonzero(served), strict=True):
                src, dst = fd.cells[tenant.cells[a]], fd.cells[tenant.cells[b]]
                expected[(tenant.name, j, dst, "" if a == b else src)] = int(served[a, b])
    found: dict[tuple, int] = {}
    for job, summary in zip(jobs, summaries, strict=True):
        for tenant, step, routed_from, n in summary.steps:
            found[(tenant, step, job.cell, routed_from)] = found.get((tenant, step, job.cell, routed_from), 0) + n
    if found != expected:
        diff = sorted(set(found.items()) ^ set(expected.items()))[:5]
        raise RuntimeError(f"the partitions do not hold the requests the front door sent (first differences: {diff}); "
                           "delete the output folder's partitions and run again")
    arrivals = ledger.groupby(["tenant", "step"])["arrivals_intended"].sum()
    accounted = ledger.groupby(["tenant", "step"])[["served_by_cell", "rejected_no_cell",
                                                    "rejected_power_cap"]].sum().sum(axis=1)
    if not arrivals.equals(accounted):
        raise RuntimeError("the front door's books do not balance: arrivals != served + rejected")


def _write_outputs(out: Path, factory: Factory, metrics: pd.DataFrame, ledger: pd.DataFrame,
                   power: pd.DataFrame) -> list[Path]:
    files = []
    for name, frame in (("metrics.csv", metrics), ("front_door.csv", ledger), ("power.csv", power)):
        target = out / name
        atomic_write(target, lambda p, f=frame: f.to_csv(p, index=False))
        files.append(target)
    src = Path(factory.source)
    if src.is_file():
        target = out / "factory.yaml"
        atomic_write(target, lambda p: p.write_text(src.read_text()))
        files.append(target)
    return files


# -- the table users read -------------------------------------------------------------------

_SHOWN = (("group", "group", str), ("arrivals", "arrivals", "{:,.0f}"), ("served", "served", "{:,.0f}"),
          ("rejected_at_front_door", "rej. door", "{:,.0f}"), ("failed_over", "failed over", "{:,.0f}"),
          ("slo_attainment", "SLO met", "{:.1%}"), ("goodput_tokens_per_s", "goodput tok/s", "{:,.0f}"),
          ("ttft_p50_s", "TTFT p50 s", "{:.3f}"), ("ttft_p99_s", "TTFT p99 s", "{:.3f}"),
          ("tpot_p50_s", "TPOT p50 ms", "ms"), ("tpot_p99_s", "TPOT p99 ms", "ms"),
          ("gpus", "GPUs", "{:,.0f}"), ("usd_per_m_goodput_tokens", "$/M goodput", "{:.4f}"),
          ("tokens_per_s_per_mw", "tok/s/MW", "{:,.0f}"), ("energy_mwh", "MWh", "{:.4g}"))


def format_metrics(metrics: pd.DataFrame) -> str:
    """The metrics as text tables, one per grouping."""
    blocks = []
    for by, part in metrics.groupby("by", sort=False):
        cells = {}
        for col, head, fmt in _SHOWN:
            values = []
            for v in part[col]:
                if isinstance(v, float) and not math.isfinite(v):
                    values.append("-")
                elif fmt is str:
                    values.append(str(v))
                elif fmt == "ms":
                    values.append(f"{v * 1e3:.1f}")
                else:
                    values.append(fmt.format(v))
            cells[head if col != "group" else by] = values
        blocks.append(pd.DataFrame(cells).to_string(index=False))
    return "\n\n".join(blocks)


def run_factory_command(path: Path, args) -> int:
    """`factory-sim run FACTORY.yaml`: run, print the tables, say what was written."""
    for flag, value in (("--requests", args.requests), ("--samples", args.samples)):
        if value is not None:
            raise ConfigError(flag, "applies to an experiment; a factory's requests come from its tenants' rates "
                                    "over duration_s")
    if args.trace_format != "parquet":
        raise ConfigError("--trace-format", "a factory writes its traces as Parquet partitions only")
    factory = load_factory(path)
    spec = factory.spec
    out = Path(args.out or f"{spec.name}_out")
    gpus: dict[str, int] = {}
    for c in factory.cells:
        for hw, n in c.gpus_by_hardware.items():
            gpus[hw] = gpus.get(hw, 0) + n
    windows = len(spec.windows())
    where = f"Dask cluster {args.scheduler}" if args.scheduler else (
        f"{worker_count(args.jobs, len(factory.cells) * windows)} local process(es)")
    if not args.quiet:
        print(f"factory-sim {__version__}: factory '{spec.name}': {len(factory.cells)} cells, {sum(gpus.values()):,} "
              f"GPUs ({', '.join(f'{n:,} {hw}' for hw, n in gpus.items())}), {len(spec.tenants)} tenants, "
              f"{spec.duration_s:g} s in {windows} window(s): {len(factory.cells) * windows} tasks on {where}",
              file=sys.stderr)
    result = run_factory(factory, out, jobs=args.jobs, scheduler=args.scheduler,
                         progress=False if args.quiet else None)
    m = result.metrics
    total = m[m["by"] == "factory"].iloc[0]
    print(f"{spec.name}: {spec.description}" if spec.description else spec.name)
    print()
    print(format_metrics(m))
    print()
    ledger, power = result.ledger, result.power
    print(f"front door: {int(ledger['arrivals_intended'].sum()):,} arrivals = "
          f"{int(ledger['served_by_cell'].sum()):,} sent to cells (of which "
          f"{int(ledger['of_which_failed_over'].sum()):,} failed over) + "
          f"{int(ledger['rejected_no_cell'].sum()):,} rejected as their cell was down with none to fail over to + "
          f"{int(ledger['rejected_power_cap'].sum()):,} shed at the power cap; each counted once")
    shed = power[power["shed_fraction"] > 0]
    print(f"power: expected draw {power['draw_mw'].max():.4g} MW at most of a {spec.site.power_budget_mw:g} MW "
          f"budget; {total['energy_mwh']:.4g} MWh (${total['energy_usd']:,.2f} at ${spec.site.usd_per_mwh:g}/MWh)"
          + (f"; load shed in {len(shed)} of {len(power)} steps (up to {shed['shed_fraction'].max():.1%})"
             if len(shed) else ""))
    simulated = sum(s["requests_simulated"] for s in result.stats)
    print(f"{result.ran} task(s) run, {result.reused} reused; {int(total['arrivals']):,} requests in the span, "
          f"{simulated:,} simulated with warm-up and look-ahead; {result.wall_s:.1f} s")
    print("wrote " + ", ".join(str(f) for f in result.files) + f" and {len(result.stats)} partitions under "
          f"{out / 'partitions'}")
    return 0
