"""The replay check: a finished run, replayed from a copy of its store, must be answered
from the store in full, running nothing, whatever order its dispatches finished in and
whatever ``-j`` the replay uses. A join state rebuilt differently from the recorded one
would make new dispatch ids, which would run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from retap.store import open_store
from retap.store.copy import copy_runs
from retap.store.postgres import drop_schema
from retap.store.sql import SQLStore

__all__ = ["replay_problems"]


def replay_problems(store: str, project: Path, run: str, running: list[str],
                    env: dict[str, str]) -> list[str]:
    """Replay ``run`` from a copy of ``store`` in ``project``; what it ran, if anything."""
    folder = project.parent
    copy = _copy(store, run, folder)
    log = folder / "replay-check.log"
    log.write_text("")
    try:
        done = subprocess.run([sys.executable, "-m", "retap", "--store", copy, "replay", run,
                               *running], cwd=project, env={**env, "TORTURE_LOG": str(log)},
                              capture_output=True, text=True, timeout=300)
    finally:
        _remove(copy)
    problems = []
    if done.returncode != 0:
        problems.append(f"replay check of {run} ({' '.join(running)}) exited "
                        f"{done.returncode}: {done.stderr.strip()[-300:]}")
    ran = log.read_text().splitlines()
    if ran:
        problems.append(f"replay check of {run} ({' '.join(running)}) executed {len(ran)} "
                        f"dispatch(es) (e.g. {ran[0].split()[1]}): its rebuilt joins "
                        "differ from the recorded ones")
    return problems


def _copy(store: str, run: str, folder: Path) -> str:
    """A copy of ``run`` as a kill at its very end would have left it (interrupted): a copy
    of the file, or of the run in a fresh schema of the same server."""
    if "://" not in store:
        copy = str(folder / "replay-check.db")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{store}{suffix}")
            if source.exists():
                shutil.copyfile(source, f"{copy}{suffix}")
    else:
        copy = re.sub(r"schema=[a-z0-9_]+", f"schema=replay_{uuid.uuid4().hex[:12]}", store)
        with open_store(store, readonly=True) as src, open_store(copy) as dst:
            assert isinstance(src, SQLStore) and isinstance(dst, SQLStore)
            copy_runs(src, dst, [run])
    with open_store(copy) as target, target.transaction():  # type: ignore[attr-defined]
        target.update_run_txn(run, status="interrupted")  # type: ignore[attr-defined]
    return copy


def _remove(copy: str) -> None:
    if "://" in copy:
        drop_schema(copy)
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
