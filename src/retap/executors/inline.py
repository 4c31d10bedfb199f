"""The inline executor (``-j 1``): one job at a time, run in the App's own thread when the
App asks for the next completion. (The App runs its jobs itself, to spare them a queue; a
second signal then interrupts the task where it stands.)"""

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

    def submit(self, job: Job) -> None:
        self.jobs.append(job)

    def next(self, timeout: float | None) -> Completion | None:
        return run_job(self.jobs.popleft()) if self.jobs else None

    def cancel(self) -> list[str]:
        gone = [job.dispatch for job in self.jobs]
        self.jobs.clear()
        return gone

    @property
    def busy(self) -> int:
        return len(self.jobs)
