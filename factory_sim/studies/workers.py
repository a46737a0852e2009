"""Independent simulations on several cores or a Dask cluster: one place, so every command
parallelizes alike (run, frontier, plan, sweep, uncertainty, validate, calibrate)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from factory_sim.errors import ConfigError
from factory_sim.progress import forwarded_to_workers


def worker_count(jobs: int | None, tasks: int) -> int:
    """Processes to use: `jobs` (default: one per core), never more than the tasks."""
    return max(1, min(jobs or os.cpu_count() or 1, tasks))


def map_jobs(fn: Callable[[Any], Any], args: Sequence[Any], jobs: int | None = None) -> list[Any]:
    """[fn(a) for a in args], in separate processes when more than one is worth it; order kept."""
    workers = worker_count(jobs, len(args))
    if workers == 1:
        return [fn(a) for a in args]
    # the workers' progress events reach a listening command (leaving the pool first flushes them)
    with forwarded_to_workers() as events, ProcessPoolExecutor(max_workers=workers, **events) as pool:
        return list(pool.map(fn, args))


def as_finished(fn: Callable[[Any], Any], args: Sequence[Any], jobs: int | None = None,
                scheduler: str | None = None) -> Iterator[Any]:
    """fn(a) for every a, yielded as each finishes (so a caller can save it at once): in this
    process, in local processes, or on the Dask cluster at `scheduler` (tcp://HOST:PORT)."""
    if scheduler:
        yield from _on_dask(fn, args, scheduler)
        return
    if worker_count(jobs, len(args)) == 1:
        for a in args:
            yield fn(a)
        return
    with forwarded_to_workers() as events, \
            ProcessPoolExecutor(max_workers=worker_count(jobs, len(args)), **events) as pool:
        for fut in as_completed([pool.submit(fn, a) for a in args]):
            yield fut.result()


def _on_dask(fn: Callable[[Any], Any], args: Sequence[Any], scheduler: str) -> Iterator[Any]:
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise ConfigError("--scheduler", "running on a Dask cluster needs the dask extra: "
                                         "pip install 'factory-sim[dask]'") from None
    try:
        client = Client(scheduler, timeout="5s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError("--scheduler", f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client:
        futures = client.map(fn, list(args), pure=False)
        for fut in dask_completed(futures):
            yield fut.result()
