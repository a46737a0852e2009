"""Command line: a thin layer over the Python API.

Bad input of any kind ends with a one-paragraph message naming the field and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from factory_sim import __version__
from factory_sim.errors import ConfigError

EXIT_BAD_INPUT = 2


def _cmd_run(args) -> int:
    from factory_sim.progress import Bars, on_terminal
    from factory_sim.results.files import check_folder, saving, write_csv, write_results
    from factory_sim.results.tables import format_table, placeholder_priced
    from factory_sim.studies.assemble import default_experiment_path, load_experiment
    from factory_sim.studies.run import run_experiment

    _report_needs_out(args)
    path = Path(args.experiment) if args.experiment else default_experiment_path()
    if args.experiment:
        from factory_sim.catalog import read_mapping
        from factory_sim.config.factory import is_factory

        if is_factory(read_mapping(path, "experiment", "a mapping of fields (name, model, workload, ...)")):
            from factory_sim.studies.factory import run_factory_command

            return run_factory_command(path, args)
    if args.scheduler:
        raise ConfigError("--scheduler", "runs factory files (with a top-level `cells:`) on a Dask cluster; "
                                         "an experiment runs on local processes (--jobs)")
    overrides = {"requests": args.requests} if args.requests is not None else {}
    exp = load_experiment(path, **overrides)
    if args.out:
        check_folder(args.out, "--out")
    started = time.perf_counter()
    if not args.quiet:
        print(f"factory-sim {__version__}: running '{exp.name}' ({len(exp.fleets)} fleets x "
              f"{len(exp.slo_tiers)} SLO tiers, model {exp.model})", file=sys.stderr)
    with Bars("simulation", unit="sim", enabled=on_terminal(args.quiet)):
        result = run_experiment(exp, jobs=args.jobs)
    wall = time.perf_counter() - started
    print(f"{exp.name}: {exp.description}" if exp.description else exp.name)
    print(f"model {exp.model_spec.display_name}; workload {exp.workload_spec.name}; "
          f"prices: {exp.cost.basis} ({exp.cost.tier if exp.cost.basis == 'tier' else 'TCO'}); "
          f"load: {exp.load.mode}" + (f" (SLO attainment >= {exp.load.target_attainment:.0%})"
                                       if exp.load.mode == "max_goodput" else ""))
    print()
    print(format_table(result.summary, placeholder_hardware=placeholder_priced(exp)))
    print()
    print(f"{result.simulations} simulations in {wall:.1f} s")
    samples = args.samples if args.samples is not None else exp.uncertainty.samples
    sample_rows = band_rows = None
    if samples > 0:
        sample_rows, band_rows = _run_uncertainty(path, exp, samples, overrides, args)
    if args.out:
        with saving("--out", args.out):
            files = write_results(args.out, result.summary, result.traces_frame(), trace_format=args.trace_format,
                                  experiment_yaml=path.read_text(encoding="utf-8"))
            for name, frame in (("scaling.csv", result.scaling_frame()), ("faults.csv", result.faults_frame())):
                if len(frame):
                    write_csv(Path(args.out) / name, frame)
                    files.append(Path(args.out) / name)
            if sample_rows is not None:
                write_csv(Path(args.out) / "samples.csv", sample_rows)
                write_csv(Path(args.out) / "bands.csv", band_rows)
                files += [Path(args.out) / "samples.csv", Path(args.out) / "bands.csv"]
        _record_command(args, args.out, options={"requests": args.requests, "samples": samples},
                        wall_s=round(wall, 1), simulations=result.simulations)
        print("wrote " + ", ".join(str(f) for f in files))
        _maybe_report(args, args.out)
    return 0


def _run_uncertainty(path: Path, exp, samples: int, overrides: dict, args):
    from factory_sim.catalog import read_mapping
    from factory_sim.results.files import finite
    from factory_sim.results.tables import KEYS, band_columns, frame_text
    from factory_sim.studies.uncertainty import bands, run_samples

    if not exp.uncertainty.inputs:
        raise ConfigError("uncertainty.inputs", "--samples needs distributions under uncertainty.inputs, e.g. "
                                                "cost.price_scale: {kind: uniform, low: 0.8, high: 1.2}")
    from factory_sim.progress import Bars, on_terminal

    raw = read_mapping(path, "experiment")
    raw.update(overrides)
    started = time.perf_counter()
    with Bars("draw", unit="draw", enabled=on_terminal(args.quiet), totals={"uncertainty draws": samples}):
        rows = run_samples(raw, exp.uncertainty, samples, jobs=args.jobs)
    b = bands(rows)
    print(f"\nuncertainty: {samples} Latin-hypercube draws of {', '.join(exp.uncertainty.inputs)} "
          f"({time.perf_counter() - started:.1f} s)")
    print(frame_text(finite(b), [*KEYS, *band_columns(("usd_per_m_goodput_tokens", "goodput_tokens_per_s"))], keys=2))
    return rows, b


def _cmd_validate(args) -> int:
    from factory_sim.fidelity.mlperf import load_reference, throughput_rows
    from factory_sim.fidelity.stack_errors import SNAPSHOT_NAME, error_by_stack
    from factory_sim.progress import Bars, on_terminal
    from factory_sim.results.files import atomic_write, check_folder

    _report_needs_out(args)

    if args.scenarios:
        from factory_sim.fidelity.inferencex import is_inferencex_file
        from factory_sim.fidelity.inferencex_report import run_validation

        if is_inferencex_file(args.scenarios):
            run_validation(args.scenarios, out=args.out, hardware=args.system, model=args.model,
                           framework=args.backend, limit=args.limit, jobs=args.jobs, quiet=args.quiet,
                           step_time=args.step_time)
            return 0
    if args.step_time:
        raise ConfigError("--step-time", "applies to InferenceX points files only; give one (e.g. "
                                         "factory_sim/data/reference/inferencex/points.csv.gz) or drop --step-time")
    reference = load_reference(args.scenarios)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_folder(out, "--out")
    matched = 0
    points = reference.get("points")
    if points is not None:
        for column, wanted in (("system", args.system), ("model", args.model), ("backend", args.backend)):
            if wanted:
                points = points[points[column].isin(wanted)]
        if args.limit is not None:
            points = points.head(args.limit)
        matched += len(points)
    calibration = reference.get("calibration")
    if calibration is not None:
        calibration = throughput_rows(calibration)
        for column, wanted in (("system", args.system), ("model", args.model)):
            if wanted:
                calibration = calibration[calibration[column].isin(wanted)]
        if args.backend and "points" in reference:
            calibration = calibration.head(0)  # --backend selects measured points only
        if args.limit is not None:
            calibration = calibration.head(args.limit)
        matched += len(calibration)
    if not matched:
        raise ConfigError("--system/--model/--backend", "no rows match these filters")
    totals = {name: len(rows) for name, rows in (("throughput rows", calibration), ("measured points", points))
              if rows is not None and len(rows)}
    bars = Bars("validation", unit="row", enabled=on_terminal(args.quiet), totals=totals)
    with bars:
        thr, results = _validate_rows(args, calibration, points, out)
    if out is not None:
        by_stack = error_by_stack(results, thr)
        atomic_write(out / SNAPSHOT_NAME, lambda p: by_stack.to_csv(p, index=False))
        _record_command(args, out, options={"scenarios": args.scenarios, "system": args.system,
                                            "model": args.model, "backend": args.backend, "limit": args.limit})
        print(f"wrote {out / SNAPSHOT_NAME} (median |error| by stack profile, held-out rows apart)")
        _maybe_report(args, out)
    return 0


def _validate_rows(args, calibration, points, out):
    from factory_sim.fidelity.measured import validate_points
    from factory_sim.fidelity.mlperf import format_throughput_report, validate_throughput
    from factory_sim.fidelity.report import error_summary, format_report, plot_predicted_vs_published
    from factory_sim.results.files import atomic_write, saving, write_csv

    thr = results = None
    if calibration is not None and len(calibration):
        started = time.perf_counter()
        thr = validate_throughput(calibration, jobs=args.jobs)
        print(format_throughput_report(thr))
        print(f"\n{len(calibration)} throughput rows in {time.perf_counter() - started:.1f} s\n")
        if out is not None:
            with saving("--out", out):
                write_csv(out / "throughput_validation.csv", thr)
            print(f"wrote {out / 'throughput_validation.csv'}")
    if points is not None and len(points):
        started = time.perf_counter()
        if "mtp_draft_tokens" not in points:  # the file does not say which runs drafted with MTP: their twins do
            from factory_sim.fidelity.inferencex import load_points as load_inferencex
            from factory_sim.fidelity.mtp_runs import label_mtp_runs

            points = label_mtp_runs(points, load_inferencex())
            if (points["mtp_draft_tokens"] > 0).any():
                print(f"{int((points['mtp_draft_tokens'] > 0).sum())} measured rows are MTP runs by their InferenceX "
                      "twins (fidelity/mtp_runs.py): simulated with MTP\n")
        results = validate_points(points, jobs=args.jobs)
        print(format_report(results))
        print(f"\n{len(points)} measured rows in {time.perf_counter() - started:.1f} s")
        if out is not None:
            columns = ["id", "quantity", "predicted", "published", "rel_error", "config", "system", "model",
                       "backend", "mode", "isl", "osl", "concurrency", "sample", "skipped"]
            with saving("--out", out):
                write_csv(out / "validation.csv", results[columns])
                write_csv(out / "validation_summary.csv", error_summary(results))
                atomic_write(out / "validation.png", lambda p: plot_predicted_vs_published(results, p))
            print(f"wrote {out / 'validation.csv'}, {out / 'validation_summary.csv'}, {out / 'validation.png'}")
    return thr, results


def _cmd_calibrate(args) -> int:
    from factory_sim.fidelity.calibrate import calibrate, format_calibration, write_profiles
    from factory_sim.fidelity.inferencex import is_inferencex_file
    from factory_sim.fidelity.mlperf import load_reference
    from factory_sim.progress import Bars, on_terminal
    from factory_sim.results.files import check_file, check_folder, saving

    out = Path(args.out)
    if out.suffix in (".yaml", ".yml"):
        check_file(out, "--out", "a .yaml file or a folder")
    else:
        check_folder(out, "--out")
    ix_files = [r for r in args.rows or [] if is_inferencex_file(r)]
    if args.joint:
        return _calibrate_joint(args, ix_files, [r for r in args.rows or [] if r not in ix_files], out)
    if ix_files:  # InferenceX points: fitted on all three quantities, held out by hardware and date
        return _calibrate_inferencex(args, ix_files, [r for r in args.rows if r not in ix_files])
    calibration, points = [], []
    for source in args.rows or [None]:
        ref = load_reference(source)
        if "calibration" in ref:
            calibration.append(ref["calibration"])
        if "points" in ref:
            points.append(ref["points"])
    started = time.perf_counter()
    shown = on_terminal(args.quiet)
    with Bars("calibration", unit="row", enabled=shown) as bars:
        fits, skipped = calibrate(pd.concat(calibration, ignore_index=True) if calibration else None,
                                  pd.concat(points, ignore_index=True) if points else None,
                                  points_sample=args.points, profiles=args.profile, rounds=args.rounds,
                                  jobs=args.jobs, loo=not args.no_loo, parameters=args.parameter,
                                  progress=bars.write if shown else None)
    if not fits:
        raise ConfigError("ROWS", "no stack profile has enough rows to fit "
                                  "(give calibration rows or measured points, or another --profile)")
    print(format_calibration(fits, skipped))
    print(f"\ncalibrated {len(fits)} profiles in {time.perf_counter() - started:.1f} s")
    with saving("--out", out):
        written = write_profiles(fits, out)
    for path in written:
        print(f"wrote {path}")
    return 0


def _calibrate_joint(args, ix_files: list[str], others: list[str], out: Path) -> int:
    from factory_sim.fidelity.calibrate_joint import DEFAULT_SAMPLE, calibrate_joint, format_joint, joint_profile_yaml
    from factory_sim.fidelity.inferencex import load_points
    from factory_sim.fidelity.mlperf import load_reference
    from factory_sim.results.files import atomic_write
    from factory_sim.studies.run import stderr_progress

    calibration, points = [], []
    for source in others or ([None] if not ix_files else []):
        ref = load_reference(source)
        calibration += [ref["calibration"]] if "calibration" in ref else []
        points += [ref["points"]] if "points" in ref else []
    ix = pd.concat([load_points(f) for f in ix_files or [None]], ignore_index=True)
    started = time.perf_counter()
    fits, skipped, scales = calibrate_joint(
        pd.concat(calibration, ignore_index=True) if calibration else None,
        pd.concat(points, ignore_index=True) if points else None, ix,
        sample=args.points if args.points != 100 else DEFAULT_SAMPLE, profiles=args.profile, rounds=args.rounds,
        jobs=args.jobs, loo=not args.no_loo, parameters=args.parameter, sim_rounds=args.sim_rounds,
        progress=None if args.quiet else stderr_progress)
    if not fits:
        raise ConfigError("ROWS", "no stack profile has enough rows to fit (give InferenceX points, measured "
                                  "points or calibration rows, or another --profile)")
    print(format_joint(fits, skipped, scales))
    print(f"\ncalibrated {len(fits)} profiles jointly in {time.perf_counter() - started:.1f} s")
    if out.suffix in (".yaml", ".yml") and len(fits) != 1:
        raise ConfigError("--out", f"{len(fits)} profiles were fitted; name a folder, or fit one with --profile")
    for fit in fits:
        path = out if out.suffix in (".yaml", ".yml") else out / f"{fit.profile}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = joint_profile_yaml(fit)
        atomic_write(path, lambda tmp, text=text: tmp.write_text(text))
        print(f"wrote {path}")
    return 0


def _calibrate_inferencex(args, files: list[str], others: list[str]) -> int:
    from factory_sim.fidelity.calibrate_inferencex import (
        DEFAULT_SAMPLE,
        calibrate_inferencex,
        format_inferencex_calibration,
        inferencex_profile_yaml,
    )
    from factory_sim.fidelity.inferencex import load_points
    from factory_sim.results.files import atomic_write
    from factory_sim.studies.run import stderr_progress

    if others:
        raise ConfigError("ROWS", f"{others[0]} is not an InferenceX points file; fit InferenceX points on their own")
    started = time.perf_counter()
    points = pd.concat([load_points(f) for f in files], ignore_index=True)
    fits, skipped = calibrate_inferencex(points, sample=args.points if args.points != 100 else DEFAULT_SAMPLE,
                                         profiles=args.profile, rounds=args.rounds, jobs=args.jobs,
                                         loo=not args.no_loo, parameters=args.parameter, sim_rounds=args.sim_rounds,
                                         progress=None if args.quiet else stderr_progress)
    if not fits:
        raise ConfigError("ROWS", "no stack profile has enough scoreable InferenceX points to fit")
    print(format_inferencex_calibration(fits, skipped))
    print(f"\ncalibrated {len(fits)} profiles in {time.perf_counter() - started:.1f} s")
    out = Path(args.out)
    if out.suffix in (".yaml", ".yml") and len(fits) != 1:
        raise ConfigError("--out", f"{len(fits)} profiles were fitted; name a folder, or fit one with --profile")
    for fit in fits:
        path = out if out.suffix in (".yaml", ".yml") else out / f"{fit.profile}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = inferencex_profile_yaml(fit)
        atomic_write(path, lambda tmp, text=text: tmp.write_text(text))
        print(f"wrote {path}")
    return 0


def _cmd_sweep(args) -> int:
    from factory_sim.progress import on_terminal
    from factory_sim.results.files import check_file, saving
    from factory_sim.studies.sweep import load_sweep, run_sweep

    spec, base = load_sweep(args.sweep)
    out = Path(args.out or f"{spec.name}_results.csv")
    check_file(out, "--out", "the results file (CSV)")
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with saving("--out", out):
        df = run_sweep(spec, base, out, jobs=args.jobs, source=args.sweep, progress=on_terminal(args.quiet),
                       scheduler=args.scheduler, quiet=args.quiet)
    print(f"{spec.name}: {df['point_key'].nunique() if len(df) else 0} points, {len(df)} rows in {out} "
          f"({time.perf_counter() - started:.1f} s)")
    if len(df):
        _maybe_report(args, out, spec_yaml=Path(args.sweep).read_text())
    return 0


def _cmd_frontier(args) -> int:
    import numpy as np

    from factory_sim.progress import Bars, on_terminal
    from factory_sim.results.files import atomic_write, check_folder, finite, saving, write_csv
    from factory_sim.results.tables import FRONTIER_TABLE, Column, frame_text, placeholder_note, placeholder_priced
    from factory_sim.studies.assemble import default_experiment_path, load_experiment
    from factory_sim.studies.frontier import cost_at_interactivity, crossings, frontier, plot_frontier, ratio_table

    _report_needs_out(args)
    path = Path(args.experiment) if args.experiment else default_experiment_path()
    exp = load_experiment(path)
    if args.out:
        check_folder(args.out, "--out")
    started = time.perf_counter()
    with Bars("simulation", unit="sim", enabled=on_terminal(args.quiet)):
        points = frontier(exp, points=args.points, jobs=args.jobs)
    reference = args.reference or points.loc[points["fleet"] == exp.reference, "hardware"].iloc[0]
    if reference not in set(points["hardware"]):
        raise ConfigError("--reference", f"no fleet of hardware '{reference}' in this experiment; use one of "
                                         f"{', '.join(sorted(set(points['hardware'])))}")
    grid = np.array(args.interactivity or [10, 20, 30, 50, 75, 100, 150, 200], dtype=float)
    curves = cost_at_interactivity(points, grid)
    cross = crossings(curves, reference, per_mw=cost_at_interactivity(points, grid, "tokens_per_s_per_mw"))
    front = points[points["on_frontier"]].sort_values(["hardware", "tokens_per_s_per_user_p50"])
    print(f"{exp.name}: frontier points (output tokens/s/GPU vs median tokens/s/user), {exp.cost.tier} prices")
    print(frame_text(finite(front), FRONTIER_TABLE, keys=2))
    print("\n$ per million output tokens at each interactivity (- : not reachable on the frontier);")
    print(f"{reference}/HW: {reference}'s cost over HW's, how many times cheaper HW is")
    table = ratio_table(curves, reference)
    print(frame_text(finite(table), [Column("tokens_per_s_per_user", "tok/s/user", lambda v: f"{v:g}")]
                     + [Column(c, c, lambda v: f"{v:.4g}") for c in table.columns[1:]]))
    placeholder = placeholder_priced(exp)
    if placeholder:
        print(placeholder_note(placeholder).replace("these rows'", "their"))
    print(f"\nwhere {reference} costs 15x / 35x more per output token:")
    for _, r in cross.iterrows():
        start = r["from_tokens_per_s_per_user"]
        where = (f"from {start:g} tok/s/user, with {r['tokens_per_s_per_mw_ratio_there']:.1f}x the tokens/s "
                 f"per MW there" if np.isfinite(start) else "never on this grid")
        print(f"  {r['hardware']}: {r['factor']:g}x {where} (largest ratio {r['max_ratio']:.1f}x at "
              f"{r['max_ratio_at_tokens_per_s_per_user']:g} tok/s/user)")
    wall = time.perf_counter() - started
    print(f"\n{len(points)} simulations in {wall:.1f} s")
    if args.out:
        out = Path(args.out)
        with saving("--out", out):
            write_csv(out / "frontier.csv", points)
            write_csv(out / "cost_curves.csv", curves)
            write_csv(out / "crossings.csv", cross)
            atomic_write(out / "frontier.png", lambda p: plot_frontier(points, p))
            atomic_write(out / "experiment.yaml", lambda p: p.write_text(path.read_text(encoding="utf-8")))
        _record_command(args, out, options={"points": args.points, "reference": reference,
                                            "interactivity": grid.tolist()}, wall_s=round(wall, 1),
                        simulations=len(points))
        print(f"wrote frontier.csv, cost_curves.csv, crossings.csv, frontier.png and experiment.yaml to {out}")
        _maybe_report(args, out)
    return 0


def _cmd_plan(args) -> int:
    from factory_sim.progress import Bars, on_terminal
    from factory_sim.results.files import check_file, finite, saving, write_csv
    from factory_sim.results.tables import Column, band_columns, format_plan, frame_text, placeholder_in_fleets
    from factory_sim.studies.capacity import budget_capacity, load_plan, make_plan

    _report_needs_out(args)
    spec = load_plan(args.plan)
    samples = args.samples if args.samples is not None else spec.uncertainty.samples
    if args.out:
        check_file(args.out, "--out", "the plan file (CSV)")
        if samples > 0:
            check_file(_bands_path(args.out), "--out", "the plan file (CSV)")
    started = time.perf_counter()
    with Bars("simulation", unit="sim", enabled=on_terminal(args.quiet)):
        plan = make_plan(spec, jobs=args.jobs)
    demand = plan["demand_req_per_s"].iloc[0]
    print(f"{spec.name}: {demand:.4g} req/s of {spec.model} at TTFT <= {spec.slo.ttft_s:g} s, "
          f"TPOT <= {spec.slo.tpot_s * 1e3:g} ms for >= {spec.target_attainment:.0%} of requests")
    shown = plan.head(spec.top)
    print(format_plan(finite(shown), placeholder_in_fleets(spec.candidates, spec.cost.get("basis", "tier"))))
    for _, r in shown.iterrows():
        if r["note"]:
            print(f"  {r['candidate']}: {r['note']}")
    within = budget_capacity(plan, spec)
    if len(within):
        best = within.iloc[0]
        print(f"\nwithin {spec.power_budget_mw:g} MW the most demand served is "
              f"{best['max_demand_req_per_s']:.4g} req/s ({int(best['units_in_budget'])} units of {best['candidate']})")
    print(f"\nplanned in {time.perf_counter() - started:.1f} s")
    if args.out:
        with saving("--out", args.out):
            write_csv(Path(args.out), plan)
        print(f"wrote {args.out}")
    if samples > 0:
        from factory_sim.catalog import read_mapping
        from factory_sim.studies.capacity import plan_bands

        if not spec.uncertainty.inputs:
            raise ConfigError("uncertainty.inputs", "--samples needs distributions under uncertainty.inputs, e.g. "
                                                    "demand.rate_per_s: {kind: uniform, low: 2500, high: 3500}")
        started = time.perf_counter()
        with Bars("draw", unit="draw", enabled=on_terminal(args.quiet), totals={"uncertainty draws": samples}):
            _, bands = plan_bands(read_mapping(args.plan, "plan"), spec, samples, jobs=args.jobs)
        print(f"\nfleet size under uncertainty: {samples} Latin-hypercube draws of "
              f"{', '.join(spec.uncertainty.inputs)} ({time.perf_counter() - started:.1f} s)")
        print(frame_text(finite(bands), [Column("candidate", "candidate", str, True),
                                 Column("samples", "draws", lambda v: f"{v:.0f}"),
                                 Column("feasible_share", "can serve", lambda v: f"{v:.0%}"),
                                 *band_columns(("units", "gpus", "power_mw", "usd_per_hour"))]))
        if args.out:
            target = _bands_path(args.out)
            with saving("--out", target):
                write_csv(target, bands)
            print(f"wrote {target}")
    if args.out:
        _maybe_report(args, args.out, spec_yaml=Path(args.plan).read_text())
    return 0


def _report_needs_out(args) -> None:
    if getattr(args, "report", False) and not args.out:
        raise ConfigError("--report", "the report is made from the results files: give --out as well")


def _record_command(args, out, **facts) -> None:
    from factory_sim.results.html_report import write_command

    write_command(out, args.command, args.argv, **facts)


def _maybe_report(args, results, spec_yaml: str | None = None) -> None:
    if getattr(args, "report", False):
        from factory_sim.results.html_report import write_report

        print(f"wrote {write_report(results, spec_yaml=spec_yaml)}")


def _cmd_report(args) -> int:
    from factory_sim.results.html_report import write_report

    print(f"wrote {write_report(args.results, args.out)}")
    return 0


def _bands_path(out: str) -> Path:
    """Where a plan's uncertainty bands go: beside its CSV."""
    return Path(out).with_name(Path(out).stem + "_bands.csv")


