"""Resumes and replays the web view starts: each a ``retap`` process of its own in the
project directory, its output kept for the page that shows its progress."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["Job", "JobRefused", "Jobs"]

KEPT_LINES = 2000  # lines of a job's output kept for its page


class JobRefused(Exception):
    """A job that cannot start now (one already runs for that run)."""


@dataclass
class Job:
    """One ``retap resume`` or ``retap replay`` started from the web view."""

    id: str
    run: str
    verb: str
    process: subprocess.Popen[str]
    started: float = field(default_factory=time.time)
    output: deque[str] = field(default_factory=lambda: deque(maxlen=KEPT_LINES))

    @property
    def code(self) -> int | None:
        return self.process.poll()

    def as_json(self) -> dict[str, Any]:
        code = self.code
        return {"id": self.id, "run": self.run, "verb": self.verb, "started": self.started,
                "state": "running" if code is None else "exited", "code": code,
                "output": list(self.output)}


class Jobs:
    """The jobs started by this web view, by id; at most one running per run."""

    def __init__(self, store: str, project: str) -> None:
        self.store, self.project = store, project
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()

    def start(self, run: str, verb: str) -> Job:
        if verb not in ("resume", "replay"):
            raise ValueError(verb)
        with self.lock:
            if any(j.run == run and j.code is None for j in self.jobs.values()):
                raise JobRefused(f"a resume or replay of run {run} started here still runs")
            process = subprocess.Popen(
                # `--`: a run id may begin with a dash; it is never read as an option
                [sys.executable, "-m", "retap", "--store", self.store, verb, "--", run],
                cwd=self.project, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, errors="replace")
            job = Job(secrets.token_hex(8), run, verb, process)
            self.jobs[job.id] = job
        assert process.stdout is not None
        threading.Thread(target=_collect, args=(process.stdout, job), daemon=True,
                         name=f"retap-ui-job-{job.id}").start()
        return job

    def get(self, ident: str) -> Job | None:
        return self.jobs.get(ident)

    def stop_all(self) -> None:
        """Interrupt what still runs (as Ctrl-C would: the runs stay resumable)."""
        for job in self.jobs.values():
            if job.code is None:
                job.process.send_signal(2)
        for job in self.jobs.values():
            try:
                job.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.process.kill()


def _collect(stream: IO[str], job: Job) -> None:
    for line in stream:
        job.output.append(line.rstrip("\n"))
    job.process.wait()
