"""The Dask executor on its own, on a real local cluster: jobs that must not wait for good
once the cluster has no worker left, and a job Dask would run twice. (test_parallel.py
covers the same executor under the App, through the `retap` command.)"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from retap.context import TaskContext
from retap.executors.base import Completion, Job
from retap.executors.dask import DaskExecutor, run_in_project
from retap.owner import Owner
from retap.taskdef import Task
from retap.tasks.builtin import Load, Sleep


def job(dispatch: str, task: Task, *inputs: object) -> Job:
    return Job(dispatch, 0, task, inputs, TaskContext("run", dispatch, ":memory:",
                                                      Owner.current()))


@pytest.fixture
def executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DaskExecutor]:
    monkeypatch.chdir(tmp_path)  # the project directory the workers must see
    made = DaskExecutor(1)
    try:
        yield made
    finally:
        made.close()
    assert not (tmp_path / ".retap" / "dask").exists()


def completion_within(executor: DaskExecutor, seconds: float) -> Completion:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = executor.next(0.1)
        if done is not None:
            return done
    raise AssertionError(f"no completion within {seconds} s")


@pytest.mark.timeout(120)
def test_jobs_fail_as_lost_once_a_local_cluster_has_no_worker_left(
        executor: DaskExecutor) -> None:
    executor.cluster.scale(0)  # as when its nanny could not start a new worker
    deadline = time.monotonic() + 30
    while executor.cluster.scheduler.workers and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not executor.cluster.scheduler.workers
    executor.submit(job("waits", Sleep(seconds=0), "s"))  # no worker will ever take it
    done = completion_within(executor, 30)
    assert done.dispatch == "waits" and done.status == "failed"
    assert done.error is not None and done.error["type"] == "WorkerLost"
    assert "no workers left" in done.error["message"]
    assert executor.busy == 0


@pytest.mark.timeout(120)
def test_a_job_runs_once_whatever_dask_asks(executor: DaskExecutor, tmp_path: Path) -> None:
    claim = str(tmp_path / "claim")
    first = run_in_project(job("j", Load(), "x"), str(tmp_path), claim)
    assert first.status == "done" and first.value == "x"
    again = run_in_project(job("j", Load(), "x"), str(tmp_path), claim)
    assert again.status == "failed" and again.error is not None
    assert again.error["type"] == "WorkerLost"
    assert "the second run was refused" in again.error["message"]
    executor.submit(job("k", Load(), "y"))  # through the cluster
    done = completion_within(executor, 60)
    assert done.status == "done" and done.value == "y"
    # its claim stays after its completion is in: Dask may still run it again (a worker
    # that held its result died before its future was let go), and that run is refused
    [key] = os.listdir(executor.claims)
    late = run_in_project(job("k", Load(), "y"), str(tmp_path), os.path.join(executor.claims,
                                                                             key))
    assert late.status == "failed" and "the second run was refused" in late.error["message"]
    executor.close()
    assert not os.path.exists(executor.claims)


@pytest.mark.timeout(120)
def test_the_clients_abandoned_waits_stay_off_stderr(executor: DaskExecutor,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    # On a slower machine, a result fetched with a timeout whose worker had died left a wait
    # inside Dask's client failing with AllExit, which asyncio then logged ("Task exception
    # was never retrieved") beside retap's one-line WorkerLost. Other asyncio errors stay.
    from distributed.client import AllExit

    loop = asyncio.new_event_loop()
    try:
        for exc in (AllExit(), ValueError("kept")):
            loop.call_exception_handler({"message": "Task exception was never retrieved",
                                         "exception": exc})
    finally:
        loop.close()
    logged = [r.exc_info[1] for r in caplog.records if r.name == "asyncio" and r.exc_info]
    assert [type(e) for e in logged] == [ValueError]
