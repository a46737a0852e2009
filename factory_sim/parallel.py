"""Independent simulations on several cores: one helper, so every command parallelizes alike."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

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
