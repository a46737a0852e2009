"""Every experiment, plan and sweep shipped in experiments/ loads and builds fitting fleets, so a
change to a catalog, a stack or a schema cannot leave a documented example broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory_sim.experiment import load_experiment
from factory_sim.plan import load_plan
from factory_sim.sweep import build_point, load_sweep, sweep_points

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
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
            assert build_point(base, overrides, path.stem).fleet_plans()
    elif path.stem.startswith("factory"):
        from factory_sim.studies.factory import load_factory

        assert load_factory(path).cells
    else:
        plans = load_experiment(path).fleet_plans()
        assert plans and all(pool.replicas >= 1 for plan in plans for pool in plan.pools)
