"""The documentation's examples are tests, so README.md and docs/*.md cannot drift from the code.

- Every console block runs: its `$ ` commands, in a scratch folder holding a copy of
  experiments/ (a document's blocks in order, sharing the folder), must print what the
  block shows, wall-clock timings aside. A block marked `<!-- docs-test: ... -->` runs at a
  smaller size than it shows and must print the same layout (headers, titles, labels) in
  the same order. `factory-sim run` without arguments reuses the session's one default run.
- Every python block runs.
- The generated regions (YAML references, command table, fidelity tables) are what
  `python docs/generate.py` makes from the code and the committed results now.
- Relative links and in-page anchors resolve; the quick start's test command is the CI's;
  every plot kind has a row in the plot guide.

After a change to what a command prints: `python docs/generate.py` rewrites every shown output.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
gen = sys.modules["docs_generate"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

RUNNABLE = ("console", "python")


def _examples(doc: Path) -> list:
    blocks, _ = gen.parse(doc.read_text())
    return [b for b in blocks if b.lang in RUNNABLE]


EXAMPLES = [(doc, i) for doc in gen.documents() for i in range(len(_examples(doc)))]


def _id(case) -> str:
    doc, i = case
    return f"{doc.relative_to(ROOT)}:{_examples(doc)[i].line}"


@dataclass
class DocRun:
    folder: Path
    blocks: list
    done: int = 0


@pytest.fixture(scope="module")
def doc_runs():
    runs: dict[Path, DocRun] = {}
    yield runs
    for run in runs.values():
        shutil.rmtree(run.folder, ignore_errors=True)


def _diff(shown: list[str], printed: list[str]) -> str:
    return "\n".join(difflib.unified_diff(shown, printed, "shown in the docs", "printed now", lineterm="", n=1))


def _run_block(doc: Path, block, folder: Path, request) -> None:
    name = f"{doc.relative_to(ROOT)}:{block.line}"
    d = gen.directive(block.directive)
    gen.apply_sets(folder, d)
    if block.lang == "python":
        gen.run_python("\n".join(block.body), folder, name)
        return
    for c in gen.commands(block):
        if c.text == "factory-sim run" and d.empty:
            code, printed = 0, request.getfixturevalue("default_run_stdout")
        else:
            code, printed = gen.run_command(c.text, folder, d.args)
        shown, now = gen.output_lines("\n".join(c.output)), gen.output_lines(printed)
        fails = any(line.startswith("factory-sim: error:") for line in shown)
        assert (code != 0) == fails, f"{name}: `{c.text}` exited {code}:\n{printed}"
        if d.empty:
            assert gen.normalise(shown) == gen.normalise(now), (
                f"{name}: `{c.text}` prints something else now; run `python docs/generate.py "
                f"{doc.relative_to(ROOT)}`\n{_diff(gen.normalise(shown), gen.normalise(now))}")
        else:
            expected = gen.layout(shown)
            assert expected, f"{name}: nothing in the shown output to check the layout by"
            assert gen.is_subsequence(expected, gen.layout(now)), (
                f"{name}: `{c.text}` at the test's size ({block.directive}) prints another layout than shown; "
                f"run `python docs/generate.py {doc.relative_to(ROOT)}`\n"
                f"{_diff(expected, gen.layout(now))}")


@pytest.mark.parametrize("case", EXAMPLES, ids=[_id(c) for c in EXAMPLES])
def test_example_runs_and_prints_what_it_shows(case, doc_runs, request):
    doc, index = case
    run = doc_runs.get(doc)
    if run is None:
        run = doc_runs[doc] = DocRun(gen.scratch_folder(), _examples(doc))
    while run.done < index:  # the blocks before it, which may write the files it reads
        _run_block(doc, run.blocks[run.done], run.folder, request)
        run.done += 1
    block = run.blocks[index]
    run.done = index + 1
    _run_block(doc, block, run.folder, request)


def test_generated_regions_are_current():
    stale = []
    for doc in gen.documents():
        _, changed = gen.regenerate_regions(doc.read_text())
        stale += [f"{doc.relative_to(ROOT)}: {name}" for name in changed]
    assert not stale, "stale generated regions (run `python docs/generate.py --no-console`): " + ", ".join(stale)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    text = doc.read_text()
    blocks, _ = gen.parse(text)
    inside = {i for b in blocks for i in range(b.start, b.end + 1)}
    lines = text.split("\n")
    heads = [_slug(line.lstrip("#")) for i, line in enumerate(lines) if line.startswith("#") and i not in inside]
    return set(heads) | set(re.findall(r'<a id="([^"]+)"></a>', text))


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", [*gen.documents(), ROOT / "CHANGELOG.md"], ids=lambda d: str(d.relative_to(ROOT)))
def test_links_resolve(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no such heading or anchor")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_quick_start_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    for command in ("python3 -m venv .venv && . .venv/bin/activate", "pip install . && factory-sim run",
                    "pip install '.[test]' && pytest"):
        assert command in readme
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("pip install '.[test]' && pytest")


def test_every_plot_kind_has_a_row_in_the_plot_guide():
    kinds = gen._attr("factory_sim.results.plots:PLOT_KINDS")
    guide = (ROOT / "docs" / "plot.md").read_text()
    assert [k for k in kinds if f"| `{k}` |" not in guide] == []

