"""One self-contained HTML page of a command's results, to open from disk and share.

`write_report(RESULTS)` reads what `run`, `frontier` and `validate` write to their --out
folder (or the CSV `plan` and `sweep` write) and renders templates/report.html.j2 with
Jinja2: what was simulated, in words and as the YAML that was run; the tables a person
reads (sortable by a click on a header); the figures that fit those results, embedded as
PNG data; the seed claims a frontier checks; and the fidelity of the software stacks used,
from validate's held-out rows. The page loads nothing from anywhere: no server, no network.

Nothing here computes a result: the tables are the files' values, formatted.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from factory_sim import __version__
from factory_sim.errors import ConfigError
from factory_sim.fidelity.stack_errors import SNAPSHOT_NAME, load_stack_errors
from factory_sim.results import tables
from factory_sim.results.labels import field_label
from factory_sim.results.report_parts import (
    Figure,
    HtmlTable,
    best_table,
    cost_bars,
    data_uri,
    fidelity_table,
    figure_of,
    format_value,
    frame_table,
    plan_bars,
    summary_table,
    sweep_lines,
    throughput_scatter,
    validation_figure,
)
from factory_sim.results.report_words import describe_experiment, experiment_from_text, spec_words
from factory_sim.studies.assemble import fleet_layouts

REPORT_NAME = "report.html"
COMMAND_FILE = "command.json"
MAX_SURFACES = 4  # fleet-mix surfaces drawn per sweep (one per fleet and tier)


# -- what a results folder or file holds -------------------------------------------------------

@dataclass
class Results:
    """The frames a results folder (or a plan / sweep CSV) holds; None where absent."""

    root: Path
    name: str = ""  # what the results are called when nothing else names them
    files: list[str] = field(default_factory=list)
    summary: pd.DataFrame | None = None
    traces: pd.DataFrame | None = None
    samples: pd.DataFrame | None = None
    bands: pd.DataFrame | None = None
    scaling: pd.DataFrame | None = None
    faults: pd.DataFrame | None = None
    frontier: pd.DataFrame | None = None
    cost_curves: pd.DataFrame | None = None
    crossings: pd.DataFrame | None = None
    validation: pd.DataFrame | None = None
    validation_summary: pd.DataFrame | None = None
    throughput: pd.DataFrame | None = None
    stack_errors: pd.DataFrame | None = None
    sweep: pd.DataFrame | None = None
    plan: pd.DataFrame | None = None
    plan_bands: pd.DataFrame | None = None
    experiment_yaml: str | None = None
    spec_yaml: str | None = None  # a plan's or a sweep's own file
    command: dict[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        return [k for k, frame in (("run", self.summary), ("frontier", self.frontier), ("plan", self.plan),
                                   ("sweep", self.sweep),
                                   ("validate", self.validation if self.validation is not None else self.throughput))
                if frame is not None]


_FOLDER_FILES = {
    "summary.csv": "summary", "samples.csv": "samples", "bands.csv": "bands", "scaling.csv": "scaling",
    "faults.csv": "faults", "frontier.csv": "frontier", "cost_curves.csv": "cost_curves",
    "crossings.csv": "crossings", "validation.csv": "validation", "validation_summary.csv": "validation_summary",
    "throughput_validation.csv": "throughput",
}


TEXT_COLUMNS = {"note", "skipped", "config"}  # text even when every cell is empty


def _read_csv(path: Path) -> pd.DataFrame:
    """A results CSV as the commands wrote it: numbers as numbers (an empty cell NaN), True /
    False as booleans, text as text (an empty cell "", so a column of empty notes stays text)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is the user's input error
        raise ConfigError("RESULTS", f"cannot read {path} as a results table: {exc}") from None
    for col in df.columns:
        given = df[col][df[col] != ""]
        if not len(given):  # nothing in it: a number not reported, or no text to say
            if col not in TEXT_COLUMNS:
                df[col] = np.nan
            continue
        if given.isin(["True", "False"]).all():
            df[col] = df[col].map({"True": True, "False": False, "": False})
            continue
        numbers = pd.to_numeric(df[col].replace("", np.nan), errors="coerce")
        if numbers[df[col] != ""].notna().all():
            df[col] = numbers
    return df


