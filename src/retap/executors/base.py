"""The executor interface: submit a job, wait for the next completion, cancel what runs."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

import msgspec

from retap.context import TaskContext
from retap.dispatch import Log, NodeId
from retap.errors import error_record
from retap.taskdef import Task

__all__ = ["Completion", "Executor", "Job", "failed_by_executor"]


class Job(msgspec.Struct):
    """One dispatch to run: its task (a copy, for executors that run several at once), its
    inputs, what the task may know of its run, and how long it may take."""

    dispatch: str
    node: NodeId
    task: Task
    inputs: tuple[Any, ...]
    context: TaskContext
    timeout: float | None = None


class Completion(msgspec.Struct):
    """What running one job produced: ``done`` with a value (and the files it wrote), or
    ``failed`` / ``interrupted`` with the error as recorded JSON; and what it printed."""

    dispatch: str
    status: str
    value: Any = None
    error: dict[str, Any] | None = None
    started: float = 0.0
    finished: float = 0.0
    outputs: dict[str, str] | None = None
    log: Log | None = None
    worker: tuple[str, int] | None = None  # (host, pid) that ran it, when not the coordinator


def failed_by_executor(dispatch: str, error: Exception, started: float = 0.0) -> Completion:
    """A dispatch the executor failed (its worker lost, a timeout): the error recorded with
    no traceback, since none of the task's code raised it."""
    record = error_record(error)
    record["traceback"] = ""
    return Completion(dispatch, "failed", error=record, started=started, finished=time.time())


class Executor(ABC):
    """Runs jobs; the App decides what to run and records what finished."""

    name: str = ""
    kills: bool = False  # it can stop a running job: timeouts hold, a second signal kills

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Start ``job`` (or queue it in the executor); returns at once."""

    @abstractmethod
    def next(self, timeout: float | None) -> Completion | None:
        """The next job to finish, in finishing order; None when none finished within
        ``timeout`` seconds (None: wait as long as a job runs)."""

    @abstractmethod
    def cancel(self) -> list[str]:
        """Stop what runs (where it can) and forget it; the dispatch ids it had."""

    def close(self) -> None:
        """Release workers; the executor may not be used afterwards."""

    def dumps(self, task: Task) -> bytes:
        """How a task travels to this executor's workers (checked before a run starts)."""
        import pickle  # here: a run on one thread sends nothing anywhere

        return pickle.dumps(task)

    @property
    @abstractmethod
    def busy(self) -> int:
        """How many jobs are submitted and not yet handed back by ``next``."""
