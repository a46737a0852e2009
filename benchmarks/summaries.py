"""Before/after check for changes that must not move a number: run every shipped experiment,
plan, sweep and frontier at small sizes and keep their result CSVs, then compare two runs.

    python benchmarks/summaries.py run OUT_DIR         # ~6 minutes on 2 cores
    python benchmarks/summaries.py compare BEFORE AFTER

Run it on the old commit and the new one (same machine, same package versions); compare
prints each CSV as same / DIFF / MISSING and exits 1 on any difference.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands(out: Path) -> list[tuple[str, list[str]]]:
    runs = []
    for exp in sorted((ROOT / "experiments").glob("*.yaml")):
        name = exp.stem
        if name.startswith("sweep_"):
            args = ["sweep", str(exp), "--out", str(out / f"{name}.csv"), "--jobs", "2"]
        elif name.startswith("plan_"):
            args = ["plan", str(exp), "--out", str(out / f"{name}.csv"), "--jobs", "2"]
        elif name.startswith("factory"):
            args = ["run", str(exp), "--out", str(out / name), "--jobs", "2", "--quiet"]
        elif name == "seed_claims":
            args = ["frontier", str(exp), "--points", "3", "--out", str(out / name)]
        else:
            args = ["run", str(exp), "--requests", "600", "--out", str(out / name), "--jobs", "2", "--quiet"]
        runs.append((name, args))
    runs.append(("default", ["run", "--requests", "600", "--out", str(out / "default"), "--jobs", "2", "--quiet"]))
    runs.append(("validate", ["validate", "--limit", "40", "--out", str(out / "validate")]))
    return runs


def run(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name, args in commands(out):
        with open(out / f"{name}.log", "w") as log:
            rc = subprocess.run([sys.executable, "-m", "factory_sim.cli", *args], stdout=log, stderr=log).returncode
        print(f"{name}: exit {rc}")
        failed += rc != 0
    return 1 if failed else 0


def compare(before: Path, after: Path) -> int:
    differ = 0
    for f in sorted(p.relative_to(before) for p in before.rglob("*.csv")):
        if not (after / f).exists():
            print(f"MISSING {f}")
            differ += 1
        elif (before / f).read_bytes() != (after / f).read_bytes():
            print(f"DIFF    {f}")
            differ += 1
        else:
            print(f"same    {f}")
    return 1 if differ else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        sys.exit(run(Path(sys.argv[2])))
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    sys.exit(__doc__)