def collect(path: str | Path) -> Results:
    """The results at `path`: a folder from run / frontier / validate --out, or the CSV of a
    plan or a sweep."""
    p = Path(path)
    if not p.exists():
        raise ConfigError("RESULTS", f"no such file or folder: {p}")
    if p.is_dir():
        res = Results(root=p, name=p.resolve().name)
        for name, attr in _FOLDER_FILES.items():
            if (p / name).exists():
                setattr(res, attr, _read_csv(p / name))
                res.files.append(name)
        if (p / SNAPSHOT_NAME).exists():
            res.stack_errors = load_stack_errors(p / SNAPSHOT_NAME)
            res.files.append(SNAPSHOT_NAME)
        for name in ("traces.parquet", "traces.csv.gz"):
            if (p / name).exists():
                res.traces = pd.read_parquet(p / name) if name.endswith(".parquet") else pd.read_csv(p / name)
                res.files.append(name)
                break
        if (p / "experiment.yaml").exists():
            res.experiment_yaml = (p / "experiment.yaml").read_text()
            res.files.append("experiment.yaml")
        if (p / COMMAND_FILE).exists():
            res.command = json.loads((p / COMMAND_FILE).read_text())
        if not res.kinds:
            raise ConfigError("RESULTS", f"{p} holds no results factory-sim writes (summary.csv from run --out, "
                                         "frontier.csv from frontier --out, validation.csv from validate --out); "
                                         "name such a folder, or a plan or sweep CSV")
        return res
    res = Results(root=p.parent, name=p.stem, files=[p.name])
    df = _read_csv(p)
    if "point_key" in df:
        res.sweep = df
    elif {"rank", "candidate"} <= set(df.columns):
        res.plan = df
        bands = p.with_name(p.stem + "_bands.csv")
        if bands.exists():
            res.plan_bands = _read_csv(bands)
            res.files.append(bands.name)
    elif {"fleet", "tier", "usd_per_m_goodput_tokens"} <= set(df.columns):
        res.summary = df
    elif {"on_frontier", "tokens_per_s_per_user_p50"} <= set(df.columns):
        res.frontier = df
    else:
        raise ConfigError("RESULTS", f"{p} is not a results file factory-sim writes (a plan or sweep CSV, or a "
                                     "summary.csv or frontier.csv); name it, or the folder it is in")
    return res


# -- fidelity ---------------------------------------------------------------------------------

def stacks_used(exp) -> list:
    seen = {}
    for plan in fleet_layouts(exp):
        for pool in plan.pools:
            seen.setdefault(pool.shape.stack.name, pool.shape.stack)
    return list(seen.values())


def _stack_errors(res: Results) -> tuple[pd.DataFrame | None, str]:
    """Held-out errors by stack: this folder's validation, else the table shipped with factory-sim."""
    from factory_sim.fidelity.stack_errors import error_by_stack, load_stack_errors, shipped_snapshot_path

    if res.validation is not None or res.throughput is not None:
        return error_by_stack(res.validation, res.throughput), "this folder's validation results"
    if res.stack_errors is not None:
        return res.stack_errors, "this folder's fidelity_by_stack.csv"
    shipped = load_stack_errors()
    if shipped is not None:
        return shipped, f"the validation shipped with factory-sim {__version__} ({shipped_snapshot_path().name})"
    return None, "no validation results"


# -- sections -----------------------------------------------------------------------------------

@dataclass
class Section:
    title: str
    intro: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[HtmlTable] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    code: str | None = None  # shown folded (the YAML)
    code_title: str = ""
    figures_first: bool = False


