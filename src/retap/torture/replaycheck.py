"""The replay check: a finished run, replayed from a copy of its store, must be answered
from the store in full, running nothing, whatever order its dispatches finished in and
whatever ``-j`` the replay uses. A join state rebuilt differently from the recorded one
would make new dispatch ids, which would run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from retap.store.sqlite import SQLiteStore

__all__ = ["replay_problems"]


def replay_problems(store: Path, project: Path, run: str, running: list[str],
                    env: dict[str, str]) -> list[str]:
    """Replay ``run`` from a copy of ``store`` in ``project``; what it ran, if anything."""
    copy = store.with_name("replay-check.db")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{store}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{copy}{suffix}")
    _mark_interrupted(copy, run)
    log = store.with_name("replay-check.log")
    log.write_text("")
    done = subprocess.run([sys.executable, "-m", "retap", "--store", str(copy), "replay", run,
                           *running], cwd=project, env={**env, "TORTURE_LOG": str(log)},
                          capture_output=True, text=True, timeout=300)
    problems = []
    if done.returncode != 0:
        problems.append(f"replay check of {run} ({' '.join(running)}) exited "
                        f"{done.returncode}: {done.stderr.strip()[-300:]}")
    ran = log.read_text().splitlines()
    if ran:
        problems.append(f"replay check of {run} ({' '.join(running)}) executed {len(ran)} "
                        f"dispatch(es) (e.g. {ran[0].split()[1]}): its rebuilt joins "
                        "differ from the recorded ones")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    return problems


def _mark_interrupted(db: Path, run: str) -> None:
    """What a kill at the very end of the run would have left: the same run, interrupted."""
    with SQLiteStore(db) as store, store.transaction():
        store.update_run_txn(run, status="interrupted")
