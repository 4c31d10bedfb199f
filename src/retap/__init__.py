"""retap: configurable, file-based tasks and workflows whose runs are recorded,
recoverable and replayable."""

from retap.app import App, RunResult
from retap.configs import config
from retap.errors import (
    CodecError,
    ConfigValueError,
    InflightNotIdempotent,
    InputArityError,
    Interrupted,
    JoinError,
    RetapError,
    RunBusy,
    SpecError,
    StoreCorrupt,
    StoreError,
    StoreVersionError,
    TaskDefinitionError,
    UnknownConfig,
    UnknownRun,
    UnknownTask,
    UsageError,
    WorkflowSyntaxError,
)
from retap.files import FileTask, Input, Output
from retap.middleware import Middleware
from retap.recovery import replay, resume
from retap.store import MemoryStore, Store, open_store
from retap.task import Task, task
from retap.workflow import Workflow

__all__ = [
    "App",
    "CodecError",
    "ConfigValueError",
    "FileTask",
    "InflightNotIdempotent",
    "Input",
    "InputArityError",
    "Interrupted",
    "JoinError",
    "MemoryStore",
    "Middleware",
    "Output",
    "RetapError",
    "RunBusy",
    "RunResult",
    "SpecError",
    "Store",
    "StoreCorrupt",
    "StoreError",
    "StoreVersionError",
    "Task",
    "TaskDefinitionError",
    "UnknownConfig",
    "UnknownRun",
    "UnknownTask",
    "UsageError",
    "Workflow",
    "WorkflowSyntaxError",
    "config",
    "open_store",
    "replay",
    "resume",
    "task",
]