def _run_sections(res: Results, exp, placeholder: set[str]) -> list[Section]:
    s = res.summary
    main = Section("Results", tables=[summary_table(s, placeholder)])
    best = best_table(s)
    if best is not None:
        main.tables.append(best)
    after = tables.table_notes(s, placeholder)["after"]
    if after:
        main.tables[-1].notes += after
    fig = cost_bars(s, placeholder)
    if fig is not None:
        flagged = placeholder & {h for hw in s["hardware"].astype(str) for h in hw.split("+")}
        main.figures.append(Figure("Cost per million goodput tokens", "Each fleet at its reported load"
                                   + ("; hatched bars are priced from a placeholder $/GPU-hour." if flagged else "."),
                                   data_uri(fig)))
    if res.traces is not None and len(res.traces):
        main.figures.append(Figure("Latency distributions",
                                   "Time to first token and time per output token of every request at each "
                                   "fleet's reported load (all requests of the run, warm-up included).",
                                   data_uri(figure_of("latency-cdf", res.traces))))
    if res.scaling is not None and len(res.scaling):
        main.figures.append(Figure("Autoscaling", "Offered load and the replicas each pool held.",
                                   data_uri(figure_of("scaling", res.scaling))))
    out = [main]
    if res.bands is not None and len(res.bands):
        band = Section("Uncertainty", intro=[
            f"p5, p50 and p95 over {int(res.bands['samples'].max())} Latin-hypercube draws of the uncertain inputs."])
        cols = ["fleet", "tier", "samples"] + [f"{m}_p{q}" for m in ("usd_per_m_goodput_tokens",
                                                                     "goodput_tokens_per_s") for q in (5, 50, 95)]
        band.tables.append(frame_table("Bands per fleet and tier", res.bands, cols))
        try:
            band.figures.append(Figure("Cost bands", "p50 with the p5-p95 band of $ per million goodput tokens.",
                                       data_uri(figure_of("bands", res.bands))))
        except ConfigError as exc:  # nothing finite to draw: say so
            band.intro.append(exc.message)
        out.append(band)
    return out


def _frontier_sections(res: Results, exp, placeholder: set[str]) -> list[Section]:
    from factory_sim.studies.frontier import ratio_table

    pts = res.frontier
    reference = res.command.get("options", {}).get("reference")
    if not reference and exp is not None:
        match = pts.loc[pts["fleet"] == exp.reference, "hardware"]
        reference = str(match.iloc[0]) if len(match) else None
    sec = Section("Frontier", intro=[
        "Each fleet driven by a closed loop of clients at a ladder of concurrencies: output tokens/s per GPU "
        "against median output tokens/s per user. The frontier of a hardware is the envelope of its fleets' "
        "points: each hardware at its best layout among the fleets of the experiment."])
    flagged = sorted({h for hw in pts["hardware"] for h in str(hw).split(" ")[0].split("+")} & placeholder)
    if flagged:
        sec.intro.append(tables.placeholder_note(flagged))
    sec.figures.append(Figure("Throughput against interactivity", "Lines: each hardware's frontier; dots: every "
                              "operating point simulated.", data_uri(figure_of("pareto", pts))))
    sec.figures.append(Figure("Cost per million output tokens", "Along each hardware's frontier (log scale).",
                              data_uri(figure_of("cost-curve", pts))))
    front = pts[pts["on_frontier"].astype(bool)].sort_values(["hardware", "tokens_per_s_per_user_p50"])
    sec.tables.append(frame_table("Points on the frontier", front,
                                  ["hardware", "fleet", "concurrency", "tokens_per_s_per_user_p50",
                                   "tokens_per_s_per_gpu", "ttft_p50_s", "usd_per_m_output_tokens"]))
    out = [sec]
    if res.cost_curves is not None and reference and reference in res.cost_curves.columns:
        curves = ratio_table(res.cost_curves, reference)
        heads = {c: (f"{c}: $ per million output tokens" if c in res.cost_curves.columns[1:] else
                     f"{c.split('/')[1]} vs {reference}: times cheaper" if "/" in c else None)
                 for c in curves.columns}
        sec.tables.append(frame_table(f"Cost at each interactivity, and how many times {reference} costs more",
                                      curves, headers=heads,
                                      notes=["-: that hardware's frontier does not reach this interactivity."]))
    if res.crossings is not None and len(res.crossings) and reference:
        claims = Section("Seed claims", intro=[
            f"Vendor claims such as “15x lower cost per token” hold at some interactivities and not at others. "
            f"For each hardware: from which interactivity {reference} costs at least that many times more per "
            "output token (on this grid), the tokens/s per MW there relative to it, and the largest ratio."])
        c = res.crossings.copy()
        c["where"] = [f"from {x:g} tok/s/user" if np.isfinite(x) else "never on this grid"
                      for x in pd.to_numeric(c["from_tokens_per_s_per_user"], errors="coerce")]
        claims.tables.append(frame_table(
            f"Where {reference} costs 15x / 35x more", c,
            ["hardware", "factor", "where", "tokens_per_s_per_mw_ratio_there", "max_ratio",
             "max_ratio_at_tokens_per_s_per_user"],
            headers={"factor": "claimed factor (x)", "where": "ratio reached",
                     "tokens_per_s_per_mw_ratio_there": "tokens/s per MW there (x the reference)",
                     "max_ratio": "largest ratio (x)",
                     "max_ratio_at_tokens_per_s_per_user": "largest ratio at (tok/s/user)"}))
        out.append(claims)
    return out