def _cmd_plot(args) -> int:
    from factory_sim.results.plots import plot_results

    out = args.out or str(Path(args.results).with_suffix("")) + f"_{args.kind}"
    paths = plot_results(args.results, args.kind, out, metric=args.metric)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _cmd_list(args) -> int:
    from factory_sim.results.tables import hardware_table, models_table, stacks_table, workloads_table

    if args.what == "hardware":
        df = hardware_table()
    elif args.what == "models":
        df = models_table()
    elif args.what == "workloads":
        df = workloads_table()
    else:
        df = stacks_table()
    with pd.option_context("display.width", shutil.get_terminal_size((200, 40)).columns,
                           "display.max_columns", None, "display.max_colwidth", 60):
        print(df.to_string(index=False, na_rep="-"))
    return 0


def _cmd_init(args) -> int:
    from factory_sim.results.files import atomic_write, check_file, saving
    from factory_sim.studies.assemble import default_experiment_path

    target = Path(args.file)
    check_file(target, "FILE", "the experiment file to write (YAML)")
    if target.exists() and not args.force:
        raise ConfigError("FILE", f"{target} already exists; choose another name or pass --force to overwrite it")
    text = default_experiment_path().read_text(encoding="utf-8")
    with saving("FILE", target):
        atomic_write(target, lambda p: p.write_text(text, encoding="utf-8"))
    print(f"wrote {target}: the default experiment, commented. Edit it, then: factory-sim run {target}")
    return 0


