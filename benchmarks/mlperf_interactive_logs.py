"""The MLPerf v6.0 B300 runs behind the Interactive rows, the same systems' other runs of their
Llama models, and two runs of the DeepSeek-R1 Server deployment NVIDIA's configuration states,
simulated at the rates their LoadGen logs show, against the latencies those logs record; the
per-layer cost of the engines run without CUDA graphs (mlperf_deployments.EAGER_LAYER_OVERHEAD_S)
fitted to the runs that use such engines; and the host time per step of an engine run with
TensorRT-LLM's overlap scheduler off (mlperf_deployments.OVERLAP_OFF_HOST_STEP_ESTIMATE_S, an
opt-in) on the run that states it, beside two runs of the same recipe with the scheduler on.

Each run is simulated as `_open_loop_ok` runs it (Poisson arrivals, the dataset's lengths,
the submitted deployment and step budget), at the logged completed queries/s, for 600 s past a
150 s ramp-up (1,500 s for DeepSeek-R1 Server, whose long answers load the engine for longer).
LoadGen counts TPOT per request as (latency - TTFT) / (tokens - 1), as the simulation does.
The logs (https://github.com/mlcommons/inference_results_v6.0,
closed/<submitter>/results/<platform>/<benchmark>/<scenario>/performance/run_1/) give:

    python benchmarks/mlperf_interactive_logs.py                  # every run at the adopted cost
    python benchmarks/mlperf_interactive_logs.py --eager-layer-s 0 # without it
    python benchmarks/mlperf_interactive_logs.py --fit            # the cost each eager run's mean TPOT asks for
    python benchmarks/mlperf_interactive_logs.py --generated      # at the output lengths the runs generated
    python benchmarks/mlperf_interactive_logs.py --overlap-off-s 0 # the overlap-off run without its host time
    python benchmarks/mlperf_interactive_logs.py --fit-step --greedy --runs gpt-oss  # the cost per step asked for

gpt-oss-120b's runs sample at temperature 1.0 (mlperf_deployments.MLPERF_STOCHASTIC_SAMPLING) and
pay the stack's stochastic_sampling_step_s; `--greedy` leaves it out, as the fit of that constant does.

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

import numpy as np

from factory_sim.fidelity import mlperf, mlperf_deployments
from factory_sim.fidelity.deployments import read_reference_csv
from factory_sim.fidelity.mlperf_deployments import SubmittedScheduler
from factory_sim.fidelity.mlperf_lengths import request_lengths
from factory_sim.results.metrics import latencies
from factory_sim.sim.engine import simulate


@dataclass(frozen=True)
class LoggedRun:
    name: str
    row: str            # the calibration row whose benchmark (model, limits, hardware) the run shares
    config: str         # the plan simulated: the submitted deployment
    queries_s: float    # result_completed_samples_per_sec, all GPUs of the system
    tpot_ms: tuple      # mean, p50, p99 (nan where the log gives none)
    ttft_ms: tuple      # p50, p99
    eager: bool         # harness_fields.use_graphs False in its configuration
    log: str
    scheduler: SubmittedScheduler | None = None  # where the run's own budget differs from the row's
    ramp_s: float = 150.0  # arrivals left out before the measured 600 s (DeepSeek-R1's long answers load up for longer)
    overlap_off: bool = False  # trtllm_runtime_flags.disable_overlap_scheduler True in its configuration
    system: str | None = None  # the hardware, where it is not the row's


RUNS = (
    LoggedRun("Dell Llama 2 70B Interactive", "CAL-059", "agg 1x[1xb300_hgx fp4 TP1]", 258.262,
              (31.80, 31.51, 39.87), (52.8, 154.8), True,
              "closed/Dell/results/XE9780L-B300-SXM-270GBx8_TRT/llama2-70b-99/Interactive"),
    # Dell's Server run is not a calibration row (NVIDIA's is, CAL-058): its own budget
    # (closed/Dell/configs/XE9780L-B300-SXM-270GBx8/Server/llama2-70b.py: max_num_tokens 3584,
    # gpu_batch_size 2048, use_graphs False) on CAL-058's benchmark
    LoggedRun("Dell Llama 2 70B Server", "CAL-058", "agg 1x[1xb300_hgx fp4 TP1]", 396.85,
              (129.02, 131.81, 138.26), (263.1, 575.3), True,
              "closed/Dell/results/XE9780L-B300-SXM-270GBx8_TRT/llama2-70b-99/Server",
              SubmittedScheduler(max_num_tokens=3584, max_batch_size=2048)),
    # GigaComputing's Llama 2 70B Interactive run at the 99.9% accuracy target: the same engine and
    # budget as Dell's (closed/GigaComputing/configs/G894-SD3-AAX7_B300-SXM-270GBx8/Interactive/
    # llama2-70b.py, use_graphs False), run at 240 queries/s inside its limits; not a calibration row
    LoggedRun("GigaComputing Llama 2 70B Interactive (99.9%)", "CAL-059", "agg 1x[1xb300_hgx fp4 TP1]", 238.01,
              (29.31, 29.18, 33.18), (47.7, 117.4), True,
              "closed/GigaComputing/results/G894-SD3-AAX7_B300-SXM-270GBx8_TRT/llama2-70b-99.9/Interactive"),
    # GigaComputing's Server runs (not calibration rows; NVIDIA's are, CAL-058 and CAL-060), both
    # use_graphs False: Llama 2 70B at the 99.9% target with Dell's Server budget (closed/
    # GigaComputing/configs/G894-SD3-AAX7_B300-SXM-270GBx8/Server/llama2-70b.py), Llama 3.1 405B
    # on two TP4 engines, max_num_tokens 2048, gpu_batch_size 256 (.../Server/llama3_1-405b.py)
    LoggedRun("GigaComputing Llama 2 70B Server (99.9%)", "CAL-058", "agg 1x[1xb300_hgx fp4 TP1]", 377.25,
              (119.65, 122.38, 128.21), (232.3, 412.4), True,
              "closed/GigaComputing/results/G894-SD3-AAX7_B300-SXM-270GBx8_TRT/llama2-70b-99.9/Server",
              SubmittedScheduler(max_num_tokens=3584, max_batch_size=2048)),
    LoggedRun("GigaComputing Llama 3.1 405B Server", "CAL-060", "agg 1x[4xb300_hgx fp4 TP4]", 2.10,
              (94.01, 93.62, 129.13), (1258.0, 4757.5), True,
              "closed/GigaComputing/results/G894-SD3-AAX7_B300-SXM-270GBx8_TRT/llama3.1-405b/Server",
              SubmittedScheduler(max_num_tokens=2048, max_batch_size=256)),
    LoggedRun("GigaComputing Llama 3.1 405B Interactive", "CAL-061", "agg 1x[4xb300_hgx fp4 TP4]", 1.20,
              (58.02, 57.74, 72.28), (866.4, 2223.0), True,
              "closed/GigaComputing/results/G894-SD3-AAX7_B300-SXM-270GBx8_TRT/llama3.1-405b/Interactive"),
    # a control: ASUSTeK's Llama 2 70B Server run at Giga's rate on the PyTorch backend with
    # piecewise CUDA graphs (closed/ASUSTeK/configs/XA_NB3I-E12_B300x8/Server/llama2-70b.py:
    # torch_compile_config, max_num_tokens 4608, gpu_batch_size 3072)
    LoggedRun("ASUSTeK Llama 2 70B Server (CUDA graphs)", "CAL-058", "agg 1x[1xb300_hgx fp4 TP1]", 374.83,
              (85.68, 83.82, 108.01), (232.2, 336.9), False,
              "closed/ASUSTeK/results/XA_NB3I-E12_B300x8_TRT/llama2-70b-99/Server",
              SubmittedScheduler(max_num_tokens=4608, max_batch_size=3072)),
    # CUDA graphs to batch 512, the overlap scheduler off (disable_overlap_scheduler True)
    LoggedRun("ASUSTeK gpt-oss-120b Interactive", "CAL-057", "agg 1x[1xb300_hgx mxfp4 TP1 EP1]", 19.8989,
              (13.28, 13.37, 13.99), (63.6, 129.8), False,
              "closed/ASUSTeK/results/XA_NB3I-E12_B300x8_TRT/gpt-oss-120b/Interactive", overlap_off=True),
    # a control: the same system's Server run of the same recipe (closed/ASUSTeK/configs/XA_NB3I-E12_B300x8/
    # Server/gpt-oss-120b.py: TP1, the TRTLLM MoE backend, CUDA graphs to batch 896, max_num_tokens
    # 4638 x 3, gpu_batch_size 896) with the overlap scheduler on; not a calibration row (NVIDIA's is, CAL-056)
    LoggedRun("ASUSTeK gpt-oss-120b Server (overlap on)", "CAL-056", "agg 1x[1xb300_hgx mxfp4 TP1 EP1]", 76.8445,
              (42.94, 45.00, 47.17), (152.2, 323.0), False,
              "closed/ASUSTeK/results/XA_NB3I-E12_B300x8_TRT/gpt-oss-120b/Server",
              SubmittedScheduler(max_num_tokens=4638 * 3, max_batch_size=896)),
    # a control in the same scenario: Nebius's B200 Interactive run of the recipe with the overlap scheduler on
    # (closed/Nebius/configs/nebius_b200_n1/Interactive/gpt-oss-120b.py: TP1, CUDA graphs to batch 64,
    # max_num_tokens 4638 x 3, gpu_batch_size 896); not a calibration row, simulated on CAL-057's benchmark on B200
    LoggedRun("Nebius gpt-oss-120b Interactive B200 (overlap on)", "CAL-057", "agg 1x[1xb200_hgx mxfp4 TP1 EP1]",
              10.049, (8.22, 6.78, 14.55), (62.6, 146.5), False,
              "closed/Nebius/results/nebius_b200_n1/gpt-oss-120b/Interactive",
              SubmittedScheduler(max_num_tokens=4638 * 3, max_batch_size=896), system="b200_hgx"),
    # 3 MTP drafts in the run (MLPERF_STATED_NOT_SCORED), 1 simulated, as the row is scored
    LoggedRun("GigaComputing DeepSeek-R1 Interactive", "CAL-055", "agg 1x[8xb300_hgx fp4 TP1 DP8 EP8 MTP1]", 1.3118,
              (float("nan"), 11.22, 14.62), (304.3, 528.3), False,
              "closed/GigaComputing/results/G894-SD3-AAX7_B300-SXM-270GBx8_TRT/deepseek-r1/Interactive"),
    # DeepSeek-R1 Server, the deployment NVIDIA's B300 Server configuration states (closed/NVIDIA/configs/
    # B300-SXM-270GBx8/Server/deepseek-r1.py: tensor_parallelism 8 with enable_attention_dp, EP8, no
    # speculative decoding, max_num_tokens 4608 and gpu_batch_size 640 per rank, chunked context off,
    # server_target_qps 9.5), run by GigaComputing at that target (its configuration for this run is not
    # among the files read) and by Nebius with the same file at 16.2 queries/s (closed/Nebius/configs/
    # nebius_b300_n1/Server/deepseek-r1.py). NVIDIA's own log (CAL-054) is not among the results read.
    # The answers (mean 4,043, up to 32,768 tokens) keep loading the engine for about 1,000 s: ramp 1,500 s.
    LoggedRun("GigaComputing DeepSeek-R1 Server (NVIDIA's deployment)", "CAL-054",
              "agg 1x[8xb300_hgx fp4 TP1 DP8 EP8] batch 5120", 9.4587,
              (52.60, 53.06, 54.44), (471.2, 736.8), False,
              "closed/GigaComputing/results/G894-SD3-AAX7_B300-SXM-270GBx8_TRT/deepseek-r1/Server",
              SubmittedScheduler(max_num_tokens=4608, max_batch_size=640), ramp_s=1500.0),
    LoggedRun("Nebius DeepSeek-R1 Server (NVIDIA's deployment)", "CAL-054",
              "agg 1x[8xb300_hgx fp4 TP1 DP8 EP8] batch 5120", 16.0461,
              (69.31, 74.49, 79.65), (593.8, 1171.4), False,
              "closed/Nebius/results/nebius_b300_n1/deepseek-r1/Server",
              SubmittedScheduler(max_num_tokens=4608, max_batch_size=640), ramp_s=1500.0),
)
MEASURED_S = 600.0


def simulate_run(run: LoggedRun, rows, eager_layer_s: float, generated: bool, seed: int = 0,
                 overlap_off_s: float | None = None, step_s: float = 0.0) -> dict:
    """Latencies (ms) and sequences in flight of one run simulated at its logged rate."""
    mlperf_deployments.EAGER_LAYER_OVERHEAD_S = 0.0  # applied below, to the eager runs alone
    if overlap_off_s is None:
        overlap_off_s = mlperf_deployments.OVERLAP_OFF_HOST_STEP_ESTIMATE_S
    mlperf_deployments.OVERLAP_OFF_HOST_STEP_S = 0.0  # applied below, to the overlap-off runs alone
    row = rows[rows["id"] == run.row].iloc[0].copy()
    if run.system is not None:
        row["system"] = run.system
    b = mlperf.benchmark(row, generated_lengths=generated)
    if run.scheduler is not None:
        b = replace(b, scheduler=run.scheduler)
    if run.eager:
        b = replace(b, stack=b.stack.model_copy(update={"layer_overhead_s": b.stack.layer_overhead_s + eager_layer_s}))
    step_s += overlap_off_s if run.overlap_off else 0.0  # step_s: a cost per step added to any run (--fit-step)
    if step_s:
        b = replace(b, stack=b.stack.model_copy(update={"step_overhead_s": b.stack.step_overhead_s + step_s}))
    plan = next(p for p, d in mlperf.candidate_plans(b) if d.startswith(run.config))
    rate = run.queries_s * plan.gpus / b.gpus
    n = int(rate * (run.ramp_s + MEASURED_S + run.ramp_s)) + 1
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate, size=n))
    arrival -= arrival[0]
    tokens_in, tokens_out = request_lengths(b.model.name, b.isl, b.osl, n, seed)
    sim = simulate(plan, tokens_in, tokens_out, arrival_s=arrival, seed=seed, until_s=float(arrival[-1]) + 3600.0)
    tr, lat = sim.trace, latencies(sim.trace)
    window = (arrival >= run.ramp_s) & (arrival <= run.ramp_s + MEASURED_S)
    measured = tr.done & window
    tpot, ttft = lat["tpot_s"][measured] * 1e3, lat["ttft_s"][measured] * 1e3
    in_flight = rate * float(np.mean(tr.finish_s[measured] - arrival[measured]))
    return {"tpot": (float(np.nanmean(tpot)), float(np.nanmedian(tpot)), float(np.nanpercentile(tpot, 99))),
            "ttft": (float(np.nanmedian(ttft)), float(np.nanpercentile(ttft, 99))),
            "in_flight": in_flight, "gpus": plan.gpus, "unfinished": int((window & ~tr.done).sum())}


def fit_eager(run: LoggedRun, rows, generated: bool, hi: float = 5e-4, steps: int = 12) -> float:
    """The per-layer cost at which the simulated mean TPOT of the run is the logged mean."""
    lo, target = 0.0, run.tpot_ms[0]
    for _ in range(steps):
        mid = (lo + hi) / 2.0
        if simulate_run(run, rows, mid, generated)["tpot"][0] < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def fit_step(run: LoggedRun, rows, eager_layer_s: float, generated: bool, grid_s: float = 5e-4,
             steps: int = 8) -> float:
    """The cost per step, on top of the stack's, at which the run's simulated mean TPOT first reaches
    the logged mean (without the overlap-off runs' own host time, which it would stand for): the
    first grid value that reaches it, then bisection below it. Past saturation the simulated mean
    TPOT falls again (the batch cap holds requests in the queue), so it is not bisected blind."""
    def tpot(step_s: float) -> float:
        t = simulate_run(run, rows, eager_layer_s, generated, overlap_off_s=0.0, step_s=step_s)["tpot"][0]
        return np.inf if np.isnan(t) else t

    target, hi = run.tpot_ms[0], grid_s
    while tpot(hi) < target:
        hi += grid_s
    lo = hi - grid_s
    for _ in range(steps):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if tpot(mid) < target else (lo, mid)
    return (lo + hi) / 2.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eager-layer-s", type=float, default=None,
                    help="per-layer cost of the eager runs (default: mlperf_deployments.EAGER_LAYER_OVERHEAD_S)")
    ap.add_argument("--fit", action="store_true", help="fit the per-layer cost to each eager run's mean TPOT")
    ap.add_argument("--generated", action="store_true", help="at the output lengths the runs generated")
    ap.add_argument("--overlap-off-s", type=float, default=None,
                    help="host time per step of the overlap-off runs "
                         "(default: mlperf_deployments.OVERLAP_OFF_HOST_STEP_ESTIMATE_S)")
    ap.add_argument("--fit-step", action="store_true",
                    help="fit a cost per step to each run's mean TPOT (with --runs, to those runs)")
    ap.add_argument("--greedy", action="store_true", help="no run pays the stack's cost of sampling")
    ap.add_argument("--runs", nargs="*", default=None, metavar="WORD", help="only the runs whose name has a word given")
    args = ap.parse_args()
    eager = mlperf_deployments.EAGER_LAYER_OVERHEAD_S if args.eager_layer_s is None else args.eager_layer_s
    if args.greedy:
        mlperf_deployments.MLPERF_STOCHASTIC_SAMPLING = frozenset()
    rows = read_reference_csv(mlperf.builtin_calibration_path())
    if args.fit_step:
        for run in RUNS:
            if (args.runs is not None and not any(w in run.name for w in args.runs)) or np.isnan(run.tpot_ms[0]):
                continue
            step = fit_step(run, rows, eager, args.generated)
            print(f"{run.name}: {step * 1e3:.2f} ms per step (logged mean TPOT {run.tpot_ms[0]:.1f} ms; "
                  f"overlap scheduler {'off' if run.overlap_off else 'on'}; {run.log})")
        return
    if args.fit:
        fits = []
        for run in (r for r in RUNS if r.eager):
            fits.append(fit_eager(run, rows, args.generated))
            print(f"{run.name}: {fits[-1] * 1e6:.1f} us per layer "
                  f"(logged mean TPOT {run.tpot_ms[0]:.1f} ms; {run.log})")
        print(f"geometric mean: {float(np.exp(np.mean(np.log(fits)))) * 1e6:.1f} us per layer")
        return
    overlap = mlperf_deployments.OVERLAP_OFF_HOST_STEP_ESTIMATE_S if args.overlap_off_s is None else args.overlap_off_s
    print(f"per-layer cost of the eager runs: {eager * 1e6:.1f} us; host time per step of the overlap-off runs: "
          f"{overlap * 1e3:.2f} ms{', generated output lengths' if args.generated else ''}")
    print(f"{'run':<42} {'q/s/GPU':>8} {'TPOT mean / p50 / p99 ms, sim (logged)':>44} "
          f"{'TTFT p50 / p99 ms, sim (logged)':>34} {'in flight':>9} {'unfinished':>10}")
    for run in RUNS:
        if args.runs is not None and not any(w in run.name for w in args.runs):
            continue
        s = simulate_run(run, rows, eager, args.generated, overlap_off_s=overlap)
        tpot = " / ".join(f"{a:.1f} ({b:.1f})" for a, b in zip(s["tpot"], run.tpot_ms, strict=True))
        ttft = " / ".join(f"{a:.0f} ({b:.0f})" for a, b in zip(s["ttft"], run.ttft_ms, strict=True))
        print(f"{run.name:<42} {run.queries_s / 8:>8.2f} {tpot:>44} {ttft:>34} {s['in_flight'] / s['gpus']:>9.1f} "
              f"{s['unfinished']:>10d}")


if __name__ == "__main__":
    main()
