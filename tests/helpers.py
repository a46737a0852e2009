"""Small builders shared by the tests."""

from __future__ import annotations

from factory_sim.hardware import load_hardware
from factory_sim.models import load_model
from factory_sim.perf.replica import ReplicaShape
from factory_sim.perf.stacks import load_stack
from factory_sim.sim.engine import FleetPlan, PoolPlan


def shape(hardware="h100_sxm", model="llama3_1_8b", precision="fp8", attention_precision=None, **par):
    hw = load_hardware(hardware)
    return ReplicaShape(
        hardware=hw,
        model=load_model(model),
        stack=load_stack(hw.default_stack),
        precision=precision,
        attention_precision=attention_precision or ("fp8" if precision == "fp4" else precision),
        **par,
    )


def aggregated_fleet(sh, replicas=1, max_batch=64, max_batch_tokens=2048, router="round_robin"):
    pool = PoolPlan("agg", "aggregated", sh, replicas, max_batch, max_batch_tokens)
    return FleetPlan("test", (pool,), router)


def disaggregated_fleet(prefill_shape, decode_shape, prefill_replicas=1, decode_replicas=1,
                        max_batch=64, max_batch_tokens=2048, router="round_robin"):
    pools = (
        PoolPlan("p", "prefill", prefill_shape, prefill_replicas, max_batch, max_batch_tokens),
        PoolPlan("d", "decode", decode_shape, decode_replicas, max_batch, max_batch_tokens),
    )
    return FleetPlan("test", pools, router)
