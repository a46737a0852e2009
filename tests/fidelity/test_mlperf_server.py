"""MLPerf Server/Interactive scoring: dataset lengths, ramp-up, submitted scheduler settings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from factory_sim.fidelity import mlperf
from factory_sim.fidelity.mlperf import benchmark, warmup_s
from factory_sim.fidelity.mlperf_deployments import MLPERF_STATED_NOT_SCORED, MLPERF_SUBMITTED_SCHEDULERS
from factory_sim.fidelity.mlperf_lengths import (
    MLPERF_DATASET_LENGTHS,
    MLPERF_GENERATED_OUTPUT_TOKENS,
    LengthStats,
    generated_output_tokens,
    lognormal_sigma,
    request_lengths,
    sample_dataset_lengths,
)


def test_dataset_lengths_keep_the_rows_mean_and_the_datasets_skew():
    tokens_in, tokens_out = request_lengths("deepseek_r1", 804, 4043, 20_000, seed=3)
    assert tokens_out.mean() == pytest.approx(4043, rel=0.01)
    # reference answers: median 2,194 of a 4,043 mean, so half the requests are short and a few very long
    assert np.median(tokens_out) == pytest.approx(2194, rel=0.1)
    assert np.percentile(tokens_out, 99) > 5 * 4043
    # prompts with the median above the mean are not right-skewed: kept at the mean
    assert (tokens_in == 804).all()
    # no published shape: the means, as before
    a, b = request_lengths("llama3_1_405b", 9429, 685, 100, seed=0)
    assert (a == 9429).all() and (b == 685).all()
    assert request_lengths("unknown_model", 10, 20, 5, seed=0)[1].tolist() == [20] * 5


def test_lognormal_sigma_reproduces_mean_over_median():
    stats = MLPERF_DATASET_LENGTHS["llama2_70b"].input
    sigma = lognormal_sigma(stats)
    assert stats.median * np.exp(sigma**2 / 2) == pytest.approx(stats.mean)
    assert lognormal_sigma(LengthStats(100.0, 120.0, 300)) == 0.0
    drawn = sample_dataset_lengths(stats, 500, 50_000, np.random.default_rng(0))
    assert drawn.min() >= 1 and drawn.mean() == pytest.approx(500, rel=0.01)


def test_ramp_up_is_set_by_the_long_requests_not_the_median():
    same = np.full(1000, 101)
    # identical requests: in flight within 5% of steady state once 95% of one residence has passed
    assert warmup_s(same, ttft_s=1.0, tpot_s=0.01) == pytest.approx(0.95 * 2.0, rel=1e-6)
    _, heavy = request_lengths("deepseek_r1", 804, 4043, 20_000, seed=1)
    median_residence = 1.0 + (np.median(heavy) - 1) * 0.015
    assert warmup_s(heavy, ttft_s=1.0, tpot_s=0.015) > 4 * median_residence


def _row(scenario: str, ttft_ms: float, tpot_ms: float) -> dict:
    return {"id": "x", "system": "b300_hgx", "gpus": 8, "model": "deepseek_r1", "precision": "fp4",
            "isl_mean": 803.8, "osl_mean": 4043.4, "scenario": scenario, "ttft_p99_ms": ttft_ms,
            "tpot_p99_ms": tpot_ms, "metric": "output_tok_s_per_gpu", "value": 1000.0, "date": "2026-04-01",
            "notes": "software: TensorRT-LLM feat/1.2"}


def test_latency_bound_trtllm_rows_balance_attention_dp_as_the_submissions_did():
    offline = benchmark(_row("offline", np.nan, np.nan))
    assert offline.stack.adp_balance_timeout_steps == 60  # the stack's own (throughput recipes)
    assert benchmark(_row("server", 2000, 80)).stack.adp_balance_timeout_steps == 9
    assert benchmark(_row("interactive", 1500, 15)).stack.adp_balance_timeout_steps == 6
    gpt_oss = {**_row("interactive", 2000, 15), "model": "gpt_oss_120b", "isl_mean": 5010.6, "osl_mean": 1278.2}
    assert benchmark(gpt_oss).stack.adp_balance_timeout_steps == 0  # balancing off, as submitted


def test_an_overloaded_rate_is_not_claimed_from_a_run_still_ramping_up():
    """DeepSeek-R1 Interactive (p99 TPOT 15 ms) on 8 B300 at 5,300 tok/s/GPU: in steady state
    the p99 TPOT is about 30 ms; a run of 735 requests, measured after the median latency of
    the ones that had finished, passed it (the earlier ramp-up rule)."""
    b = benchmark(_row("interactive", 1500, 15))
    plan = next(p for p, d in mlperf.candidate_plans(b) if d.startswith("agg 1x[8xb300_hgx fp4 TP1 DP8 EP8 MTP1]"))
    assert not mlperf._open_loop_ok(plan, b, 5300.0 * plan.gpus / b.osl)
    assert mlperf._open_loop_ok(plan, b, 300.0 * plan.gpus / b.osl)


def test_mlperf_rows_run_at_the_lengths_the_submissions_generated():
    # LoadGen counts the tokens returned: Llama 2 70B's runs generate 272 per sample, not the
    # reference answers' 219
    assert generated_output_tokens("llama2_70b", 218.9) == MLPERF_GENERATED_OUTPUT_TOKENS["llama2_70b"] == 272.1
    assert generated_output_tokens("unknown_model", 123.0) == 123.0
    llama = {**_row("offline", np.nan, np.nan), "model": "llama2_70b", "isl_mean": 222.3, "osl_mean": 218.9}
    assert benchmark(llama, generated_lengths=True).osl == 272
    assert benchmark(llama).osl == 219  # by default the row's reference mean
    assert benchmark(_row("interactive", 1500, 15), generated_lengths=True).osl == 3747
    # a row that is not an MLPerf scenario keeps its own length
    at = {**llama, "scenario": "at_interactivity", "interactivity_tok_s_user": 50.0}
    assert benchmark(at, generated_lengths=True).osl == 219


def test_submitted_deployments_are_scored_as_submitted_not_searched():
    stated = MLPERF_STATED_NOT_SCORED[("b300_hgx", "deepseek_r1", "interactive")]
    deepseek = mlperf.candidate_plans(replace(benchmark(_row("interactive", 1500, 15)), deployment=stated))
    assert deepseek and all(d.startswith("agg 1x[8xb300_hgx fp4 TP1 DP8 EP8 MTP3]") for _, d in deepseek)
    # not scored that way by default: the search, MTP1 among its options
    searched = mlperf.candidate_plans(benchmark(_row("interactive", 1500, 15)))
    assert any("MTP1" in d for _, d in searched) and not any("MTP3" in d for _, d in searched)
    gpt_oss = {**_row("interactive", 2000, 15), "model": "gpt_oss_120b", "isl_mean": 5010.6, "osl_mean": 1278.2}
    plans = mlperf.candidate_plans(benchmark(gpt_oss))
    assert plans and all(d.startswith("agg 1x[1xb300_hgx") and plan.gpus == 1 for plan, d in plans)
    # the Server row of the same model is still searched (disaggregated layouts among them)
    server = mlperf.candidate_plans(benchmark(_row("server", 2000, 80)))
    assert any(d.startswith("disagg") for _, d in server)


def test_open_loop_runs_measure_as_long_a_steady_state_as_loadgen(monkeypatch):
    """LoadGen measures 600 s at least; a stretch of MIN_MEASURED_REQUESTS (10 s at Llama 2 70B
    Interactive's 50 queries/s per GPU) sees few of the slow excursions of Poisson load that set
    the p99 TPOT near the limit."""
    row = {**_row("interactive", 450, 40), "model": "llama2_70b", "isl_mean": 222.3, "osl_mean": 218.9}
    b = benchmark(row)
    plan = next(p for p, d in mlperf.candidate_plans(b) if d.startswith("agg 1x[1xb300_hgx fp4 TP1]"))
    spans = []
    real = mlperf.simulate

    def recording(*args, arrival_s, **kwargs):
        spans.append((len(arrival_s), float(arrival_s[-1])))
        return real(*args, arrival_s=arrival_s, **kwargs)

    monkeypatch.setattr(mlperf, "simulate", recording)
    rate = 5.0  # queries/s: 600 s of it fits the request budget
    mlperf._open_loop_ok(plan, b, rate)
    loadgen_s = mlperf.MIN_MEASURED_S
    assert spans[-1][1] >= loadgen_s
    spans.clear()
    monkeypatch.setattr(mlperf, "MIN_MEASURED_S", 0.0)  # the count alone, as before
    mlperf._open_loop_ok(plan, b, rate)
    assert spans[-1][1] < 0.5 * loadgen_s
    assert spans[-1][0] >= mlperf.MIN_MEASURED_REQUESTS


def test_interactive_rows_run_with_the_in_flight_batching_limits_their_submissions_state():
    llama = {**_row("interactive", 450, 40), "model": "llama2_70b", "isl_mean": 222.3, "osl_mean": 218.9}
    b = benchmark(llama)
    assert b.scheduler == MLPERF_SUBMITTED_SCHEDULERS[("b300_hgx", "llama2_70b", "interactive")]
    pools = [p.pools[0] for p, d in mlperf.candidate_plans(b) if d.startswith("agg 1x[1xb300_hgx fp4 TP1]")]
    # max_num_tokens 768 counts the decodes and the prompt chunks of a step together
    assert pools and all(p.max_batch_tokens == 768 and p.max_batch <= 768 for p in pools)
    default = benchmark(llama, submitted_schedulers=False)
    assert default.scheduler is None
    assert all(p.pools[0].max_batch_tokens >= 8192 for p, _ in mlperf.candidate_plans(default))
    # Offline and Server rows of the same model keep the default budget
    assert benchmark({**llama, "scenario": "server", "tpot_p99_ms": 200, "ttft_p99_ms": 2000}).scheduler is None
    assert benchmark({**llama, "scenario": "offline"}).scheduler is None


def test_engines_run_without_cuda_graphs_pay_the_eager_cost_on_every_layer():
    """Dell's Llama 2 70B and GigaComputing's Llama 3.1 405B Interactive runs enqueue every
    layer at every step (use_graphs False): their rows, and only theirs, run with
    EAGER_LAYER_OVERHEAD_S on top of the stack's cost per layer."""
    from factory_sim.fidelity.mlperf_deployments import EAGER_LAYER_OVERHEAD_S, MLPERF_EAGER_ENGINES, as_submitted
    from factory_sim.perf.step_backends import step_time_model

    assert EAGER_LAYER_OVERHEAD_S > 0
    llama = {**_row("interactive", 450, 40), "model": "llama2_70b", "isl_mean": 222.3, "osl_mean": 218.9}
    eager = benchmark(llama)
    server = benchmark({**llama, "scenario": "server", "tpot_p99_ms": 200, "ttft_p99_ms": 2000})
    assert ("b300_hgx", "llama2_70b", "interactive") in MLPERF_EAGER_ENGINES
    assert eager.stack.layer_overhead_s == pytest.approx(server.stack.layer_overhead_s + EAGER_LAYER_OVERHEAD_S)
    # a step of the eager engine costs that much more per layer, whatever the batch
    plans = {d: p for p, d in mlperf.candidate_plans(eager)}
    assert plans and all(d.startswith("agg 1x[1xb300_hgx fp4 TP1]") for d in plans)  # Dell's TP1, as submitted
    shape = next(iter(plans.values())).pools[0].shape
    graphed = replace(shape, stack=server.stack)
    for batch in (4, 282):
        extra = step_time_model(shape).decode_token_s(batch, batch * 400.0) - step_time_model(graphed).decode_token_s(
            batch, batch * 400.0)
        assert extra == pytest.approx(EAGER_LAYER_OVERHEAD_S * shape.model.layers, rel=1e-6)
    # the rows whose engines replay CUDA graphs keep the stack's cost: gpt-oss-120b and DeepSeek-R1
    gpt_oss = {**_row("interactive", 2000, 15), "model": "gpt_oss_120b", "isl_mean": 5010.6, "osl_mean": 1278.2}
    assert benchmark(gpt_oss).stack.layer_overhead_s == server.stack.layer_overhead_s
    deepseek = benchmark(_row("interactive", 1500, 15))
    assert deepseek.stack.layer_overhead_s == server.stack.layer_overhead_s
    assert deepseek.stack.adp_balance_timeout_steps == 6  # the submission's balancing still applies
    # another framework's stack is left as it is
    vllm = eager.stack.model_copy(update={"framework": "vllm", "layer_overhead_s": 1e-5})
    assert as_submitted(vllm, "b300_hgx", "llama2_70b", "interactive") is vllm
    # the 405B row runs GigaComputing's TP4 engines
    llama405 = {**_row("interactive", 4500, 80), "model": "llama3_1_405b", "isl_mean": 9428.6, "osl_mean": 684.7}
    assert all(d.startswith("agg 1x[4xb300_hgx fp4 TP4]") for _, d in mlperf.candidate_plans(benchmark(llama405)))


def test_engines_run_with_the_overlap_scheduler_off_pay_the_host_time_on_every_step_when_opted_in(monkeypatch):
    """ASUSTeK's gpt-oss-120b Interactive run sets disable_overlap_scheduler. By default (not
    adopted) its row keeps the stack's step overhead; opted in, its row and only its runs with
    the host time on top of it, so every step of its engine, at any batch, lasts that much longer."""
    from factory_sim.fidelity import mlperf_deployments
    from factory_sim.fidelity.mlperf_deployments import MLPERF_OVERLAP_SCHEDULER_OFF, as_submitted
    from factory_sim.perf.step_backends import step_time_model

    gpt_oss = {**_row("interactive", 2000, 15), "model": "gpt_oss_120b", "isl_mean": 5010.6, "osl_mean": 1278.2}
    server = {**gpt_oss, "scenario": "server", "tpot_p99_ms": 80, "ttft_p99_ms": 3000}
    assert ("b300_hgx", "gpt_oss_120b", "interactive") in MLPERF_OVERLAP_SCHEDULER_OFF
    assert benchmark(gpt_oss).stack.step_overhead_s == benchmark(server).stack.step_overhead_s  # off by default
    host_s = mlperf_deployments.OVERLAP_OFF_HOST_STEP_ESTIMATE_S
    assert 0 < host_s < 0.01
    monkeypatch.setattr(mlperf_deployments, "OVERLAP_OFF_HOST_STEP_S", host_s)
    off, on = benchmark(gpt_oss), benchmark(server)
    assert off.stack.step_overhead_s == pytest.approx(on.stack.step_overhead_s + host_s)
    assert off.stack.layer_overhead_s == on.stack.layer_overhead_s  # its engine replays CUDA graphs
    plan = next(p for p, d in mlperf.candidate_plans(off) if d.startswith("agg 1x[1xb300_hgx mxfp4 TP1 EP1]"))
    shape = plan.pools[0].shape
    overlapped = step_time_model(replace(shape, stack=on.stack))
    exposed = step_time_model(shape)
    for batch in (1, 43, 512):
        extra = exposed.decode_token_s(batch, batch * 5000.0) - overlapped.decode_token_s(batch, batch * 5000.0)
        assert extra == pytest.approx(host_s, rel=1e-6)
    # the other rows keep the stack's step overhead, Llama 2 70B and DeepSeek-R1 Interactive included
    # (greedy, so without the cost of sampling the gpt-oss-120b rows pay)
    from factory_sim.config.stack import load_stack

    greedy_step_s = load_stack("trtllm_blackwell").step_overhead_s
    llama = {**_row("interactive", 450, 40), "model": "llama2_70b", "isl_mean": 222.3, "osl_mean": 218.9}
    assert benchmark(llama).stack.step_overhead_s == greedy_step_s
    assert benchmark(_row("interactive", 1500, 15)).stack.step_overhead_s == greedy_step_s
    # another framework's stack is left as it is
    vllm = off.stack.model_copy(update={"framework": "vllm"})
    assert as_submitted(vllm, "b300_hgx", "gpt_oss_120b", "interactive") is vllm


def test_the_benchmark_that_samples_pays_the_stacks_sampling_cost_on_every_step(monkeypatch):
    """MLPerf's gpt-oss-120b reference samples at temperature 1.0, the DeepSeek-R1 and Llama ones
    decode greedily: only gpt-oss-120b's rows run with stochastic_sampling_step_s on each step."""
    from factory_sim.config.stack import load_stack
    from factory_sim.fidelity import mlperf_deployments
    from factory_sim.fidelity.mlperf_deployments import MLPERF_STOCHASTIC_SAMPLING

    assert MLPERF_STOCHASTIC_SAMPLING == {"gpt_oss_120b"}
    stack = load_stack("trtllm_blackwell")
    assert stack.stochastic_sampling_step_s > 0
    gpt_oss = {**_row("interactive", 2000, 15), "model": "gpt_oss_120b", "isl_mean": 5010.6, "osl_mean": 1278.2}
    assert benchmark(gpt_oss).stack.step_overhead_s == pytest.approx(
        stack.step_overhead_s + stack.stochastic_sampling_step_s)
    for row in (_row("interactive", 1500, 15),
                {**_row("interactive", 450, 40), "model": "llama2_70b", "isl_mean": 222.3, "osl_mean": 218.9}):
        assert benchmark(row).stack.step_overhead_s == stack.step_overhead_s
    # --greedy in the benchmarks: no row samples
    monkeypatch.setattr(mlperf_deployments, "MLPERF_STOCHASTIC_SAMPLING", frozenset())
    assert benchmark(gpt_oss).stack.step_overhead_s == stack.step_overhead_s
