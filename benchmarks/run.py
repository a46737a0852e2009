"""Speed benchmarks: the peer case, the fleet case and the metrics core.

Each case runs in a fresh Python process, so its wall time includes importing factory-sim
and building the fleet, and its peak memory (the process's maximum resident set) is its
own. For each case this prints wall seconds (and the part spent importing factory-sim),
simulated requests per wall-second, SimPy events per request, peak memory and the ratio to
the target (>= 1.00x meets it; the targets are for the issue's sizes, not for --requests).

    python benchmarks/run.py                  # all three cases
    python benchmarks/run.py --only peer      # one case (repeat --only for several)
    python benchmarks/run.py --profile fleet  # cProfile of one case, in this process
    python benchmarks/run.py --requests 20000 # shorter simulations, for a quick look
    python benchmarks/run.py --repeat 5       # the median of 5 runs of each case (noisy machines)
    python benchmarks/run.py --repeat 5 --median-by cpu  # ... the run of median CPU time (a shared machine)

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_CASE = HERE / "peer_case.yaml"
FLEET_CASE = HERE / "fleet_case.yaml"
METRICS_ROWS = 10_000_000

# The targets of the speed issue, for one core.
PEER_TARGET_REQ_PER_S = 50_000.0
FLEET_TARGET_S = 60.0
FLEET_TARGET_MB = 4096.0
METRICS_TARGET_S = 2.0


# -- the cases (each returns simulated requests, SimPy events, and the timed seconds when the
#    case times only part of its process) --------------------------------------------------
def peer_case(requests: int | None) -> tuple[int, int, float | None]:
    """`factory-sim run benchmarks/peer_case.yaml`, without printing the table."""
    from factory_sim.studies.assemble import load_experiment
    from factory_sim.studies.run import run_experiment

    exp = load_experiment(PEER_CASE, **({"requests": requests} if requests else {}))
    result = run_experiment(exp, jobs=1)
    sims = {id(p.sim): p.sim for p in result.points.values()}.values()
    return sum(len(s.trace) for s in sims), sum(s.events for s in sims), None


def fleet_plan(exp):
    """The experiment's fleets joined into one fleet of several pools behind one router."""
    from factory_sim.sim.engine import FleetLayout
    from factory_sim.studies.assemble import fleet_layouts

    plans = fleet_layouts(exp)
    return FleetLayout(name=exp.name, pools=tuple(pool for plan in plans for pool in plan.pools),
                     router_policy=plans[0].router_policy)


def fleet_case(requests: int | None) -> tuple[int, int, float | None]:
    """One simulation of the joined fleet at the file's fixed rate, summarized for every tier."""
    from factory_sim.studies.assemble import load_experiment
    from factory_sim.studies.run import simulate_point

    exp = load_experiment(FLEET_CASE, **({"requests": requests} if requests else {}))
    point = simulate_point(exp, fleet_plan(exp), exp.load.rate_per_s, cap_overload=False)
    return len(point.sim.trace), point.sim.events, None


def synthetic_trace(n: int, seed: int = 42):
    """A finished run's trace of `n` requests: mostly done, a few refused or still in flight."""
    import numpy as np

    from factory_sim.results.trace import DONE, PENDING, REJECTED, Trace

    rng = np.random.default_rng(seed)
    tr = Trace.allocate(n)
    tr.arrival_s[:] = np.cumsum(rng.standard_exponential(n)) / 1000.0
    tr.input_tokens[:] = rng.integers(64, 4096, n)
    tr.output_tokens[:] = rng.integers(1, 1024, n)
    outcome = rng.choice(np.array([DONE, REJECTED, PENDING], dtype=np.int8), size=n, p=[0.98, 0.01, 0.01])
    tr.outcome[:] = outcome
    done = outcome == DONE
    ttft_s = rng.lognormal(np.log(0.5), 0.6, n)
    tpot_s = rng.lognormal(np.log(0.02), 0.3, n)
    tr.first_token_s[done] = (tr.arrival_s + ttft_s)[done]
    tr.finish_s[done] = (tr.first_token_s + (tr.output_tokens - 1) * tpot_s)[done]
    return tr


def metrics_case(requests: int | None) -> tuple[int, int, float | None]:
    """A 10M-request trace to the summary of two SLO tiers (only the summaries are timed)."""
    from factory_sim.config.experiment import SloTarget
    from factory_sim.results.metrics import summarize

    n = requests or METRICS_ROWS
    trace = synthetic_trace(n)
    tiers = [SloTarget(ttft_s=2.0, tpot_s=0.050, name="interactive"),
             SloTarget(ttft_s=1.5, tpot_s=0.015, name="low_latency")]
    span = float(trace.arrival_s[-1] - trace.arrival_s[0])
    started = time.perf_counter()
    for tier in tiers:
        summarize(trace, tier, gpus=1000, warmup_s=0.3 * span, cooldown_s=0.3 * span)
    return n, 0, time.perf_counter() - started


