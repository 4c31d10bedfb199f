"""The processes executor: up to N jobs at once in worker processes (pebble), for CPU-bound
Python. A worker that dies (SIGKILL, a segfault, the OOM killer) fails only its own
dispatch, with ``WorkerLost``; one past its timeout is killed and fails with
``DispatchTimeout``; either way the pool starts a new worker and goes on. Workers are
forked from a fork server, so they never inherit the App's threads or open store."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import queue
import threading
import time

import pebble

from retap.errors import DispatchTimeout, WorkerLost
from retap.executors.base import Completion, Executor, Job, failed_by_executor
from retap.executors.work import run_job
from retap.owner import Owner

__all__ = ["ProcessExecutor", "die_with", "start_method"]


def die_with(coordinator: Owner) -> None:
    """In a worker: exit as soon as the coordinator is gone (a zombie counts as gone), so
    no task of a dead run goes on changing files while a resume runs it again."""
    def watch() -> None:
        while coordinator.alive():
            time.sleep(0.1)
        os._exit(1)

    threading.Thread(target=watch, name="retap-watch-coordinator", daemon=True).start()


def start_method() -> str:
    """How workers start: forked from a fork server where there is one, else spawned."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class ProcessExecutor(Executor):
    """A pebble process pool; completions come back through one queue, as they finish."""

    name = "processes"
    kills = True

    def __init__(self, jobs: int) -> None:
        context = multiprocessing.get_context(start_method())
        if start_method() == "forkserver":
            context.set_forkserver_preload(["retap.executors.work"])
        self.pool = pebble.ProcessPool(max_workers=jobs, context=context,
                                       initializer=die_with, initargs=(Owner.current(),))
        self.done: queue.Queue[Completion] = queue.Queue()
        self.futures: dict[str, concurrent.futures.Future[Completion]] = {}

    def submit(self, job: Job) -> None:
        future = self.pool.schedule(run_job, args=(job,), timeout=job.timeout)
        self.futures[job.dispatch] = future
        started = time.time()
        future.add_done_callback(lambda f: self.done.put(_completion(job, f, started)))

    def next(self, timeout: float | None) -> Completion | None:
        while True:
            try:
                completion = self.done.get(timeout=timeout)
            except queue.Empty:
                return None
            if self.futures.pop(completion.dispatch, None) is not None:
                return completion  # else cancelled: already recorded as interrupted

    def cancel(self) -> list[str]:
        gone = sorted(self.futures)
        futures, self.futures = list(self.futures.values()), {}
        for future in futures:
            future.cancel()  # pebble stops the worker running it
        return gone

    def close(self) -> None:
        self.pool.stop()
        self.pool.join(timeout=10)

    @property
    def busy(self) -> int:
        return len(self.futures)


def _completion(job: Job, future: concurrent.futures.Future[Completion],
                started: float) -> Completion:
    """How a job ended, whatever happened to its worker."""
    if future.cancelled():
        return Completion(job.dispatch, "interrupted", started=started, finished=time.time())
    error: Exception
    try:
        return future.result()
    except concurrent.futures.TimeoutError:
        error = DispatchTimeout(job.dispatch, job.timeout or 0.0)
    except pebble.ProcessExpired as exc:
        error = WorkerLost(job.dispatch, f"its worker process died (exit code {exc.exitcode})")
    except Exception as exc:  # the result could not come back (it does not pickle, ...)
        error = WorkerLost(job.dispatch, f"its result could not be sent back: "
                                         f"{type(exc).__name__}: {exc}")
    return failed_by_executor(job.dispatch, error, started)

