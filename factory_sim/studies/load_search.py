"""Searching over load: the highest load at which a fleet still meets its SLO.

Bisection in log space, because capacities span orders of magnitude (a Hopper fleet at a
15 ms TPOT serves a few requests per second, a rack at 50 ms thousands), so a relative
tolerance is what a planner means by "to within 3%".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from factory_sim.config.experiment import Experiment
from factory_sim.config.workload import ClosedLoopArrivals
from factory_sim.progress import emit
from factory_sim.sim.engine import FleetLayout


def bisect_log(ok: Callable[[float], bool], lo: float, hi: float | None, *, steps: int, rel_tol: float,
               integer: bool) -> tuple[float, float | None]:
    """Narrow a bracket (ok(lo), not ok(hi)) by geometric midpoints until hi/lo < 1 + rel_tol
    (or adjacent integers), at most `steps` evaluations."""
    for _ in range(steps):
        if hi is None or hi / lo < 1 + rel_tol or (integer and hi - lo <= 1):
            break
        mid = math.sqrt(lo * hi)
        mid = float(round(mid)) if integer else mid
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


class LoadSearch:
    """Bisection over load in log space, shared by all tiers through a cache of points."""

    def __init__(self, exp: Experiment, plan: FleetLayout, progress: Callable[[str], None] | None, simulate):
        self.exp, self.plan, self.progress, self.simulate = exp, plan, progress, simulate
        self.cache: dict[float, Any] = {}  # load -> the simulated point (studies.run.Point)
        self.integer = isinstance(exp.workload_spec.arrivals, ClosedLoopArrivals)

    def at(self, load: float) -> Any:
        load = float(max(1, round(load))) if self.integer else float(load)
        if load not in self.cache:
            near = min(self.cache, key=lambda x: abs(math.log(x / load)), default=None)
            hint = self.cache[near].e2e_p50_s if near is not None else None
            self.cache[load] = self.simulate(self.exp, self.plan, load, e2e_hint_s=hint)
            att = ", ".join(f"{t} {s['slo_attainment']:.0%}" for t, s in self.cache[load].summaries.items())
            unit = "clients" if self.integer else "req/s"
            emit("simulation", self.plan.name, note=f"{load:.4g} {unit}: {att}")
            if self.progress:
                self.progress(f"{self.plan.name}: {load:.4g} {unit} -> attainment {att}")
        return self.cache[load]

    def ok(self, load: float, tier: str) -> bool:
        return self.at(load).summaries[tier]["slo_attainment"] >= self.exp.load.target_attainment

    def bracket(self, tier: str) -> tuple[float | None, float | None]:
        """Largest passing load below the smallest failing load, among loads already simulated."""
        fails = [x for x in self.cache if not self.ok(x, tier)]
        hi = min(fails) if fails else None
        passes = [x for x in self.cache if self.ok(x, tier) and (hi is None or x < hi)]
        return (max(passes) if passes else None), hi

    def search(self, tier: str, guess: float, ceiling: float | None = None) -> float | None:
        """Highest passing load to within 3%, or None if even guess/1000 fails.

        `ceiling` is an analytic upper bound on capacity: the first step up goes there.
        """
        budget = self.exp.load.search_steps
        floor = guess / 1000.0
        if not self.cache:
            self.at(guess)
        lo, hi = self.bracket(tier)
        runs = 0
        while lo is None:
            nxt = hi / 4.0
            if nxt < floor or (self.integer and hi <= 1):
                return None
            self.at(nxt)
            lo, hi = self.bracket(tier)
            runs += 1
        while hi is None and runs < 2 * budget:
            self.at(ceiling if ceiling and ceiling > lo * 1.03 else lo * 2.0)
            lo, hi = self.bracket(tier)
            runs += 1
        lo, _ = bisect_log(lambda x: self.ok(x, tier), lo, hi, steps=budget, rel_tol=0.03, integer=self.integer)
        return lo
