"""Running experiments: the load search, fixed loads, seeds, and the report's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from factory_sim.errors import ConfigError
from factory_sim.results.cost import fleet_usd_per_hour
from factory_sim.studies.assemble import fleet_layouts, parse_experiment
from factory_sim.studies.load_search import LoadSearch
from factory_sim.studies.run import run_experiment, simulate_point
from tests.helpers import SMALL


def _exp(**changes):
    raw = yaml.safe_load(SMALL)
    raw.update(changes)
    return parse_experiment(raw)


def test_search_reports_a_passing_load_with_a_failing_one_just_above():
    exp = _exp(slo_tiers=[{"name": "relaxed", "ttft_s": 1.0, "tpot_s": 0.05}])
    plan = fleet_layouts(exp)[0]
    search = LoadSearch(exp, plan, None, simulate_point)
    best = search.search("relaxed", guess=50.0, ceiling=200.0)
    assert best is not None
    target = exp.load.target_attainment
    assert search.at(best).summaries["relaxed"]["slo_attainment"] >= target
    above = [x for x in search.cache if x > best]
    assert above and min(above) <= best * 1.2  # bracketed tightly
    assert search.at(min(above)).summaries["relaxed"]["slo_attainment"] < target


def test_same_seed_same_run_other_seed_other_run():
    exp = _exp(load={"mode": "fixed", "rate_per_s": 15})
    plan = fleet_layouts(exp)[1]
    a = simulate_point(exp, plan, 15.0).sim.trace.to_frame()
    b = simulate_point(exp, plan, 15.0).sim.trace.to_frame()
    c = simulate_point(_exp(seed=4, load={"mode": "fixed", "rate_per_s": 15}), plan, 15.0).sim.trace.to_frame()
    assert a.equals(b)
    assert not np.allclose(a["arrival_s"], c["arrival_s"])


def test_fixed_load_report_arithmetic():
    exp = _exp(load={"mode": "fixed", "rate_per_s": 15})
    result = run_experiment(exp, jobs=1)
    df = result.summary
    assert len(df) == 4 and df["feasible"].all()
    for _, row in df.iterrows():
        plan = next(p for p in fleet_layouts(exp) if p.name == row.fleet)
        usd_h = fleet_usd_per_hour(plan.gpus_by_hardware(), exp.cost)
        assert row.usd_per_hour == pytest.approx(usd_h)
        assert row.usd_per_m_output_tokens == pytest.approx(usd_h / (row.output_tokens_per_s * 3600) * 1e6)
        assert row.tokens_per_s_per_gpu == pytest.approx(row.output_tokens_per_s / row.gpus)
        assert row.goodput_tokens_per_s <= row.output_tokens_per_s
        assert row.usd_per_m_total_tokens < row.usd_per_m_output_tokens
    ref = df[df.fleet == "h100"].set_index("tier")["usd_per_m_goodput_tokens"]
    other = df[df.fleet == "b200_disagg"].set_index("tier")
    relaxed = other.loc["relaxed"]
    assert relaxed.cost_ratio_to_reference == pytest.approx(relaxed.usd_per_m_goodput_tokens / ref["relaxed"])
    # the 0.1 ms tier is met by no request: infinite cost per goodput token, never NaN
    assert np.isinf(df[df.tier == "impossible"].usd_per_m_goodput_tokens).all()
    traces = result.traces_frame()
    assert set(traces["fleet"]) == {"h100", "b200_disagg"}


def test_mixed_fleet_serves_from_both_hardware_kinds():
    raw = yaml.safe_load(SMALL)
    raw["fleets"] = [{
        "name": "mixed", "precision": "fp8",
        "prefill": {"hardware": "b200_hgx", "replicas": 1},
        "decode": [{"hardware": "h100_sxm", "replicas": 2, "max_batch": 64},
                   {"hardware": "b200_hgx", "replicas": 1, "max_batch": 64, "name": "blackwell"}],
    }]
    raw["load"] = {"mode": "fixed", "rate_per_s": 20}
    exp = parse_experiment(raw)
    plan = fleet_layouts(exp)[0]
    assert [p.name for p in plan.pools] == ["mixed/prefill", "mixed/decode/h100_sxm", "mixed/decode/blackwell"]
    assert sorted((hw.name, g) for hw, g in plan.gpus_by_hardware()) == [("b200_hgx", 2), ("h100_sxm", 2)]
    result = run_experiment(exp, jobs=1)
    row = result.summary.iloc[0]
    assert row.hardware == "b200_hgx+h100_sxm"
    assert row.usd_per_hour == pytest.approx(fleet_usd_per_hour(plan.gpus_by_hardware(), exp.cost))
    tr = result.points[("mixed", "relaxed")].sim.trace
    served = tr.to_frame().query("outcome == 'done'")
    assert set(served["hardware"]) == {"b200_hgx", "h100_sxm"}
    # prefill on B200, decode on H100: the KV cache crosses hardware over the NIC (50 GB/s per GPU, one lane)
    h100 = served[served["hardware"] == "h100_sxm"]
    assert (h100["kv_transfer_s"] > 0).all()


def test_mixed_fleet_pool_without_hardware_is_refused():
    raw = yaml.safe_load(SMALL)
    raw["fleets"] = [{"name": "m", "prefill": {"replicas": 1}, "decode": {"hardware": "h100_sxm", "replicas": 1}}]
    with pytest.raises(ConfigError, match="no hardware"):
        parse_experiment(raw)


def test_mtp_drafts_with_the_experiments_acceptance_else_the_stacks_fitted_one_else_the_default():
    from factory_sim.config.experiment import DEFAULT_MTP_ACCEPTANCE
    from factory_sim.config.stack import load_stack

    node = {"hardware": "h200_sxm", "prefill": {"replicas": 1, "tp": 8}, "decode": {"replicas": 1, "tp": 8}}
    raw = {"name": "mtp", "model": "deepseek_r1", "workload": "chat_1k1k",
           "slo_tiers": [{"name": "s", "ttft_s": 2.0, "tpot_s": 0.05}],
           "load": {"mode": "fixed", "rate_per_s": 1},
           "fleets": [{**node, "name": "given", "mtp": {"draft_tokens": 3, "acceptance_rate": 0.7}},
                      {**node, "name": "fitted", "mtp": {"draft_tokens": 3}},
                      {**node, "name": "unfitted", "stack": "vllm_hopper", "mtp": {"draft_tokens": 3}},
                      {**node, "name": "none"}]}
    decode = {plan.name: plan.pools[1].shape for plan in fleet_layouts(parse_experiment(raw))}
    assert load_stack("vllm_hopper").mtp_acceptance is None
    fitted = load_stack("trtllm_hopper").mtp_acceptance
    assert fitted is not None and fitted != DEFAULT_MTP_ACCEPTANCE
    assert decode["given"].mtp_acceptance == 0.7
    assert decode["fitted"].mtp_acceptance == fitted
    assert decode["unfitted"].mtp_acceptance == DEFAULT_MTP_ACCEPTANCE
    assert decode["none"].mtp_draft_tokens == 0 and decode["none"].mtp_acceptance == 0.0
    assert {plan.name: plan.pools[0].shape.mtp_draft_tokens for plan in fleet_layouts(parse_experiment(raw))} == {
        "given": 0, "fitted": 0, "unfitted": 0, "none": 0}  # prefill drafts nothing


def test_a_run_imports_pandas_and_scipy_only_when_asked_for_a_table(tmp_path):
    """Start-up is a third of a short run's cost: the simulation and its summaries need neither
    pandas (the table users read is built when first asked for) nor scipy (a dense model never
    takes the expected maximum of its ranks' step times), and a run on one core starts no process
    pool (concurrent.futures, multiprocessing)."""
    import json
    import subprocess
    import sys

    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    script = (
        "import json, sys\n"
        "from factory_sim.studies.assemble import load_experiment\n"
        "from factory_sim.studies.run import run_experiment\n"
        f"exp = load_experiment({str(path)!r}, requests=300)\n"
        "result = run_experiment(exp, jobs=1)\n"
        "before = {m: m in sys.modules for m in ('pandas', 'scipy', 'pyarrow', 'concurrent.futures',"
        " 'multiprocessing')}\n"
        "rows = len(result.summary)\n"
        "print(json.dumps({'before': before, 'after': 'pandas' in sys.modules, 'rows': rows,"
        " 'expected': len(result.rows)}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                    check=True).stdout.strip().splitlines()[-1])
    assert out["before"] == {"pandas": False, "scipy": False, "pyarrow": False, "concurrent.futures": False,
                             "multiprocessing": False}
    assert out["after"] and out["rows"] == out["expected"] > 0


def test_a_workload_that_samples_pays_its_stacks_sampling_cost_on_every_step():
    """Stack constants were fitted to greedy benchmarks; a workload with `sampling: stochastic` adds
    the stack's stochastic_sampling_step_s to each step, whatever the batch, and a stack that
    sets none is left as it is."""
    from factory_sim.perf.step_backends import step_time_model

    raw = yaml.safe_load(SMALL)
    greedy = fleet_layouts(parse_experiment(raw))
    raw["workload"]["sampling"] = "stochastic"
    sampled = fleet_layouts(parse_experiment(raw))
    for g_fleet, s_fleet in zip(greedy, sampled, strict=True):
        for g_pool, s_pool in zip(g_fleet.pools, s_fleet.pools, strict=True):
            cost = g_pool.shape.stack.stochastic_sampling_step_s
            assert s_pool.shape.stack.stochastic_sampling_step_s == 0.0  # folded in, not paid twice
            for batch in (1, 48):
                extra = (step_time_model(s_pool.shape).decode_token_s(batch, batch * 300.0)
                         - step_time_model(g_pool.shape).decode_token_s(batch, batch * 300.0))
                assert extra == pytest.approx(cost, abs=1e-12)
    costs = {f.name: f.pools[0].shape.stack.stochastic_sampling_step_s for f in greedy}
    assert costs["b200_disagg"] > 0 and costs["h100"] == 0  # TensorRT-LLM on Blackwell measured; Hopper not


def test_an_unknown_sampling_mode_names_the_field_and_the_choices():
    raw = yaml.safe_load(SMALL)
    raw["workload"]["sampling"] = "random"
    with pytest.raises(ConfigError) as err:
        parse_experiment(raw)
    assert "workload.sampling" in str(err.value) and "stochastic" in str(err.value)


def test_a_sampling_workload_on_a_stack_without_a_sampling_cost_says_its_steps_are_priced_as_greedy():
    raw = yaml.safe_load(SMALL)
    raw["workload"]["sampling"] = "stochastic"
    raw["load"] = {"mode": "fixed", "rate_per_s": 15}
    raw["slo_tiers"] = raw["slo_tiers"][:1]
    df = run_experiment(parse_experiment(raw), jobs=1).summary.set_index("fleet")
    assert "trtllm_hopper prices no cost of sampling" in df.loc["h100", "note"]
    assert "sampling" not in str(df.loc["b200_disagg", "note"])  # its stack prices it
    raw["workload"]["sampling"] = "greedy"
    df = run_experiment(parse_experiment(raw), jobs=1).summary
    assert not df["note"].fillna("").str.contains("sampling").any()
