"""The error tree: every failure retap reports, each carrying the input it is about.

RetapError                      base; ``exit_code`` is what the CLI exits with
├── UsageError                  bad usage or input, nothing was run (exit 2)
│   ├── WorkflowSyntaxError     a word of the workflow syntax is malformed
│   ├── WorkflowFileError       a workflow file cannot be read or is malformed
│   ├── UnknownTask             no task by that name
│   ├── UnknownConfig           a task has no config by that name
│   ├── ConfigValueError        a config value does not validate
│   ├── SecretMissing           a secret config is needed again and was not given
│   ├── TaskDefinitionError     a task class or function is declared wrongly
│   ├── TaskImportError         a retapfile or task module failed to import
│   ├── InputArityError         a lead node gets the wrong number of inputs
│   ├── SpecError               a workflow cannot be (de)serialised as a spec
│   ├── BadRunId                a run id that is not letters, digits and ._-
│   ├── UnknownRun              no run by that id in the store
│   ├── AmbiguousRun            a prefix that names several runs
│   ├── RunExists               a new run would take an id already in the store
│   ├── RunBusy                 another live process owns the run
│   ├── InflightNotIdempotent   resume would re-run a non-idempotent dispatch
│   └── ExecutorError           an executor cannot be used as asked (or cannot take a task)
├── StoreError                  the store cannot be opened or used (exit 2)
│   ├── StoreVersionError       the store was written by a newer retap
│   ├── StoreCorrupt            the store is damaged, crafted, or not a store at all
│   ├── StoreWriteError         a write failed mid-run (disk full, I/O): exit 1, resumable
│   ├── LeaseLost               another coordinator took the run over: exit 1, nothing written
│   │   └── LeasePausedOut      paused in a transaction past its lease: its session ended
│   └── StoreConnectionLost     the store's server went away mid-run: exit 1, resumable
├── TaskFailed                  a task reports that it failed (the built-in ``fail``)
├── WorkerLost                  the worker running a dispatch died (a failure of it)
├── DispatchTimeout             a dispatch ran past its timeout and was stopped
├── CodecError                  a value cannot be encoded or decoded safely
├── JoinError                   a join cannot pass a result on (bad switch index, ...)
└── Interrupted                 the run was stopped by a signal (exit 130 / 143)

Every error has ``to_dict()``, and ``error_record`` turns any exception into the JSON
a failed dispatch is recorded with.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "AmbiguousRun",
    "BadRunId",
    "CodecError",
    "ConfigValueError",
    "DispatchTimeout",
    "ExecutorError",
    "InflightNotIdempotent",
    "InputArityError",
    "Interrupted",
    "JoinError",
    "RetapError",
    "RunBusy",
    "RunExists",
    "SecretMissing",
    "SpecError",
    "StoreCorrupt",
    "StoreError",
    "StoreVersionError",
    "StoreWriteError",
    "TaskDefinitionError",
    "TaskFailed",
    "TaskImportError",
    "UnknownConfig",
    "UnknownRun",
    "UnknownTask",
    "UsageError",
    "WorkerLost",
    "WorkflowFileError",
    "WorkflowSyntaxError",
    "error_record",
]


class RetapError(Exception):
    """Base of every error retap raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-safe data: its type, message and offending inputs."""
        return {"type": type(self).__name__, "message": self.message,
                "details": {k: _jsonable(v) for k, v in self.details.items()}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return repr(value)


def _names(known: Iterable[str], limit: int = 12) -> str:
    known = sorted(known)
    shown = ", ".join(known[:limit])
    return shown + (", ..." if len(known) > limit else "")


class UsageError(RetapError):
    """Bad usage or input: nothing was run."""

    exit_code = 2


class WorkflowSyntaxError(UsageError):
    """A word of the command-line workflow syntax is malformed."""

    def __init__(self, word: str, position: int, reason: str) -> None:
        super().__init__(f"workflow syntax: {reason} at word {position + 1} {word!r}",
                         word=word, position=position, reason=reason)
        self.word, self.position, self.reason = word, position, reason


class WorkflowFileError(UsageError):
    """A workflow file cannot be read or does not describe a workflow."""

    def __init__(self, path: str, reason: str, place: tuple[int, int] | None = None) -> None:
        where = f", line {place[0]}, column {place[1]}" if place else ""
        super().__init__(f"workflow file {path}{where}: {reason}", path=path, reason=reason,
                         line=place[0] if place else None,
                         column=place[1] if place else None)
        self.path, self.reason, self.place = path, reason, place


class UnknownTask(UsageError):
    """No task is known by that name."""

    def __init__(self, name: str, known: Iterable[str] = (), why: str = "") -> None:
        known = list(known)
        hint = f" (known: {_names(known)})" if known else ""
        because = f": {why}" if why else ""
        super().__init__(f"unknown task {name!r}{because}{hint}", name=name, known=known)
        self.name, self.known = name, known


class UnknownConfig(UsageError):
    """A task has no config by that name."""

    def __init__(self, task: str, key: str, known: Iterable[str] = ()) -> None:
        known = list(known)
        # spelled as the command line and task help spell them: --out-dir
        hint = f" (configs: {', '.join('--' + k.replace('_', '-') for k in known)})" \
            if known else " (it has none)"
        super().__init__(f"task {task!r} has no config {key!r}{hint}",
                         task=task, key=key, known=known)
        self.task, self.key, self.known = task, key, known


class ConfigValueError(UsageError):
    """A config value does not validate against the config's type."""

    def __init__(self, task: str, key: str, value: Any, expected: str) -> None:
        super().__init__(f"task {task!r} config {key!r}: bad value {value!r}, expected {expected}",
                         task=task, key=key, value=value, expected=expected)
        self.task, self.key, self.value, self.expected = task, key, value, expected


