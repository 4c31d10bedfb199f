"""The threads executor: up to N jobs at once on daemon threads, for tasks that wait on
I/O or subprocesses. A running thread cannot be stopped: timeouts are not enforced, and a
second signal stops waiting for what runs (recorded interrupted; it runs again on resume)
without ending it."""

from __future__ import annotations

import copy
import queue
import threading

from retap.executors.base import Completion, Executor, Job
from retap.executors.work import run_job

__all__ = ["ThreadExecutor"]


class ThreadExecutor(Executor):
    """N daemon threads taking jobs from one queue and handing completions back on another."""

    name = "threads"

    def __init__(self, jobs: int) -> None:
        self.todo: queue.Queue[Job | None] = queue.Queue()
        self.done: queue.Queue[Completion] = queue.Queue()
        self.running: set[str] = set()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._work, name=f"retap-worker-{i}",
                                         daemon=True) for i in range(jobs)]
        for thread in self.threads:
            thread.start()

    def submit(self, job: Job) -> None:
        job.task = copy.copy(job.task)  # each dispatch gets its own task: its own context
        with self.lock:
            self.running.add(job.dispatch)
        self.todo.put(job)

    def _work(self) -> None:
        while (job := self.todo.get()) is not None:
            completion = run_job(job)
            with self.lock:
                if job.dispatch not in self.running:
                    continue  # cancelled meanwhile: already recorded as interrupted
            self.done.put(completion)

    def next(self, timeout: float | None) -> Completion | None:
        try:
            completion = self.done.get(timeout=timeout)
        except queue.Empty:
            return None
        with self.lock:
            self.running.discard(completion.dispatch)
        return completion

    def cancel(self) -> list[str]:
        with self.lock:
            gone, self.running = sorted(self.running), set()
        while True:
            try:
                self.todo.get_nowait()
            except queue.Empty:
                break
        return gone

    def close(self) -> None:
        for _ in self.threads:
            self.todo.put(None)

    @property
    def busy(self) -> int:
        with self.lock:
            return len(self.running)
