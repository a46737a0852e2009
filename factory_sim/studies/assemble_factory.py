"""A factory file, resolved: each cell's fleet, capacity, power and prices, and the front door.

Each cell becomes a one-fleet experiment (its tenants are the experiment's traffic classes),
built and checked exactly as `factory-sim run` builds an experiment's fleets, so a cell
that would not fit or run as an experiment fails here, with the YAML path of the cell's
field. The cell's analytic capacity (requests/s with full batches at the mix of its tenants'
mean lengths) and provisioned all-in power feed the front door's split and power cap.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from factory_sim.config.experiment import Experiment
from factory_sim.config.factory import FactorySpec, load_factory_spec
from factory_sim.config.hardware import load_hardware
from factory_sim.config.model import load_model
from factory_sim.config.workload import SessionArrivals, WorkloadSpec, load_workload
from factory_sim.errors import ConfigError
from factory_sim.perf.estimate import capacity_req_per_s
from factory_sim.results.cost import fleet_power_kw, usd_per_gpu_hour
from factory_sim.sim.engine import FleetLayout
from factory_sim.studies.assemble import fleet_layouts, load_experiment, parse_experiment
from factory_sim.workload.front_door import FrontDoor, TenantStream
from factory_sim.workload.lengths import mean_length


@dataclass
class Cell:
    """One cell, resolved: its fleet, what it costs and draws, and what it can serve."""

    name: str
    spec_index: int  # its entry in the file's `cells:` list
    model: str
    tenants: tuple[str, ...]  # in the order of its traffic classes
    experiment: str  # the cell as an experiment (JSON), which a worker parses again
    plan: FleetLayout
    hardware: str  # hardware kinds, joined with "+"
    gpus_by_hardware: dict[str, int]  # installed: autoscaled pools at their most replicas
    peak_kw: float
    capacity_req_per_s: float
    usd_per_gpu_hour: dict[str, float]  # energy left out under a TCO basis (it is priced by the draw)

    @property
    def gpus(self) -> int:
        return sum(self.gpus_by_hardware.values())


@dataclass
class Factory:
    spec: FactorySpec
    source: str
    cells: list[Cell]
    front_door: FrontDoor

    def cell_index(self, name: str) -> int:
        return self.front_door.cells.index(name)


def load_factory(path: str | Path) -> Factory:
    """Read, validate and resolve a factory file; every error names its field."""
    p = Path(path)
    return resolve_factory(load_factory_spec(p), source=str(p), base_dir=p.parent)


def resolve_factory(spec: FactorySpec, source: str = "<factory>", base_dir: Path = Path(".")) -> Factory:
    lengths = [_tenant_lengths(spec, j, base_dir, source) for j in range(len(spec.tenants))]
    for j, tenant in enumerate(spec.tenants):
        _at(f"tenants[{j}].model", source, lambda m=tenant.model: load_model(m))
    tenant_index = {t.name: j for j, t in enumerate(spec.tenants)}
    cells: list[Cell] = []
    for i, cs in enumerate(spec.cells):
        model, fleet, faults, where_from = _cell_source(spec, i, base_dir, source)
        for t in cs.tenants:
            tenant = spec.tenants[tenant_index[t]]
            if tenant.model != model:
                raise ConfigError(f"cells[{i}].tenants.{t}", f"tenant {t!r} sends {tenant.model} requests but the "
                                  f"cell serves {model}; list it under a cell of that model", source)
        if fleet.get("prefix_cache") and fleet["prefix_cache"].get("enabled", True):
            raise ConfigError(f"cells[{i}].fleet.prefix_cache", "a factory's tenants send requests without prompt "
                              "block hashes, so a prefix cache would find nothing; remove prefix_cache", source)
        first = lengths[tenant_index[next(iter(cs.tenants))]]
        for name in cs.names():
            raw = {
                "name": name, "model": model, "seed": spec.seed,
                "workload": {"arrivals": {"kind": "poisson", "rate_per_s": 1.0}, "requests": 4,
                             "input_tokens": first[0].model_dump(mode="json"),
                             "output_tokens": first[1].model_dump(mode="json")},
                "traffic_classes": [
                    {"name": t, "share": w, "ttft_s": spec.tenants[tenant_index[t]].slo.ttft_s,
                     "tpot_s": spec.tenants[tenant_index[t]].slo.tpot_s,
                     "latency_critical": spec.tenants[tenant_index[t]].latency_critical}
                    for t, w in cs.tenants.items()],
                "fleets": [{**fleet, "name": name}],
                "cost": spec.cost.model_dump(mode="json"),
                "load": {"mode": "fixed"},
            }
            if faults is not None:
                raw["faults"] = faults
            exp = _cell_experiment(raw, f"cells[{i}]", where_from)
            cells.append(_resolve_cell(spec, i, name, cs.tenants, raw, exp, lengths, tenant_index))
    front_door = _front_door(spec, cells, lengths)
    idle_mw = float(front_door.idle_kw.sum()) / 1000
    if idle_mw >= spec.site.power_budget_mw:
        raise ConfigError("site.power_budget_mw", f"the cells draw {idle_mw:.3f} MW at idle alone (idle_fraction "
                          f"{spec.site.idle_fraction:g} of {front_door.peak_kw.sum() / 1000:.3f} MW provisioned); "
                          "raise the budget or remove cells", source)
    return Factory(spec=spec, source=source, cells=cells, front_door=front_door)


def _at(path: str, source: str, load):
    try:
        return load()
    except ConfigError as exc:
        raise ConfigError(path, exc.message if not exc.path else f"{exc.path}: {exc.message}", source) from None


def _tenant_lengths(spec: FactorySpec, j: int, base_dir: Path, source: str):
    tenant = spec.tenants[j]
    where = f"tenants[{j}].workload"
    if isinstance(tenant.workload, WorkloadSpec):
        ws = tenant.workload
    else:
        local = base_dir / tenant.workload
        ws = _at(where, source, lambda: load_workload(str(local) if local.is_file() else tenant.workload))
    if ws.input_tokens is None or ws.output_tokens is None or isinstance(ws.arrivals, SessionArrivals):
        raise ConfigError(where, f"workload '{ws.name}' has no input/output length distributions of its own "
                          "(sessions, or a trace replay's lengths); a tenant takes its lengths from the workload "
                          "and its rate from `arrivals:`; use e.g. {kind: empirical, trace: azure_conv, column: "
                          "input} lengths", source)
    return ws.input_tokens, ws.output_tokens


def _cell_source(spec: FactorySpec, i: int, base_dir: Path, source: str):
    """(model, fleet mapping, faults mapping or None, file its errors belong to) of cell i."""
    cs = spec.cells[i]
    if cs.experiment is None:
        faults = cs.faults.model_dump(mode="json") if cs.faults is not None else None
        return cs.model, cs.fleet.model_dump(mode="json"), faults, source
    path = base_dir / cs.experiment
    if not path.is_file():
        raise ConfigError(f"cells[{i}].experiment", f"no experiment file {path}", source)
    exp = load_experiment(path)
    names = [f.name for f in exp.fleets]
    if cs.fleet is None:
        if len(names) != 1:
            raise ConfigError(f"cells[{i}].fleet", f"{path} has fleets {', '.join(names)}; name the cell's one "
                                                   "with `fleet:`", source)
        fleet = exp.fleets[0]
    elif cs.fleet in names:
        fleet = exp.fleets[names.index(cs.fleet)]
    else:
        raise ConfigError(f"cells[{i}].fleet", f"{path} has no fleet {cs.fleet!r}; it has {', '.join(names)}",
                          source)
    faults = exp.faults.model_dump(mode="json") if exp.faults is not None else None
    return exp.model, fleet.model_dump(mode="json"), faults, str(path)


def _cell_experiment(raw: dict, where: str, source: str) -> Experiment:
    """The cell as a one-fleet experiment; its errors re-rooted at the cell's YAML path."""
    try:
        return parse_experiment(raw, source=source)
    except ConfigError as exc:
        path = exc.path
        for theirs, ours in (("fleets[0]", f"{where}.fleet"), ("model", f"{where}.model"),
                             ("faults", f"{where}.faults"), ("traffic_classes", f"{where}.tenants")):
            if path == theirs or path.startswith(theirs + ".") or path.startswith(theirs + "["):
                path = ours + path[len(theirs):]
                break
        else:
            path = f"{where}: {path}" if path else where
        raise ConfigError(path, exc.message, exc.source or source) from None