def _plan_sections(res: Results, placeholder: set[str]) -> list[Section]:
    plan = res.plan
    sec = Section("Capacity plan", intro=[
        f"Demand {format_value(float(plan['demand_req_per_s'].iloc[0]))} requests/s. Each candidate sized from one "
        "unit's max goodput, ranked by $/hour; the cheapest confirmed by simulating the whole fleet at the demand."])
    cols = [c for c in plan.columns if c not in ("note", "demand_req_per_s")]
    notes = [f"{r['candidate']}: {r['note']}" for _, r in plan.iterrows() if isinstance(r["note"], str) and r["note"]]
    flagged = placeholder & {h for hw in plan["hardware"].astype(str) for h in hw.split("+")}
    if flagged:
        notes.insert(0, tables.placeholder_note(flagged))
    sec.tables.append(frame_table("Candidates, cheapest first", plan, cols, notes=notes))
    fig = plan_bars(plan)
    if fig is not None:
        sec.figures.append(Figure("Fleet cost per candidate", "Fleet cost per hour at the demand.", data_uri(fig)))
    out = [sec]
    if res.plan_bands is not None and len(res.plan_bands):
        out.append(Section("Fleet size under uncertainty", tables=[frame_table(
            "p5 / p50 / p95 of units, GPUs, MW and $/hour per candidate", res.plan_bands)]))
    return out


def _sweep_sections(res: Results) -> list[Section]:
    df = res.sweep
    start = df.columns.get_loc("fleet")
    fields = [c for c in df.columns[:start] if c != "point_key"]
    sec = Section("Sweep", intro=[f"{df['point_key'].nunique()} points varying "
                                  + "; ".join(field_label(f) for f in fields) + "."])
    metrics = ["hardware", "offered_req_per_s", "slo_attainment", "tokens_per_s_per_gpu",
               "goodput_tokens_per_s", "usd_per_m_goodput_tokens", "cost_ratio_to_reference"]
    sec.tables.append(frame_table("Every point's rows", df, fields + ["fleet", "tier"] + metrics,
                                  headers={f: field_label(f) for f in fields}))
    if len(fields) >= 2:
        # one surface per fleet and tier that served at some point (a mean across fleets and
        # tiers would mix what the sweep compares)
        cost = pd.to_numeric(df["usd_per_m_goodput_tokens"], errors="coerce")
        served = df[np.isfinite(cost)].groupby(["fleet", "tier"], sort=False).size().index[:MAX_SURFACES]
        for fleet, tier in served:
            one = df[(df["fleet"] == fleet) & (df["tier"] == tier)]
            sec.figures.append(Figure(f"Fleet-mix surface: {fleet}, tier {tier}",
                                      f"$ per million goodput tokens of fleet {fleet} in tier {tier} over "
                                      f"{field_label(fields[0])} and {field_label(fields[1])} (blank: no goodput).",
                                      data_uri(figure_of("mix-surface", one))))
        if not len(served):
            sec.intro.append("No fleet served goodput at any point: there is no cost surface to draw.")
    elif fields:
        sec.figures.append(Figure("Cost across the sweep", f"against {field_label(fields[0])}",
                                  data_uri(sweep_lines(df, fields[0]))))
    return [sec]


