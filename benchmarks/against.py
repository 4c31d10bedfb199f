"""The chain's throughput at this checkout against an earlier commit, in the same run: what
a change costs on the path every dispatch takes (issue 11 asks that keeping attempts,
events and captured output cost at most 10% of it).

    python benchmarks/against.py REF [--n 20000] [--rounds 5]

REF is checked out into a temporary worktree; each round runs the ``chain`` workflow of
``benchmarks/common.py`` (trivial tasks, one after another) in memory and in SQLite (the
default durability) once with REF's code and once with this checkout's, alternating which
goes first, each in a fresh process. It prints dispatches per second (best of the rounds,
and the median) for each, and the ratio this/REF. Figures go into ``README.md`` by hand,
with the machine and the load they ran under.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DRIVER = """
import gc, sys, tempfile, time
from pathlib import Path
from benchmarks.common import chain
from retap import App
from retap.store import MemoryStore, open_store
n, where = int(sys.argv[1]), sys.argv[2]
with tempfile.TemporaryDirectory() as tmp:
    store = MemoryStore() if where == "memory" else open_store(Path(tmp) / "s.db")
    app = App(chain(n), store)
    gc.collect()
    start = time.perf_counter()
    result = app.run()
    took = time.perf_counter() - start
    store.close()
assert result.status == "done", result.status
print(result.executed / took)
"""


def rate(tree: Path, n: int, where: str) -> float:
    """Dispatches per second of one chain run with the code of ``tree``."""
    done = subprocess.run([sys.executable, "-c", DRIVER, str(n), where], cwd=tree,
                          env={**os.environ, "PYTHONPATH": f"{tree}:{tree / 'src'}"},
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the commit to compare with")
    parser.add_argument("--n", type=int, default=20_000, help="dispatches per chain run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="retap-against-") as tmp:
        base = Path(tmp) / "ref"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.ref], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            trees = {"ref": base, "this": ROOT}
            found: dict[tuple[str, str], list[float]] = {}
            for k in range(args.rounds):
                order = ["ref", "this"] if k % 2 == 0 else ["this", "ref"]
                for where in ("memory", "sqlite"):
                    for name in order:
                        found.setdefault((name, where), []).append(
                            rate(trees[name], args.n, where))
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip()
            print(f"chain of {args.n}, best (median) of {args.rounds}; load "
                  f"{os.getloadavg()[0]:.2f}")
            for where in ("memory", "sqlite"):
                ref, this = found[("ref", where)], found[("this", where)]
                print(f"{where:7} {args.ref}: {max(ref):,.0f}/s ({statistics.median(ref):,.0f})"
                      f"  {commit}: {max(this):,.0f}/s ({statistics.median(this):,.0f})"
                      f"  ratio {max(this) / max(ref):.2f}x "
                      f"({statistics.median(this) / statistics.median(ref):.2f}x)")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT,
                           capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