CASES = {"peer": peer_case, "fleet": fleet_case, "metrics": metrics_case}


def _target(case: str, wall_s: float, req_per_s: float, peak_mb: float) -> tuple[str, float]:
    """(what the target is, achieved / target: >= 1 meets it)."""
    if case == "peer":
        return f">= {PEER_TARGET_REQ_PER_S:,.0f} req/s", req_per_s / PEER_TARGET_REQ_PER_S
    if case == "fleet":
        return (f"<= {FLEET_TARGET_S:g} s, <= {FLEET_TARGET_MB / 1024:g} GB",
                min(FLEET_TARGET_S / wall_s, FLEET_TARGET_MB / peak_mb))
    return f"<= {METRICS_TARGET_S:g} s", METRICS_TARGET_S / wall_s


# -- processes ------------------------------------------------------------------------------
def _child(case: str, requests: int | None) -> None:
    import resource

    started = time.perf_counter()
    import factory_sim.config.experiment  # noqa: F401  (timed: start-up counts in the peer case's target)
    import factory_sim.studies.run  # noqa: F401

    import_s = time.perf_counter() - started
    n, events, timed_s = CASES[case](requests)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024.0  # Linux reports KiB
    cpu_s = usage.ru_utime + usage.ru_stime  # the whole process, imports included
    print(json.dumps({"requests": n, "events": events, "timed_s": timed_s, "peak_mb": peak_mb, "import_s": import_s,
                      "cpu_s": cpu_s}))


def _measure(case: str, requests: int | None, repeat: int, by: str = "wall") -> dict:
    """The run of median wall (or CPU) time of `repeat` fresh runs, with the largest peak memory."""
    runs = sorted((_run_once(case, requests) for _ in range(max(repeat, 1))), key=lambda r: r[f"{by}_s"])
    return runs[len(runs) // 2] | {"peak_mb": max(r["peak_mb"] for r in runs)}


def _run_once(case: str, requests: int | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case]
    if requests:
        cmd += ["--requests", str(requests)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"benchmark case {case!r} failed:\n{done.stderr}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["wall_s"] = row["timed_s"] if row["timed_s"] is not None else wall_s
    return row


def _print_table(rows: dict[str, dict]) -> None:
    header = (f"{'case':<8} {'wall s':>8} {'import s':>8} {'req/wall-s':>12} {'CPU s':>7} {'req/CPU-s':>10} "
              f"{'events/req':>10} {'peak MB':>8}  {'target':<22} {'vs target':>9}")
    print(header)
    print("-" * len(header))
    for case, r in rows.items():
        req_per_s = r["requests"] / r["wall_s"]
        what, ratio = _target(case, r["wall_s"], req_per_s, r["peak_mb"])
        events = f"{r['events'] / r['requests']:.2f}" if r["events"] else "-"
        imported = f"{r['import_s']:.2f}" if r["timed_s"] is None else "-"  # a timed section excludes it
        cpu = f"{r['cpu_s']:.2f}" if r["timed_s"] is None else "-"  # a timed section is a part of the process
        per_cpu = f"{r['requests'] / r['cpu_s']:,.0f}" if r["timed_s"] is None else "-"
        print(f"{case:<8} {r['wall_s']:>8.2f} {imported:>8} {req_per_s:>12,.0f} {cpu:>7} {per_cpu:>10} {events:>10} "
              f"{r['peak_mb']:>8,.0f}  {what:<22} {ratio:>8.2f}x")


def _profile(case: str, requests: int | None, top: int) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(CASES[case], requests)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=list(CASES), help="run only this case (repeatable)")
    parser.add_argument("--requests", type=int, help="requests per case instead of the issue's (rows for metrics)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the median is printed (default 1)")
    parser.add_argument("--median-by", choices=["wall", "cpu"], default="wall",
                        help="which time picks the median run (cpu: on a machine shared with other work)")
    parser.add_argument("--profile", choices=list(CASES), help="print a cProfile of one case instead")
    parser.add_argument("--top", type=int, default=15, help="profile entries to print (default 15)")
    parser.add_argument("--child", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.requests)
        return 0
    if args.profile:
        _profile(args.profile, args.requests, args.top)
        return 0
    rows = {case: _measure(case, args.requests, args.repeat, args.median_by) for case in (args.only or list(CASES))}
    _print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
