"""The processes executor on its own, with real worker processes: what happens to a worker
that dies between jobs, a result or a job that cannot travel, a timeout, a cancel, and
what close leaves behind. (The CLI tests in test_parallel.py cover the same executor under
the App: a worker killed mid-task, a timeout, signals.)"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import retap
from retap.context import TaskContext
from retap.executors.base import Completion, Job
from retap.executors.processes import ProcessExecutor
from retap.owner import Owner
from retap.tasks.builtin import Load, Sleep


class Locked(retap.Task):
    """Returns a lock: a value that cannot be pickled back to the coordinator."""

    def process(self, x: Any) -> Any:
        return threading.Lock()


class Pid(retap.Task):
    """Returns the pid of the worker it runs in."""

    def process(self, x: Any) -> int:
        return os.getpid()


def job(dispatch: str, task: retap.Task, *inputs: Any, timeout: float | None = None) -> Job:
    context = TaskContext("run", dispatch, ":memory:", Owner.current())
    return Job(dispatch, 0, task, inputs, context, timeout)


def finish(executor: ProcessExecutor) -> Completion:
    completion = executor.next(30)
    assert completion is not None, "no completion within 30 s"
    return completion


@pytest.fixture
def executor() -> Iterator[ProcessExecutor]:
    made = ProcessExecutor(2)
    try:
        yield made
    finally:
        made.close()
    assert not multiprocessing.active_children()


def test_completions_come_back_in_finishing_order(executor: ProcessExecutor) -> None:
    executor.submit(job("slow", Sleep(seconds=0.6), "s"))
    executor.submit(job("fast", Load(), "f"))
    assert [finish(executor).dispatch, finish(executor).dispatch] == ["fast", "slow"]
    assert executor.busy == 0


def test_a_worker_killed_between_jobs_is_replaced(executor: ProcessExecutor) -> None:
    executor.submit(job("a", Pid(), 1))
    first = finish(executor)
    assert first.status == "done"
    os.kill(first.value, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(p.pid == first.value for p in multiprocessing.active_children()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for name in ("b", "c", "d"):
        executor.submit(job(name, Pid(), 1))
        done = finish(executor)
        assert (done.dispatch, done.status) == (name, "done")
        assert done.value != first.value


def test_a_result_that_cannot_be_sent_back_fails_only_its_dispatch(
        executor: ProcessExecutor) -> None:
    executor.submit(job("lock", Locked(), 1))
    failed = finish(executor)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["type"] == "WorkerLost"
    assert "its result could not be sent back: TypeError" in failed.error["message"]
    executor.submit(job("after", Load(), "x"))
    assert (finish(executor).status, executor.busy) == ("done", 0)


def test_a_job_that_cannot_be_sent_fails_without_a_worker(executor: ProcessExecutor) -> None:
    executor.submit(job("lock", Load(), threading.Lock()))
    failed = finish(executor)
    assert failed.error is not None and failed.error["type"] == "WorkerLost"
    assert "its job could not be sent to a worker" in failed.error["message"]


def test_a_job_past_its_timeout_is_killed_and_the_worker_replaced(
        executor: ProcessExecutor) -> None:
    started = time.monotonic()
    executor.submit(job("hang", Sleep(seconds=60), 1, timeout=0.3))
    failed = finish(executor)
    assert time.monotonic() - started < 10
    assert failed.error is not None and failed.error["type"] == "DispatchTimeout"
    executor.submit(job("next", Load(), "x"))
    assert finish(executor).status == "done"


def test_more_jobs_than_workers_wait_for_one(executor: ProcessExecutor) -> None:
    for k in range(5):
        executor.submit(job(f"d{k}", Sleep(seconds=0.1), k))
    assert executor.busy == 5
    assert sorted(finish(executor).value for _ in range(5)) == [0, 1, 2, 3, 4]
    assert len(multiprocessing.active_children()) <= 2


def test_cancel_stops_what_runs_and_names_it(executor: ProcessExecutor) -> None:
    executor.submit(job("x", Sleep(seconds=60), 1))
    executor.submit(job("y", Sleep(seconds=60), 2))
    executor.submit(job("z", Sleep(seconds=60), 3))
    started = time.monotonic()
    assert executor.cancel() == ["x", "y", "z"]
    assert time.monotonic() - started < 10
    assert executor.busy == 0 and executor.next(0.1) is None


class Touch(retap.Task):
    """Creates the file it is given (a side channel: did the job start at all?)."""

    def process(self, path: str) -> str:
        open(path, "w").close()
        return path


def test_a_worker_does_not_start_a_job_its_dead_coordinator_sent(tmp_path: Any) -> None:
    # The coordinator sent a job and died before the worker read it: the worker finds the
    # pipe's other end closed behind the job, and returns without starting it (its file
    # changes could begin after a resume has already settled what the dead run left).
    import pickle
    from multiprocessing import Pipe

    from retap.executors.processes import _serve

    marker = tmp_path / "started"
    ours, theirs = Pipe()
    facts = ("run", ":memory:", Owner.current(), 0)
    ours.send_bytes(pickle.dumps(("d1", 0, (str(marker),), 1, Touch(), facts)))
    ours.close()  # the coordinator is gone
    _serve(theirs)
    assert not marker.exists()

    ours, theirs = Pipe()  # the same job with the coordinator alive: it runs
    ours.send_bytes(pickle.dumps(("d1", 0, (str(marker),), 1, Touch(), facts)))
    worker = threading.Thread(target=_serve, args=(theirs,))
    worker.start()
    assert ours.poll(30)
    assert pickle.loads(ours.recv_bytes())[1] == "done" and marker.exists()
    ours.send(None)
    worker.join(30)


def test_a_task_context_reaches_a_worker_without_the_run_s_stop_flag() -> None:
    # the flag closes over the App (and its store's connection), which cannot travel
    lock = threading.Lock()
    context = TaskContext("run", "d1", ":memory:", Owner.current(), 7,
                          stopping=lambda: lock.locked(), stop_signal=lambda: "SIGTERM")

    sent = pickle.loads(pickle.dumps(context))

    assert (sent.run, sent.dispatch, sent.store, sent.owner, sent.output_limit) == \
        ("run", "d1", ":memory:", context.owner, 7)
    assert sent.stopping() is False and sent.stop_signal() == "SIGINT"
