
"""Small builders shared by the tests."""

from __future__ import annotations

import textwrap

from factory_sim.config.hardware import load_hardware
from factory_sim.config.model import load_model
from factory_sim.config.stack import load_stack
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


# A small two-fleet experiment (an H100 aggregated, a B200 disaggregated) that runs in a second.
SMALL = textwrap.dedent("""\
    name: small
    model: llama3_1_8b
    seed: 3
    workload:
      arrivals: {kind: poisson, rate_per_s: 20}
      input_tokens: {kind: uniform, low: 100, high: 400}
      output_tokens: {kind: uniform, low: 20, high: 120}
      requests: 600
    slo_tiers:
      - {name: relaxed, ttft_s: 1.0, tpot_s: 0.05}
      - {name: impossible, ttft_s: 1.0, tpot_s: 0.0001}
    fleets:
      - name: h100
        hardware: h100_sxm
        precision: fp8
        aggregated: {replicas: 1, tp: 1, max_batch: 64}
      - name: b200_disagg
        hardware: b200_hgx
        precision: fp8
        prefill: {replicas: 1}
        decode: {replicas: 1}
    load: {mode: max_goodput, search_steps: 4}
    measurement: {min_span_latencies: 0}
""")
