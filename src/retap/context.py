"""What a running task knows of its dispatch: the run, the dispatch id, the store and the
process that owns the run (file tasks name them in their journals), and whether the run
has been asked to stop. It travels to worker processes with the task; the App itself
does not."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from retap.capture import DEFAULT_LIMIT
from retap.owner import Owner

__all__ = ["TaskContext"]


def _never() -> bool:
    return False


def _sigint() -> str:
    return "SIGINT"


class TaskContext(msgspec.Struct):
    """One dispatch's view of its run."""

    run: str
    dispatch: str
    store: str  # the store's absolute location, or ":memory:"
    owner: Owner  # the process that owns the run, not the worker that runs the task
    output_limit: int = DEFAULT_LIMIT  # characters of output kept per attempt (0: none)
    stopping: Callable[[], bool] = _never
    stop_signal: Callable[[], str] = _sigint

    def __reduce__(self) -> tuple[type[TaskContext], tuple[object, ...]]:
        """A worker cannot see the run's stop flag: it gets the plain facts only."""
        return TaskContext, (self.run, self.dispatch, self.store, self.owner, self.output_limit)
