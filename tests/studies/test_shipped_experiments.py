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


def test_the_default_experiment_gives_each_hardware_a_throughput_and_a_latency_layout_with_mtp():
    """The quick start compares hardware at their best: every hardware has a wide-EP decode
    layout (attention DP) and a TP8 one, each drafting with MTP at its stack's fitted acceptance."""
    from factory_sim.config.stack import load_stack
    from factory_sim.studies.assemble import default_experiment

    layouts = fleet_layouts(default_experiment())
    by_hw: dict[str, list] = {}
    for plan in layouts:
        assert plan.gpus == 72
        (decode,) = [p for p in plan.pools if p.role == "decode"]
        by_hw.setdefault(decode.shape.hardware.name, []).append(decode.shape)
    assert set(by_hw) == {"h200_sxm", "gb200_nvl72", "gb300_nvl72"}
    for shapes in by_hw.values():
        assert sorted((s.dp_attention > 1, s.tp) for s in shapes) == [(False, 8), (True, 1)]
        for s in shapes:
            assert s.mtp_draft_tokens == (1 if s.dp_attention > 1 else 3)
            assert s.mtp_acceptance == load_stack(s.stack.name).mtp_acceptance
