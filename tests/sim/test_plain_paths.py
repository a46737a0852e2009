"""A plain replica's inlined paths (sim/replica.py: the step boundary, admission, a finished prompt
joining the batch) and the engine's arrivals straight to its only entry replica give what the
general paths give, bit for bit: the same trace and the same count of events."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from factory_sim.sim import engine as engine_module
from factory_sim.sim.engine import simulate
from factory_sim.sim.replica import Replica
from tests.helpers import aggregated_fleet, disaggregated_fleet, shape

LLAMA = shape("h100_sxm", "llama3_1_8b", "fp8")
GPT_OSS = shape("b200_hgx", "gpt_oss_120b", "mxfp4", attention_precision="bf16")


class _General(Replica):
    """The replica through its general paths only."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plain = False


def _run(monkeypatch, general: bool, fleet, inp, out, arrival):
    plain_seen = []
    if general:
        monkeypatch.setattr(engine_module, "Replica", _General)
    original = engine_module._Engine.open_loop

    def open_loop(self, arrival_s):
        if general:
            self._sole_entry = None  # every arrival through _dispatch
        plain_seen.append(any(r._plain for r in self.replicas) or self._sole_entry is not None)
        return original(self, arrival_s)

    monkeypatch.setattr(engine_module._Engine, "open_loop", open_loop)
    res = simulate(fleet, inp, out, arrival_s=arrival, seed=3)
    monkeypatch.undo()
    tr = res.trace
    arrays = {f.name: getattr(tr, f.name) for f in dataclasses.fields(tr) if isinstance(getattr(tr, f.name), np.ndarray)}
    return arrays, (res.events, res.steps), plain_seen[0]


@pytest.mark.parametrize("case", ["one_replica", "two_replicas_sliding_window", "disaggregated"])
def test_plain_paths_simulate_what_the_general_paths_do(monkeypatch, case):
    rng = np.random.default_rng(7)
    n = 1500
    inp = rng.integers(50, 1500, n)
    out = rng.integers(1, 400, n)  # (one-token outputs finish at their prompt's last chunk)
    if case == "one_replica":
        fleet, rate = aggregated_fleet(LLAMA, replicas=1, max_batch=48, max_batch_tokens=512), 25.0
    elif case == "two_replicas_sliding_window":
        fleet, rate = aggregated_fleet(GPT_OSS, replicas=2, max_batch=64, max_batch_tokens=2048), 40.0
    else:
        fleet, rate = disaggregated_fleet(LLAMA, LLAMA, prefill_replicas=1, decode_replicas=2), 30.0
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    plain, plain_counts, plain_on = _run(monkeypatch, False, fleet, inp, out, arrival)
    general, general_counts, general_on = _run(monkeypatch, True, fleet, inp, out, arrival)
    assert plain_on and not general_on  # the fast paths ran in one and not in the other
    assert plain_counts == general_counts
    for name, values in general.items():
        assert values.tobytes() == plain[name].tobytes(), name
