"""Every experiment, plan and sweep shipped in experiments/ loads and builds fitting fleets, so a
change to a catalog, a stack or a schema cannot leave a documented example broken."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from factory_sim.errors import ConfigError
from factory_sim.studies.assemble import fleet_layouts, load_experiment, parse_experiment
from factory_sim.studies.capacity import load_plan
from factory_sim.studies.sweep import build_point, load_sweep, sweep_points

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
FILES = sorted(EXPERIMENTS.glob("*.yaml"))


def test_the_examples_are_there():
    names = {f.stem for f in FILES}
    assert {"seed_claims", "plan_chat", "hopper_mix", "sweep_hopper_share"} <= names


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_a_shipped_example_loads_and_its_fleets_fit(path: Path):
    if path.stem.startswith("plan"):
        spec = load_plan(path)  # checks every candidate builds and fits
        assert spec.candidates
    elif path.stem.startswith("sweep"):
        spec, base = load_sweep(path)
        points = sweep_points(spec.sweep)
        assert points
        for overrides in points:
            assert fleet_layouts(build_point(base, overrides, path.stem))
    elif path.stem.startswith("factory"):
        from factory_sim.studies.assemble_factory import load_factory

        assert load_factory(path).cells
    else:
        plans = fleet_layouts(load_experiment(path))
        assert plans and all(pool.replicas >= 1 for plan in plans for pool in plan.pools)


def test_a_replayed_trace_must_hold_the_requests_of_the_experiment():
    raw = yaml.safe_load((EXPERIMENTS / "prefix_cache_mooncake.yaml").read_text())
    raw["requests"] = 12_032  # the Mooncake conversation trace holds 12,031
    with pytest.raises(ConfigError, match="exceed the 12031 requests") as info:
        parse_experiment(raw)
    assert info.value.path == "requests"
