"""Hardware faults inside the simulated factory: units fail and are repaired on the SimPy clock.

A fault unit is a GPU, a node (an HGX baseboard or an NVL72 compute tray), an NVLink switch,
or a whole rack (the scale-up domain). Each alternates between up and down, with times to
failure and to repair drawn from exponential or Weibull distributions of the configured
means (per hardware profile; see `reliability` in the hardware YAML for the sources).

What a failure does depends on the unit and on the domain policy:
- the replicas on the failed GPUs lose every request they hold and their KV cache; the
  engine retries those requests elsewhere; the replicas come back after the repair plus a
  restart (reloading weights);
- `drain` (the default): a GPU or tray failure inside an NVL72 domain takes the whole rack
  out for the repair: the domain's other replicas stop taking work, finish what they hold,
  then go down until the repair ends (if it ends first, they simply stay in service);
- `degraded`: a replica with expert parallelism re-forms on the GPUs it has left after a
  short reconfiguration (losing what it held) and runs at the reduced capacity until the
  repair, with no drain of its neighbours; a replica without EP cannot, and waits;
- switch and rack faults take the whole domain down under either policy.

With no fault plan, none of this exists and the engine runs exactly as without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import simpy

from factory_sim.config.experiment import FAULT_KINDS


@dataclass(frozen=True)
class FaultRates:
    """Mean time between failures and to repair of one unit of one kind, in seconds."""

    kind: str
    mtbf_s: float
    mttr_s: float


@dataclass(frozen=True)
class Injection:
    """A failure at a given time: `kind` unit number `unit` of `hardware` fails at `at_s`."""

    at_s: float
    hardware: str
    kind: str
    unit: int = 0
    repair_s: float | None = None  # default: that kind's mean time to repair


@dataclass(frozen=True)
class FaultSettings:
    rates: dict[str, tuple[FaultRates, ...]]  # per hardware name
    restart_s: tuple[float, ...]  # per pool: reload weights and start the engine
    distribution: str = "exponential"
    weibull_shape: float = 1.0
    domain_policy: str = "drain"
    max_retries: int = 2
    retry_after_s: float = 1.0
    reconfigure_s: float = 60.0
    stationary_start: bool = True
    injections: tuple[Injection, ...] = ()
    switches_per_domain: dict[str, int] = field(default_factory=dict)  # per hardware name; default 1

    def draws_random_faults(self) -> bool:
        return any(math.isfinite(r.mtbf_s) and r.mtbf_s > 0 for rates in self.rates.values() for r in rates)


@dataclass
class _Unit:
    hardware: str
    kind: str
    index: int
    gpu_lo: int  # GPU range [lo, hi) in that hardware's numbering
    gpu_hi: int
    rates: FaultRates | None
    down: bool = False
    held: list = field(default_factory=list)  # replicas it keeps down
    drained: list = field(default_factory=list)  # replicas it asked to drain
    degraded: list = field(default_factory=list)  # (replica, GPUs lost) running degraded


@dataclass
class FaultLog:
    """What the faults did in one run: events, and lost GPU-seconds per replica."""

    events: list[tuple[float, str, str, int, int]] = field(default_factory=list)  # (t, hw, kind, unit, replicas hit)
    lost_gpu_s: list[float] = field(default_factory=list)


class FaultInjector:
    """Drives the units' up/down processes and applies their effects to the replicas."""

    def __init__(self, env: simpy.Environment, plan: FaultSettings, replicas: list,
                 gpu_ranges: list[tuple[str, int, int]], hardware: dict, retry: Callable[[list[int]], None], seed: int):
        self.env, self.plan, self.replicas = env, plan, replicas
        self._ranges = gpu_ranges  # per replica: (hardware name, first GPU, end GPU)
        self._retry = retry
        self._rng = np.random.default_rng([seed, 3])
        self.log = FaultLog(lost_gpu_s=[0.0] * len(replicas))
        n = len(replicas)
        self._holds = [0] * n
        self._failed_gpus = [0] * n
        self._lost_now = [0] * n  # GPUs of each replica out of service right now
        self._since = [0.0] * n
        self._restart_token = [0] * n
        self.out_of_service = 0  # replicas not accepting work; the engine filters routing while > 0
        self.version = 0  # bumped whenever a replica enters or leaves service (the engine caches by it)
        self._hardware = hardware
        self._units = self._build_units(hardware)
        self._by_key = {(u.hardware, u.kind, u.index): u for u in self._units}

    # -- units and their processes ------------------------------------------------------
    def _build_units(self, hardware: dict) -> list[_Unit]:
        gpus_in_use: dict[str, int] = {}
        for hw_name, _lo, hi in self._ranges:
            gpus_in_use[hw_name] = max(gpus_in_use.get(hw_name, 0), hi)
        units = []
        for hw_name, total in gpus_in_use.items():
            hw = hardware[hw_name]
            rates = {r.kind: r for r in self.plan.rates.get(hw_name, ())}
            domains = math.ceil(total / hw.gpus_per_scaleup_domain)
            spans = {
                "gpu": [(g, g + 1) for g in range(total)],
                "node": [(lo, min(lo + hw.gpus_per_node, total)) for lo in range(0, total, hw.gpus_per_node)],
                "rack": [(d * hw.gpus_per_scaleup_domain, min((d + 1) * hw.gpus_per_scaleup_domain, total))
                         for d in range(domains)],
            }
            per_domain = self.plan.switches_per_domain.get(hw_name, 1)
            spans["switch"] = [spans["rack"][i // per_domain] for i in range(domains * per_domain)]
            for kind in FAULT_KINDS:
                for i, (lo, hi) in enumerate(spans[kind]):
                    units.append(_Unit(hw_name, kind, i, lo, hi, rates.get(kind)))
        return units

    def start(self) -> None:
        for unit in self._units:
            r = unit.rates
            if r is not None and math.isfinite(r.mtbf_s) and r.mtbf_s > 0:
                self.env.process(self._cycle(unit))
        for inj in self.plan.injections:
            unit = self._by_key.get((inj.hardware, inj.kind, inj.unit))
            if unit is None:
                raise ValueError(f"no {inj.kind} unit {inj.unit} on {inj.hardware} in this fleet")
            repair = inj.repair_s if inj.repair_s is not None else (unit.rates.mttr_s if unit.rates else 0.0)
            self.env.process(self._injected(unit, inj.at_s, repair))

    def _draw(self, mean_s: float) -> float:
        if self.plan.distribution == "weibull":
            k = self.plan.weibull_shape
            return float(mean_s / math.gamma(1.0 + 1.0 / k) * self._rng.weibull(k))
        return float(self._rng.exponential(mean_s))

    def _initial_state(self, r: FaultRates) -> tuple[bool, float]:
        """(down at time 0, time to the next change): the alternating process run from far in the past."""
        if not self.plan.stationary_start:
            return False, self._draw(r.mtbf_s)
        t = -10.0 * (r.mtbf_s + r.mttr_s)
        while True:
            t += self._draw(r.mtbf_s)
            if t > 0:
                return False, t
            t += self._draw(r.mttr_s)
            if t > 0:
                return True, t

    def _cycle(self, unit: _Unit):
        r = unit.rates
        down, wait = self._initial_state(r)
        if down:
            self._fail(unit)
            yield self.env.timeout(wait)
            self._repair(unit)
            wait = self._draw(r.mtbf_s)
        while True:
            yield self.env.timeout(wait)
            self._fail(unit)
            yield self.env.timeout(self._draw(r.mttr_s))
            self._repair(unit)
            wait = self._draw(r.mtbf_s)

    def _injected(self, unit: _Unit, at_s: float, repair_s: float):
        yield self.env.timeout(at_s)
        if unit.down:
            return
        self._fail(unit)
        yield self.env.timeout(repair_s)
        self._repair(unit)

    # -- effects on replicas ------------------------------------------------------------------
    def _hit(self, unit: _Unit) -> list[int]:
        return [i for i, (hw, lo, hi) in enumerate(self._ranges)
                if hw == unit.hardware and lo < unit.gpu_hi and unit.gpu_lo < hi]

    def _same_domains(self, unit: _Unit, hit: list[int], domain_gpus: int) -> list[int]:
        lo = unit.gpu_lo // domain_gpus * domain_gpus
        hi = lo + domain_gpus
        return [i for i, (hw, a, b) in enumerate(self._ranges)
                if hw == unit.hardware and a < hi and lo < b and i not in hit]

    def _fail(self, unit: _Unit) -> None:
        unit.down = True
        hw = self._hardware[unit.hardware]
        hit = self._hit(unit)
        self.log.events.append((self.env.now, unit.hardware, unit.kind, unit.index, len(hit)))
        in_domain = unit.kind in ("gpu", "node") and hw.gpus_per_scaleup_domain > hw.gpus_per_node
        for i in hit:
            rep = self.replicas[i]
            _, lo, hi = self._ranges[i]
            lost_gpus = min(hi, unit.gpu_hi) - max(lo, unit.gpu_lo)
            if (self.plan.domain_policy == "degraded" and in_domain and rep.shape.ep > 1
                    and self._failed_gpus[i] + lost_gpus < hi - lo):
                unit.degraded.append((i, lost_gpus))
                self._failed_gpus[i] += lost_gpus
                self._take_down(i)
                self._schedule_restart(i, self.plan.reconfigure_s)
            else:
                unit.held.append(i)
                self._holds[i] += 1
                self._take_down(i)
        if self.plan.domain_policy == "drain" and in_domain:
            for i in self._same_domains(unit, hit, hw.gpus_per_scaleup_domain):
                unit.drained.append(i)
                rep = self.replicas[i]
                if rep.accepting:
                    self.out_of_service += 1
                    self.version += 1
                    rep.drain(lambda r, u=unit: self._drained(r.index, u))

    def _drained(self, i: int, unit: _Unit) -> None:
        if unit.down:
            unit.held.append(i)
            self._holds[i] += 1
            self._take_down(i)
        else:  # repaired meanwhile: back in service
            self.replicas[i].cancel_drain()
            self.out_of_service -= 1
            self.version += 1

    def _repair(self, unit: _Unit) -> None:
        unit.down = False
        for i in unit.held:
            self._holds[i] -= 1
            if self._holds[i] == 0:
                self._schedule_restart(i, self.plan.restart_s[self.replicas[i].pool_index])
        for i in unit.drained:
            rep = self.replicas[i]
            if rep.draining:  # still finishing its work: it never left
                rep.cancel_drain()
                self.out_of_service -= 1
                self.version += 1
        for i, lost_gpus in unit.degraded:
            self._failed_gpus[i] -= lost_gpus
            rep = self.replicas[i]
            if rep.accepting:  # running degraded: back to its full GPUs (hot add, an assumption)
                rep.set_capacity(self._capacity(i))
                self._account(i)
        unit.held, unit.drained, unit.degraded = [], [], []

    def _capacity(self, i: int) -> float:
        _, lo, hi = self._ranges[i]
        return (hi - lo - self._failed_gpus[i]) / (hi - lo)

    def _take_down(self, i: int) -> None:
        rep = self.replicas[i]
        self._restart_token[i] += 1  # a restart already scheduled no longer applies
        lost = []
        if rep.accepting or rep.draining:
            if rep.accepting:  # a draining replica was counted out of service when it began draining
                self.out_of_service += 1
            lost = rep.fail()
        self._account(i)
        if lost:
            self._retry(lost)

    def _schedule_restart(self, i: int, delay_s: float) -> None:
        self._restart_token[i] += 1
        token = self._restart_token[i]

        def restart(_event):
            if self._restart_token[i] == token and self._holds[i] == 0:
                self.replicas[i].restore(self._capacity(i))
                self.out_of_service -= 1
                self._account(i)

        self.env.timeout(delay_s).callbacks.append(restart)

    def _account(self, i: int) -> None:
        """Close the lost-GPU-seconds interval of replica i and open the next at its new state."""
        self.version += 1
        now = self.env.now
        self.log.lost_gpu_s[i] += self._lost_now[i] * (now - self._since[i])
        rep = self.replicas[i]
        _, lo, hi = self._ranges[i]
        self._lost_now[i] = (hi - lo) if not (rep.accepting or rep.draining) else self._failed_gpus[i]
        self._since[i] = now

    def close(self) -> FaultLog:
        for i in range(len(self.replicas)):
            self._account(i)
        return self.log


def long_run_availability(plan: FaultSettings, pools: list, hardware: dict) -> float:
    """Share of the fleet's GPU capacity in service in the long run, to first order in the fault rates.

    Each unit fails at the renewal rate 1 / (MTBF + MTTR); each failure costs the GPUs it
    takes out times how long: a held replica for the repair plus its restart, a drained
    domain likewise, a degraded replica its whole size for the reconfiguration and the lost
    GPUs for the repair. Overlapping failures are ignored (rare when MTTR << MTBF), so this
    is the figure a long simulation converges to when failures are rare.
    """
    lost_rate = 0.0  # lost GPU-seconds per second
    total = 0
    for hw_name, pool_gpus in _gpus_by_hardware(pools).items():
        hw = hardware[hw_name]
        gpus = sum(g for g, _ in pool_gpus)
        total += gpus
        domains = math.ceil(gpus / hw.gpus_per_scaleup_domain)
        # an average replica of this hardware: GPUs and restart time weighted by GPUs
        rep_gpus = sum(g * size for g, (size, _) in pool_gpus) / gpus
        restart = sum(g * rs for g, (_, rs) in pool_gpus) / gpus
        domain_gpus = min(hw.gpus_per_scaleup_domain, gpus)
        in_domain = hw.gpus_per_scaleup_domain > hw.gpus_per_node
        for r in plan.rates.get(hw_name, ()):
            if not (math.isfinite(r.mtbf_s) and r.mtbf_s > 0):
                continue
            count = {"gpu": gpus, "node": math.ceil(gpus / hw.gpus_per_node), "rack": domains,
                     "switch": domains * plan.switches_per_domain.get(hw_name, 1)}[r.kind]
            rate = count / (r.mtbf_s + r.mttr_s)
            if r.kind in ("switch", "rack") or (plan.domain_policy == "drain" and in_domain):
                cost = domain_gpus * (r.mttr_s + restart)
            elif plan.domain_policy == "degraded" and in_domain:
                lost = 1 if r.kind == "gpu" else hw.gpus_per_node
                cost = rep_gpus * plan.reconfigure_s + lost * r.mttr_s
            else:  # the replicas on the failed unit wait for the repair
                cost = max(rep_gpus, 1 if r.kind == "gpu" else hw.gpus_per_node) * (r.mttr_s + restart)
            lost_rate += rate * cost
    return max(0.0, 1.0 - lost_rate / total) if total else 1.0


def _gpus_by_hardware(pools: list) -> dict[str, list[tuple[int, tuple[int, float]]]]:
    """hardware -> [(GPUs of the pool, (GPUs per replica, restart s))]."""
    out: dict[str, list] = {}
    for pool, restart_s in pools:
        out.setdefault(pool.shape.hardware.name, []).append((pool.gpus, (pool.shape.gpus, restart_s)))
    return out
