#!/usr/bin/env python3
"""Regenerate the generated parts of README.md and docs/*.md, or check that they are current.

Generated text comes in two kinds:

* a region between `<!-- generated: NAME -->` and `<!-- end generated -->`: its body is
  produced by the function registered as NAME in GENERATORS (the YAML references walked
  from the pydantic schemas, the command table from the CLI's own parser, the fidelity
  tables and the seed-claims ratios from the committed outputs of slow commands in
  docs/results/, see RESULT_SETS);
* every console block: the lines after each `$ command` are what that command printed
  (its standard output, and its standard error too when it fails), run at full size in a
  scratch folder holding a copy of experiments/ (one folder per document, its blocks in
  order), with COLUMNS=200 so tables do not wrap.

Usage:
    python docs/generate.py                 regenerate every file (runs every shown command: minutes)
    python docs/generate.py docs/plan.md    only these files
    python docs/generate.py --no-console    only the generated regions (seconds)
    python docs/generate.py --check         exit 1 naming each stale generated region (tests/test_docs.py
                                            checks the console blocks by running them)
    python docs/generate.py --rerun validation   first rerun a slow command whose committed results the
    python docs/generate.py --rerun seed_claims  docs read (`factory-sim validate` over every row, the
    python docs/generate.py --rerun all          seed-claims frontier: minutes each), replacing them

tests/test_docs.py imports this module: the parsing, running and comparing of blocks is
written once, here.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as dt
import importlib
import inspect
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import tokenize
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
COLUMNS = "200"  # terminal width the shown outputs are printed at

MARKER_START = re.compile(r"^<!-- generated: (?P<name>[\w-]+)(?P<args>[^>]*?)\s*-->\s*$")
MARKER_END = "<!-- end generated -->"
DIRECTIVE = re.compile(r"^<!-- docs-test: (?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")


def documents() -> list[Path]:
    """The files whose examples are generated and tested: README.md and docs/*.md."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


# -- parsing -------------------------------------------------------------------------------


@dataclass
class Block:
    """A fenced code block: lines[start] is the opening fence, lines[end] the closing one."""

    lang: str
    start: int
    end: int
    body: list[str]
    directive: str = ""  # the `<!-- docs-test: ... -->` line right above the block, if any

    @property
    def line(self) -> int:  # 1-based, for messages
        return self.start + 1


@dataclass
class Region:
    """A generated region: lines[start] is its start marker, lines[end] the end marker."""

    name: str
    args: list[str]
    start: int
    end: int


@dataclass
class Command:
    text: str  # the command as a shell reads it (continuation lines joined)
    shown: list[str]  # its lines in the block, `$ ` included
    output: list[str]  # the output shown under it


def parse(text: str) -> tuple[list[Block], list[Region]]:
    lines = text.split("\n")
    blocks: list[Block] = []
    regions: list[Region] = []
    i = 0
    open_region: tuple[str, list[str], int] | None = None
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if m:
            fence = m.group("fence")
            j = i + 1
            while j < len(lines) and not _closes(lines[j], fence):
                j += 1
            if j == len(lines):
                raise ValueError(f"line {i + 1}: code block never closed")
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            d = DIRECTIVE.match(lines[k]) if k >= 0 else None
            blocks.append(Block(m.group("lang"), i, j, lines[i + 1:j], d.group("body") if d else ""))
            i = j + 1
            continue
        m = MARKER_START.match(line)
        if m:
            if open_region is not None:
                raise ValueError(f"line {i + 1}: generated region inside another (line {open_region[2] + 1})")
            open_region = (m.group("name"), m.group("args").split(), i)
        elif line.strip() == MARKER_END:
            if open_region is None:
                raise ValueError(f"line {i + 1}: `{MARKER_END}` without a start marker")
            regions.append(Region(open_region[0], open_region[1], open_region[2], i))
            open_region = None
        i += 1
    if open_region is not None:
        raise ValueError(f"line {open_region[2] + 1}: generated region '{open_region[0]}' never ended")
    return blocks, regions


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _is_command(line: str) -> bool:
    """A `$ ` line is a command when its first word is one (factory-sim, or a program on the
    PATH): an output line may start with `$ ` too ("$ per million output tokens ...")."""
    if not line.startswith("$ "):
        return False
    word = line[2:].split(maxsplit=1)[0] if line[2:].strip() else ""
    return word == "factory-sim" or shutil.which(word) is not None


def commands(block: Block) -> list[Command]:
    """The `$ ` commands of a console block with the output shown under each."""
    out: list[Command] = []
    lines = block.body
    i = 0
    if not lines or not _is_command(lines[0]):
        raise ValueError(f"line {block.line}: a console block starts with a `$ ` command")
    while i < len(lines):
        shown = [lines[i]]
        text = lines[i][2:]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            shown.append(lines[i])
            text = text[:-1] + " " + lines[i].strip()
        i += 1
        output = []
        while i < len(lines) and not _is_command(lines[i]):
            output.append(lines[i])
            i += 1
        out.append(Command(" ".join(text.split()), shown, output))
    return out


# -- running -------------------------------------------------------------------------------


def scratch_folder() -> Path:
    """An empty folder with a copy of experiments/, where a document's examples run."""
    folder = Path(tempfile.mkdtemp(prefix="factory-sim-docs-"))
    shutil.copytree(ROOT / "experiments", folder / "experiments",
                    ignore=shutil.ignore_patterns("notebooks", "__pycache__", ".ipynb_checkpoints"))
    return folder


@contextlib.contextmanager
def _inside(folder: Path, **env: str) -> Iterator[None]:
    old_cwd, old_env = os.getcwd(), {k: os.environ.get(k) for k in env}
    os.chdir(folder)
    os.environ.update(env)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_SHELL = re.compile(r"[|&;<>()$`*?]")


def run_command(command: str, folder: Path, extra_args: list[str] | None = None) -> tuple[int, str]:
    """Run one shown command in `folder`: (exit code, what it shows).

    `factory-sim ...` runs in this process (the same `main` the installed script calls,
    without paying Python's start-up and imports again); anything else runs in bash. The
    shown output is standard output, plus standard error when the command fails.
    """
    argv = shlex.split(command)
    if argv and argv[0] == "factory-sim" and not _SHELL.search(command):
        from factory_sim.cli import main

        out, err = io.StringIO(), io.StringIO()
        with _inside(folder, COLUMNS=COLUMNS), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv[1:] + list(extra_args or []))
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else 1
        text = out.getvalue() + (err.getvalue() if code else "")
        return code, text
    if extra_args:
        raise ValueError(f"extra arguments apply to factory-sim commands only, not to: {command}")
    env = {**os.environ, "COLUMNS": COLUMNS,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout + (proc.stderr if proc.returncode else "")


def run_python(code: str, folder: Path, name: str) -> str:
    """Run a python block in `folder` as a script; what it printed."""
    out = io.StringIO()
    with _inside(folder, COLUMNS=COLUMNS), contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), {"__name__": "__main__"})  # noqa: S102 - the docs' own example
    return out.getvalue()


def output_lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.rstrip("\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


# -- comparing -----------------------------------------------------------------------------

_TIMING = (re.compile(r"\b(in|took) \d+(?:\.\d+)? s\b"), re.compile(r"\(\d+(?:\.\d+)? s\)"))


def normalise(lines: list[str]) -> list[str]:
    """What must match exactly: everything but wall-clock timings ("in 26.4 s", "(0.9 s)")."""
    out = []
    for line in lines:
        line = _TIMING[0].sub(lambda m: f"{m.group(1)} N s", line.rstrip())
        out.append(_TIMING[1].sub("(N s)", line))
    while out and not out[-1]:
        out.pop()
    return out


_NUMBER = re.compile(r"^[-+]?(?:[$]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?|\.\d+)[%x]?[,;:)]?$|^-+$|^nan$|^True$|^False$")


def layout(lines: list[str]) -> list[str]:
    """The lines that carry no value (headers, titles, labels), spaces collapsed: an example
    run at a smaller size than shown must print these, in this order. An output that is all
    values (a one-line summary) keeps its lines with each value masked."""
    lines = [line.split() for line in normalise(lines) if line.strip()]
    words = [" ".join(tokens) for tokens in lines if not any(_NUMBER.match(t) for t in tokens)]
    return words or [" ".join("#" if _NUMBER.match(t) else t for t in tokens) for tokens in lines]


def is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


# -- directives (test-only overrides of slow examples) -------------------------------------


@dataclass
class Directive:
    """`<!-- docs-test: set FILE key=value ...; args ARG ... -->` above a block: the test runs
    the block with these YAML fields set and these arguments added to each factory-sim
    command (a smaller size than shown), and checks the output's layout, not its values."""

    sets: list[tuple[str, dict[str, typing.Any]]] = field(default_factory=list)
    args: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.sets and not self.args


def directive(text: str) -> Directive:
    import yaml

    d = Directive()
    for clause in filter(None, (c.strip() for c in text.split(";"))):
        verb, *rest = shlex.split(clause)
        if verb == "set" and len(rest) >= 2:
            d.sets.append((rest[0], {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in rest[1:])}))
        elif verb == "args" and rest:
            d.args += rest
        else:
            raise ValueError(f"docs-test directive: cannot read '{clause}' (use `set FILE key=value ...` or "
                             "`args ARG ...`)")
    return d


def apply_sets(folder: Path, d: Directive) -> None:
    """Set YAML fields (dotted paths, list items by index) in files of the scratch folder."""
    import yaml

    for name, assignments in d.sets:
        path = folder / name
        raw = yaml.safe_load(path.read_text())
        for dotted, value in assignments.items():
            node = raw
            *parents, last = [int(s) if s.isdigit() else s for s in dotted.split(".")]
            for step in parents:
                node = node.setdefault(step, {}) if isinstance(node, dict) else node[step]
            node[last] = value
        path.write_text(yaml.safe_dump(raw, sort_keys=False))


# -- generated regions: the YAML references ------------------------------------------------


def _attr(target: str):
    """`module:attribute`, imported."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _anchor(path: str) -> str:
    return "ref-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def _field_comments(cls) -> dict[str, str]:
    """The comment lines right above each field of a class, and the one at its end: the
    reasons and sources the code keeps next to its defaults."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = src.split("\n")
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    out: dict[str, str] = {}
    for node in ast.parse(src).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above = []
        k = node.lineno - 1
        while k >= 1 and lines[k - 1].strip().startswith("#"):
            above.insert(0, comments.get(k, ""))
            k -= 1
        inline = [comments[n] for n in range(node.lineno, node.end_lineno + 1)
                  if n in comments and not lines[n - 1].strip().startswith("#")]
        text = " ".join(t for t in above + inline if t and not t.startswith("noqa"))
        if text:
            out[node.target.id] = text
    return out


def _models_in(annotation) -> list[type]:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type] = []
    for arg in typing.get_args(annotation):
        for m in _models_in(arg):
            if m not in found:
                found.append(m)
    return found


def _kind_of(model) -> str | None:
    f = model.model_fields.get("kind")
    if f is not None and typing.get_origin(f.annotation) is typing.Literal and len(typing.get_args(f.annotation)) == 1:
        return typing.get_args(f.annotation)[0]
    return None


class SchemaPage:
    """Markdown tables of pydantic models: one section per model, reached from the first
    field that holds it; every field with its type, default, bounds and description."""

    def __init__(self, choices: dict[tuple[str, str], tuple[str, ...]] | None = None, level: int = 3):
        self.paths: dict[type, tuple[str, str]] = {}  # model -> (file kind, YAML path in that file)
        self.also: dict[type, list[str]] = {}  # model -> the other paths that hold it
        self.order: list[type] = []
        self.choices = choices or {}
        self.level = level

    def add(self, model, path: str = "", root: str = "") -> None:
        """Register `model` at `path` of a `root` file ("" for the page's main file), then the
        models its fields hold, breadth first (a model shared by several fields is listed once,
        under the first)."""
        queue = [(model, path)]
        while queue:
            model, path = queue.pop(0)
            if model in self.paths:
                if path not in self.also.setdefault(model, []) and path != self.paths[model][1]:
                    self.also[model].append(path)
                continue
            self.paths[model] = (root, path)
            self.order.append(model)
            for name, f in model.model_fields.items():
                inner = _models_in(f.annotation)
                kinds = [m for m in inner if _kind_of(m)]
                for m in inner:
                    sub = f"{path}.{name}" if path else name
                    bare = f.annotation is m or (typing.get_origin(f.annotation) in (typing.Union, types.UnionType)
                                                 and m in typing.get_args(f.annotation))
                    if _is_list_of(f.annotation, m) and not bare:
                        sub += "[]"
                    elif _is_dict_of(f.annotation, m):
                        sub += ".*"
                    if m in kinds and len(kinds) > 1:
                        sub += f" (kind: {_kind_of(m)})"
                    queue.append((m, sub))

    def anchor(self, model) -> str:
        root, path = self.paths[model]
        return _anchor(f"{root} {path or 'top level'}")

    def heading(self, model) -> str:
        root, path = self.paths[model]
        text = ", ".join(f"`{p}`" for p in [path, *self.also.get(model, [])]) if path else "top level"
        return f"{text} of a {root} file" if root else text

    def link(self, model) -> str:
        """A model's name in a type: its `kind`, or its class name in words (PoolSpec: pool)."""
        label = _kind_of(model) or " ".join(re.findall(r"[A-Z][a-z]*", model.__name__.removesuffix("Spec"))).lower()
        return f"[{label}](#{self.anchor(model)})"

    def type_text(self, annotation) -> str:
        from pydantic import BaseModel

        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if annotation is type(None):
            return "null"
        if annotation is typing.Any:
            return "any"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return self.link(annotation)
        if origin is typing.Annotated:
            return self.type_text(args[0])
        if origin is typing.Literal:
            return _one_of([f"`{a}`" for a in args])
        if origin in (typing.Union, types.UnionType):
            parts = [a for a in args if a is not type(None)]
            models = [a for a in parts if isinstance(a, type) and issubclass(a, BaseModel) and _kind_of(a)]
            if len(models) > 1:
                text = "mapping with `kind`: " + _one_of([self.link(m) for m in models])
            else:
                text = " or ".join(self.type_text(a) for a in parts)
            return text + (" or null" if len(parts) < len(args) else "")
        if origin is list:
            return f"list of {self.type_text(args[0])}"
        if origin is dict:
            return f"mapping of {self.type_text(args[0])} to {self.type_text(args[1])}"
        names = {str: "string", int: "integer", float: "number", bool: "true or false"}
        return names.get(annotation, getattr(annotation, "__name__", str(annotation)))

    def section(self, model) -> str:
        doc = inspect.cleandoc(model.__doc__) if model.__doc__ and model.__doc__ != _base_doc() else ""
        lines = [f'<a id="{self.anchor(model)}"></a>', "", f"{'#' * self.level} {self.heading(model)}", ""]
        if doc:
            lines += [" ".join(doc.split()), ""]
        lines += ["| field | type | default | allowed | description |", "|---|---|---|---|---|"]
        comments = _field_comments(model)
        for name, f in model.model_fields.items():
            desc = " ".join(t for t in (f.description or "", comments.get(name, "")) if t)
            extra = self.choices.get((model.__name__, name))
            if extra:
                desc = (desc + "; " if desc else "") + "one of " + ", ".join(f"`{c}`" for c in extra)
            cells = [f"`{name}`", self.type_text(f.annotation), _default(f), _bounds(f), desc]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        return "\n".join(lines)

    def render(self, models: list[type] | None = None) -> str:
        return "\n\n".join(self.section(m) for m in (self.order if models is None else models))


def _base_doc() -> str | None:
    from pydantic import BaseModel

    return BaseModel.__doc__


def _is_list_of(annotation, model) -> bool:
    if typing.get_origin(annotation) is list:
        return model in _models_in(typing.get_args(annotation)[0])
    return any(_is_list_of(a, model) for a in typing.get_args(annotation)
               if typing.get_origin(annotation) in (typing.Union, types.UnionType))


def _is_dict_of(annotation, model) -> bool:
    if typing.get_origin(annotation) is dict:
        return model in _models_in(typing.get_args(annotation)[1])
    return any(_is_dict_of(a, model) for a in typing.get_args(annotation)
               if typing.get_origin(annotation) in (typing.Union, types.UnionType))


def _one_of(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _yaml_value(value) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`" if abs(value) < 1e6 else f"`{value:.0f}`"
    if isinstance(value, list | tuple | dict) and not value:
        return "`[]`" if not isinstance(value, dict) else "`{}`"
    if value == "":
        return '`""`'
    return f"`{value}`"


def _default(f) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if f.default_factory is not None:
        value = f.default_factory()
    elif f.default is PydanticUndefined:
        return "required"
    else:
        value = f.default
    if isinstance(value, BaseModel):
        return "its defaults"
    return _yaml_value(value)


def _bounds(f) -> str:
    import annotated_types as at

    symbols = [(at.Gt, "gt", ">"), (at.Ge, "ge", ">="), (at.Lt, "lt", "<"), (at.Le, "le", "<="),
               (at.MinLen, "min_length", "length >="), (at.MaxLen, "max_length", "length <=")]
    out = []
    for meta in f.metadata:
        for kind, attr, symbol in symbols:
            if isinstance(meta, kind):
                out.append(f"{symbol} {getattr(meta, attr):g}")
    return ", ".join(out)


def _experiment_schemas() -> tuple[type, type, type]:
    return (_attr("factory_sim.config.experiment:Experiment"), _attr("factory_sim.config.plan:PlanSpec"),
            _attr("factory_sim.config.sweep:SweepSpec"))


def _choices() -> dict[tuple[str, str], tuple[str, ...]]:
    """Values a validator checks that the type does not show."""
    routers = _attr("factory_sim.config.experiment:ROUTER_POLICIES")
    return {("FleetSpec", "router"): tuple(routers)}


def gen_experiment_reference(_: list[str]) -> str:
    """Every field of an experiment file, and of the plan and sweep files built on it."""
    experiment, plan, sweep = _experiment_schemas()
    page = SchemaPage(_choices())
    parts = []
    for title, model, root in (("The experiment file", experiment, ""), ("A plan file", plan, "plan"),
                               ("A sweep file", sweep, "sweep")):
        before = len(page.order)
        page.add(model, "", root)
        parts.append(f"## {title}\n\n" + page.render(page.order[before:]))
    return "\n\n".join(parts)


def gen_file_schemas(_: list[str]) -> str:
    """The files a user may write for the catalog: hardware, model and stack profiles."""
    page = SchemaPage(level=4)
    parts = []
    for title, root, targets in (
            ("A hardware profile", "hardware", "factory_sim.config.hardware:HardwareProfile"),
            ("A model", "model", "factory_sim.config.model:ModelSpec"),
            ("A software-stack profile", "stack", "factory_sim.config.stack:SoftwareStack")):
        before = len(page.order)
        page.add(_attr(targets), "", root)
        parts.append(f"### {title}\n\n" + page.render(page.order[before:]))
    return "\n\n".join(parts)


# -- generated regions: the command table --------------------------------------------------

GUIDES = {"run": ("getting started", "getting-started.md"), "init": ("getting started", "getting-started.md"),
          "report": ("reports", "report.md"),
          "list": ("catalog", "catalog.md"), "plan": ("capacity plans", "plan.md"), "sweep": ("sweeps", "sweep.md"),
          "frontier": ("frontiers", "frontier.md"), "plot": ("plots", "plot.md"),
          "validate": ("fidelity", "fidelity.md"), "calibrate": ("calibration", "calibration.md")}


def gen_commands(args: list[str]) -> str:
    """Every sub-command of the CLI with its usage and help, from the parser itself."""
    prefix = args[0] if args else ""
    build_parser = _attr("factory_sim.cli:build_parser")
    with _inside(ROOT, COLUMNS="1000"):
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        helps = {a.dest: a.help for a in sub._choices_actions}
        rows = ["| command | what it does | guide |", "|---|---|---|"]
        for name, p in sub.choices.items():
            usage = " ".join(p.format_usage().split()).removeprefix("usage: ").replace(" [-h]", "")
            guide = f"[{GUIDES[name][0]}]({prefix}{GUIDES[name][1]})" if name in GUIDES else ""
            rows.append(f"| `{usage.replace('|', chr(92) + '|')}` | {helps.get(name, '')} | {guide} |")
    return "\n".join(rows)


def gen_table_columns(_: list[str]) -> str:
    """Each header of the printed summary table and the summary.csv column it shows."""
    tables = importlib.import_module("factory_sim.results.tables")
    groups = [*((f"always ({name})", cols) for name, cols in tables.SUMMARY_GROUPS),
              ("a fleet has a prefix cache", tables.CACHE_GROUP[1]), ("a pool autoscales", tables.SCALE_GROUP[1]),
              ("faults are on", tables.FAULT_GROUP[1])]
    rows = ["| header | `summary.csv` column | shown when |", "|---|---|---|"]
    for when, columns in groups:
        for column in columns:
            rows.append(f"| {column.header} | `{column.name}` | {when} |")
    return "\n".join(rows)


def gen_calibration_parameters(_: list[str]) -> str:
    """The constants `factory-sim calibrate` may fit, with their bounds and priors."""
    params = _attr("factory_sim.fidelity.calibrate:PARAMETERS")
    ttft = _attr("factory_sim.fidelity.calibrate:TTFT_PARAMETERS")
    rows = ["| constant | bounds | prior spread (log) | prior from | fitted to TTFT too |", "|---|---|---|---|---|"]
    for p in params:
        rows.append(f"| `{p.name}` | {p.lower:g} to {p.upper:g} | {p.prior_sigma_log:g} | {p.why} | "
                    f"{'yes' if p.name in ttft else ''} |")
    return "\n".join(rows)


# -- generated regions: fidelity, from the committed validate results ----------------------


def _results(name: str):
    import pandas as pd

    path = RESULT_SETS["validation"].folder / name
    if not path.exists():
        raise FileNotFoundError(f"{path.relative_to(ROOT)} is missing: run "
                                "`python docs/generate.py --rerun validation`")
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _pct(x: float, signed: bool = False) -> str:
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def _throughput_stats(df) -> dict:
    import numpy as np

    err = df["rel_error"].to_numpy(dtype=float)
    return {"rows": len(df), "abs": float(np.median(np.abs(err))), "within": float(np.mean(np.abs(err) <= 0.2)),
            "signed": float(np.median(err))}


def gen_fidelity_overall(_: list[str]) -> str:
    summary = _results("validation_summary.csv")
    thr = _results("throughput_validation.csv")
    thr = thr[thr["skipped"].isna() | (thr["skipped"] == "")]
    rows = ["| what | rows | median \\|error\\| | within ±20% | median signed error |", "|---|---|---|---|---|"]

    def add(label: str, s: dict) -> None:
        rows.append(f"| {label} | {s['rows']:,} | {_pct(s['abs'])} | {_pct(s['within'])} | "
                    f"{_pct(s['signed'], True)} |")

    names = {"tpot_ms": "measured TPOT", "ttft_ms": "measured TTFT"}
    for quantity in ("tpot_ms", "ttft_ms"):
        for group, label in (("all", ""), ("sample=in sample", ", in sample"),
                             ("sample=out of sample", ", out of sample")):
            r = summary[(summary["quantity"] == quantity) & (summary["group"] == group)]
            if len(r):
                r = r.iloc[0]
                add(names[quantity] + label, {"rows": int(r["rows"]), "abs": r["median_abs_error"],
                                              "within": r["within_20pct"], "signed": r["median_signed_error"]})
    add("published throughput (tokens/s/GPU)", _throughput_stats(thr))
    for scenario, g in thr.groupby("scenario", sort=False):
        add(f"... {scenario}", _throughput_stats(g))
    for sample, g in thr.groupby("sample", sort=False):
        add(f"... {sample}", _throughput_stats(g))
    return "\n".join(rows)


def gen_fidelity_groups(_: list[str]) -> str:
    summary = _results("validation_summary.csv")
    breakdown = summary[summary["group"] != "all"]
    rows = ["| group | rows | TTFT median \\|error\\| (signed) | TPOT median \\|error\\| (signed) |",
            "|---|---|---|---|"]
    for group, g in breakdown.groupby("group", sort=False):
        by_q = {r["quantity"]: r for _, r in g.iterrows()}
        cells = []
        for q in ("ttft_ms", "tpot_ms"):
            r = by_q.get(q)
            cells.append(f"{_pct(r['median_abs_error'])} ({_pct(r['median_signed_error'], True)})"
                         if r is not None else "")
        what, _, key = group.partition("=")
        label = {"backend": "framework", "clients": "clients"}.get(what, what)
        rows.append(f"| {label} {key} | {int(g['rows'].max()):,} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def gen_fidelity_throughput(_: list[str]) -> str:
    thr = _results("throughput_validation.csv")
    scored = thr[thr["skipped"].isna() | (thr["skipped"] == "")]
    rows = ["| row | system | model | scenario | predicted | published | error | sample | configuration |",
            "|---|---|---|---|---|---|---|---|---|"]
    for _, r in scored.iterrows():
        rows.append(f"| {r['id']} | {r['system']} | {r['model']} | {r['scenario']} | {r['predicted']:,.1f} | "
                    f"{r['published']:,.1f} | {r['rel_error']:+.0%} | {r['sample']} | `{r['config']}` |")
    return "\n".join(rows)


def gen_fidelity_skipped(_: list[str]) -> str:
    skipped = _results("skipped_rows.csv")
    thr = _results("throughput_validation.csv")
    rows = ["| rows | file | why not scored |", "|---|---|---|"]
    for _, r in skipped.iterrows():
        rows.append(f"| {int(r['rows']):,} | measured points | {r['reason']} |")
    reasons = thr.loc[thr["skipped"].notna() & (thr["skipped"] != ""), "skipped"].value_counts()
    for reason, n in reasons.items():
        rows.append(f"| {n:,} | published throughput | {reason} |")
    return "\n".join(rows)


def gen_results_source(args: list[str]) -> str:
    """Where a committed result set came from: `<!-- generated: results-source NAME -->`."""
    name = args[0]
    prov = json.loads((RESULT_SETS[name].folder / "provenance.json").read_text())
    where = RESULT_SETS[name].folder.relative_to(DOCS)
    return (f"Computed from the output of `{prov['command']}` (factory-sim {prov['version']}, commit "
            f"`{prov['commit']}`, {prov['date']}: {prov['wall_s']:.0f} s with {prov['jobs']} jobs on "
            f"{prov['cpus']} cores), kept in [`docs/{where}/`]({where}/); "
            f"`python docs/generate.py --rerun {name}` runs it again and rewrites this page.")


def gen_seed_claims(_: list[str]) -> str:
    """Cost ratios of the seed-claims frontier to H200, without and with MTP on the H200
    side, and where each system reaches 15x and 35x."""
    import numpy as np
    import pandas as pd

    cost_at = _attr("factory_sim.studies.frontier:cost_at_interactivity")
    crossings = _attr("factory_sim.studies.frontier:crossings")
    envelopes = importlib.import_module("factory_sim.fidelity.envelopes")
    points = pd.read_csv(RESULT_SETS["seed_claims"].folder / "frontier.csv")
    grid = np.array([10, 20, 30, 50, 75, 100, 150, 200], dtype=float)
    curves = cost_at(points, grid)
    per_mw = cost_at(points, grid, "tokens_per_s_per_mw")
    on = points[points["on_frontier"]]
    cheapness = {hw: envelopes.frontier_envelope(g["tokens_per_s_per_user_p50"].to_numpy(),
                                                 1.0 / g["usd_per_m_output_tokens"].to_numpy())
                 for hw, g in on.groupby("hardware")}  # $/M ratio = ratio of (1 / $/M): the band reads it as tokens
    parts = []
    for reference, title in (("h200_sxm", "H200 without MTP"), ("h200_sxm mtp", "H200 with MTP")):
        others = [c for c in curves.columns[1:] if c not in ("h200_sxm", "h200_sxm mtp")]
        rows = [f"| tokens/s/user | {reference} $/M | " + " | ".join(others) + " |",
                "|---" * (len(others) + 2) + "|"]
        for _, r in curves.iterrows():
            t = r["tokens_per_s_per_user"]
            cells = []
            for hw in others:
                band = envelopes.band_ratio(cheapness[hw], cheapness[reference], t)
                cut = envelopes.band_top(cheapness[hw], cheapness[reference], t) < (1 + envelopes.BAND_WIDTH) * t
                cells.append(f"{r[reference] / r[hw]:.1f}x ({band:.1f}x{'*' if cut else ''})"
                             if np.isfinite(r[reference] / r[hw]) else "-")
            ref = f"{r[reference]:.3g}" if np.isfinite(r[reference]) else "-"
            rows.append(f"| {t:g} | {ref} | " + " | ".join(cells) + " |")
        lines = [f"How many times {title} costs per million output tokens, at each interactivity (in brackets over "
                 f"+-{envelopes.BAND_WIDTH:.0%} of it: the geometric mean of the ratio, * where a frontier ends "
                 "inside that band and the band is cut there):", "", *rows, ""]
        cross = crossings(curves[["tokens_per_s_per_user", reference, *others]], reference, per_mw=per_mw)
        for hw, g in cross.groupby("hardware", sort=False):
            said = []
            for _, c in g.iterrows():
                if np.isfinite(c["from_tokens_per_s_per_user"]):
                    said.append(f"{c['factor']:g}x from {c['from_tokens_per_s_per_user']:g} tokens/s/user "
                                f"({c['tokens_per_s_per_mw_ratio_there']:.0f}x the tokens/s per MW there)")
                else:
                    said.append(f"never {c['factor']:g}x")
            top = g.iloc[0]
            lines.append(f"- {hw}: " + "; ".join(said) + f"; at most {top['max_ratio']:.1f}x, at "
                         f"{top['max_ratio_at_tokens_per_s_per_user']:g} tokens/s/user.")
        parts.append("\n".join(lines))
    parts.append(gen_results_source(["seed_claims"]))
    return "\n\n".join(parts)


GENERATORS: dict[str, Callable[[list[str]], str]] = {
    "experiment-reference": gen_experiment_reference,
    "file-schemas": gen_file_schemas,
    "commands": gen_commands,
    "table-columns": gen_table_columns,
    "calibration-parameters": gen_calibration_parameters,
    "fidelity-overall": gen_fidelity_overall,
    "fidelity-groups": gen_fidelity_groups,
    "fidelity-throughput": gen_fidelity_throughput,
    "fidelity-skipped": gen_fidelity_skipped,
    "results-source": gen_results_source,
    "seed-claims": gen_seed_claims,
}


# -- committed results of the slow commands ------------------------------------------------


def _skipped_reasons(out: Path) -> None:
    """validation.csv has a row per quantity; the docs keep only why rows were not scored."""
    import pandas as pd

    rows = pd.read_csv(out / "validation.csv", keep_default_na=False)
    reasons = rows.loc[rows["skipped"] != ""].drop_duplicates("id")["skipped"].value_counts()
    pd.DataFrame({"reason": reasons.index, "rows": reasons.to_numpy()}).to_csv(out / "skipped_rows.csv",
                                                                               index=False)


def _validation_after(out: Path) -> None:
    """The skipped rows' reasons, and the errors by stack that reports quote, shipped with the package."""
    _skipped_reasons(out)
    shipped = ROOT / "factory_sim" / "data" / "reference" / "fidelity_by_stack.csv"
    shutil.copyfile(out / "fidelity_by_stack.csv", shipped)


@dataclass
class ResultSet:
    """A command too slow to run for every docs build: its outputs the docs read are committed."""

    folder: Path
    command: str  # run in a scratch folder; {out} is where it writes, {jobs} its processes
    keep: tuple[str, ...]
    after: Callable[[Path], None] | None = None


RESULT_SETS = {
    "validation": ResultSet(DOCS / "results" / "validation", "factory-sim validate --out {out} --jobs {jobs}",
                            ("validation_summary.csv", "throughput_validation.csv", "skipped_rows.csv",
                             "validation.png"), _validation_after),
    "seed_claims": ResultSet(DOCS / "results" / "seed_claims",
                             "factory-sim frontier experiments/seed_claims.yaml --points 10 --out {out} --jobs {jobs}",
                             ("frontier.csv", "frontier.png")),
}


def rerun(name: str, jobs: int | None) -> None:
    """Run a result set's command at full size and replace its committed files."""
    from factory_sim import __version__

    rs = RESULT_SETS[name]
    jobs = jobs or os.cpu_count() or 1
    folder = scratch_folder()
    # the code that runs, read before the run: its `after` step may rewrite shipped data
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "factory_sim"], capture_output=True,
                           text=True).stdout.strip()
    try:
        started = time.perf_counter()
        code, text = run_command(rs.command.format(out="out", jobs=jobs), folder)
        wall = time.perf_counter() - started
        if code:
            raise SystemExit(f"{name}: the command failed:\n{text}")
        if rs.after is not None:
            rs.after(folder / "out")
        rs.folder.mkdir(parents=True, exist_ok=True)
        for f in rs.keep:
            shutil.copyfile(folder / "out" / f, rs.folder / f)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    prov = {"command": rs.command.format(out="DIR", jobs=jobs), "version": __version__,
            "commit": (commit or "unknown") + (" with uncommitted changes" if dirty else ""),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"), "wall_s": round(wall, 1), "jobs": jobs,
            "cpus": os.cpu_count()}
    (rs.folder / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n")
    print(f"{name}: {wall:.0f} s; wrote {rs.folder.relative_to(ROOT)}", file=sys.stderr)


# -- regenerating a document ---------------------------------------------------------------


def regenerate_regions(text: str) -> tuple[str, list[str]]:
    """The text with every generated region rebuilt, and the names of those that changed."""
    lines = text.split("\n")
    _, regions = parse(text)
    changed = []
    for r in sorted(regions, key=lambda r: r.start, reverse=True):
        if r.name not in GENERATORS:
            raise ValueError(f"line {r.start + 1}: no generator named '{r.name}' (known: {', '.join(GENERATORS)})")
        body = ["", *GENERATORS[r.name](r.args).rstrip("\n").split("\n"), ""]
        if lines[r.start + 1:r.end] != body:
            changed.append(r.name)
        lines[r.start + 1:r.end] = body
    return "\n".join(lines), changed[::-1]


def regenerate_console(text: str, name: str) -> str:
    """The text with every console block's outputs replaced by what its commands print now."""
    lines = text.split("\n")
    blocks, _ = parse(text)
    folder = None
    try:
        new_bodies = {}
        for b in blocks:
            if b.lang == "python":
                folder = folder or scratch_folder()
                run_python("\n".join(b.body), folder, f"{name}:{b.line}")
            if b.lang != "console":
                continue
            folder = folder or scratch_folder()
            body = []
            for c in commands(b):
                started = time.perf_counter()
                code, shown = run_command(c.text, folder)
                print(f"{name}:{b.line}: $ {c.text}  ({time.perf_counter() - started:.1f} s, exit {code})",
                      file=sys.stderr)
                body += c.shown + output_lines(shown)
            new_bodies[b.start] = body
        for b in sorted(blocks, key=lambda b: b.start, reverse=True):
            if b.start in new_bodies:
                lines[b.start + 1:b.end] = new_bodies[b.start]
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help="only these documents (default: README.md and docs/*.md)")
    ap.add_argument("--check", action="store_true", help="report stale generated regions; change nothing")
    ap.add_argument("--no-console", action="store_true", help="leave console blocks as they are")
    ap.add_argument("--rerun", action="append", default=[], choices=[*RESULT_SETS, "all"],
                    help="first run a slow command again and replace its committed results (repeatable)")
    ap.add_argument("--jobs", type=int, default=None, help="processes for --rerun (default: one per core)")
    args = ap.parse_args(argv)
    files = [f.resolve() for f in args.files] or documents()
    for name in RESULT_SETS if "all" in args.rerun else dict.fromkeys(args.rerun):
        rerun(name, args.jobs)
    stale = []
    for path in files:
        rel = path.relative_to(ROOT)
        text = path.read_text()
        new, changed = regenerate_regions(text)
        if args.check:
            stale += [f"{rel}: generated region '{n}' is stale" for n in changed]
            continue
        if not args.no_console:
            new = regenerate_console(new, str(rel))
        if new != text:
            path.write_text(new)
            print(f"updated {rel}", file=sys.stderr)
    if stale:
        print("\n".join(stale) + "\nrun: python docs/generate.py --no-console", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
