"""The reference of a case: its scenario run without faults, in a project folder of its
own, so the faulted runs' final audit and files can be compared with it byte for byte.

It runs in this process (``App`` and ``resume`` on a SQLite store, in the reference
folder as working directory): the same code the ``retap`` command runs, at a tenth of the
cost of a subprocess per step. Flaky tasks fail once here too (markers of its own); a run
that fails is resumed until done.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from retap.app import App
from retap.recovery import resume
from retap.store.sqlite import SQLiteStore
from retap.torture import tasks
from retap.torture.plans import build
from retap.torture.project import files, set_up
from retap.torture.scenario import Phase
from retap.torture.tasks import Memo, MemoRetried

__all__ = ["Expected", "done_audit", "reference"]

# the torture tasks whose values depend on the project's variant
VARIANT_READERS = (Memo, MemoRetried)
MAX_RESUMES = 1000  # a flaky node with many dispatches fails once per dispatch


@dataclass
class Expected:
    """What an uninterrupted phase ends with: its run's done audit and the files."""

    audit: list[tuple[str, ...]]
    files: dict[str, bytes]
    resumes: int  # how many the phase's run needed (on-error stop: one per flaky failure)


def done_audit(store: Any, run: str) -> list[tuple[str, ...]]:
    """A run's done dispatches as comparable rows: id, node, sources, value."""
    return sorted((a.id, json.dumps(a.node), json.dumps(a.sources), json.dumps(a.value))
                  for a in store.audits(run) if a.status == "done")


def reference(folder: Path, steps: list[Phase], on_error: str) -> list[Expected]:
    """Run every phase of the scenario to done in ``folder/reference``; what each ends with."""
    project = folder / "reference"
    set_up(project)
    expected = []
    with _inside(project, folder / "reference-markers"), \
            SQLiteStore(folder / "reference.db") as store:
        for k, phase in enumerate(steps, start=1):
            phase.prepare(project)
            _run_code(store, phase.variant)
            resumes = _to_done(store, phase.workplan, f"r{k}", on_error)
            expected.append(Expected(done_audit(store, f"r{k}"), files(project), resumes))
    return expected


def _to_done(store: SQLiteStore, workplan: dict[str, Any], run: str, on_error: str) -> int:
    """Run, then resume until done; how many resumes that took."""
    quiet = lambda message: None  # noqa: E731
    outcome = App(build(workplan), store, run_id=run, on_error=on_error, notify=quiet).run()
    for resumes in range(MAX_RESUMES):
        if outcome.status == "done":
            return resumes
        outcome = resume(store, run, on_error=on_error, notify=quiet)
    raise RuntimeError(f"the reference run {run} is not done after {MAX_RESUMES} resumes")


def _run_code(store: SQLiteStore, variant: str) -> None:
    """Make this process's memoized tasks read ``variant``, as a case's commands do from
    the project's module. The module is not imported here (every case has one of its own),
    so the task's code version cannot tell: a changed variant forgets the results of every
    task that reads it."""
    if tasks.variant() != variant:
        for task in VARIANT_READERS:
            store.forget(task.__retap__.import_path)
    tasks.torture_code = SimpleNamespace(VARIANT=variant) if variant else None


@contextlib.contextmanager
def _inside(project: Path, markers: Path) -> Iterator[None]:
    """Work in ``project`` with the reference's flaky markers and no execution log."""
    saved = {k: os.environ.get(k) for k in ("TORTURE_LOG", "TORTURE_MARKERS")}
    cwd = os.getcwd()
    os.environ["TORTURE_MARKERS"] = str(markers)
    os.environ.pop("TORTURE_LOG", None)
    code = tasks.torture_code
    os.chdir(project)
    try:
        yield
    finally:
        tasks.torture_code = code
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
