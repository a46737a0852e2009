"""Score the MLPerf rows of calibration.csv under the variants tried against them.

Prints median |error| (signed) of the Offline rows (in sample) and the Server and Interactive
rows (out of sample), and each row's error, for one variant at a time:

- `--generated`: every MLPerf row at the output length its submissions generated
  (mlperf_lengths.MLPERF_GENERATED_OUTPUT_TOKENS, from the v6.0 LoadGen logs) rather than the
  reference answers' mean the row states;
- `--stated`: the deployments a submission stated but the scoring does not use
  (mlperf_deployments.MLPERF_STATED_NOT_SCORED: DeepSeek-R1 Interactive with 3 MTP drafts);
- `--default-budget`: the Interactive rows with the default step budget rather than the
  in-flight batching limits their submissions state (mlperf_deployments.MLPERF_SUBMITTED_SCHEDULERS);
- `--short-window`: open-loop runs measured over MIN_MEASURED_REQUESTS alone, not the 600 s
  LoadGen measures (mlperf.MIN_MEASURED_S);
- `--eager-layer-s SECONDS`: the per-layer cost of the engines their submissions run without CUDA
  graphs (mlperf_deployments.EAGER_LAYER_OVERHEAD_S) replaced, 0 to leave it out;
- `--eager-server`: that cost on the Llama 3.1 405B Server row too (NVIDIA's B300 Server
  configuration is not among the results read; its B200 one runs without CUDA graphs);
- `--overlap-off-s [SECONDS]`: a host time per step on the engines their submissions run with
  TensorRT-LLM's overlap scheduler off (mlperf_deployments.MLPERF_OVERLAP_SCHEDULER_OFF; opt-in,
  not applied by default), mlperf_deployments.OVERLAP_OFF_HOST_STEP_ESTIMATE_S or the value given;
- `--overlap-off-server`, `--overlap-off-offline`: that host time on the gpt-oss-120b Server row,
  or its Offline rows, too, whose submissions keep the overlap scheduler on (a per-step cost of
  the recipe rather than of the flag; rows served by other frameworks are left as they are);
- `--greedy`: every row decoded greedily, gpt-oss-120b's too, whose benchmark samples at temperature
  1.0 (mlperf_deployments.MLPERF_STOCHASTIC_SAMPLING; the stacks' stochastic_sampling_step_s left out);
- `--set PROFILE:FIELD=VALUE`: a stack constant replaced (repeatable), e.g.
  `--set trtllm_blackwell:fp4_gemm_half_efficiency_tokens=1000`.

    python benchmarks/mlperf_variants.py --generated --scenario server interactive

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse

import numpy as np

from factory_sim.config.stack import load_stack
from factory_sim.fidelity import mlperf, mlperf_deployments
from factory_sim.fidelity.deployments import read_reference_csv
from factory_sim.fidelity.mlperf_deployments import MLPERF_STATED_NOT_SCORED


def stack_overrides(items: list[str]) -> dict:
    stacks = {}
    for item in items:
        profile, _, assignment = item.partition(":")
        field, _, value = assignment.partition("=")
        stack = stacks.get(profile) or load_stack(profile)
        stacks[profile] = stack.model_copy(update={field: float(value)})
    return stacks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generated", action="store_true", help="rows at the generated output lengths")
    ap.add_argument("--stated", action="store_true", help="also score the stated, unscored deployments")
    ap.add_argument("--default-budget", action="store_true", help="no submitted step budgets")
    ap.add_argument("--short-window", action="store_true", help="measure 500 requests, not 600 s")
    ap.add_argument("--eager-layer-s", type=float, default=None, help="per-layer cost of the eager engines")
    ap.add_argument("--eager-server", action="store_true", help="that cost on the Llama 3.1 405B Server row too")
    ap.add_argument("--overlap-off-s", type=float, nargs="?", default=None,
                    const=mlperf_deployments.OVERLAP_OFF_HOST_STEP_ESTIMATE_S,
                    help="host time per step of the engines run with the overlap scheduler off (opt-in)")
    ap.add_argument("--overlap-off-server", action="store_true", help="that host time on gpt-oss-120b Server too")
    ap.add_argument("--overlap-off-offline", action="store_true", help="that host time on gpt-oss-120b Offline too")
    ap.add_argument("--greedy", action="store_true", help="no row pays the cost of sampling")
    ap.add_argument("--set", nargs="*", default=[], metavar="PROFILE:FIELD=VALUE")
    ap.add_argument("--scenario", nargs="*", default=list(mlperf.MLPERF_SCENARIOS))
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    if args.stated:
        mlperf.MLPERF_SUBMITTED_DEPLOYMENTS.update(MLPERF_STATED_NOT_SCORED)
    process_only = (args.stated, args.default_budget, args.short_window, args.eager_layer_s is not None,
                    args.eager_server, args.overlap_off_s is not None, args.overlap_off_server,
                    args.overlap_off_offline, args.greedy)
    if args.jobs != 1 and any(process_only):
        ap.error("--stated, --default-budget, --short-window, --eager-*, --overlap-off-* and --greedy change this "
                 "process only: "
                 "use --jobs 1")
    if args.eager_layer_s is not None:
        mlperf_deployments.EAGER_LAYER_OVERHEAD_S = args.eager_layer_s
    if args.eager_server:
        mlperf_deployments.MLPERF_EAGER_ENGINES = mlperf_deployments.MLPERF_EAGER_ENGINES | {
            ("b300_hgx", "llama3_1_405b", "server")}
    if args.overlap_off_s is not None:
        mlperf_deployments.OVERLAP_OFF_HOST_STEP_S = args.overlap_off_s
    if args.overlap_off_server:
        mlperf_deployments.MLPERF_OVERLAP_SCHEDULER_OFF = mlperf_deployments.MLPERF_OVERLAP_SCHEDULER_OFF | {
            ("b300_hgx", "gpt_oss_120b", "server")}
    if args.overlap_off_offline:
        mlperf_deployments.MLPERF_OVERLAP_SCHEDULER_OFF = mlperf_deployments.MLPERF_OVERLAP_SCHEDULER_OFF | {
            (system, "gpt_oss_120b", "offline") for system in ("b200_hgx", "b300_hgx", "gb200_nvl72", "gb300_nvl72")}
    if args.greedy:
        mlperf_deployments.MLPERF_STOCHASTIC_SAMPLING = frozenset()
    if args.default_budget:
        mlperf.MLPERF_SUBMITTED_SCHEDULERS.clear()
    if args.short_window:
        mlperf.MIN_MEASURED_S = 0.0
    rows = read_reference_csv(mlperf.builtin_calibration_path())
    rows = rows[rows["scenario"].isin(args.scenario)]
    res = mlperf.validate_throughput(rows, jobs=args.jobs, stacks=stack_overrides(args.set) or None,
                                     generated_lengths=args.generated)
    scored = res[res["skipped"] == ""]
    for label, part in (("Offline", scored[scored["scenario"] == "offline"]),
                        ("Server and Interactive", scored[scored["scenario"] != "offline"])):
        if len(part):
            err = part["rel_error"]
            print(f"{label} ({len(part)} rows): {np.median(err.abs()):.1%} ({np.median(err):+.1%})")
    for _, r in scored.iterrows():
        print(f"  {r['id']} {r['system']:<12} {r['model']:<14} {r['scenario']:<12} {r['rel_error']:+.1%}  "
              f"{r['config']}")


if __name__ == "__main__":
    main()