def _resolve_cell(spec: FactorySpec, i: int, name: str, tenants: dict[str, float], raw: dict, exp: Experiment,
                  lengths: list, tenant_index: dict[str, int]) -> Cell:
    plan = fleet_layouts(exp)[0]
    installed = dataclasses.replace(plan, pools=tuple(dataclasses.replace(p, replicas=p.replica_slots)
                                                      for p in plan.pools))
    by_hw: dict[str, int] = {}
    for hw, gpus in installed.gpus_by_hardware():
        by_hw[hw.name] = gpus
    # the mix of lengths the cell sees: its tenants' mean lengths weighted by the requests/s it expects of each
    mix = []
    for t, w in tenants.items():
        tenant = spec.tenants[tenant_index[t]]
        share = w / sum(c.tenants[t] for c in spec.cells if t in c.tenants)
        in_dist, out_dist = lengths[tenant_index[t]]
        mix.append((tenant.arrivals.rate_per_s * share, mean_length(in_dist), mean_length(out_dist)))
    total = sum(m[0] for m in mix)
    mean_in = sum(m[0] * m[1] for m in mix) / total
    mean_out = sum(m[0] * m[2] for m in mix) / total
    cost = spec.cost
    if cost.basis == "tco":  # energy is priced from the modelled draw at the site's price
        cost = cost.model_copy(update={"tco": cost.tco.model_copy(update={"usd_per_kwh": 0.0})})
    return Cell(
        name=name, spec_index=i, model=exp.model, tenants=tuple(tenants), experiment=json.dumps(raw, sort_keys=True),
        plan=plan, hardware="+".join(by_hw), gpus_by_hardware=by_hw,
        peak_kw=fleet_power_kw([(load_hardware(h), g) for h, g in by_hw.items()]),
        capacity_req_per_s=capacity_req_per_s(installed, mean_in, mean_out),
        usd_per_gpu_hour={h: usd_per_gpu_hour(load_hardware(h), cost) for h in by_hw})


