"""Small builders shared by the tests."""

from __future__ import annotations

from factory_sim.catalog import load_hardware, load_model, load_stack
from factory_sim.perf.shape import ReplicaShape
from factory_sim.sim.engine import FleetLayout, PoolLayout


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
    pool = PoolLayout("agg", "aggregated", sh, replicas, max_batch, max_batch_tokens)
    return FleetLayout("test", (pool,), router)


def disaggregated_fleet(prefill_shape, decode_shape, prefill_replicas=1, decode_replicas=1,
                        max_batch=64, max_batch_tokens=2048, router="round_robin"):
    pools = (
        PoolLayout("p", "prefill", prefill_shape, prefill_replicas, max_batch, max_batch_tokens),
        PoolLayout("d", "decode", decode_shape, decode_replicas, max_batch, max_batch_tokens),
    )
    return FleetLayout("test", pools, router)
