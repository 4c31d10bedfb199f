"""retap: configurable, file-based tasks and workflows whose runs are recorded,
recoverable and replayable.

Names are imported when first used, so ``import retap`` (and the ``retap`` command's
start-up) pays only for what it touches.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"  # the one place it is written: pyproject.toml reads it from here

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (25 ms at start-up)
if TYPE_CHECKING:
    from typing import Any

    from retap.app import App, RunResult
    from retap.configs import config
    from retap.errors import (
        AmbiguousRun,
        BadRunId,
        CodecError,
        ConfigValueError,
        DispatchTimeout,
        ExecutorError,
        InflightNotIdempotent,
        InputArityError,
        Interrupted,
        JoinError,
        RetapError,
        RunBusy,
        RunExists,
        SecretMissing,
        SpecError,
        StoreCorrupt,
        StoreError,
        StoreVersionError,
        TaskDefinitionError,
        TaskFailed,
        UnknownConfig,
        UnknownRun,
        UnknownTask,
        UsageError,
        WorkerLost,
        WorkflowSyntaxError,
    )
    from retap.files import FileTask, Input, Output
    from retap.joins import JoinKind, selector
    from retap.middleware import Middleware
    from retap.recovery import replay, resume
    from retap.store import MemoryStore, Store, open_store
    from retap.taskdef import Task, task
    from retap.workflow import Workflow

_HOMES = {
    "retap.app": ["App", "RunResult"],
    "retap.configs": ["config"],
    "retap.errors": ["AmbiguousRun", "BadRunId", "CodecError", "ConfigValueError",
                     "DispatchTimeout", "ExecutorError", "InflightNotIdempotent",
                     "InputArityError", "Interrupted", "JoinError", "RetapError", "RunBusy",
                     "RunExists", "SecretMissing", "SpecError", "StoreCorrupt", "StoreError",
                     "StoreVersionError", "TaskDefinitionError", "TaskFailed", "UnknownConfig",
                     "UnknownRun", "UnknownTask", "UsageError", "WorkerLost",
                     "WorkflowSyntaxError"],
    "retap.files": ["FileTask", "Input", "Output"],
    "retap.joins": ["JoinKind", "selector"],
    "retap.middleware": ["Middleware"],
    "retap.recovery": ["replay", "resume"],
    "retap.store": ["MemoryStore", "Store", "open_store"],
    "retap.taskdef": ["Task", "task"],
    "retap.workflow": ["Workflow"],
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "AmbiguousRun", "App", "BadRunId", "CodecError", "ConfigValueError", "DispatchTimeout",
    "ExecutorError", "FileTask", "InflightNotIdempotent", "Input", "InputArityError",
    "Interrupted", "JoinError", "JoinKind",
    "MemoryStore", "Middleware", "Output", "RetapError", "RunBusy", "RunExists", "RunResult",
    "SecretMissing", "SpecError", "Store", "StoreCorrupt", "StoreError", "StoreVersionError",
    "Task", "TaskDefinitionError", "TaskFailed", "UnknownConfig", "UnknownRun", "UnknownTask",
    "UsageError", "WorkerLost", "Workflow", "WorkflowSyntaxError", "config", "open_store",
    "replay", "resume", "selector", "task",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'retap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
