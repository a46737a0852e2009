"""Independent simulations on several cores or a Dask cluster: one place, so every command
parallelizes alike (run, frontier, plan, sweep, uncertainty, validate, calibrate).

The process pool's modules (concurrent.futures, ctypes) are imported when a pool starts: a
run on one core, the common case of a short command, never needs them."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from factory_sim.errors import ConfigError
from factory_sim.progress import forwarded_to_workers

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor


def worker_count(jobs: int | None, tasks: int) -> int:
    """Processes to use: `jobs` (default: one per core), never more than the tasks."""
    return max(1, min(jobs or os.cpu_count() or 1, tasks))


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_WATCH_S = 1.0  # how often a worker without PR_SET_PDEATHSIG checks that its parent is alive


def _end_with_parent(parent_pid: int) -> None:
    """Pool initializer: a worker ends when the process that started it does, even when that
    one is killed outright (SIGKILL runs no clean-up to stop its pool). On Linux the kernel
    sends SIGTERM (prctl PR_SET_PDEATHSIG); elsewhere a thread checks the parent's pid."""
    if sys.platform.startswith("linux"):
        import ctypes.util
        import signal

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before the call: no signal will come
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_WATCH_S)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _start_worker(parent_pid: int, forward: Callable[..., None] | None, forward_args: tuple) -> None:
    _end_with_parent(parent_pid)
    if forward is not None:  # progress events go back to the listening command
        forward(*forward_args)


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    from concurrent.futures import ProcessPoolExecutor

    # leaving the pool before the forwarding block flushes the workers' progress events
    with forwarded_to_workers() as events, ProcessPoolExecutor(
            max_workers=workers, initializer=_start_worker,
            initargs=(os.getpid(), events.get("initializer"), events.get("initargs", ()))) as pool:
        yield pool


def map_jobs(fn: Callable[[Any], Any], args: Sequence[Any], jobs: int | None = None) -> list[Any]:
    """[fn(a) for a in args], in separate processes when more than one is worth it; order kept."""
    workers = worker_count(jobs, len(args))
    if workers == 1:
        return [fn(a) for a in args]
    with _pool(workers) as pool:
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
    from concurrent.futures import as_completed

    with _pool(worker_count(jobs, len(args))) as pool:
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
