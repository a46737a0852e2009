"""The HTML report: one page per command's results, checked in a real browser where one is
installed (Debian: apt-get install chromium), and for its content everywhere."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml

from factory_sim.cli import main
from factory_sim.config.stack import load_stack
from factory_sim.fidelity.stack_errors import error_by_stack, stack_digest
from factory_sim.results.html_report import collect, render
from tests import browser
from tests.helpers import SMALL

needs_browser = pytest.mark.skipif(
    browser.find_browser() is None,
    reason="no Chromium found (looked for " + ", ".join(browser.BROWSERS) + "); install Debian's chromium "
           "package (apt-get install chromium) to check the report in a real browser")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small run written with --report, shared by the tests below."""
    root = tmp_path_factory.mktemp("run")
    exp = root / "exp.yaml"
    exp.write_text(SMALL)
    assert main(["run", str(exp), "--out", str(root / "res"), "--report", "--quiet", "--jobs", "1"]) == 0
    return root / "res"


def _self_contained(html: str) -> None:
    """Nothing the page loads comes from elsewhere: every src and href is data: or in-page."""
    for attr, value in re.findall(r'\b(src|href)="([^"]*)"', html):
        assert value.startswith(("data:", "#")), f"{attr}={value[:60]}"
    assert "<link rel=\"stylesheet\"" not in html and "@import" not in html


@needs_browser
def test_a_run_report_in_a_real_browser(run_dir, tmp_path):
    page = run_dir / "report.html"
    _self_contained(page.read_text())
    seen = browser.probe(page, tmp_path)
    assert seen["errors"] == []
    assert seen["title"].startswith("small") and seen["h1"] == "small"
    summary = next(t for t in seen["tables"] if t["caption"].startswith("Summary"))
    assert "tok/s/user p50" in summary["headers"] and "cost vs ref" in summary["headers"]
    assert [(r[0], r[1]) for r in summary["rows"]] == [("h100", "relaxed"), ("h100", "impossible"),
                                                       ("b200_disagg", "relaxed"), ("b200_disagg", "impossible")]
    csv = pd.read_csv(run_dir / "summary.csv")
    b200 = csv[(csv["fleet"] == "b200_disagg") & (csv["tier"] == "relaxed")].iloc[0]
    row = summary["rows"][2]
    assert row[summary["headers"].index("cost vs ref")] == f"{b200['cost_ratio_to_reference']:.3f}x"
    # the figures a run has: cost bars and latency distributions, each decoded by the browser
    assert [i["alt"] for i in seen["images"]] == ["Cost per million goodput tokens", "Latency distributions"]
    assert all(i["complete"] and i["naturalWidth"] > 0 for i in seen["images"])
    # a click on the first numeric header sorts by it (rows without a value last)
    values = [v for v in seen["sorted"]["values"] if v is not None]
    assert values == sorted(values) and seen["sorted"]["values"][: len(values)] == values
    assert any(t["caption"].startswith("Fidelity") for t in seen["tables"])
    shot = browser.screenshot(page, tmp_path / "run_report.png", tmp_path)
    assert shot.stat().st_size > 10_000
    print(f"screenshot of the run report: {shot}")


@needs_browser
def test_the_browser_check_sees_a_broken_figure_and_a_script_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><title>t</title></head><body><h1>t</h1>'
                    '<img alt="broken" src="data:image/png;base64,AAAA">'
                    '<script>throw new Error("boom")</script></body></html>')
    seen = browser.probe(page, tmp_path)
    assert seen["images"][0]["naturalWidth"] == 0
    assert any("boom" in e for e in seen["errors"])


def test_run_report_content(run_dir):
    html = (run_dir / "report.html").read_text()
    _self_contained(html)
    for words in ("What was simulated", "Llama-3.1-8B-Instruct", "relaxed: TTFT ≤ 1 s and TPOT ≤ 50 ms",
                  "Layouts are fixed by the experiment", "cost vs ref is &#39;-&#39; in tier impossible",
                  "The experiment as run (YAML)", "name: small", "trtllm_hopper", "factory-sim run"):
        assert words in html, words


