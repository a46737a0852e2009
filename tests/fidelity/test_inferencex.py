"""InferenceX points: format detection, the deployment each point names, skips, results, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.cli import main
from factory_sim.config.hardware import load_hardware
from factory_sim.fidelity import envelopes
from factory_sim.fidelity import inferencex as ix
from factory_sim.fidelity import inferencex_report as ixr
from factory_sim.fidelity.measured import builtin_measured_points_path
from factory_sim.fidelity.mlperf import builtin_calibration_path

POINTS_PATH = ix.builtin_points_path()


@pytest.fixture(scope="module")
def points() -> pd.DataFrame:
    return ix.load_points().set_index("point_id", drop=False)


def _point(points, pid: str) -> dict:
    return points.loc[pid].to_dict()


def test_the_format_is_told_by_its_header(tmp_path):
    assert ix.is_inferencex_file(POINTS_PATH)
    assert not ix.is_inferencex_file(builtin_measured_points_path())
    assert not ix.is_inferencex_file(builtin_calibration_path())
    assert not ix.is_inferencex_file(tmp_path / "missing.csv")
    header_only = tmp_path / "ix.csv"
    header_only.write_text(",".join(sorted(ix.INFERENCEX_COLUMNS)) + "\n")
    assert ix.is_inferencex_file(header_only)
    one_short = tmp_path / "short.csv"
    one_short.write_text(",".join(sorted(ix.INFERENCEX_COLUMNS - {"concurrency"})) + "\n")
    assert not ix.is_inferencex_file(one_short)


# (point, what it exercises): a few real points at a few clients, so the suite stays fast
REAL_POINTS = {
    "p00344": "GB200 NVL72 Dynamo-TRT disaggregated: 1 prefill worker TP4/EP4 + 4 decode workers TP8/EP8",
    "p00337": "the same deployment with MTP",
    "p03505": "B200 TensorRT-LLM aggregated with MTP (3 drafts, no attention DP)",
    "p00179": "B200 SGLang DeepSeek-R1 FP4, EP8",
    "p00001": "B200 vLLM gpt-oss-120b TP2",
    "p05645": "v1 dashboard row: Llama-3.3-70B on B200 TensorRT-LLM, output derived from total tokens/s",
}


def test_real_points_are_scored_within_a_loose_band(points):
    rows = [r for pid in REAL_POINTS for r in ix.score_point(_point(points, pid))]
    res = pd.DataFrame(rows, columns=ix.RESULT_COLUMNS)
    assert (res["skip_reason"] == "").all(), res[res["skip_reason"] != ""][["point_id", "skip_reason"]]
    for _, r in res.iterrows():
        assert np.isfinite(r["predicted"]) and r["predicted"] > 0, r["point_id"]
        assert r["rel_error"] == pytest.approx((r["predicted"] - r["published"]) / r["published"])
        if r["quantity"] != "ttft_ms":  # throughput and interactivity within a factor of 2.5
            assert 0.4 < r["predicted"] / r["published"] < 2.5, (r["point_id"], r["quantity"])
    configs = res.drop_duplicates("point_id").set_index("point_id")["config"]
    assert "disagg 1x[4xgb200_nvl72 fp4 TP4 EP4] + 4x[8xgb200_nvl72 fp4 TP8 EP8]" in configs["p00344"]
    assert "MTP 3 draft(s)" in configs["p00337"] and "MTP" not in configs["p00344"]
    assert "MTP 3 draft(s)" in configs["p03505"] and "TP8 EP1" in configs["p03505"]
    assert "EP8" in configs["p00179"] and "TP2" in configs["p00001"]
    v1 = res[res["point_id"] == "p05645"].set_index("quantity")
    assert set(v1.index) == {"output_tok_s_per_gpu", "interactivity_tok_s_user"}  # v1 rows publish no TTFT
    total = float(points.loc["p05645", "total_tok_s_per_gpu"])
    assert v1.loc["output_tok_s_per_gpu", "published"] == pytest.approx(total * 1024 / 2048)
    # MTP raises the measured and the simulated interactivity of the same deployment
    by = res.set_index(["point_id", "quantity"])
    q = "interactivity_tok_s_user"
    assert by.loc[("p00337", q), "published"] > by.loc[("p00344", q), "published"]
    assert by.loc[("p00337", q), "predicted"] > by.loc[("p00344", q), "predicted"]


def test_the_disaggregated_point_runs_the_gpus_it_names(points):
    p = _point(points, "p00344")
    dep, drafts = ix.point_deployment(p)
    prefill, decode = dep.fleet.pools
    assert (prefill.replicas, prefill.shape.gpus, decode.replicas, decode.shape.gpus) == (1, 4, 4, 8)
    assert dep.fleet.gpus == int(p["num_gpus"]) == 36 and drafts == 0
    dep_mtp, drafts = ix.point_deployment(_point(points, "p00337"))
    assert drafts == 3 and dep_mtp.fleet.pools[1].shape.mtp_draft_tokens == 3
    assert dep_mtp.fleet.pools[0].shape.mtp_draft_tokens == 0  # prefill workers draft nothing
    # the acceptance is the stack's (fitted per framework), and a replaced stack's when calibrating
    stack = dep_mtp.fleet.pools[1].shape.stack
    assert dep_mtp.fleet.pools[1].shape.mtp_acceptance == stack.mtp_acceptance
    other = stack.model_copy(update={"mtp_acceptance": 0.7})
    dep_other, _ = ix.point_deployment(_point(points, "p00337"), stacks={stack.name: other})
    assert dep_other.fleet.pools[1].shape.mtp_acceptance == 0.7 and "acceptance 0.7" in dep_other.config


def test_a_disaggregated_points_prefill_efficiency_slows_its_prefill_workers_alone(points):
    from factory_sim.perf.steptime import StepTimeModel

    p = _point(points, "p00344")
    base, _ = ix.point_deployment(p, prefill_efficiency=1.0)
    slow, _ = ix.point_deployment(p, prefill_efficiency=0.5)
    assert slow.fleet.pools[1] == base.fleet.pools[1]  # the decode workers are the profile's
    prefill_s = [StepTimeModel(d.fleet.pools[0].shape).step_time_s(8192.0, 8192.0 * 4096, 8.0) for d in (base, slow)]
    # every rate halved and every fixed cost of the step doubled: twice the time
    assert prefill_s[1] / prefill_s[0] == pytest.approx(2.0)
    stack = slow.fleet.pools[0].shape.stack
    assert stack.gemm_efficiency.fp8 == pytest.approx(0.5 * base.fleet.pools[0].shape.stack.gemm_efficiency.fp8)
    # the built-in value applies when none is given
    assert ix.point_deployment(p)[0].fleet.pools[0].shape.stack.gemm_efficiency.fp8 == pytest.approx(
        ix.DYNAMO_PREFILL_EFFICIENCY * base.fleet.pools[0].shape.stack.gemm_efficiency.fp8)


def test_points_see_the_request_path_of_their_own_client(points, monkeypatch):
    p = _point(points, "p00179")  # SGLang DeepSeek-R1: an MoE model under a profile with both latencies
    profile = ix.measured_row(p)[1]["stack"]
    assert profile.frontend_latency_s > 0 and profile.prefill_moe_layer_latency_s > 0
    dep, _ = ix.point_deployment(p)
    for pool in dep.fleet.pools:
        shape = pool.shape
        assert shape.stack.frontend_latency_s == ix.INFERENCEX_FRONTEND_LATENCY_S
        assert shape.request_latency_s == pytest.approx(
            ix.INFERENCEX_FRONTEND_LATENCY_S
            + ix.INFERENCEX_MOE_SETUP_SHARE * profile.prefill_moe_layer_latency_s * shape.model.moe_layers)
    # SGLang on B200 polls for requests as its recipe launches it: every 10 steps, 30 from 16 clients
    for conc, steps in ((4, 10), (16, 30), (64, 30)):
        polled, _ = ix.point_deployment({**p, "concurrency": conc})
        assert polled.fleet.pools[0].shape.stack.scheduler_recv_interval_steps == steps
    h200 = points[(points["framework"] == "sglang") & (points["hardware"] == "h200")].iloc[0].to_dict()
    assert ix.point_deployment(h200)[0].fleet.pools[0].shape.stack.scheduler_recv_interval_steps == 0
    # a candidate profile from calibration gets the same request path
    other = profile.model_copy(update={"frontend_latency_s": 0.5, "prefill_moe_layer_latency_s": 0.004})
    dep_other, _ = ix.point_deployment(p, stacks={profile.name: other})
    st = dep_other.fleet.pools[0].shape.stack
    assert st.frontend_latency_s == ix.INFERENCEX_FRONTEND_LATENCY_S
    assert st.prefill_moe_layer_latency_s == pytest.approx(0.004 * ix.INFERENCEX_MOE_SETUP_SHARE)
    # the front-end latency is the client's: it adds to the median TTFT, and only there (one client,
    # so that it cannot change the engine's load either)
    small = {**_point(points, "p00001"), "concurrency": 1, "osl": 64}
    base = ix.simulate_point(ix.point_deployment(small)[0], rounds=3)
    monkeypatch.setattr(ix, "INFERENCEX_FRONTEND_LATENCY_S", 0.05)
    later = ix.simulate_point(ix.point_deployment(small)[0], rounds=3)
    assert later["ttft_ms"] - base["ttft_ms"] == pytest.approx(50.0)
    assert later["interactivity_tok_s_user"] == pytest.approx(base["interactivity_tok_s_user"])


def test_deepseek_prefill_moe_stall_is_the_deepseek_fitted_profiles_on_every_framework(points):
    from factory_sim.config.stack import load_stack
    trt = points[(points["framework"] == "trtllm") & (points["model"] == "DeepSeek-R1-0528")]
    for hardware in ("b200", "h200"):
        p = trt[trt["hardware"] == hardware].iloc[0].to_dict()
        profile = ix.measured_row(p)[1]["stack"]
        source = load_stack(ix.DEEPSEEK_PREFILL_MOE_FROM[profile.generation])
        assert source.framework == "sglang" and source.prefill_moe_layer_overhead_s != profile.prefill_moe_layer_overhead_s
        dep, _ = ix.point_deployment(p)
        assert all(pool.shape.stack.prefill_moe_layer_overhead_s == source.prefill_moe_layer_overhead_s
                   for pool in dep.fleet.pools)
        # a calibration candidate of the source profile is the one read
        cand = source.model_copy(update={"prefill_moe_layer_overhead_s": 0.007})
        dep_c, _ = ix.point_deployment(p, stacks={source.name: cand})
        assert dep_c.fleet.pools[0].shape.stack.prefill_moe_layer_overhead_s == 0.007
    # other models keep their profile's own
    gptoss = points[(points["framework"] == "trtllm") & (points["model"] == "gpt-oss-120b")].iloc[0].to_dict()
    profile = ix.measured_row(gptoss)[1]["stack"]
    dep, _ = ix.point_deployment(gptoss)
    assert dep.fleet.pools[0].shape.stack.prefill_moe_layer_overhead_s == profile.prefill_moe_layer_overhead_s


BAD = {
    "amd": ({"hardware": "mi355x"}, "AMD hardware (mi355x)"),
    "model": ({"model": "Qwen3-Next"}, "model 'Qwen3-Next' is not in the catalog"),
    "framework": ({"framework": "atom"}, "framework 'atom' is not modelled"),
    "precision": ({"precision": "int3"}, "precision 'int3' is not modelled"),
    "no_concurrency": ({"concurrency": np.nan}, "concurrency not given"),
    "bad_tp": ({"tp": "eight"}, "tp 'eight' is not a whole number"),
    "bad_flag": ({"dp_attention": "maybe"}, "dp_attention 'maybe' is not true or false"),
    "ep_tp": ({"tp": "4", "ep": "8"}, "ep 8 does not divide tp 4"),
    "no_values": ({"output_tok_s_per_gpu_all_gpus": np.nan, "total_tok_s_per_gpu": np.nan,
                   "interactivity_tok_s_user": np.nan, "ttft_ms": np.nan}, "no published"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_points_that_cannot_be_scored_say_why(points, case):
    change, reason = BAD[case]
    p = {**_point(points, "p00179"), **change}
    rows = ix.score_point(p)
    assert rows and all(reason in r["skip_reason"] for r in rows)
    assert all(np.isnan(r["predicted"]) for r in rows)


def test_malformed_disaggregated_points_say_why(points):
    p = _point(points, "p00344")
    for change, reason in (({"tp": "4"}, "is not P<prefill>/D<decode>"),
                           ({"notes": "no counts here"}, "without its prefill GPU count"),
                           ({"disaggregated": False}, "disaggregated=False is not a configuration")):
        rows = ix.score_point({**p, **change})
        assert all(reason in r["skip_reason"] for r in rows), (change, rows[0]["skip_reason"])
    v1_gb200 = points[(points["hardware"] == "gb200_nvl72") & points["num_gpus"].isna()].iloc[0].to_dict()
    assert "GPU total" in ix.score_point(v1_gb200)[0]["skip_reason"]


def test_results_hold_the_documented_columns_and_keep_skipped_points(points):
    frame = points.loc[["p00179", "p05641", "p00001"]].reset_index(drop=True)
    frame.loc[1, "hardware"] = "mi300x"
    res = ix.validate_inferencex(frame, jobs=1)
    assert list(res.columns) == ix.RESULT_COLUMNS
    assert list(dict.fromkeys(res["point_id"])) == ["p00179", "p05641", "p00001"]  # file order
    skipped = res[res["point_id"] == "p05641"]
    assert len(skipped) == 2 and skipped["predicted"].isna().all()  # one row per published quantity
    assert skipped["skip_reason"].str.startswith("AMD hardware").all()
    ok = res[res["point_id"] == "p00179"]
    assert list(ok["quantity"]) == list(ix.QUANTITIES) and (ok["skip_reason"] == "").all()
    assert set(ok["interactivity_band"]) == {"100-200"}
    table = ixr.error_table(res, ["hardware"])
    assert set(table["hardware"]) == {"b200"} and set(table["points"]) == {2}
    assert "InferenceX points: 3, scored: 2, skipped: 1" in ixr.format_report(res)


def test_the_cli_scores_an_inferencex_file_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["validate", str(POINTS_PATH), "--limit", "3", "--jobs", "1", "--quiet", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "InferenceX points: 3" in text and "by hardware x framework x model x interactivity_band" in text
    res = pd.read_csv(out / "inferencex_validation.csv")
    assert list(res.columns) == ix.RESULT_COLUMNS and res["point_id"].nunique() == 3
    assert (out / "inferencex_errors.csv").exists()
    assert sorted(p.name for p in out.glob("*.png")) == ["inferencex_gpt_oss_120b_1k1k.png",
                                                        "inferencex_gpt_oss_120b_8k1k.png"]
    assert main(["validate", str(POINTS_PATH), "--system", "tpu_v9", "--quiet"]) == 2
    assert "no InferenceX points match" in capsys.readouterr().err


def test_the_client_draws_lengths_like_the_benchmark():
    lengths = ix.benchmark_lengths(1024, 20_000, np.random.default_rng(0))
    assert lengths.min() == int(1024 * ix.RANDOM_RANGE_RATIO) and lengths.max() == 1024
    assert np.median(lengths) == pytest.approx(0.9 * 1024, rel=0.01)


@given(st.integers(1, 64), st.integers(3, 12))
def test_round_weights_make_every_run_count_like_ten_rounds(clients, rounds):
    w = ix._round_weights(rounds * clients, clients, rounds)
    assert w.sum() == pytest.approx(1.0)
    first = w[:clients].sum()
    assert first == pytest.approx(1.0 / rounds if rounds >= ix.BENCHMARK_REQUESTS_PER_CLIENT else 0.1)


def test_the_image_version_picks_the_stack_it_names():
    b200 = load_hardware("b200_hgx")
    by_date, _ = ix.image_stack(b200, "tensorrt-llm", None, "2025-12-15")
    assert by_date.name == "trtllm_blackwell_2025"
    by_image, note = ix.image_stack(b200, "tensorrt-llm", "nvcr.io#nvidia/tensorrt-llm/release:1.2.0rc2", "2025-12-15")
    assert by_image.name == "trtllm_blackwell" and "1.2" in note
    dynamo, _ = ix.image_stack(b200, "tensorrt-llm", "nvcr.io#nvidia/ai-dynamo/tensorrtllm-runtime:0.7.0.post2",
                               "2025-12-15")
    assert dynamo.name == "trtllm_blackwell_2025"  # the Dynamo version says nothing of TensorRT-LLM's
    older, _ = ix.image_stack(b200, "tensorrt-llm", "nvcr.io/nvidia/tensorrt-llm/release:1.1.0rc2.post2", "2026-02-01")
    assert older.name == "trtllm_blackwell_2025"


def test_a_point_runs_and_reports_the_stack_of_its_image(points):
    rows = ix.score_point(_point(points, "p00218"))  # B200, 2025-12, TensorRT-LLM 1.2.0rc2
    assert {r["stack"] for r in rows} == {"trtllm_blackwell"}
    assert "stack=trtllm_blackwell [image 1.2 is trtllm_blackwell's version]" in rows[0]["config"]


@given(st.lists(st.tuples(st.floats(1, 500), st.floats(1, 1e4)), min_size=1, max_size=30))
def test_the_envelope_is_the_pareto_frontier(pts):
    x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    ex, ey = envelopes.frontier_envelope(x, y)
    assert np.all(np.diff(ex) > 0) and np.all(np.diff(ey) < 0)
    for xi, yi in zip(x, y, strict=True):  # nothing measured lies beyond it
        reach = envelopes.envelope_at(ex, ey, [xi])[0]
        assert reach >= yi * (1 - 1e-9)


def test_hardware_ratios_read_both_envelopes_at_the_same_interactivity():
    rows = []
    for hw, scale in (("h200", 1.0), ("gb200_nvl72", 4.0)):
        for i, (inter, tput) in enumerate(((20.0, 1000.0), (50.0, 400.0), (100.0, 100.0))):
            pid = f"{hw}{i}"
            for q, pub in (("interactivity_tok_s_user", inter), ("output_tok_s_per_gpu", tput * scale)):
                pred = pub * (2.0 if hw == "gb200_nvl72" and q == "output_tok_s_per_gpu" else 1.0)
                rows.append({"point_id": pid, "quantity": q, "predicted": pred, "published": pub,
                             "rel_error": pred / pub - 1.0, "hardware": hw, "model": "DeepSeek-R1-0528",
                             "isl": 1024, "osl": 1024, "skip_reason": ""})
    ratios = ixr.hardware_ratios(pd.DataFrame(rows), others=("gb200_nvl72",), targets=(20.0, 35.0, 50.0, 150.0))
    r = ratios.set_index("interactivity_tok_s_user")
    assert r.loc[20.0, "measured_ratio"] == pytest.approx(4.0)
    assert r.loc[35.0, "measured_ratio"] == pytest.approx(4.0) == r.loc[35.0, "measured_scored_ratio"]
    assert r.loc[50.0, "simulated_ratio"] == pytest.approx(8.0)
    assert 150.0 not in r.index  # beyond both envelopes: no row
    # one side a constant multiple of the other: the band reads the same, and so does every removal
    assert r.loc[35.0, "measured_band_ratio"] == pytest.approx(4.0)
    assert r.loc[50.0, "simulated_band_ratio"] == pytest.approx(8.0)
    assert r.loc[50.0, "simulated_vs_measured_band"] == pytest.approx(1.0)
    # without GB200's point at 50 its envelope is read there in log-log between 20 and 100 (4,000 and
    # 400 tokens/s/GPU), against H200's 400; without H200's, H200's is read between 20 and 100 alike
    between = 4000.0 * (50 / 20) ** (np.log(400 / 4000) / np.log(100 / 20))
    assert r.loc[50.0, "measured_ratio_drop_other"] == pytest.approx(between / 400.0)
    assert r.loc[50.0, "measured_ratio_drop_reference"] == pytest.approx(1600.0 / (between / 4.0))
    text = ixr.format_ratios(ratios)
    assert "band" in text and "!" in text  # at 50 the simulated GB200 envelope hangs on its 100 point


def test_the_harness_drops_the_per_size_moe_set_up_latency_with_the_per_layer_one(points):
    """InferenceX's client sees none of the profiles' MoE set-up latency (INFERENCEX_MOE_SETUP_SHARE
    0): a TensorRT-LLM profile that prices it per routed expert parameter gets it scaled the same way."""
    gptoss = points[(points["framework"] == "trtllm") & (points["model"] == "gpt-oss-120b")].iloc[0].to_dict()
    profile = ix.measured_row(gptoss)[1]["stack"]
    assert profile.prefill_moe_latency_s_per_gparam > 0
    stack = ix.harness_stack(profile, gptoss)
    assert stack.prefill_moe_latency_s_per_gparam == pytest.approx(
        profile.prefill_moe_latency_s_per_gparam * ix.INFERENCEX_MOE_SETUP_SHARE)
    assert stack.prefill_moe_layer_latency_s == pytest.approx(
        profile.prefill_moe_layer_latency_s * ix.INFERENCEX_MOE_SETUP_SHARE)


def test_dynamo_trt_decode_workers_hold_the_recipes_power_of_two_batch(points):
    from types import SimpleNamespace

    from factory_sim.fidelity.inferencex_harness import decode_batch_cap

    def pool(workers, ranks):
        return SimpleNamespace(replicas=workers, shape=SimpleNamespace(dp_attention=ranks))

    # 2,150 clients on one DEP8 worker: 8 ranks x 256 = 2,048 slots, 102 clients wait for one
    assert decode_batch_cap(2150, 1.25, pool(1, 8)) == 2048
    # 875 clients on five DEP8 workers of batch 16 (640 slots, 1.37x) only within a headroom that wide
    assert decode_batch_cap(875, 1.5, pool(5, 8)) == 128
    assert decode_batch_cap(875, 1.25, pool(5, 8)) is None
    # clients that fill whole slots, or fewer than one per rank: no cap
    assert decode_batch_cap(4096, 1.25, pool(1, 8)) is None
    assert decode_batch_cap(4, 1.25, pool(1, 8)) is None
    p = _point(points, "p00343")  # Dynamo-TRT DeepSeek-R1 on GB200 NVL72, 2,150 clients
    capped, _ = ix.point_deployment(p, decode_headroom=1.25)
    free, _ = ix.point_deployment(p, decode_headroom=0.0)
    decode = [next(q for q in d.fleet.pools if q.role == "decode") for d in (capped, free)]
    assert decode[0].max_batch == 2048 < 2150 <= decode[1].max_batch
    assert capped.fleet.pools[0] == free.fleet.pools[0]  # the prefill side is untouched
    # Dynamo-SGLang's decode side is left as it was
    q = _point(points, "p00354")
    assert ix.point_deployment(q, decode_headroom=1.25)[0] == ix.point_deployment(q, decode_headroom=0.0)[0]