QUANTITY_WORDS = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "output_tok_s_per_gpu": "throughput",
                  "tok_s_per_gpu": "throughput"}


def _by_group(summary: pd.DataFrame) -> pd.DataFrame:
    """validate's error summary (a row per quantity and group) as a row per group, the
    quantities side by side."""
    out = pd.DataFrame({"group": list(dict.fromkeys(summary["group"]))})
    for quantity, g in summary.groupby("quantity", sort=False):
        g = g.set_index("group")
        q = QUANTITY_WORDS.get(quantity, quantity)
        out[f"{q} rows"] = out["group"].map(g["rows"])
        out[f"{q} median |error|"] = out["group"].map(g["median_abs_error"])
        out[f"{q} within ±20%"] = out["group"].map(g["within_20pct"])
        out[f"{q} median signed error"] = out["group"].map(g["median_signed_error"])
    return out


def _validate_sections(res: Results) -> list[Section]:
    from factory_sim.fidelity.stack_errors import error_by_stack

    sec = Section("Fidelity against published results", intro=[
        "Predicted against measured: mean TTFT and TPOT of measured deployments (exact configuration, closed-loop "
        "clients) and throughput per GPU of published results. In sample: rows a built-in stack profile was fitted "
        "to; out of sample (held out): all others."], figures_first=True)
    if res.validation is not None and len(res.validation):
        sec.figures.append(Figure("Measured points: predicted against published",
                                  "Mean TTFT and TPOT per row, with the ±20% band.",
                                  validation_figure(res.validation)))
    if res.throughput is not None and len(res.throughput):
        fig = throughput_scatter(res.throughput)
        if fig is not None:
            sec.figures.append(Figure("Throughput: predicted against published", "Output tokens/s per GPU.",
                                      data_uri(fig)))
    by_stack = error_by_stack(res.validation, res.throughput)
    if len(by_stack):
        by_stack = by_stack.assign(quantity=by_stack["quantity"].map(lambda q: QUANTITY_WORDS.get(q, q)))
        sec.tables.append(frame_table("Error by software-stack profile, held-out rows apart", by_stack,
                                      [c for c in by_stack.columns if c != "stack_digest"]))
    summary = res.validation_summary
    if (summary is None or not len(summary)) and res.validation is not None:
        from factory_sim.fidelity.report import error_summary

        summary = error_summary(res.validation)
    if summary is not None and len(summary):
        percent = [c for c in _by_group(summary).columns if "error" in c or "within" in c]
        table = frame_table("Measured points: error overall and by group", _by_group(summary))
        for i, h in enumerate(table.headers):  # shares and errors read as percentages
            if h["text"] in percent:
                for row in table.rows:
                    v = row[i]["value"]
                    row[i]["text"] = f"{float(v):.1%}" if v not in ("", None) else "-"
        sec.tables.append(table)
    if res.validation is not None and len(res.validation):
        scored = res.validation[res.validation["skipped"] == ""]
        worst = scored.reindex(scored["rel_error"].abs().sort_values(ascending=False).index).head(10)
        sec.tables.append(frame_table("The ten largest errors", worst,
                                      ["id", "quantity", "predicted", "published", "rel_error", "config"]))
    if res.throughput is not None and len(res.throughput):
        sec.tables.append(frame_table("Throughput rows", res.throughput,
                                      ["id", "system", "model", "scenario", "predicted", "published", "rel_error",
                                       "sample", "config", "skipped"]))
    return [sec]


# -- the page -----------------------------------------------------------------------------------

def _title(res: Results, exp, spec: dict | None) -> tuple[str, str]:
    if exp is not None:
        return exp.name, exp.description
    if spec:
        return str(spec.get("name", res.name)), str(spec.get("description", ""))
    if res.validation is not None or res.throughput is not None:
        return "Validation", "the simulator against measured deployments and published results"
    return res.name, ""


