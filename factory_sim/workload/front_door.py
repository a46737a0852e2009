"""The front door of a factory: each tenant's arrivals, split across cells step by step.

Time is cut into steps of `step_s`. For every step the front door decides, from the
configuration alone, where each tenant's traffic goes:

- the split: a tenant's arrivals go to the cells serving it in proportion to their weights;
- failover: the share of a cell in an outage goes to the tenant's cells still up, in
  proportion to their weights (or is rejected when none is up, or failover is off);
- the power cap: each cell draws its idle power plus a share of the rest in proportion to
  its expected load (offered requests/s over its analytic capacity); when the site's total
  would pass the budget, the same fraction of every cell's arrivals is shed (rejected at
  the front door) so that the expected draw meets the budget.

Counts are drawn per (tenant, step) from a random stream keyed by the factory seed, the
tenant's name and the step: the arrivals (Poisson with the step's integral of the rate),
then their split (multinomial over the intended cells), then failover and shedding. Each
cell's requests of a step (times and lengths) come from a stream keyed also by the cell's
and the source cell's names. Any task can therefore draw exactly its own requests, in any
order, on any machine, and a cell's requests do not depend on how the factory is cut into
tasks, nor on which other cells exist unless they share its tenants (or the power cap binds).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from factory_sim.config.workload import DiurnalArrivals, LengthDist, PoissonArrivals
from factory_sim.workload.lengths import sample_lengths

_STEP_OFFSET = 1 << 40  # steps before time 0 (a window's warm-up) are negative; seeds are not
_SPLIT, _REQUESTS = 1, 2  # stream purposes


def name_key(name: str) -> int:
    """A stable 64-bit number for a name (Python's hash() changes between processes)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class TenantStream:
    """A tenant as the front door sees it; `cells` index FrontDoor.cells, `weights` go with them."""

    name: str
    arrivals: PoissonArrivals | DiurnalArrivals
    input_tokens: LengthDist
    output_tokens: LengthDist
    cells: tuple[int, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class Split:
    """One tenant's arrivals of one step, over its cells (in TenantStream.cells order).

    `intended[a]`: arrivals the split gave cell a; `moved[a, b]`: of those, how many cell b
    serves (b == a: its own; b != a: failed over); `shed[a, b]`: of those, how many the
    power cap rejected instead; `unrouted[a]`: rejected because a was down and no other
    cell could take them. Every arrival is in exactly one of moved - shed, shed, unrouted.
    """

    arrivals: int
    intended: np.ndarray
    moved: np.ndarray
    shed: np.ndarray
    unrouted: np.ndarray

    @property
    def served(self) -> np.ndarray:
        """[a, b]: arrivals intended for a that cell b receives."""
        return self.moved - self.shed


@dataclass(frozen=True)
class RequestGroup:
    """Requests one cell receives from one source cell in one step (sorted by arrival)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    source: int  # index into FrontDoor.cells: the cell they were intended for


class FrontDoor:
    """Decisions and draws of the front door; small and picklable, shipped to every task."""

    def __init__(self, *, seed: int, step_s: float, cells: tuple[str, ...], tenants: tuple[TenantStream, ...],
                 outages: tuple[tuple[tuple[float, float], ...], ...], failover: bool,
                 capacity_req_per_s: tuple[float, ...], idle_kw: tuple[float, ...], peak_kw: tuple[float, ...],
                 budget_kw: float):
        self.seed, self.step_s, self.cells, self.tenants = seed, step_s, cells, tenants
        self.outages, self.failover = outages, failover
        self.capacity_req_per_s = np.asarray(capacity_req_per_s, dtype=float)
        self.idle_kw, self.peak_kw = np.asarray(idle_kw, dtype=float), np.asarray(peak_kw, dtype=float)
        self.budget_kw = budget_kw
        self._shed: dict[int, float] = {}
        self._offered: dict[int, np.ndarray] = {}

    # -- the rate ------------------------------------------------------------------------
    def step_bounds(self, j: int) -> tuple[float, float]:
        return j * self.step_s, (j + 1) * self.step_s

    def expected_arrivals(self, t: int, j: int) -> float:
        """The integral of tenant t's rate over step j."""
        return _integral(self.tenants[t].arrivals, *self.step_bounds(j))

    # -- the decisions -------------------------------------------------------------------
    def up(self, c: int, j: int) -> bool:
        """Cell c takes arrivals during step j (outages fall on step boundaries)."""
        lo, hi = self.step_bounds(j)
        mid = (lo + hi) / 2
        return not any(start <= mid < end for start, end in self.outages[c])

    def routing(self, t: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(R, lost) over tenant t's cells: R[a, b] is the share of the arrivals intended for a
        that go to b in step j; lost[a] the share rejected for want of a cell."""
        tenant = self.tenants[t]
        n = len(tenant.cells)
        weights = np.asarray(tenant.weights, dtype=float)
        up = np.array([self.up(c, j) for c in tenant.cells])
        routes = np.zeros((n, n))
        lost = np.zeros(n)
        alive = weights * up
        for a in range(n):
            if up[a]:
                routes[a, a] = 1.0
            elif self.failover and alive.sum() > 0:
                routes[a] = alive / alive.sum()
            else:
                lost[a] = 1.0
        return routes, lost

    def offered_req_per_s(self, j: int) -> np.ndarray:
        """Expected requests/s each cell receives in step j, before the power cap."""
        if j in self._offered:
            return self._offered[j]
        offered = np.zeros(len(self.cells))
        for t, tenant in enumerate(self.tenants):
            rate = self.expected_arrivals(t, j) / self.step_s
            weights = np.asarray(tenant.weights, dtype=float)
            routes, _ = self.routing(t, j)
            offered[list(tenant.cells)] += rate * (weights / weights.sum()) @ routes
        offered.flags.writeable = False
        self._offered[j] = offered
        return offered

    def power_kw(self, j: int, shed: float | None = None) -> np.ndarray:
        """Each cell's expected draw in step j: idle plus the rest in proportion to its load
        (capped at full load), after shedding `shed` of its arrivals (default: the step's)."""
        s = self.shed_fraction(j) if shed is None else shed
        load = np.minimum(self.offered_req_per_s(j) * (1.0 - s) / self.capacity_req_per_s, 1.0)
        return self.idle_kw + (self.peak_kw - self.idle_kw) * load

    def shed_fraction(self, j: int) -> float:
        """The share of every cell's arrivals rejected in step j to keep the draw in the budget."""
        if j not in self._shed:
            self._shed[j] = self._solve_shed(j)
        return self._shed[j]

    def _solve_shed(self, j: int) -> float:
        if self.power_kw(j, 0.0).sum() <= self.budget_kw:
            return 0.0
        if self.idle_kw.sum() >= self.budget_kw:
            return 1.0
        lo, hi = 0.0, 1.0  # the draw falls as the shed share grows: bisect to a draw within the budget
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.power_kw(j, mid).sum() > self.budget_kw:
                lo = mid
            else:
                hi = mid
        return hi

    # -- the draws -----------------------------------------------------------------------
    def split(self, t: int, j: int) -> Split:
        """Tenant t's arrivals of step j: how many, and where each went."""
        tenant = self.tenants[t]
        rng = np.random.default_rng([self.seed, _SPLIT, name_key(tenant.name), j + _STEP_OFFSET])
        arrivals = int(rng.poisson(self.expected_arrivals(t, j)))
        weights = np.asarray(tenant.weights, dtype=float)
        intended = rng.multinomial(arrivals, weights / weights.sum())
        routes, lost = self.routing(t, j)
        n = len(tenant.cells)
        moved = np.zeros((n, n), dtype=np.int64)
        unrouted = np.zeros(n, dtype=np.int64)
        for a in range(n):
            if lost[a]:
                unrouted[a] = intended[a]
            elif routes[a, a] == 1.0:
                moved[a, a] = intended[a]
            else:
                moved[a] = rng.multinomial(intended[a], routes[a])
        s = self.shed_fraction(j)
        shed = rng.binomial(moved, s) if s > 0 else np.zeros_like(moved)
        return Split(arrivals=arrivals, intended=intended, moved=moved, shed=shed, unrouted=unrouted)

    def requests(self, t: int, j: int, cell: int) -> list[RequestGroup]:
        """The requests of tenant t that cell `cell` receives in step j, one group per source cell."""
        tenant = self.tenants[t]
        b = tenant.cells.index(cell)
        served = self.split(t, j).served[:, b]
        lo, hi = self.step_bounds(j)
        groups = []
        for a in np.flatnonzero(served):
            source = tenant.cells[a]
            rng = np.random.default_rng([self.seed, _REQUESTS, name_key(tenant.name), name_key(self.cells[cell]),
                                         name_key(self.cells[source]), j + _STEP_OFFSET])
            time_rng, input_rng, output_rng = rng.spawn(3)
            n = int(served[a])
            groups.append(RequestGroup(
                arrival_s=_times_in(tenant.arrivals, lo, hi, n, time_rng),
                input_tokens=sample_lengths(tenant.input_tokens, n, input_rng),
                output_tokens=sample_lengths(tenant.output_tokens, n, output_rng),
                source=int(source)))
        return groups


def _integral(arr: PoissonArrivals | DiurnalArrivals, lo: float, hi: float) -> float:
    """Expected arrivals in [lo, hi): the integral of the rate (DiurnalArrivals' cosine)."""
    if isinstance(arr, PoissonArrivals):
        return arr.rate_per_s * (hi - lo)
    mean, swing, omega = _cosine(arr)
    return mean * (hi - lo) - (swing / omega) * (math.sin(omega * (hi - arr.trough_at_s))
                                                  - math.sin(omega * (lo - arr.trough_at_s)))


def _cosine(arr: DiurnalArrivals) -> tuple[float, float, float]:
    return arr.rate_per_s, (arr.peak_rate_per_s - arr.trough_rate_per_s) / 2, 2 * math.pi / arr.period_s


def _rate(arr: DiurnalArrivals, t: np.ndarray) -> np.ndarray:
    mean, swing, omega = _cosine(arr)
    return mean - swing * np.cos(omega * (t - arr.trough_at_s))


def _times_in(arr: PoissonArrivals | DiurnalArrivals, lo: float, hi: float, n: int,
              rng: np.random.Generator) -> np.ndarray:
    """`n` sorted arrival times in [lo, hi) of a Poisson process with the tenant's rate, given
    that n arrived: independent draws with density proportional to the rate (by rejection
    against the step's highest rate, exact for any rate curve)."""
    if n == 0:
        return np.empty(0)
    if isinstance(arr, PoissonArrivals) or arr.peak_rate_per_s == arr.trough_rate_per_s:
        return np.sort(rng.uniform(lo, hi, n))
    mean, swing, omega = _cosine(arr)
    # the highest rate in the step: at an end, or at a peak of the cosine inside it
    peaks = math.floor((hi - arr.trough_at_s) * omega / (2 * math.pi) - 0.5)
    peak_t = arr.trough_at_s + (peaks + 0.5) * 2 * math.pi / omega
    top = mean + swing if lo <= peak_t < hi else float(max(_rate(arr, np.array([lo, hi]))))
    kept: list[np.ndarray] = []
    have = 0
    while have < n:
        t = rng.uniform(lo, hi, max(16, int((n - have) * 1.2 * top * (hi - lo) / max(_integral(arr, lo, hi), 1e-300))))
        t = t[rng.uniform(0.0, top, t.size) < _rate(arr, t)]
        kept.append(t)
        have += t.size
    return np.sort(np.concatenate(kept)[:n])
