"""Progress of the long commands, drawn by tqdm on stderr.

Code deep in a study says what it finished with `emit(topic, key)` ("simulation" of fleet
h200_fp8, "validation" of a measured row); nothing is shown unless a command listens with
`Bars(topic, ...)`, so the library stays silent when used from Python. Events from worker
processes reach the listening process through a queue (`forwarded_to_workers`, used by the
process pool), so a bar moves with every simulation, not with every finished fleet.

Bars are drawn only on a terminal: with --quiet, or when stderr is a file or a pipe (CI
logs), there are none.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

# (topic, key, n, total, note, done)
Event = tuple[str, str, int, "int | None", "str | None", bool]

_listener: Callable[[Event], None] | None = None


def emit(topic: str, key: str = "", n: int = 1, *, total: int | None = None, note: str | None = None,
         done: bool = False) -> None:
    """Tell whoever listens that `n` more units of `key` are done (and, optionally, how many
    there are in all, a note on the latest, or that `key` is finished)."""
    if _listener is not None:
        _listener((topic, key, n, total, note, done))


def on_terminal(quiet: bool = False) -> bool:
    """Bars are wanted: not --quiet, and stderr is a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return not quiet and bool(isatty and isatty())


class Bars:
    """One tqdm bar per key of a topic's events, while the `with` block runs.

    `totals` gives keys their known totals up front (others learn theirs from events, or
    count without one: a load search does not know how many loads it will try).
    """

    def __init__(self, topic: str, *, unit: str, enabled: bool = True, totals: dict[str, int] | None = None):
        self.topic, self.unit, self.enabled = topic, unit, enabled
        self.totals = dict(totals or {})
        self.counts: dict[str, int] = {}  # units done per key, kept after the block
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._previous: Callable[[Event], None] | None = None

    def __enter__(self) -> Bars:
        global _listener
        if self.enabled:
            self._previous, _listener = _listener, self._on
            for key in self.totals:
                self._bar(key)
        return self

    def __exit__(self, *exc) -> None:
        global _listener
        if self.enabled:
            _listener = self._previous
            with self._lock:
                for bar in self._bars.values():
                    bar.close()
                self._bars.clear()

    def _bar(self, key: str):
        from tqdm import tqdm

        if key not in self._bars:
            self._bars[key] = tqdm(total=self.totals.get(key), desc=key, unit=" " + self.unit, position=len(self._bars),
                                   leave=False, file=sys.stderr, dynamic_ncols=True, mininterval=0.2)
        return self._bars[key]

    def _on(self, event: Event) -> None:
        topic, key, n, total, note, done = event
        if topic != self.topic:
            if self._previous is not None:
                self._previous(event)
            return
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n
            bar = self._bar(key)
            if total is not None:
                bar.total = total
            if n:
                bar.update(n)
            if note:
                bar.set_postfix_str(note, refresh=False)
            if done:
                bar.total = bar.n
            if total is not None or done:
                bar.refresh()

    def write(self, message: str) -> None:
        """A line above the bars (tqdm keeps them drawn below it)."""
        from tqdm import tqdm

        with self._lock:
            tqdm.write(message, file=sys.stderr)


def _forward(queue) -> None:
    """Pool initializer: this worker's events go into `queue`."""
    global _listener
    _listener = queue.put


@contextlib.contextmanager
def forwarded_to_workers() -> Iterator[dict]:
    """Keyword arguments for a ProcessPoolExecutor whose workers' events reach this process's
    listener; {} (and no queue) when nobody listens. Leave this block after the pool's, so
    that the workers have exited and flushed their events when it closes."""
    if _listener is None:
        yield {}
        return
    import multiprocessing  # (here: a run on one core never starts a pool)

    queue = multiprocessing.get_context().Queue()
    deliver = _listener

    def pump():
        while (event := queue.get()) is not None:
            deliver(event)

    thread = threading.Thread(target=pump, name="progress-events", daemon=True)
    thread.start()
    try:
        yield {"initializer": _forward, "initargs": (queue,)}
    finally:
        queue.put(None)
        thread.join()
        queue.close()


# every topic the studies emit, with the unit its bars count
TOPICS = {"simulation": "sim", "validation": "row", "draw": "draw", "calibration": "row"}


@contextlib.contextmanager
def show_progress() -> Iterator[None]:
    """Progress bars on stderr for whatever runs inside, from Python: a notebook cell or a
    script (the command line draws its own). `with fs.show_progress(): fs.frontier(exp)`."""
    with contextlib.ExitStack() as stack:
        for topic, unit in TOPICS.items():
            stack.enter_context(Bars(topic, unit=unit))
        yield
