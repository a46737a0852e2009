"""A factory of cells: independence, conservation at the front door, worker-count independence,
resumption, exact percentiles, and clean errors for bad factory files."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.cli import main
from factory_sim.config.factory import parse_factory
from factory_sim.config.workload import DiurnalArrivals, FixedLength, PoissonArrivals
from factory_sim.errors import ConfigError
from factory_sim.results import quantiles
from factory_sim.results.trace import OUTCOME_NAMES
from factory_sim.studies.assemble_factory import load_factory
from factory_sim.studies.factory import run_factory
from factory_sim.workload.front_door import FrontDoor, TenantStream

LENGTHS = {"arrivals": {"kind": "poisson", "rate_per_s": 1},
           "input_tokens": {"kind": "uniform", "low": 100, "high": 400},
           "output_tokens": {"kind": "uniform", "low": 20, "high": 120}}
H100 = {"hardware": "h100_sxm", "precision": "fp8", "aggregated": {"replicas": 1, "tp": 1, "max_batch": 64}}
B200 = {"hardware": "b200_hgx", "precision": "fp8", "prefill": {"replicas": 1}, "decode": {"replicas": 1}}


def factory(**top) -> dict:
    """Two tenants of Llama-3.1-8B: `chat` (diurnal) on two H100 cells and a B200 cell, `batch` on the H100s."""
    raw = {
        "name": "t", "seed": 7, "duration_s": 120, "window_s": 60, "warmup_s": 20, "lookahead_s": 20,
        "site": {"power_budget_mw": 1.0, "usd_per_mwh": 80},
        "front_door": {"step_s": 20},
        "tenants": [
            {"name": "chat", "model": "llama3_1_8b", "workload": LENGTHS, "slo": {"ttft_s": 1.0, "tpot_s": 0.05},
             "arrivals": {"kind": "diurnal", "peak_rate_per_s": 12, "trough_rate_per_s": 4, "period_s": 600}},
            {"name": "batch", "model": "llama3_1_8b", "workload": LENGTHS, "slo": {"ttft_s": 5.0, "tpot_s": 0.1},
             "arrivals": {"kind": "poisson", "rate_per_s": 4}},
        ],
        "cells": [
            {"name": "h100", "count": 2, "model": "llama3_1_8b", "fleet": H100, "tenants": {"chat": 1, "batch": 1}},
            {"name": "b200", "model": "llama3_1_8b", "fleet": B200, "tenants": {"chat": 2}},
        ],
    }
    raw.update(top)
    return copy.deepcopy(raw)


def independent() -> dict:
    """Cells sharing nothing: each tenant has its own cell."""
    return factory(cells=[
        {"name": "a", "model": "llama3_1_8b", "fleet": H100, "tenants": {"chat": 1}},
        {"name": "b", "model": "llama3_1_8b", "fleet": B200, "tenants": {"batch": 1}},
    ])


def write(tmp_path: Path, raw: dict, name: str = "factory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run(tmp_path: Path, raw: dict, out: str = "out", **kw):
    return run_factory(load_factory(write(tmp_path, raw, f"{out}.yaml")), tmp_path / out, progress=False,
                       **({"jobs": 1} | kw))


def partitions(out: Path) -> dict[str, pd.DataFrame]:
    return {str(p.relative_to(out)): pd.read_parquet(p) for p in sorted(out.glob("partitions/*/*/part.parquet"))}


def assert_same_partitions(a: Path, b: Path) -> None:
    pa_, pb = partitions(a), partitions(b)
    assert pa_.keys() == pb.keys() and pa_
    for name in pa_:
        pd.testing.assert_frame_equal(pa_[name], pb[name])


# -- independence ------------------------------------------------------------------------------
def test_independent_cells_give_what_each_cell_gives_alone(tmp_path):
    whole = run(tmp_path, independent(), "whole")
    for cell, tenant in (("a", "chat"), ("b", "batch")):
        alone_raw = independent()
        alone_raw["cells"] = [c for c in alone_raw["cells"] if c["name"] == cell]
        alone_raw["tenants"] = [t for t in alone_raw["tenants"] if t["name"] == tenant]
        alone = run(tmp_path, alone_raw, f"alone_{cell}")
        for window in (0, 1):
            rel = f"partitions/cell={cell}/window={window}/part.parquet"
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "whole" / rel),
                                          pd.read_parquet(tmp_path / f"alone_{cell}" / rel))
        mine = whole.metrics[(whole.metrics["by"] == "cell") & (whole.metrics["group"] == cell)].reset_index(drop=True)
        theirs = alone.metrics[alone.metrics["by"] == "cell"].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, theirs)
        assert mine["served"].iloc[0] > 50


# -- conservation at the front door --------------------------------------------------------------
def test_every_arrival_is_served_rejected_or_failed_over_exactly_once(tmp_path):
    raw = factory(front_door={"step_s": 20, "outages": [{"cell": "b200", "start_s": 40, "end_s": 80},
                                                        {"cell": "h100", "start_s": 100, "end_s": 120}]})
    # a budget between the cells' idle draw and their draw under this load, so that the cap binds
    door = load_factory(write(tmp_path, raw)).front_door
    idle_mw, loaded_mw = door.idle_kw.sum() / 1000, min(door.power_kw(j, 0.0).sum() for j in range(6)) / 1000
    raw["site"]["power_budget_mw"] = float(idle_mw + 0.5 * (loaded_mw - idle_mw))
    result = run(tmp_path, raw)
    ledger = result.ledger
    by_step = ledger.groupby(["tenant", "step"]).sum(numeric_only=True)
    assert (by_step["arrivals_intended"] == by_step["served_by_cell"] + by_step["rejected_no_cell"]
            + by_step["rejected_power_cap"]).all()
    assert (by_step["failed_over_out"] == by_step["failed_over_in"]).all()
    assert ledger["of_which_failed_over"].sum() > 0 and ledger["rejected_power_cap"].sum() > 0
    assert ledger.loc[ledger["tenant"] == "batch", "rejected_no_cell"].sum() > 0  # both H100 cells down
    # the partitions hold exactly what the front door sent each cell, each request once, with one outcome
    rows = pd.concat([df.assign(cell=name.split("/")[1].removeprefix("cell="))
                      for name, df in partitions(tmp_path / "out").items()])
    sent = ledger.groupby(["tenant", "step", "cell"])["served_by_cell"].sum()
    got = rows.groupby(["tenant", "step", "cell"], observed=True).size()
    assert ({(t, int(j), c): int(n) for (t, j, c), n in got.items() if n}
            == {(t, int(j), c): int(n) for (t, j, c), n in sent.items() if n})
    assert rows["outcome"].isin(list(OUTCOME_NAMES)).all()
    assert (rows["routed_from"] != "").sum() == ledger["of_which_failed_over"].sum()
    assert not rows.duplicated(["cell", "tenant", "arrival_s", "input_tokens", "output_tokens"]).any()
    total = result.metrics[result.metrics["by"] == "factory"].iloc[0]
    assert total["arrivals"] == ledger["arrivals_intended"].sum()
    assert total["arrivals"] == (total["served"] + total["rejected_at_front_door"] + total["rejected_at_cells"]
                                 + total["timed_out"] + total["failed"] + total["unfinished"])
    assert (result.power["draw_mw"] <= raw["site"]["power_budget_mw"] + 1e-12).all()


def _door(weights, up, failover, budget_kw):
    cells = tuple(f"c{i}" for i in range(len(weights)))
    tenant = TenantStream(name="x", arrivals=PoissonArrivals(rate_per_s=50.0), input_tokens=FixedLength(tokens=10),
                          output_tokens=FixedLength(tokens=10), cells=tuple(range(len(weights))),
                          weights=tuple(weights))
    outages = tuple(() if ok else ((0.0, 10.0),) for ok in up)
    return FrontDoor(seed=1, step_s=10.0, cells=cells, tenants=(tenant,), outages=outages, failover=failover,
                     capacity_req_per_s=(20.0,) * len(weights), idle_kw=(1.0,) * len(weights),
                     peak_kw=(5.0,) * len(weights), budget_kw=budget_kw)


@given(weights=st.lists(st.floats(0.1, 10), min_size=1, max_size=5), data=st.data(), failover=st.booleans(),
       budget_kw=st.floats(5.5, 40))
def test_the_split_accounts_for_every_arrival(weights, data, failover, budget_kw):
    up = data.draw(st.lists(st.booleans(), min_size=len(weights), max_size=len(weights)))
    door = _door(weights, up, failover, budget_kw)
    split = door.split(0, 0)
    assert split.intended.sum() == split.arrivals
    assert split.served.sum() + split.shed.sum() + split.unrouted.sum() == split.arrivals
    assert (split.served >= 0).all()
    for b, ok in enumerate(up):  # a cell that is down receives nothing
        assert ok or split.moved[:, b].sum() == 0
    if not failover or not any(up):
        assert split.unrouted.sum() == sum(n for n, ok in zip(split.intended, up, strict=True) if not ok)
    assert door.power_kw(0).sum() <= budget_kw + 1e-9
    for c in range(len(weights)):  # requests drawn for each cell: as many as the split sent it
        assert sum(g.arrival_s.size for g in door.requests(0, 0, c)) == split.served[:, c].sum()


def test_diurnal_step_counts_follow_the_rate_curve():
    arr = DiurnalArrivals(peak_rate_per_s=100, trough_rate_per_s=10, period_s=3600, trough_at_s=0)
    tenant = TenantStream(name="x", arrivals=arr, input_tokens=FixedLength(tokens=1),
                          output_tokens=FixedLength(tokens=1), cells=(0,), weights=(1.0,))
    door = FrontDoor(seed=3, step_s=60.0, cells=("c",), tenants=(tenant,), outages=((),), failover=True,
                     capacity_req_per_s=(1e6,), idle_kw=(0.0,), peak_kw=(1.0,), budget_kw=10.0)
    expected = np.array([door.expected_arrivals(0, j) for j in range(60)])
    assert expected.sum() == pytest.approx(55 * 3600, rel=1e-9)  # the mean rate over a whole period
    counts = np.array([door.split(0, j).arrivals for j in range(60)])
    assert abs(counts.sum() - expected.sum()) < 4 * np.sqrt(expected.sum())
    times = np.concatenate([g.arrival_s for j in (0, 30) for g in door.requests(0, j, 0)])
    assert ((times >= 0) & (times < 60)).sum() == counts[0] and ((times >= 1800) & (times < 1860)).sum() == counts[30]


# -- the number of workers -------------------------------------------------------------------
def test_results_do_not_depend_on_the_workers(tmp_path):
    from dask.distributed import LocalCluster

    one = run(tmp_path, factory(), "one")
    two = run(tmp_path, factory(), "two", jobs=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        dask = run(tmp_path, factory(), "dask", scheduler=cluster.scheduler_address)
    for other, name in ((two, "two"), (dask, "dask")):
        assert_same_partitions(tmp_path / "one", tmp_path / name)
        pd.testing.assert_frame_equal(one.metrics, other.metrics)
        pd.testing.assert_frame_equal(one.ledger, other.ledger)
    assert one.ran == two.ran == dask.ran == 6


# -- resumption --------------------------------------------------------------------------------
def test_a_killed_run_resumes_and_a_changed_cell_is_recomputed(tmp_path):
    full = run(tmp_path, factory(), "ref")
    out = tmp_path / "out"
    first = run(tmp_path, factory(), "out")
    # a run killed part-way: two partitions never written, a temporary file left behind
    for rel in ("cell=h100-1/window=1", "cell=b200/window=0"):
        for f in (out / "partitions" / rel).iterdir():
            f.unlink()
    (out / "partitions" / "cell=b200" / "window=0" / ".part.x.tmp").write_bytes(b"torn")
    resumed = run(tmp_path, factory(), "out")
    assert (first.ran, resumed.ran, resumed.reused) == (6, 2, 4)
    assert_same_partitions(tmp_path / "ref", out)
    pd.testing.assert_frame_equal(full.metrics, resumed.metrics)
    again = run(tmp_path, factory(), "out")
    assert (again.ran, again.reused) == (0, 6)
    # change one cell: only its windows run again
    changed = factory()
    changed["cells"][1]["fleet"] = copy.deepcopy(B200) | {"decode": {"replicas": 2}}
    after = run(tmp_path, changed, "out")
    assert (after.ran, after.reused) == (2, 4)
    manifest = yaml.safe_load((out / "manifest.json").read_text())
    assert len(manifest["tasks"]) == 6 and all(len(t["key"]) == 64 for t in manifest["tasks"].values())


# -- exact percentiles ---------------------------------------------------------------------------
def test_percentiles_are_exactly_numpys_over_the_partitions(tmp_path, monkeypatch):
    monkeypatch.setattr(quantiles, "GATHER_MAX", 8)  # force several radix passes
    result = run(tmp_path, factory(), "out")
    rows = pd.concat([df.assign(cell=name.split("/")[1].removeprefix("cell="))
                      for name, df in partitions(tmp_path / "out").items()])
    m = result.metrics.set_index(["by", "group"])
    for (by, group), part in [(("factory", "all"), rows), *((("cell", c), p) for c, p in rows.groupby("cell")),
                              *((("tenant", t), p) for t, p in rows.groupby("tenant", observed=True))]:
        for lat in ("ttft", "tpot"):
            values = part[f"{lat}_s"].dropna().to_numpy()
            got = [m.loc[(by, group), f"{lat}_p{p}_s"] for p in (50, 90, 99)]
            assert got == list(np.percentile(values, [50, 90, 99])), (by, group, lat)
        assert m.loc[(by, group), "slo_attainment"] == pytest.approx(part["met_slo"].mean())


@given(st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=60), min_size=1, max_size=4),
       st.sampled_from([1, 3, 1 << 16]))
def test_radix_selection_equals_numpy(chunks, gather_max):
    keys = {u: np.sort(quantiles.float_keys(np.array(c, dtype=float))) for u, c in enumerate(chunks)}
    values = np.concatenate([np.array(c, dtype=float) for c in chunks])
    if not values.size:
        return
    level0 = {u: quantiles.answer(k, 0, 0, quantiles.LEVEL_BITS) for u, k in keys.items()}
    old, quantiles.GATHER_MAX = quantiles.GATHER_MAX, gather_max
    try:
        got = quantiles.exact_percentiles({"g": list(keys)}, {"g": values.size}, level0,
                                          lambda qs: {q: quantiles.answer(keys[q.unit], q.prefix, q.bits, q.next_bits)
                                                      for q in qs}, (0, 37.5, 50, 99, 100))
    finally:
        quantiles.GATHER_MAX = old
    assert [got["g"][p] for p in (0, 37.5, 50, 99, 100)] == list(np.percentile(values, [0, 37.5, 50, 99, 100]))


# -- the command line and bad files ----------------------------------------------------------------
def test_the_run_command_detects_a_factory_and_writes_its_files(tmp_path, capsys):
    exp = {"name": "e", "model": "llama3_1_8b", "workload": "chat_1k1k",
           "slo_tiers": [{"name": "s", "ttft_s": 1, "tpot_s": 0.05}],
           "fleets": [{"name": "x", **H100}, {"name": "y", **B200}]}
    write(tmp_path, exp, "exp.yaml")
    raw = factory(cells=[{"name": "h100", "experiment": "exp.yaml", "fleet": "x", "tenants": {"chat": 1, "batch": 1}}])
    path = write(tmp_path, raw)
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--jobs", "1"]) == 0
    cap = capsys.readouterr()
    assert "tenant" in cap.out and "front door:" in cap.out and "TTFT p99 s" in cap.out
    assert "task/s" not in cap.err and "\r" not in cap.err  # no progress bar when stderr is not a terminal
    for name in ("metrics.csv", "front_door.csv", "power.csv", "manifest.json", "factory.yaml"):
        assert (tmp_path / "o" / name).is_file()
    metrics = pd.read_csv(tmp_path / "o" / "metrics.csv")
    assert set(metrics["by"]) == {"factory", "cell", "tenant", "model", "hardware", "window"}


def _bad(mutate):
    raw = factory()
    mutate(raw)
    return raw


BAD = [
    (lambda r: r["cells"][0]["tenants"].update(nobody=1), "cells[0].tenants.nobody", "no tenant named"),
    (lambda r: r["tenants"][1].update(model="llama3_1_70b"), "cells[0].tenants.batch", "sends llama3_1_70b"),
    (lambda r: r.update(window_s=50), "window_s", "whole number of front-door steps"),
    (lambda r: r["front_door"].update(outages=[{"cell": "h999", "start_s": 0, "end_s": 20}]),
     "front_door.outages[0].cell", "no cell named"),
    (lambda r: r["front_door"].update(outages=[{"cell": "b200", "start_s": 5, "end_s": 20}]),
     "front_door.outages[0].start_s", "must fall on a front-door step"),
    (lambda r: r["cells"][1]["fleet"]["decode"].update(replicas=0), "cells[1].fleet.decode.replicas",
     "must be at least 1"),
    (lambda r: r["cells"][0]["fleet"].update(hardwre="h100_sxm"), "cells[0].fleet.hardwre", "unknown key"),
    (lambda r: [x.update(model="llama3_1_405b") for x in r["tenants"] + r["cells"]], "cells[0].fleet.aggregated",
     "does not fit"),
    (lambda r: r["site"].update(power_budget_mw=0.001), "site.power_budget_mw", "at idle alone"),
    (lambda r: r["cells"][0].update(experiment="missing.yaml", model=None, fleet=None), "cells[0].experiment",
     "no experiment file"),
    (lambda r: r["tenants"][0].update(workload="agentic_sessions"), "tenants[0].workload", "no input/output length"),
    (lambda r: r["tenants"].append(dict(r["tenants"][0], name="idle")), "tenants[2]", "no cell serves"),
    (lambda r: r["cells"].append(dict(r["cells"][1])), "cells", "repeated: b200"),
    (lambda r: r["site"].pop("usd_per_mwh"), "site.usd_per_mwh", "required"),
]


@pytest.mark.parametrize("mutate, path, message", BAD)
def test_bad_factory_files_get_a_clear_error(tmp_path, mutate, path, message):
    raw = _bad(mutate)
    with pytest.raises(ConfigError) as info:
        p = write(tmp_path, raw)
        load_factory(p)
    assert info.value.path == path and message in info.value.message, str(info.value)


def test_bad_factory_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    path = write(tmp_path, _bad(lambda r: r.update(window_s=50)))
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "window_s" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    good = write(tmp_path, factory(), "good.yaml")
    assert main(["run", str(good), "--requests", "10"]) == 2
    assert main(["run", str(good), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
    assert not (tmp_path / "o" / "partitions").exists()


@pytest.mark.parametrize("case, gpus_expected, cells", [
    ("factory_case.yaml", {"gb200_nvl72": 36_000, "gb300_nvl72": 28_800, "h200_sxm": 19_840, "b200_hgx": 15_040}, 334),
    ("factory_10k_case.yaml", {"gb200_nvl72": 3_456, "gb300_nvl72": 2_880, "h200_sxm": 1_920, "b200_hgx": 1_600}, 33),
])
def test_the_benchmark_cases_are_the_factories_they_say(case, gpus_expected, cells):
    factory = load_factory(Path(__file__).resolve().parents[2] / "benchmarks" / case)
    gpus = {}
    for cell in factory.cells:
        for hw, n in cell.gpus_by_hardware.items():
            gpus[hw] = gpus.get(hw, 0) + n
    assert gpus == gpus_expected and len(factory.cells) == cells
    door = factory.front_door
    for model in ("deepseek_r1", "kimi_k2", "gpt_oss_120b", "llama3_3_70b"):  # offered load near 60% of capacity
        capacity = sum(c.capacity_req_per_s for c in factory.cells if c.model == model)
        offered = sum(door.expected_arrivals(t, j) for t, s in enumerate(door.tenants) for j in range(60)
                      if factory.cells[s.cells[0]].model == model) / 3600
        assert 0.55 < offered / capacity < 0.65, model


def test_schema_names_the_field():
    with pytest.raises(ConfigError) as info:
        parse_factory({**factory(), "cels": []})
    assert info.value.path == "cels"