def _front_door(spec: FactorySpec, cells: list[Cell], lengths: list) -> FrontDoor:
    names = tuple(c.name for c in cells)
    streams = []
    for j, tenant in enumerate(spec.tenants):
        served = [(k, c) for k, c in enumerate(cells) if tenant.name in c.tenants]
        weights = [spec.cells[c.spec_index].tenants[tenant.name] for _, c in served]
        if spec.front_door.policy == "capacity":
            weights = [w * c.capacity_req_per_s for w, (_, c) in zip(weights, served, strict=True)]
        streams.append(TenantStream(name=tenant.name, arrivals=tenant.arrivals, input_tokens=lengths[j][0],
                                    output_tokens=lengths[j][1], cells=tuple(k for k, _ in served),
                                    weights=tuple(weights)))
    base = {n: spec.cells[c.spec_index].name for n, c in zip(names, cells, strict=True)}
    return FrontDoor(
        seed=spec.seed, step_s=spec.step_s, cells=names, tenants=tuple(streams),
        outages=tuple(tuple(spec.outages_of(n, base[n])) for n in names), failover=spec.front_door.failover,
        capacity_req_per_s=tuple(c.capacity_req_per_s for c in cells),
        idle_kw=tuple(c.peak_kw * spec.site.idle_fraction for c in cells),
        peak_kw=tuple(c.peak_kw for c in cells), budget_kw=spec.site.power_budget_mw * 1000.0)
