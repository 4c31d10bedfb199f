"""The store boundary: every row read from a store is checked here, field by field, before
anything else sees it.

A store is data. A row can pass its checksum and still hold what retap never writes (a
row edited by hand, with its checksum recomputed): a spec that is a list, sources that
are not a list, a timestamp past the year 9999, a pid no process can have. Each model
below says what retap writes; a row that does not fit is refused as ``StoreCorrupt``
with one line naming the row and the field, never read as data.

The models are msgspec structs, not pydantic models: every command that reads a store
passes here, and msgspec loads in a few milliseconds where pydantic's import and model
building cost a listing of runs most of its time (issue 13). Columns that hold JSON are
decoded with the standard library's ``json``, the codec that wrote them (it writes ``NaN``
and integers of any size), then checked against their type.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgspec
from msgspec import Meta

from retap.dispatch import NodeId
from retap.runid import valid_run_id

__all__ = [
    "AttemptRow",
    "DispatchRow",
    "EventRow",
    "JoinCountRow",
    "JoinEntryRow",
    "LogRow",
    "MemoRow",
    "QueueRow",
    "RunRow",
    "Timestamp",
    "WorkerRow",
    "problem",
    "valid",
]

STATUSES = ("running", "done", "failed", "interrupted")
Status = Literal["running", "done", "failed", "interrupted"]
# \A and \Z, not ^ and $: a $ would also let a trailing newline through
Hex32 = Annotated[str, Meta(pattern=r"\A[0-9a-f]{32}\Z")]
# a value's ref: its digest, or its JSON inline after "="
Ref = Annotated[str, Meta(pattern=r"\A(=.+|[0-9a-f]{32})\Z")]
# seconds since the epoch, up to the year 9999 (what a date can show); NaN fails both bounds
Timestamp = Annotated[float, Meta(ge=0, le=253_402_300_799)]
Count = Annotated[int, Meta(ge=0, le=2 ** 63 - 1)]
Positive = Annotated[int, Meta(ge=1, le=2 ** 63 - 1)]
Pid = Annotated[int, Meta(gt=0, lt=2 ** 31)]


class _Row(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # the columns that hold JSON text, decoded before the row is checked
    json_columns: ClassVar[tuple[str, ...]] = ()


class RunRow(_Row, frozen=True):
    """A row of ``runs`` (the spec is checked on its own, once decoded)."""

    run: str
    status: Status
    created: Timestamp
    codec: Literal["json", "pickle"] = "json"
    owner_host: str | None = None
    owner_pid: Pid | None = None
    owner_started: Timestamp | None = None

    def __post_init__(self) -> None:
        if not valid_run_id(self.run):
            raise ValueError("run: not a valid run id")


class DispatchRow(_Row, frozen=True):
    """A row of ``dispatches``: one dispatch's latest attempt."""

    json_columns: ClassVar[tuple[str, ...]] = ("node", "sources", "inputs", "error", "outputs")

    id: Hex32
    node: NodeId
    task: str
    sources: tuple[Hex32, ...]
    status: Status
    attempts: Count
    seq: Count
    inputs: list[Ref] | None = None
    result: Ref | None = None
    error: dict[str, Any] | None = None
    started: Timestamp | None = None
    finished: Timestamp | None = None
    code_version: str | None = None
    reused: str | None = None
    outputs: dict[str, str] | None = None


class QueueRow(_Row, frozen=True):
    """A row of ``queue``: one pending dispatch at its position."""

    json_columns: ClassVar[tuple[str, ...]] = ("node", "sources", "inputs")

    id: Hex32
    node: NodeId
    sources: tuple[Hex32, ...]
    inputs: list[Ref]
    pos: int


class JoinEntryRow(_Row, frozen=True):
    """A row of ``join_entries``: one result a stateful join holds."""

    json_columns: ClassVar[tuple[str, ...]] = ("join_id",)

    join_id: NodeId
    slot: Annotated[int, Meta(ge=0, lt=1 << 16)]
    audit: Hex32


class JoinCountRow(_Row, frozen=True):
    """A row of ``join_counts``: how often a stateful join has fired."""

    json_columns: ClassVar[tuple[str, ...]] = ("join_id",)

    join_id: NodeId
    count: Count


class MemoRow(_Row, frozen=True):
    """A row of ``memo``: a result other runs may reuse."""

    json_columns: ClassVar[tuple[str, ...]] = ("outputs", "facts")

    task: str
    key: str
    result: Ref
    outputs: dict[str, str]
    facts: dict[str, Any]
    run: str
    dispatch: str
    created: Timestamp


class AttemptRow(_Row, frozen=True):
    """A row of ``attempts``: an attempt a dispatch's row no longer holds."""

    json_columns: ClassVar[tuple[str, ...]] = ("error",)

    dispatch: Hex32
    n: Positive
    session: Count
    status: Literal["done", "failed", "interrupted", "lost"]
    started: Timestamp | None = None
    finished: Timestamp | None = None
    error: dict[str, Any] | None = None


class EventRow(_Row, frozen=True):
    """A row of ``events``: one entry of a run's timeline."""

    json_columns: ClassVar[tuple[str, ...]] = ("data",)

    seq: Positive
    at: Timestamp
    kind: Annotated[str, Meta(pattern=r"\A[a-z-]{1,32}\Z")]
    data: dict[str, Any]


class LogRow(_Row, frozen=True):
    """A row of ``logs``: what one attempt printed and logged."""

    seq: Positive
    dispatch: Hex32
    attempt: Positive
    text: str
    dropped: Count


class WorkerRow(_Row, frozen=True):
    """A row of ``workers``: the process that ran one attempt outside its coordinator."""

    dispatch: Hex32
    attempt: Positive
    host: Annotated[str, Meta(min_length=1, max_length=255)]
    pid: Pid


M = TypeVar("M", bound=_Row)


def valid(model: type[M], fields: dict[str, Any]) -> M | str:
    """``fields`` as a ``model``, or a one-line reason why they are not one
    (``sources: Expected `array`, got `int```)."""
    for column in model.json_columns:
        text = fields.get(column)
        if text is None:
            continue
        if not isinstance(text, str | bytes | bytearray):
            return f"{column}: JSON text expected, got `{type(text).__name__}`"
        try:
            fields[column] = json.loads(text)
        except ValueError:
            return f"{column}: not valid JSON"
        except RecursionError:
            return f"{column}: JSON nested too deep"
    try:
        return msgspec.convert(fields, model, strict=True)
    except msgspec.ValidationError as exc:
        return problem(str(exc))
    except RecursionError:
        return "row: nested too deep"


def problem(message: str, whole: str = "row") -> str:
    """msgspec's ``Expected ... - at `$.sources[0]``` as ``sources[0]: Expected ...``; a
    problem with the whole value is said of ``whole`` (nothing when it is empty)."""
    said, at, where = message.rpartition(" - at `")
    if not at:  # about the whole value, or said by a check of ours ("run: not a ...")
        return message if ": " in message or not whole else f"{whole}: {message}"
    key, _, within = where.partition("` in `")  # a mapping's key: "key` in `$.config`"
    where = (within or key).rstrip("`").removeprefix("$").removeprefix(".")
    if within:
        where = f"a key of {where}" if where else "a key"
    where = where or whole
    return f"{where}: {said}" if where else said
