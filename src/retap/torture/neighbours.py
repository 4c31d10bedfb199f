"""Neighbours: other processes opening the store for writing, and closing it, while an
attempt runs (a ``retap prune`` that finds nothing to delete, one to three times at
random moments). A store is shared by every coordinator of a project; a process that
closes it must never take itself for its last user while the attempt still writes to it
(SQLite deletes the WAL when its last user closes). Drawn from a stream of its own for
about one attempt in five."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from retap.torture.procs import start, wait

__all__ = ["run_beside"]

# prune deletes runs created before this: none of a case's
NOTHING_BEFORE = "2000-01-01T00:00:00+00:00"


def run_beside(command: list[str], cwd: Path, env: dict[str, str], store: str,
               rng: random.Random, timeout: float, err_path: Path
               ) -> tuple[int, str, list[str]]:
    """Run ``command`` while neighbours open and close ``store``: (its exit code, -1 when
    it hung; its stderr; what went wrong with the neighbours)."""
    proc = start(command, cwd, env, err_path)
    quiet = {k: v for k, v in env.items() if k != "RETAP_FAULT"}
    problems: list[str] = []
    deadline = time.monotonic() + timeout
    for _ in range(rng.randint(1, 3)):
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        done = subprocess.run([sys.executable, "-m", "retap", "--store", store, "prune",
                               "--older-than", NOTHING_BEFORE], cwd=cwd, env=quiet,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [""])[-1]
            problems.append(f"a prune beside it exited {done.returncode}: {last}")
    code = wait(proc, max(1.0, deadline - time.monotonic()))
    return code, err_path.read_text(), problems
