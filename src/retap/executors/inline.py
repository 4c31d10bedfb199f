"""The inline executor (``-j 1``): one job at a time, run in the App's own thread when the
App asks for the next completion. A second signal interrupts the task where it stands."""

from __future__ import annotations

from collections import deque

from retap.executors.base import Completion, Executor, Job
from retap.executors.work import run_job

__all__ = ["InlineExecutor"]


class InlineExecutor(Executor):
    """Runs each job when its completion is asked for, in the caller's thread."""

    name = "inline"

    def __init__(self) -> None:
        self.jobs: deque[Job] = deque()
        self.in_task = False  # a task's code is running: a second signal may abort it

    def submit(self, job: Job) -> None:
        self.jobs.append(job)

    def next(self, timeout: float | None) -> Completion | None:
        if not self.jobs:
            return None
        job = self.jobs.popleft()
        self.in_task = True
        try:
            return run_job(job)
        finally:
            self.in_task = False

    def cancel(self) -> list[str]:
        gone = [job.dispatch for job in self.jobs]
        self.jobs.clear()
        return gone

    @property
    def busy(self) -> int:
        return len(self.jobs)
