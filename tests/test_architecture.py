"""The architecture of docs/architecture.md, held by tests: who may import whom, no import
circles, modules a reader can hold in their head, and every package shipped."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "factory_sim"

# The HTML report describes a run as a whole: the fleets as assembled, the stacks' held-out
# errors; it reads every layer, and no layer reads it.
REPORTS = ("factory_sim.results.html_report", "factory_sim.results.report_parts", "factory_sim.results.report_words")

# Modules allowed past ~600 lines, and why.
LONG_MODULES: dict[str, str] = {
    "factory_sim.cli": "the argparse declarations and output of eleven commands: the whole command line in one place",
    "factory_sim.sim.replica": "one scheduler's state machine, run once per simulated step: its rules stay in one class "
                               "whose hot path reads its own attributes rather than calling into helpers",
}
MAX_LINES = 640


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every factory_sim module's factory_sim imports, at any depth (lazy imports count too)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("factory_sim"):
                # `from factory_sim.x import y` imports x, or the module x.y
                found.add(f"{node.module}.{node.names[0].name}" if f"{node.module}.{node.names[0].name}" in modules
                          else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("factory_sim")}
        graph[name] = {m for m in found if m in modules and m != name and m != "factory_sim"}
    return graph


def test_no_import_circles():
    graph = _imports()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize(("layer", "allowed"), [
    # schemas: the catalog reads files, nothing of the simulator
    ("factory_sim.config", ("factory_sim.config", "factory_sim.catalog", "factory_sim.errors")),
    # pure, vectorized step time and memory: no SimPy, no queues
    ("factory_sim.perf", ("factory_sim.perf", "factory_sim.config", "factory_sim.catalog", "factory_sim.errors")),
    # the request generator knows workloads, not fleets
    ("factory_sim.workload", ("factory_sim.workload", "factory_sim.config", "factory_sim.catalog",
                              "factory_sim.errors")),
    # the event loop writes the trace; it never computes a percentile or a price
    ("factory_sim.sim", ("factory_sim.sim", "factory_sim.perf", "factory_sim.config", "factory_sim.results.trace",
                         "factory_sim.errors")),
    # metrics and tables read the trace; they never touch SimPy
    ("factory_sim.results", ("factory_sim.results", "factory_sim.config", "factory_sim.catalog",
                             "factory_sim.workload", "factory_sim.errors", "factory_sim.progress")),
])
def test_each_layer_imports_only_what_is_below_it(layer, allowed):
    for module, imports in _imports().items():
        if module in REPORTS:
            continue
        if module == layer or module.startswith(layer + "."):
            bad = sorted(m for m in imports if not any(m == a or m.startswith(a + ".") for a in allowed))
            assert not bad, f"{module} imports {bad}"


def test_simpy_lives_in_sim_only():
    for path in PACKAGE.rglob("*.py"):
        if "sim" != path.parent.name:
            assert "import simpy" not in path.read_text(), path


def test_modules_stay_short():
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        name = _module_name(path)
        assert lines <= MAX_LINES or name in LONG_MODULES, f"{name} has {lines} lines"


def test_every_package_is_shipped():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {_module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    for package, folder in config["package-dir"].items():
        assert (ROOT / folder).is_dir() and package in listed
        assert any((ROOT / folder).glob("*.yaml")), folder


def test_no_layer_reads_the_report():
    for module, imports in _imports().items():
        if module not in REPORTS and module != "factory_sim.cli":
            assert not set(imports) & set(REPORTS), f"{module} imports the HTML report"
