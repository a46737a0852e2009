"""On-demand KV allocation (vLLM's): prompts admitted when they fit, caches grown token by
token, the newest sequences preempted and recomputed when the next step would not fit."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.config.hardware import load_hardware
from factory_sim.config.model import load_model
from factory_sim.config.stack import load_stack
from factory_sim.perf.memory import plan_memory, replica_kv_bytes
from factory_sim.perf.shape import ReplicaShape
from factory_sim.results.trace import DONE
from factory_sim.sim import replica as replica_module
from factory_sim.sim.engine import simulate
from tests.helpers import aggregated_fleet


def _shape(allocation: str, kv_tokens: int) -> ReplicaShape:
    """Llama-3.1-8B on one H100 with the KV pool cut to about `kv_tokens` tokens."""
    hw, model = load_hardware("h100_sxm"), load_model("llama3_1_8b")
    base = load_stack("vllm_hopper")
    probe = ReplicaShape(hardware=hw, model=model, stack=base, precision="fp8", attention_precision="fp8")
    full = plan_memory(probe).kv_capacity_bytes
    per_token = float(replica_kv_bytes(probe, np.array([1.0]))[0])
    stack = base.model_copy(update={"kv_allocation": allocation,
                                    "hbm_utilization": base.hbm_utilization * kv_tokens * per_token / full})
    return ReplicaShape(hardware=hw, model=model, stack=stack, precision="fp8", attention_precision="fp8")


@contextmanager
def kv_checked():
    """Every step an on-demand replica starts has room for what its sequences hold and add;
    yields the list of (checked steps, preemptions) counters."""
    seen = {"steps": 0, "preemptions": 0}

    def guard(original):
        def start(self, event=None):
            if self._on_demand:
                need = self._used_bytes() + self._kv_token_bytes * len(self._ctx_base)
                assert need <= self.kv_capacity_bytes * (1 + 1e-9)
                seen["steps"] += 1
            return original(self, event)
        return start

    def counted(original):
        def preempt(self, rid):
            seen["preemptions"] += 1
            return original(self, rid)
        return preempt

    with pytest.MonkeyPatch.context() as mp:
        for name in ("_start_mixed_step", "_start_decode_steps"):
            mp.setattr(replica_module.Replica, name, guard(getattr(replica_module.Replica, name)))
        mp.setattr(replica_module.Replica, "_preempt", counted(replica_module.Replica._preempt))
        yield seen


@given(seed=st.integers(0, 2**31 - 1), clients=st.integers(1, 24), max_batch=st.integers(1, 32))
def test_on_demand_kv_serves_every_request_causally_within_the_pool(seed, clients, max_batch):
    rng = np.random.default_rng(seed)
    n = 60
    inp, out = rng.integers(20, 300, n), rng.integers(2, 400, n)
    sh = _shape("on_demand", 1200)
    with kv_checked() as seen:
        tr = simulate(aggregated_fleet(sh, max_batch=max_batch, max_batch_tokens=512), inp, out,
                      concurrency=clients, seed=seed).trace
    assert seen["steps"] > 0
    done = tr.outcome == DONE
    assert done.all()
    assert np.all(tr.arrival_s <= tr.prefill_start_s) and np.all(tr.prefill_start_s < tr.first_token_s)
    assert np.all(tr.first_token_s <= tr.finish_s)
    assert np.all(tr.prefill_end_s == tr.first_token_s)  # a recomputed prompt keeps its first token


def test_on_demand_kv_admits_what_reservation_queues_and_preempts_to_finish():
    """16 clients with 100-token prompts and 400-token outputs need 8,000 tokens at full length;
    the pool holds 4,000. Reserving the whole context runs 8 at a time; on demand all 16 start
    at once and the newest are preempted as the caches grow."""
    n = 64
    inp, out = np.full(n, 100), np.full(n, 400)
    ttft, preempted = {}, {}
    for allocation in ("reserve", "on_demand"):
        with kv_checked() as seen:
            tr = simulate(aggregated_fleet(_shape(allocation, 4000), max_batch=64, max_batch_tokens=2048),
                          inp, out, concurrency=16).trace
        assert (tr.outcome == DONE).all()
        first_round = np.argsort(tr.arrival_s)[:16]
        ttft[allocation] = float(np.mean(tr.first_token_s[first_round] - tr.arrival_s[first_round]))
        preempted[allocation] = seen["preemptions"]
    assert preempted["reserve"] == 0 and preempted["on_demand"] > 0
    assert ttft["on_demand"] < 0.5 * ttft["reserve"]


def test_a_long_request_on_sliding_window_layers_is_served_alone_without_preempting_itself():
    """gpt-oss's sliding-window layers stop growing at the window, so its whole context fits
    a pool that the per-token bound says it overflows: the last sequence is never preempted."""
    hw, model = load_hardware("h100_sxm"), load_model("gpt_oss_120b")
    base = load_stack("vllm_hopper")
    probe = ReplicaShape(hardware=hw, model=model, stack=base, precision="mxfp4", attention_precision="bf16")
    exact = float(replica_kv_bytes(probe, np.array([4000.0]))[0])
    bound = 4000 * float(replica_kv_bytes(probe, np.array([1.0]))[0])
    assert exact < 0.8 * bound
    full = plan_memory(probe).kv_capacity_bytes
    stack = base.model_copy(update={"kv_allocation": "on_demand",
                                    "hbm_utilization": base.hbm_utilization * 0.9 * bound / full})
    sh = ReplicaShape(hardware=hw, model=model, stack=stack, precision="mxfp4", attention_precision="bf16")
    tr = simulate(aggregated_fleet(sh, max_batch=8, max_batch_tokens=2048),
                  np.full(3, 2000), np.full(3, 2000), concurrency=3).trace
    assert (tr.outcome == DONE).all()


def test_requests_behind_a_preempted_head_still_time_out():
    """A preempted request waits at the head of the queue with no deadline (it was admitted
    once); the requests queued behind it keep theirs."""
    from factory_sim.results.trace import TIMED_OUT
    from factory_sim.sim.engine import FleetLayout, PoolLayout

    pool = PoolLayout("agg", "aggregated", _shape("on_demand", 4000), 1, 64, 2048, queue_timeout_s=0.2)
    fleet = FleetLayout("test", (pool,), "round_robin")
    # four 3,100-token requests in a 4,000-token pool: all start, and from ~5 s on the newest
    # is preempted whenever the caches fill, so a preempted one waits at the head until a
    # sequence finishes (~18 s); four short requests arrive at 8 s, behind it
    arrival = np.concatenate([np.zeros(4), np.full(4, 8.0)])
    with kv_checked() as seen:
        tr = simulate(fleet, np.full(8, 100), np.array([3000] * 4 + [50] * 4), arrival_s=arrival).trace
    assert seen["preemptions"] > 0
    assert (tr.outcome[:4] == DONE).all()  # preempted ones are recomputed, never dropped
    assert (tr.outcome[4:] == TIMED_OUT).all()  # each gave up after 0.2 s, not at readmission (~24 s)
    assert np.isnan(tr.first_token_s[4:]).all()