class SecretMissing(UsageError):
    """A secret config is not stored, so continuing a run needs it given again."""

    def __init__(self, run: str, node: Any, key: str, env: str) -> None:
        where = f"run {run}: " if run else ""
        super().__init__(f"{where}node {node} config {key!r} is a secret, which is never "
                         f"stored; give it again with --set {node}.{key}=VALUE or ${env}",
                         run=run, node=node, key=key, env=env)
        self.run, self.node, self.key, self.env = run, node, key, env


class TaskDefinitionError(UsageError):
    """A task class or function is declared wrongly; raised when it is defined."""

    def __init__(self, task: str, reason: str) -> None:
        super().__init__(f"task {task}: {reason}", task=task, reason=reason)
        self.task, self.reason = task, reason


class TaskImportError(UsageError):
    """A retapfile or a task module could not be imported."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot load tasks from {source}: {reason}", source=source,
                         reason=reason)
        self.source, self.reason = source, reason


class InputArityError(UsageError):
    """A lead node is given a number of inputs its task cannot take."""

    def __init__(self, node: Any, task: str, usage: str, got: int) -> None:
        super().__init__(f"node {node} ({task}) got {got} input(s); usage: {usage}",
                         node=node, task=task, usage=usage, got=got)
        self.node, self.task, self.usage, self.got = node, task, usage, got


class SpecError(UsageError):
    """A workflow part cannot be written to, or rebuilt from, a spec."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}", what=what, reason=reason)
        self.what, self.reason = what, reason


class UnknownRun(UsageError):
    """No run with that id is in the store."""

    def __init__(self, run: str, store: str = "") -> None:
        where = f" in {store}" if store else ""
        super().__init__(f"no run {run!r}{where} (see `retap runs`)", run=run, store=store)
        self.run, self.store = run, store


class AmbiguousRun(UsageError):
    """A prefix of a run id that names more than one run."""

    def __init__(self, prefix: str, runs: list[str]) -> None:
        shown = ", ".join(runs[:8]) + (", ..." if len(runs) > 8 else "")
        super().__init__(f"{prefix!r} names {len(runs)} runs ({shown}); give more of its id",
                         prefix=prefix, runs=runs)
        self.prefix, self.runs = prefix, runs


class RunExists(UsageError):
    """A new run would take an id that a run in the store already has."""

    def __init__(self, run: str, store: str = "", hint: str | None = None) -> None:
        where = f" in {store}" if store else ""
        hint = hint or f"pick another --run-id, or continue it with `retap resume {run}`"
        super().__init__(f"run {run!r} already exists{where}; {hint}", run=run, store=store)
        self.run, self.store = run, store


class BadRunId(UsageError):
    """A run id that is not 1-128 letters, digits, dots, underscores and dashes, or (``why``)
    one a new run may not take."""

    def __init__(self, run: str, why: str | None = None) -> None:
        super().__init__(f"bad run id {run!r}: " + (
            why or "use 1-128 ASCII letters, digits, '.', '_' or '-' (not '.' or '..')"),
            run=run)
        self.run = run


class RunBusy(UsageError):
    """Another process owns the run (alive, or on a host whose processes cannot be seen)."""

    def __init__(self, run: str, owner: str, remote: bool = False) -> None:
        if remote:
            message = (f"run {run} is owned by {owner}, another host, whose processes this "
                       "machine cannot see; if that process is gone (a restarted container, a "
                       "renamed host), take the run over with --take-over")
        else:
            message = f"run {run} is being run by {owner}; not taking it over"
        super().__init__(message, run=run, owner=owner, remote=remote)
        self.run, self.owner, self.remote = run, owner, remote


