"""``-j 1`` against an earlier retap, in the same run: does the default path stay as fast?

The earlier revision (``--baseline REV``, by default the last commit before parallel
execution landed) is exported with ``git archive`` into a temp dir. Each measurement runs
in a fresh child process whose ``PYTHONPATH`` starts with either that copy's ``src/`` or this
checkout's, alternating between the two so a noisy spell hits both; the child reports which
``retap`` it imported. Workflows: ``chain`` with the store in memory and in SQLite (default
durability), the figures ``throughput`` shows, at the same size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from benchmarks.common import REPEAT, Row, Stat, rate, spread_of, temp_dir

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "7b3e949"  # main before the App was split and parallel execution landed
CASES = ("memory", "sqlite")

# What a child runs: one chain in one store, then a JSON line with its rate.
CHILD = """
import json, sys, tempfile, time
from pathlib import Path
import retap
from benchmarks.common import chain, open_store, run_app
n, kind = int(sys.argv[1]), sys.argv[2]
path = Path(tempfile.mkdtemp(prefix="retap-bench-")) / "store.db"
store = retap.MemoryStore() if kind == "memory" else open_store(path)
result, took = run_app(chain(n), store)
store.close()
assert result.status == "done", result.status
print(json.dumps({"rate": result.executed / took, "retap": retap.__file__}))
"""


def export(revision: str, into: Path) -> Path:
    """``src/`` of ``revision`` under ``into``; its path."""
    archive = subprocess.run(["git", "archive", revision, "src"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def child_rate(src: Path, n: int, kind: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(src), str(ROOT)))}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), kind], cwd=tempfile.gettempdir(),
                         env=env, check=True, capture_output=True, text=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    if not Path(report["retap"]).resolve().is_relative_to(src.resolve()):
        raise RuntimeError(f"the child imported {report['retap']}, not retap from {src}")
    return float(report["rate"])


def run(quick: bool = False, revision: str = BASELINE) -> list[Row]:
    n = 2_000 if quick else 50_000
    rates: dict[tuple[str, str], list[float]] = {}
    with temp_dir() as tmp:
        sources = {"baseline": export(revision, tmp / "baseline"), "now": ROOT / "src"}
        for _ in range(REPEAT):
            for kind in CASES:
                for version, src in sources.items():
                    rates.setdefault((kind, version), []).append(child_rate(src, n, kind))
    rows = []
    for kind in CASES:
        now, then = Stat(rates[(kind, "now")]), Stat(rates[(kind, "baseline")])
        ratio = now.best / then.best
        rows.append(Row("baseline", f"chain, {kind}, -j 1: this checkout", rate(now.best),
                        spread_of(now, rate), ratio=f"{ratio:.2f}x {revision}",
                        target=">= 0.95x baseline", met=ratio >= 0.95,
                        note=f"{n + 2:,} dispatches per run, each in a fresh process"))
        rows.append(Row("baseline", f"chain, {kind}, -j 1: {revision}", rate(then.best),
                        spread_of(then, rate)))
    return rows
