"""Picking an executor by name, and checking, before a run starts, that every task of the
workflow can be sent to it."""

from __future__ import annotations

from collections.abc import Iterable

from retap.errors import ExecutorError
from retap.executors.base import Executor
from retap.taskdef import Task

__all__ = ["EXECUTORS", "KNOWN", "check_tasks", "is_executor", "make_executor"]

EXECUTORS = ("inline", "threads", "processes", "dask")
KNOWN = f"{', '.join(EXECUTORS)}, dask://HOST:PORT"  # as an error names them


def is_executor(name: str) -> bool:
    """``name`` names an executor retap knows: one of EXECUTORS, or a Dask scheduler's
    address."""
    return name in EXECUTORS or name.startswith("dask://")


def make_executor(name: str | None, jobs: int) -> Executor:
    """The executor called ``name`` for ``jobs`` at once: ``inline`` for one job unless
    another is named, ``processes`` for more; ``dask`` starts a local cluster of ``jobs``
    workers, ``dask://HOST:PORT`` uses a running scheduler."""
    if jobs < 1:
        raise ExecutorError(name or "?", f"--jobs must be 1 or more, not {jobs}")
    name = name or ("inline" if jobs == 1 else "processes")
    if not is_executor(name):
        raise ExecutorError(name, f"unknown executor (known: {KNOWN})")
    if name == "inline":
        if jobs != 1:
            raise ExecutorError(name, "runs one dispatch at a time; use threads or processes "
                                      "for --jobs above 1")
        from retap.executors.inline import InlineExecutor

        return InlineExecutor()
    if name == "threads":
        from retap.executors.threads import ThreadExecutor

        return ThreadExecutor(jobs)
    if name == "processes":
        from retap.executors.processes import ProcessExecutor

        return ProcessExecutor(jobs)
    from retap.executors.dask import DaskExecutor  # "dask" or a scheduler's address

    return DaskExecutor(jobs, name.removeprefix("dask://") if "://" in name else None)


def check_tasks(executor: Executor, tasks: Iterable[tuple[object, Task]]) -> None:
    """Refuse, naming it, a task that cannot be sent to ``executor``'s workers: one whose
    configs do not pickle, or (worker processes) one defined in ``__main__``."""
    if executor.name not in ("processes", "dask"):
        return
    for node, task in tasks:
        name = type(task).__retap__.name
        if executor.name == "processes" and type(task).__module__ == "__main__":
            raise ExecutorError(executor.name, f"node {node} ({name}): task "
                                f"{type(task).__qualname__} is defined in __main__, which "
                                "worker processes cannot import; define it in a module "
                                "(a retapfile.py), or use --executor threads")
        try:
            executor.dumps(task)
        except Exception as exc:
            raise ExecutorError(executor.name, f"node {node} ({name}): the task cannot be "
                                f"sent to a worker ({type(exc).__name__}: {exc}); use "
                                "--executor threads, or configs that pickle") from None
