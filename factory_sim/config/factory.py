"""The factory file: cells behind one front door, inside one power budget.

A factory is many deployments (cells) serving many tenants. Each cell is one fleet of an
experiment (model, hardware, pools, stack, router, autoscaler, faults), given inline or
taken from an experiment file; each tenant is a traffic stream (a model, request lengths,
a rate shape over the day, an SLO) that the front door splits across the cells serving
its model.

How the parts are coupled, and why cells can be simulated apart: cells share nothing
inside the simulated time (no KV, no replicas, no queues), so each is simulated on its
own, as independent tasks. What couples them (the split of each tenant's arrivals, the
failover of a failed cell's share to the tenant's other cells, the site's power cap) is
decided by the front door in fixed time steps of `front_door.step_s`, from the
configuration alone (rate shapes, weights, outages, each cell's analytic capacity and
power), never from another cell's simulated queues. A decision holds for a whole step.

Only the schema and the checks that need nothing but the file live here; building the
cells' fleets is `factory_sim.studies.factory`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from factory_sim.catalog import read_mapping
from factory_sim.config.cost import CostSpec
from factory_sim.config.experiment import FaultSpec, FleetSpec
from factory_sim.config.workload import DiurnalArrivals, PoissonArrivals, WorkloadSpec
from factory_sim.errors import ConfigError, from_validation_error

_STRICT = ConfigDict(extra="forbid", defer_build=True)

# GPU servers at idle draw around 20% of their nameplate power: Uptime Institute
# Intelligence, "GPU utilization is a confusing metric" (UII Update 362, May 2025), citing
# Lawrence Berkeley National Laboratory estimates. Applying it to the all-in figure (host,
# network, cooling) and drawing linearly in load up to the full figure is an estimate.
DEFAULT_IDLE_FRACTION = 0.2


class SiteSpec(BaseModel):
    """The site: its power budget and the price of its energy."""

    model_config = _STRICT
    power_budget_mw: float = Field(gt=0, allow_inf_nan=False,
                                   description="all-in power the site may draw (IT, cooling, network)")
    usd_per_mwh: float = Field(ge=0, allow_inf_nan=False, description="price of energy")
    idle_fraction: float = Field(default=DEFAULT_IDLE_FRACTION, ge=0, le=1,
                                 description="share of a cell's all-in power drawn at no load (estimate)")


class SloSpec(BaseModel):
    model_config = _STRICT
    ttft_s: float = Field(gt=0, allow_inf_nan=False)
    tpot_s: float = Field(gt=0, allow_inf_nan=False)


class TenantSpec(BaseModel):
    """One traffic stream: its model, request lengths, arrival rate over time and SLO.

    Lengths come from `workload` (a built-in workload's name, a workload file, or an inline
    workload); its arrival process is not used: `arrivals` (Poisson at a constant rate, or a
    diurnal cosine) is the tenant's whole rate, split by the front door.
    """

    model_config = _STRICT
    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    workload: str | WorkloadSpec
    arrivals: Annotated[PoissonArrivals | DiurnalArrivals, Field(discriminator="kind")]
    slo: SloSpec
    latency_critical: bool = False


class CellSpec(BaseModel):
    """One deployment: a fleet of an experiment file, or one fleet given inline.

    `count` makes that many identical cells, named NAME-0 ... NAME-(count-1), each simulated
    with its own random draws. `tenants` maps each tenant the cell serves to its weight: the
    share of the tenant's arrivals the cell takes, relative to the tenant's other cells.
    """

    model_config = _STRICT
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    count: int = Field(default=1, ge=1)
    experiment: str | None = Field(default=None, description="experiment file (relative to the factory file)")
    model: str | None = None
    fleet: str | FleetSpec | None = None
    faults: FaultSpec | None = None
    tenants: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _fleet_named_after_cell(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("fleet"), dict) and "name" not in raw["fleet"]:
            raw = {**raw, "fleet": {"name": raw.get("name", "cell"), **raw["fleet"]}}
        return raw

    @model_validator(mode="after")
    def _one_source(self):
        if self.experiment is not None:
            if self.model is not None or self.faults is not None or isinstance(self.fleet, FleetSpec):
                raise ValueError("a cell takes model, fleet and faults from `experiment:`; give `fleet:` as the "
                                 "name of one of its fleets (or nothing), or drop `experiment:` and give them inline")
        else:
            if self.model is None or not isinstance(self.fleet, FleetSpec):
                raise ValueError("give `experiment:` (an experiment file) or an inline `model:` and `fleet:` "
                                 "(a fleet as in an experiment's fleets list)")
        return self

    def names(self) -> list[str]:
        return [self.name] if self.count == 1 else [f"{self.name}-{i}" for i in range(self.count)]


class OutageSpec(BaseModel):
    """A cell out of service: the front door sends it nothing from start_s to end_s."""

    model_config = _STRICT
    cell: str = Field(min_length=1, description="a cell's name, or a counted cell's base name for all its copies")
    start_s: float = Field(ge=0, allow_inf_nan=False)
    end_s: float = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self):
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s:g}) must be after start_s ({self.start_s:g})")
        return self


class FrontDoorSpec(BaseModel):
    """How arrivals are split across cells, decided anew every `step_s`.

    policy `weights`: each tenant's arrivals go to its cells in proportion to their weights.
    policy `capacity`: in proportion to weight x the cell's analytic capacity (requests/s
    with full batches at the tenants' mean lengths), so a faster cell takes more.
    `failover`: a cell in an outage passes its share to the tenant's other cells, by their
    weights; without it (or with no other cell up) those arrivals are rejected.
    """

    model_config = _STRICT
    step_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    policy: Literal["weights", "capacity"] = "weights"
    failover: bool = True
    outages: list[OutageSpec] = Field(default_factory=list)


class FactorySpec(BaseModel):
    """A factory file: tenants, cells, the front door, the site; one simulated span.

    The span [0, duration_s) is cut into windows of `window_s`, each cell's window one task.
    A window starts from an empty fleet: `warmup_s` of the arrivals before it are simulated
    (and not recorded) to fill its queues and batches, and `lookahead_s` of those after it
    (also not recorded) to keep the load up while its last requests finish. The first and
    last windows do the same with arrivals before 0 and after duration_s, so the span is a
    slice of a running factory, not a cold start.
    """

    model_config = _STRICT
    name: str = Field(default="factory", min_length=1)
    description: str = ""
    seed: int = Field(default=42, ge=0)
    duration_s: float = Field(default=3600.0, gt=0, allow_inf_nan=False)
    window_s: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                   description="a task's slice of a cell's time (default: the whole span)")
    warmup_s: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="default: one step")
    lookahead_s: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="default: one step")
    site: SiteSpec
    cost: CostSpec = CostSpec()
    front_door: FrontDoorSpec = FrontDoorSpec()
    tenants: list[TenantSpec] = Field(min_length=1)
    cells: list[CellSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self):
        step = self.front_door.step_s
        for field in ("duration_s", "window_s", "warmup_s", "lookahead_s"):
            value = getattr(self, field)
            if value is not None and not _multiple(value, step):
                raise _Located(field, f"{field} ({value:g}) must be a whole number of front-door steps "
                                 f"(front_door.step_s = {step:g})")
        tenants = [t.name for t in self.tenants]
        _unique("tenants", tenants)
        names = [n for c in self.cells for n in c.names()]
        _unique("cells", names)  # (a counted cell's copies are NAME-0, NAME-1, ...)
        served = set()
        for i, cell in enumerate(self.cells):
            for t in cell.tenants:
                if t not in tenants:
                    raise _Located(f"cells[{i}].tenants.{t}", f"no tenant named {t!r}; tenants are "
                                                              f"{', '.join(tenants)}")
                served.add(t)
        for j, t in enumerate(self.tenants):
            if t.name not in served:
                raise _Located(f"tenants[{j}]", f"no cell serves tenant {t.name!r}; list it under a cell's `tenants:`")
        bases = {c.name for c in self.cells}
        for j, out in enumerate(self.front_door.outages):
            if out.cell not in names and out.cell not in bases:
                raise _Located(f"front_door.outages[{j}].cell", f"no cell named {out.cell!r}")
            for field in ("start_s", "end_s"):
                if not _multiple(getattr(out, field), step):
                    raise _Located(f"front_door.outages[{j}].{field}",
                                   f"must fall on a front-door step (a multiple of front_door.step_s = {step:g})")
        return self

    @property
    def step_s(self) -> float:
        return self.front_door.step_s

    @property
    def window_length_s(self) -> float:
        return self.window_s if self.window_s is not None else self.duration_s

    @property
    def warmup_length_s(self) -> float:
        return self.warmup_s if self.warmup_s is not None else self.step_s

    @property
    def lookahead_length_s(self) -> float:
        return self.lookahead_s if self.lookahead_s is not None else self.step_s

    def windows(self) -> list[tuple[float, float]]:
        """[start, end) of every window of the span; the last one may be shorter."""
        n = math.ceil(round(self.duration_s / self.window_length_s, 9))
        return [(k * self.window_length_s, min((k + 1) * self.window_length_s, self.duration_s)) for k in range(n)]

    def outages_of(self, cell: str, base: str) -> list[tuple[float, float]]:
        return [(o.start_s, o.end_s) for o in self.front_door.outages if o.cell in (cell, base)]


class _Located(ValueError):
    """A validation error that knows its own YAML path (pydantic would put it at the top level)."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


def _multiple(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) < 1e-9 * max(1.0, abs(ratio))


def _unique(what: str, names: list[str]) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _Located(what, f"names must be unique, repeated: {', '.join(dup)}")


def is_factory(raw: Any) -> bool:
    """A YAML mapping is a factory file when it has a top-level `cells:` key."""
    return isinstance(raw, dict) and "cells" in raw


def parse_factory(raw: dict, source: str = "<factory>") -> FactorySpec:
    """Validate a factory mapping; errors name the YAML path of the field."""
    try:
        return FactorySpec.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            located = (err.get("ctx") or {}).get("error")
            if isinstance(located, _Located):
                raise ConfigError(located.path, str(located), source) from None
        raise from_validation_error(exc, source=source, raw=raw) from None


def load_factory_spec(path: str | Path) -> FactorySpec:
    raw = read_mapping(path, "factory", "a mapping with `tenants:`, `cells:` and `site:`")
    return parse_factory(raw, str(path))