REPORT_HELP = "also write report.html: the results as one page to open in a browser (needs --out)"


def _add_jobs(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--jobs", type=int, default=None, metavar="N",
                     help="parallel processes (default: one per core)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="factory-sim",
        description="Discrete-event simulator of AI inference factories: goodput and cost per million tokens.",
    )
    parser.add_argument("--version", action="version", version=f"factory-sim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an experiment or a factory (the built-in default experiment without a path)",
                         description="Run an experiment YAML and print its summary table, or a factory YAML (a "
                                     "file with a top-level `cells:`): its cells' time windows as tasks, traces "
                                     "to Parquet partitions under --out, metrics by cell, tenant, model, hardware "
                                     "and window. A factory run started again resumes from the finished partitions.")
    run.add_argument("experiment", nargs="?", help="experiment or factory YAML (default: the built-in default "
                                                   "experiment)")
    run.add_argument("--out", metavar="DIR", help="write summary.csv, the per-request traces and the experiment here "
                                                  "(a factory: partitions, metrics.csv, front_door.csv, power.csv; "
                                                  "default NAME_out)")
    run.add_argument("--trace-format", choices=("parquet", "csv"), default="parquet",
                     help="per-request trace file format (default: parquet; csv is gzip-compressed)")
    _add_jobs(run)
    run.add_argument("--requests", type=int, default=None, metavar="N",
                     help="requests per simulation (overrides the experiment's `requests`)")
    run.add_argument("--samples", type=int, default=None, metavar="N",
                     help="uncertainty draws (overrides uncertainty.samples); prints p5/p50/p95 bands")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="a factory file: run its cells on this Dask cluster (default: local processes)")
    run.add_argument("--quiet", action="store_true", help="no progress bars on stderr (none either when stderr "
                                                          "is not a terminal)")
    run.add_argument("--report", action="store_true", help=REPORT_HELP)
    run.set_defaults(func=_cmd_run)

    lst = sub.add_parser("list", help="show the built-in catalog", description="Show the built-in catalog.")
    lst.add_argument("what", choices=("hardware", "models", "workloads", "stacks"))
    lst.set_defaults(func=_cmd_list)

    val = sub.add_parser(
        "validate", help="predict measured deployments and published results; report the error",
        description="Without a file: score the built-in measured operating points (exact deployment, closed-loop "
                    "clients all starting at t=0, 10 requests each at the row's lengths; mean TTFT and TPOT) and the "
                    "throughput rows of "
                    "the built-in calibration.csv (MLPerf Offline/Server/Interactive and tokens/s/GPU at an "
                    "interactivity, with a bounded search of the serving configuration). A given file is "
                    "recognised by its header; an InferenceX points file (data/reference/inferencex/points.csv.gz) "
                    "is scored point by point as the benchmark ran it: output tokens/s/GPU, interactivity and "
                    "median TTFT.")
    val.add_argument("scenarios", nargs="?", metavar="FILE.csv",
                     help="measured points, calibration or InferenceX points CSV (default: the built-in measured "
                          "points and calibration files)")
    val.add_argument("--out", metavar="DIR", help="write validation.csv, throughput_validation.csv and a "
                                                  "predicted-vs-published plot here")
    val.add_argument("--system", action="append", help="only rows of this system (repeatable)")
    val.add_argument("--model", action="append", help="only rows of this model (repeatable)")
    val.add_argument("--backend", action="append", help="only measured rows of this backend (repeatable; "
                                                         "InferenceX: its framework, e.g. dynamo-trtllm)")
    val.add_argument("--limit", type=int, metavar="N", help="only the first N rows of each file (after filters)")
    val.add_argument("--step-time", choices=("roofline", "aiconfigurator"),
                     help="InferenceX points: price every step with this step_time_backend (aiconfigurator needs "
                          "pip install 'factory-sim[aic]'); default: each stack's own")
    _add_jobs(val)
    val.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    val.add_argument("--report", action="store_true", help=REPORT_HELP)
    val.set_defaults(func=_cmd_validate)

    cal = sub.add_parser(
        "calibrate", help="fit software-stack constants to published results and write the profiles",
        description="Fit a few constants per stack profile (GEMM efficiency scale, HBM and attention efficiency, "
                    "per-step overhead, EP load imbalance) by bounded least squares on log relative error, with "
                    "a prior toward the measured microbenchmarks, to the Offline rows of calibration files and a "
                    "stratified sample of measured points. Reports in-sample and leave-one-(system, model)-group-"
                    "out error and writes each profile's YAML with `fitted_to`.")
    cal.add_argument("rows", nargs="*", metavar="ROWS.csv",
                     help="calibration and/or measured-points CSVs (default: both built-in files)")
    cal.add_argument("--out", metavar="FILE_OR_DIR", default="calibrated_stacks",
                     help="folder for one YAML per profile, or a .yaml file when one profile is fitted "
                          "(default: calibrated_stacks/)")
    cal.add_argument("--profile", action="append", metavar="NAME", help="fit only this stack profile (repeatable)")
    cal.add_argument("--points", type=int, default=100, metavar="N",
                     help="measured points to fit to, a stratified sample (default 100; 0: all)")
    cal.add_argument("--rounds", type=int, default=3, metavar="N",
                     help="Gauss-Newton rounds, each simulating every row once per parameter (default 3)")
    cal.add_argument("--parameter", action="append", metavar="NAME",
                     help="fit only this constant, the others held (repeatable; default: every constant the "
                          "profile sets, e.g. gemm_scale, hbm_efficiency, prefill_moe_layer_latency_s)")
    cal.add_argument("--no-loo", action="store_true", help="skip the leave-one-group-out error")
    cal.add_argument("--sim-rounds", type=int, default=3, metavar="N",
                     help="InferenceX points: requests per client simulated per point (default 3; the "
                          "benchmark ran 10). With an InferenceX file, --points defaults to 300 and the "
                          "held-out error is leave-one-hardware-out and leave-one-date-out")
    cal.add_argument("--joint", action="store_true",
                     help="one fit per profile to InferenceX points, measured points and calibration rows at once "
                          "(each data set weighted equally; default files: the three built-in ones), measured "
                          "points labelled with the MTP runs their InferenceX twins reveal; held-out error per "
                          "data set")
    cal.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    _add_jobs(cal)
    cal.set_defaults(func=_cmd_calibrate)

    swp = sub.add_parser(
        "sweep", help="run an experiment over a grid/zip of field values",
        description="Vary experiment fields (grid: every combination; zip: lists varied together). Each finished "
                    "point is appended to the results CSV; a sweep started again skips points already done.")
    swp.add_argument("sweep", metavar="SWEEP.yaml")
    swp.add_argument("--out", metavar="FILE.csv", help="results file (default: <sweep name>_results.csv)")
    _add_jobs(swp)
    swp.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="run the points on this Dask cluster (needs: pip install 'factory-sim[dask]')")
    swp.add_argument("--quiet", action="store_true", help="no progress bar")
    swp.add_argument("--report", action="store_true",
                     help="also write the results as one page (FILE.html beside the results CSV)")
    swp.set_defaults(func=_cmd_sweep)

    fr = sub.add_parser(
        "frontier", help="throughput vs interactivity frontiers and cost curves per hardware",
        description="Simulate every fleet under closed-loop clients at a ladder of concurrencies; print each "
                    "hardware's frontier of output "
                    "tokens/s/GPU against median tokens/s/user, its cost per million output tokens at given "
                    "interactivities, and the cost ratio to a reference hardware.")
    fr.add_argument("experiment", nargs="?", help="experiment YAML (default: the built-in default experiment)")
    fr.add_argument("--points", type=int, default=12, metavar="N", help="concurrencies per fleet (default 12)")
    fr.add_argument("--interactivity", type=float, nargs="+", metavar="TOK_S",
                    help="tokens/s/user at which to compare costs (default 10 20 30 50 75 100 150 200)")
    fr.add_argument("--reference", metavar="HARDWARE", help="cost ratios are to this hardware "
                                                              "(default: the reference fleet's)")
    fr.add_argument("--out", metavar="DIR", help="write frontier.csv, cost_curves.csv, crossings.csv, frontier.png")
    _add_jobs(fr)
    fr.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    fr.add_argument("--report", action="store_true", help=REPORT_HELP)
    fr.set_defaults(func=_cmd_frontier)

    pl = sub.add_parser(
        "plan", help="the cheapest fleet that serves a demand at an SLO",
        description="Size each candidate building block (rack or node group) for the demand from one unit's "
                    "max goodput, rank by $/hour, and confirm the best by full-scale simulation.")
    pl.add_argument("plan", metavar="PLAN.yaml")
    pl.add_argument("--out", metavar="FILE.csv", help="write the ranked candidates as CSV")
    _add_jobs(pl)
    pl.add_argument("--samples", type=int, default=None, metavar="N",
                    help="uncertainty draws (overrides uncertainty.samples): p5/p50/p95 of units, GPUs, MW, $/hour")
    pl.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    pl.add_argument("--report", action="store_true",
                    help="also write the plan as one page (FILE.html beside the CSV; needs --out)")
    pl.set_defaults(func=_cmd_plan)

    plt_ = sub.add_parser(
        "plot", help="draw a results file as PNG and SVG",
        description="pareto / cost-curve: a frontier.csv; latency-cdf: a traces file from run --out; "
                    "mix-surface: a sweep results CSV over two or more fields; bands: bands.csv from run --samples; "
                    "scaling: scaling.csv from run --out of an autoscaled experiment.")
    plt_.add_argument("results", metavar="RESULTS")
    plt_.add_argument("--kind", required=True,
                      choices=("pareto", "cost-curve", "latency-cdf", "mix-surface", "bands", "scaling"))
    plt_.add_argument("--out", metavar="STEM", help="output path without extension (default: RESULTS_KIND)")
    plt_.add_argument("--metric", help="mix-surface, bands: the summary column to draw "
                                       "(default usd_per_m_goodput_tokens)")
    plt_.set_defaults(func=_cmd_plot)

    rpt = sub.add_parser(
        "report", help="one HTML page of results, to open from disk and share",
        description="Render the results of run, frontier or validate (their --out folder), or of plan or sweep "
                    "(their CSV) as one self-contained HTML page: what was simulated, the tables (sortable), the "
                    "figures, and the fidelity of the stacks used. It loads nothing from the network.")
    rpt.add_argument("results", metavar="RESULTS", help="a results folder, or a plan or sweep CSV")
    rpt.add_argument("--out", metavar="FILE.html", help="default: RESULTS/report.html, or the CSV's name with .html")
    rpt.set_defaults(func=_cmd_report)

    init = sub.add_parser("init", help="write the default experiment as a YAML file to start from",
                          description="Write the default experiment, with comments, to FILE.")
    init.add_argument("file", metavar="FILE")
    init.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    init.set_defaults(func=_cmd_init)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for the report
    if getattr(args, "jobs", None) is not None and args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if getattr(args, "requests", None) is not None and args.requests < 1:
        parser.error("--requests must be >= 1")
    if getattr(args, "limit", None) is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    if getattr(args, "samples", None) is not None and args.samples < 0:
        parser.error("--samples must be >= 0")
    if getattr(args, "points", None) is not None and args.points < (0 if args.command == "calibrate" else 2):
        parser.error("--points must be >= 2" if args.command != "calibrate" else "--points must be >= 0")
    if getattr(args, "rounds", None) is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"factory-sim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("factory-sim: interrupted; files already written are complete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