def render(res: Results) -> str:
    """The report page as HTML text."""
    from jinja2 import Environment, PackageLoader

    from factory_sim.results.tables import placeholder_priced

    exp, why = (None, "")
    if res.experiment_yaml is not None:
        exp, why = experiment_from_text(res.experiment_yaml)
    spec = yaml.safe_load(res.spec_yaml) if res.spec_yaml else None
    placeholder = placeholder_priced(exp) if exp is not None else _placeholder_by_name(res)
    title, description = _title(res, exp, spec if isinstance(spec, dict) else None)
    sections: list[Section] = []
    what = Section("What was simulated")
    if exp is not None:
        what.facts = describe_experiment(exp, res.command, frontier=res.summary is None and res.frontier is not None)
    elif why:
        what.intro.append(f"The experiment could not be loaded again to describe it ({why}); its YAML is below.")
    if res.experiment_yaml is not None:
        what.code, what.code_title = res.experiment_yaml, "The experiment as run (YAML)"
    elif res.spec_yaml is not None:
        what.code, what.code_title = res.spec_yaml, "The file as run (YAML)"
    if isinstance(spec, dict):
        what.facts += spec_words(spec, "plan" if res.plan is not None else "sweep")
    elif res.plan is not None or res.sweep is not None:
        what.intro.append("The plan or sweep file is not stored beside its results; pass --report to the command "
                          "to include it.")
    if res.command.get("argv"):
        what.facts.insert(0, ("Command", "factory-sim " + " ".join(res.command["argv"])))
    if what.facts or what.intro or what.code:
        sections.append(what)
    if res.summary is not None:
        sections += _run_sections(res, exp, placeholder)
    if res.frontier is not None:
        sections += _frontier_sections(res, exp, placeholder)
    if res.plan is not None:
        sections += _plan_sections(res, placeholder)
    if res.sweep is not None:
        sections += _sweep_sections(res)
    if res.validation is not None or res.throughput is not None:
        sections += _validate_sections(res)
    if exp is not None:
        errors, source = _stack_errors(res)
        sections.append(Section("Fidelity", tables=[fidelity_table(stacks_used(exp), errors, source)]))
    # autoescape on: names and notes from user files are text, never markup
    env = Environment(loader=PackageLoader("factory_sim.results", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    made = res.command.get("written_at") or dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return env.get_template("report.html.j2").render(
        title=title, description=description, sections=sections, version=__version__, made=made,
        files=res.files, kinds=res.kinds)


def _placeholder_by_name(res: Results) -> set[str]:
    """Without an experiment: built-in hardware named in the results whose price is a placeholder."""
    from factory_sim.config.hardware import list_hardware

    named: set[str] = set()
    for frame in (res.summary, res.frontier, res.plan, res.sweep):
        if frame is not None and "hardware" in frame:
            named |= {h for hw in frame["hardware"].astype(str) for h in hw.split(" ")[0].split("+")}
    return {hw.name for hw in list_hardware() if hw.placeholder_price and hw.name in named}


def report_path(results: str | Path) -> Path:
    """Where the report of `results` goes: FOLDER/report.html, or FILE.html beside a CSV."""
    p = Path(results)
    return p / REPORT_NAME if p.is_dir() else p.with_suffix(".html")


def write_report(results: str | Path, out: str | Path | None = None, *, spec_yaml: str | None = None) -> Path:
    """Render the report of a results folder or file and write it (atomically); returns its path."""
    from factory_sim.results.files import atomic_write

    res = collect(results)
    res.spec_yaml = spec_yaml
    target = Path(out) if out else report_path(results)
    html = render(res)
    atomic_write(target, lambda p: p.write_text(html, encoding="utf-8"))
    return target


def write_command(out_dir: str | Path, command: str, argv: list[str] | None = None, **facts) -> Path:
    """command.json beside a command's results: how they were made, for the report."""
    from factory_sim.results.files import atomic_write

    record = {"command": command, "argv": list(sys.argv[1:] if argv is None else argv), "version": __version__,
              "written_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"), **facts}
    target = Path(out_dir) / COMMAND_FILE
    atomic_write(target, lambda p: p.write_text(json.dumps(record, indent=2, default=str) + "\n"))
    return target