class InflightNotIdempotent(UsageError):
    """Resume would re-run dispatches that were in flight and are not idempotent."""

    def __init__(self, run: str, dispatches: list[tuple[str, Any, str]]) -> None:
        named = ", ".join(f"{d[:12]} (node {n}, {t})" for d, n, t in dispatches)
        super().__init__(f"run {run}: dispatches {named} were running when the run stopped and "
                         "their tasks are not idempotent; check their side effects, then "
                         "resume with --rerun-inflight", run=run,
                         dispatches=[d for d, _, _ in dispatches])
        self.run, self.dispatches = run, dispatches


class ExecutorError(UsageError):
    """An executor cannot be used as asked, or cannot take a task (nothing was run)."""

    def __init__(self, executor: str, reason: str) -> None:
        super().__init__(f"executor {executor}: {reason}", executor=executor, reason=reason)
        self.executor, self.reason = executor, reason


class StoreError(RetapError):
    """The store cannot be opened or used: nothing was run (exit 2)."""

    exit_code = 2

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"store {store}: {reason}", store=store, reason=reason)
        self.store, self.reason = store, reason


class StoreVersionError(StoreError):
    """The store was written by a newer version of retap."""

    def __init__(self, store: str, found: int, supported: int) -> None:
        super().__init__(store, f"schema version {found} is newer than this retap supports "
                                f"({supported}); upgrade retap to use it")
        self.found, self.supported = found, supported


class StoreCorrupt(StoreError):
    """The store file is damaged, truncated, or not a retap store at all."""


class StoreWriteError(StoreError):
    """A write failed mid-run (disk full, I/O error); what was committed is kept."""

    exit_code = 1


class LeaseLost(StoreError):
    """Another coordinator took the run over (this one's lease had expired while it was
    paused or cut off): this one stops without writing anything more."""

    exit_code = 1

    def __init__(self, store: str, run: str) -> None:
        super().__init__(store, f"run {run} was taken over by another coordinator while this "
                                "one was paused or cut off (its lease had expired); stopping "
                                "without writing")
        self.run = run


class LeasePausedOut(LeaseLost):
    """The server ended this coordinator's session: it sat paused or cut off inside a
    transaction for longer than its lease (which had therefore expired), so another
    coordinator may have taken the run over; this one stops without writing."""

    def __init__(self, store: str, run: str) -> None:
        StoreError.__init__(self, store, f"run {run}: this coordinator was paused or cut off "
                                         "inside a transaction for longer than its lease, so "
                                         "the server ended its session; the run may have "
                                         "been taken over by another coordinator; stopping "
                                         f"without writing (`retap resume {run}` continues "
                                         "it if none did)")
        self.run = run


class StoreConnectionLost(StoreError):
    """The connection to the store's server was lost mid-run; what was committed is kept."""

    exit_code = 1


class TaskFailed(RetapError):
    """A task reports that it failed, with a message and no traceback to speak of."""


class WorkerLost(RetapError):
    """The process running a dispatch died under it (killed, crashed, out of memory)."""

    def __init__(self, dispatch: str, reason: str) -> None:
        super().__init__(f"worker lost: {reason}", dispatch=dispatch, reason=reason)
        self.dispatch, self.reason = dispatch, reason


class DispatchTimeout(RetapError):
    """A dispatch ran longer than its timeout; its worker was stopped."""

    def __init__(self, dispatch: str, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s (its worker was stopped)",
                         dispatch=dispatch, seconds=seconds)
        self.dispatch, self.seconds = dispatch, seconds


class CodecError(RetapError):
    """A value cannot be encoded or decoded with the store's codec."""

    def __init__(self, reason: str, type_name: str = "") -> None:
        super().__init__(reason, type=type_name)
        self.reason, self.type_name = reason, type_name


class JoinError(RetapError):
    """A join cannot pass a result on, e.g. a switch index out of range."""

    def __init__(self, join: Any, reason: str) -> None:
        super().__init__(f"join {join}: {reason}", join=join, reason=reason)
        self.join, self.reason = join, reason


class Interrupted(RetapError):
    """The run was stopped by a signal; it is resumable."""

    def __init__(self, signal_name: str = "SIGINT") -> None:
        super().__init__(f"interrupted by {signal_name}", signal=signal_name)
        self.signal_name = signal_name
        self.exit_code = 143 if signal_name == "SIGTERM" else 130


_PACKAGE_DIR = str(Path(__file__).resolve().parent) + "/"


def error_record(exc: BaseException) -> dict[str, Any]:
    """An exception as the JSON a failure is recorded with: type, message, the offending
    inputs of a retap error, and the traceback from the task's own frames on."""
    import traceback  # here: every command imports this module, few record a failure

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR) \
            and tb.tb_next is not None:
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:  # a broken __str__ or a traceback too deep to render
        text = f"{type(exc).__name__} (its traceback could not be rendered)\n"
    record = exc.to_dict() if isinstance(exc, RetapError) else {
        "type": type(exc).__name__, "message": _message(exc)}
    record["message"] = record["message"] or type(exc).__name__
    record["traceback"] = text
    return record


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"{type(exc).__name__} (its message could not be rendered)"
