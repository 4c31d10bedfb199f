"""The store boundary: every row read from a store is checked here, field by field, before
anything else sees it.

A store is data. A row can pass its checksum and still hold what retap never writes (a
row edited by hand, with its checksum recomputed): a spec that is a list, sources that
are not a list, a timestamp past the year 9999, a pid no process can have. Each model
below says what retap writes; a row that does not fit is refused as ``StoreCorrupt``
with one line naming the row and the field, never read as data.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
# a value's ref: its digest, or its JSON inline after "="
Ref = Annotated[str, StringConstraints(pattern=r"^(=.+|[0-9a-f]{32})$")]
NodeId = Annotated[int, Field(strict=True)] | str
# seconds since the epoch, up to the year 9999 (what a date can show)
Timestamp = Annotated[float, Field(ge=0, le=253_402_300_799, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, lt=2 ** 63)]


class _Row(BaseModel):
    # each row model is built when first used: a command reading runs needs one of ten
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", defer_build=True)


class RunRow(_Row):
    """A row of ``runs`` (the spec is checked on its own, once decoded)."""

    run: str
    status: Status
    created: Timestamp
    codec: Literal["json", "pickle"] = "json"
    owner_host: str | None = None
    owner_pid: Annotated[int, Field(gt=0, lt=2 ** 31)] | None = None
    owner_started: Timestamp | None = None

    @pydantic.field_validator("run")
    @classmethod
    def _run_id(cls, run: str) -> str:
        if not valid_run_id(run):
            raise ValueError("not a valid run id")
        return run


class DispatchRow(_Row):
    """A row of ``dispatches``: one dispatch's latest attempt."""

    id: Hex32
    node: pydantic.Json[NodeId]
    task: str
    sources: pydantic.Json[tuple[Hex32, ...]]
    inputs: pydantic.Json[list[Ref]] | None = None
    status: Status
    result: Ref | None = None
    error: pydantic.Json[dict[str, Any]] | None = None
    attempts: Count
    seq: Count
    started: Timestamp | None = None
    finished: Timestamp | None = None
    code_version: str | None = None
    reused: str | None = None
    outputs: pydantic.Json[dict[str, str]] | None = None


class QueueRow(_Row):
    """A row of ``queue``: one pending dispatch at its position."""

    id: Hex32
    node: pydantic.Json[NodeId]
    sources: pydantic.Json[tuple[Hex32, ...]]
    inputs: pydantic.Json[list[Ref]]
    pos: int


class JoinEntryRow(_Row):
    """A row of ``join_entries``: one result a stateful join holds."""

    join_id: pydantic.Json[NodeId]
    slot: Annotated[int, Field(ge=0, lt=1 << 16)]
    audit: Hex32


class JoinCountRow(_Row):
    """A row of ``join_counts``: how often a stateful join has fired."""

    join_id: pydantic.Json[NodeId]
    count: Count


class MemoRow(_Row):
    """A row of ``memo``: a result other runs may reuse."""

    task: str
    key: str
    result: Ref
    outputs: pydantic.Json[dict[str, str]]
    facts: pydantic.Json[dict[str, Any]]
    run: str
    dispatch: str
    created: Timestamp


class AttemptRow(_Row):
    """A row of ``attempts``: an attempt a dispatch's row no longer holds."""

    dispatch: Hex32
    n: Annotated[int, Field(ge=1, lt=2 ** 63)]
    session: Count
    status: Literal["done", "failed", "interrupted", "lost"]
    started: Timestamp | None = None
    finished: Timestamp | None = None
    error: pydantic.Json[dict[str, Any]] | None = None


class EventRow(_Row):
    """A row of ``events``: one entry of a run's timeline."""

    seq: Annotated[int, Field(ge=1, lt=2 ** 63)]
    at: Timestamp
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z-]{1,32}$")]
    data: pydantic.Json[dict[str, Any]]


class LogRow(_Row):
    """A row of ``logs``: what one attempt printed and logged."""

    seq: Annotated[int, Field(ge=1, lt=2 ** 63)]
    dispatch: Hex32
    attempt: Annotated[int, Field(ge=1, lt=2 ** 63)]
    text: str
    dropped: Count


class WorkerRow(_Row):
    """A row of ``workers``: the process that ran one attempt outside its coordinator."""

    dispatch: Hex32
    attempt: Annotated[int, Field(ge=1, lt=2 ** 63)]
    host: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    pid: Annotated[int, Field(gt=0, lt=2 ** 31)]


def problem(error: pydantic.ValidationError) -> str:
    """The first thing wrong with a row, in a few words: ``sources: Input should be ...``."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "row"
    return f"{where}: {first['msg']}"


M = TypeVar("M", bound=BaseModel)


def valid(model: type[M], fields: dict[str, Any]) -> M | str:
    """``fields`` as a ``model``, or a one-line reason why they are not one."""
    try:
        return model.model_validate(fields)
    except pydantic.ValidationError as exc:
        return problem(exc)
    except (RecursionError, ValueError, TypeError) as exc:
        return f"row: {type(exc).__name__}"