def test_fidelity_from_validation_results_and_stale_profiles(run_dir, tmp_path):
    hopper = load_stack("trtllm_hopper")
    rows = [{"id": f"r{i}", "quantity": "tpot_ms", "rel_error": e, "config": "agg 1x[8xh100] stack=trtllm_hopper",
             "sample": "out of sample", "skipped": ""} for i, e in enumerate((0.1, -0.3, 0.2))]
    rows.append({**rows[0], "rel_error": 5.0, "sample": "in sample"})  # fitted to: not held out
    table = error_by_stack(pd.DataFrame(rows))
    held = table[table["sample"] == "out of sample"].iloc[0]
    assert (held["stack"], held["rows"], held["median_abs_error"]) == ("trtllm_hopper", 3, pytest.approx(0.2))
    assert held["stack_digest"] == stack_digest(hopper)
    res = collect(run_dir)
    res.stack_errors, res.files = table, res.files + ["fidelity_by_stack.csv"]
    assert "20.0% (3 rows)" in render(res)
    res.stack_errors = table.assign(stack_digest="0123456789ab")  # computed for another version of the profile
    html = render(res)
    assert "20.0% (3 rows)" not in html and "its profile has changed since these errors were computed" in html


def test_frontier_plan_and_sweep_reports(tmp_path):
    from tests.studies.test_capacity import PLAN
    from tests.studies.test_sweep import _sweep_file

    exp = tmp_path / "exp.yaml"
    exp.write_text(SMALL)
    assert main(["frontier", str(exp), "--points", "3", "--out", str(tmp_path / "fr"), "--report", "--quiet",
                 "--jobs", "1"]) == 0
    html = (tmp_path / "fr" / "report.html").read_text()
    _self_contained(html)
    for words in ("Seed claims", "Where h100_sxm costs 15x / 35x more", "Throughput against interactivity",
                  "Cost per million output tokens", "closed-loop clients", "b200_hgx vs h100_sxm: times cheaper"):
        assert words in html, words
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == 2

    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(PLAN))
    assert main(["plan", str(plan), "--out", str(tmp_path / "plan.csv"), "--report", "--quiet", "--jobs", "1"]) == 0
    html = (tmp_path / "plan.html").read_text()
    for words in ("Capacity plan", "h100_node", "b200_pd", "120 requests/s", "Fleet cost per candidate"):
        assert words in html, words

    sweep = _sweep_file(tmp_path)
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "sw.csv"), "--report", "--quiet", "--jobs", "1"]) == 0
    html = (tmp_path / "sw.html").read_text()
    for words in ("request rate (requests/s)", "h100 aggregated: most sequences per replica",
                  "Fleet-mix surface: h100, tier relaxed", "every combination of"):
        assert words in html, words
    # the same page again from the files alone (without the sweep file, which it says)
    assert main(["report", str(tmp_path / "sw.csv"), "--out", str(tmp_path / "again.html")]) == 0
    assert "Fleet-mix surface: h100, tier relaxed" in (tmp_path / "again.html").read_text()


def test_report_input_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no results factory-sim writes" in capsys.readouterr().err
    exp = tmp_path / "exp.yaml"
    exp.write_text(SMALL)
    assert main(["run", str(exp), "--report", "--quiet"]) == 2
    assert "--report: the report is made from the results files: give --out" in capsys.readouterr().err


def test_the_shipped_error_table_is_of_the_profiles_as_they_are():
    """fidelity_by_stack.csv (what the report shows without a validation of its own) was
    computed for the built-in stack profiles as they are now."""
    from factory_sim.fidelity.stack_errors import load_stack_errors

    shipped = load_stack_errors()
    assert shipped is not None and {"in sample", "out of sample"} <= set(shipped["sample"])
    for name, digest in shipped.groupby("stack")["stack_digest"].first().items():
        assert digest == stack_digest(load_stack(name)), (
            f"{name} changed since fidelity_by_stack.csv was computed: run `factory-sim validate --out DIR` and copy "
            "DIR/fidelity_by_stack.csv to factory_sim/data/reference/")


def test_validate_report(tmp_path):
    out = tmp_path / "val"
    assert main(["validate", "--limit", "2", "--system", "h100_sxm", "--out", str(out), "--report", "--quiet",
                 "--jobs", "1"]) == 0
    html = (out / "report.html").read_text()
    _self_contained(html)
    for words in ("Fidelity against published results", "Measured points: predicted against published",
                  "Throughput: predicted against published", "Error by software-stack profile",
                  "trtllm_hopper", "The ten largest errors", "factory-sim validate --limit 2"):
        assert words in html, words
    table = pd.read_csv(out / "fidelity_by_stack.csv")
    assert set(table["quantity"]) == {"ttft_ms", "tpot_ms", "output_tok_s_per_gpu"}
    assert (table["rows"] >= 1).all() and table["median_abs_error"].between(0, 10).all()
