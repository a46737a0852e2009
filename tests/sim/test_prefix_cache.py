"""Prefix caching, KV-aware routing and sessions in the engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factory_sim.results.trace import DONE, REASON_QUEUE_FULL, REASON_SESSION_ABANDONED, REJECTED
from factory_sim.sim.engine import FleetLayout, PoolLayout, simulate
from factory_sim.sim.prefix_cache import PrefixCache, PrefixCacheSettings
from tests.helpers import shape

SH = shape("h100_sxm", "llama3_1_8b", "fp8")
BLOCK = 64


def _fleet(cache: PrefixCacheSettings | None, replicas=1, router="least_loaded", role="aggregated", max_queue=None):
    if role == "aggregated":
        pools = (PoolLayout("agg", "aggregated", SH, replicas, 32, 2048, prefix_cache=cache, max_queue=max_queue),)
    else:
        pools = (PoolLayout("p", "prefill", SH, replicas, 32, 2048, prefix_cache=cache, max_queue=max_queue),
                 PoolLayout("d", "decode", SH, 1, 32, 2048))
    return FleetLayout("t", pools, router)


def _shared_prefix_requests(n, seed, groups=4, prefix_blocks=20, rate=20.0):
    """Requests in `groups` families: each shares a long prefix with its family, then differs."""
    rng = np.random.default_rng(seed)
    family = rng.integers(0, groups, n)
    own = rng.integers(1, 10, n)
    hashes = [tuple([-(f * 1000 + k + 1) for k in range(prefix_blocks)] + [i * 100 + k for k in range(o)])
              for i, (f, o) in enumerate(zip(family, own, strict=True))]
    inp = np.array([len(h) * BLOCK + 10 for h in hashes])
    out = rng.integers(5, 60, n)
    arrival = np.cumsum(rng.exponential(1 / rate, n))
    return arrival, inp, out, hashes


def _run(fleet, arrival, inp, out, hashes, **kw):
    return simulate(fleet, inp, out, arrival_s=arrival, block_hashes=hashes, block_tokens=BLOCK, seed=1, **kw)


@given(seed=st.integers(0, 10_000), role=st.sampled_from(["aggregated", "prefill"]))
@settings(max_examples=15)
def test_a_cache_of_zero_gives_exactly_the_cacheless_run(seed, role):
    arrival, inp, out, hashes = _shared_prefix_requests(300, seed)
    plain = _run(_fleet(None, 2, role=role), arrival, inp, out, hashes).trace
    zero = _run(_fleet(PrefixCacheSettings(hbm_fraction=0.0), 2, role=role), arrival, inp, out, hashes).trace
    for col in ("prefill_start_s", "first_token_s", "finish_s", "prefill_replica", "decode_replica", "cached_tokens"):
        np.testing.assert_array_equal(getattr(plain, col), getattr(zero, col), err_msg=col)


@given(seed=st.integers(0, 10_000))
@settings(max_examples=15)
def test_cached_prefill_never_exceeds_the_uncached(seed):
    # one request at a time, so each prefill's time depends on its own work only
    arrival, inp, out, hashes = _shared_prefix_requests(60, seed, rate=0.05)
    plain = _run(_fleet(None), arrival, inp, out, hashes).trace
    cached = _run(_fleet(PrefixCacheSettings()), arrival, inp, out, hashes).trace
    assert np.all(cached.cached_tokens >= 0) and np.all(cached.cached_tokens <= cached.input_tokens - 1)
    assert np.all(cached.cached_tokens % BLOCK == 0)
    prefill = cached.first_token_s - cached.prefill_start_s
    prefill0 = plain.first_token_s - plain.prefill_start_s
    # equal up to the rounding of the step-time sums (7e-9 s on a 30 ms prefill for seed 1204)
    assert np.all(prefill <= prefill0 * (1 + 1e-6))
    hit = cached.cached_tokens > 0
    assert hit.sum() > 30  # the families' prefixes are found again
    assert np.all(prefill[hit] < prefill0[hit])
    assert np.all(cached.outcome == DONE)


def test_cache_never_holds_more_than_the_free_kv_memory():
    cache = PrefixCache(PrefixCacheSettings(hbm_fraction=0.5), block_tokens=16, block_bytes=100.0)
    cache.insert(list(range(50)))
    cache.trim(free_bytes=2_000.0)
    assert len(cache) == 10  # 0.5 x 2,000 bytes / 100 bytes per block
    # the most recently used survive: blocks 40..49
    assert cache.match(list(range(40, 50))) == (10, 0)
    assert cache.match(list(range(0, 10))) == (0, 0)


def test_evicted_blocks_come_back_from_host_memory_at_its_bandwidth():
    plan = PrefixCacheSettings(hbm_fraction=1.0, host_bytes_per_gpu=10_000.0, host_bytes_per_s_per_gpu=1_000.0)
    cache = PrefixCache(plan, block_tokens=16, block_bytes=100.0)
    cache.insert([1, 2, 3, 4])
    cache.trim(free_bytes=200.0)  # blocks 1 and 2 move to host memory
    assert cache.match([1, 2, 3, 4]) == (0, 2)  # the prefix starts in host memory: 2 blocks, then a gap
    cache.insert([3, 4])
    assert cache.match([3, 4]) == (2, 0)
    hbm, host = cache.match([1, 2])
    assert (hbm, host) == (0, 2)
    assert cache.use([1, 2], hbm, host) == pytest.approx(2 * 100.0 / 1_000.0)
    assert cache.match([1, 2]) == (2, 0)


def test_kv_aware_routing_finds_more_of_the_cache_than_least_loaded():
    # 200 prefix families, and caches that hold only part of them: spreading a family over
    # every replica (least_loaded) makes each replica's cache churn; keeping it on one does not
    arrival, inp, out, hashes = _shared_prefix_requests(3000, 3, groups=200, rate=60.0)
    hit = {}
    for router in ("least_loaded", "kv_aware"):
        tr = _run(_fleet(PrefixCacheSettings(hbm_fraction=0.1), 4, router), arrival, inp, out, hashes).trace
        hit[router] = tr.cached_tokens.sum() / tr.input_tokens.sum()
    assert hit["kv_aware"] > 2 * hit["least_loaded"]


# -- sessions: later turns arrive after the previous turn finishes plus think time -------------
def _sessions(n_sessions=30, turns=4, seed=0):
    rng = np.random.default_rng(seed)
    n = n_sessions * turns
    arrival = np.full(n, np.nan)
    arrival[::turns] = np.cumsum(rng.exponential(0.5, n_sessions))
    next_turn = np.arange(1, n + 1)
    next_turn[turns - 1::turns] = -1
    think = rng.exponential(2.0, n)
    think[::turns] = 0.0
    inp = rng.integers(100, 600, n)
    out = rng.integers(10, 80, n)
    return arrival, inp, out, next_turn, think


@given(seed=st.integers(0, 10_000))
@settings(max_examples=15)
def test_a_sessions_next_turn_arrives_after_the_last_one_finished_plus_think_time(seed):
    arrival, inp, out, next_turn, think = _sessions(seed=seed)
    tr = simulate(_fleet(None, 2), inp, out, arrival_s=arrival, next_turn=next_turn, think_s=think).trace
    assert np.all(tr.outcome == DONE)
    prev = np.flatnonzero(next_turn >= 0)
    nxt = next_turn[prev]
    np.testing.assert_allclose(tr.arrival_s[nxt], tr.finish_s[prev] + think[nxt], rtol=0, atol=1e-9)
    assert np.all(tr.arrival_s[nxt] >= tr.finish_s[prev])


def test_a_session_whose_turn_is_refused_is_abandoned():
    arrival, inp, out, next_turn, think = _sessions(n_sessions=60, seed=2)
    arrival[::4] = np.arange(60) * 0.001  # all sessions at once against a queue of 2
    tr = simulate(_fleet(None, 1, max_queue=2), inp, out, arrival_s=arrival, next_turn=next_turn, think_s=think).trace
    refused = (tr.outcome == REJECTED) & (tr.reason == REASON_QUEUE_FULL)
    assert refused.any()
    for rid in np.flatnonzero(refused):
        k = next_turn[rid]
        while k >= 0:  # every later turn of that session
            assert tr.outcome[k] == REJECTED and tr.reason[k] == REASON_SESSION_ABANDONED
            k = next_turn[k]
    assert np.isin(tr.outcome, [DONE, REJECTED]).all()


# -- from the experiment file ------------------------------------------------------------------
def _raw(workload, **fleet):
    return {
        "name": "t", "model": "llama3_1_8b", "workload": workload, "requests": 300,
        "slo_tiers": [{"name": "s", "ttft_s": 2.0, "tpot_s": 0.1}],
        "fleets": [{"name": "f", "hardware": "h100_sxm", "precision": "fp8",
                    "aggregated": {"replicas": 2, "tp": 1}, **fleet}],
        "load": {"mode": "fixed", "rate_per_s": 3.0},
        "measurement": {"min_span_latencies": 0},
    }


def test_a_prefix_cache_needs_a_workload_with_block_hashes():
    from factory_sim.errors import ConfigError
    from factory_sim.studies.assemble import parse_experiment
    with pytest.raises(ConfigError, match=r"fleets\[0\]\.prefix_cache.*block hashes"):
        parse_experiment(_raw("chat_1k1k", prefix_cache={}))
    with pytest.raises(ConfigError, match="host_gb_per_s"):
        parse_experiment(_raw("agentic_sessions", prefix_cache={"host_gb_per_gpu": 10}))


def test_an_agentic_sessions_run_reports_its_cache_hits_and_keeps_turns_causal():
    from factory_sim.studies.assemble import parse_experiment
    from factory_sim.studies.run import run_experiment
    raw = _raw("agentic_sessions", prefix_cache={}, router="kv_aware")
    result = run_experiment(parse_experiment(raw), jobs=1)
    row = result.summary.iloc[0]
    assert row["prefix_hit_rate"] > 0.3  # later turns find their session's earlier prompt
    tr = next(iter(result.points.values())).sim.trace
    assert np.isin(tr.outcome, [DONE]).all()
    assert (tr.cached_tokens > 0).sum() > 100


def test_an_aggregated_replica_keeps_the_answer_for_the_next_turn():
    from factory_sim.config.workload import load_workload
    from factory_sim.workload.generate import generate_requests
    spec = load_workload("agentic_sessions").model_copy(update={"requests": 200})
    batch = generate_requests(spec, np.random.default_rng(5), rate_per_s=0.5)
    fleet = _fleet(PrefixCacheSettings(), 1)
    tr = simulate(fleet, batch.input_tokens, batch.output_tokens, arrival_s=batch.arrival_s,
                  block_hashes=batch.block_hashes, block_tokens=batch.block_tokens,
                  next_turn=batch.next_turn, think_s=batch.think_s).trace
    prev = np.flatnonzero(batch.next_turn >= 0)
    nxt = batch.next_turn[prev]
    context = batch.input_tokens[prev] + batch.output_tokens[prev]
    held = context // batch.block_tokens * batch.block_tokens  # whole blocks of the previous context
    # one replica, a cache far larger than the sessions: every later turn finds all of it
    np.testing.assert_array_equal(tr.cached_tokens[nxt], np.minimum(held, batch.input_tokens[nxt] - 1))
