"""Dispatches, their deterministic ids, and what an attempt at one left (``Attempt``, and
the ``Log`` of what it printed, which ``retap.capture`` collects).

A dispatch is one call of one node with concrete inputs. Its id is a hash of its
lineage, never of time or of values: ``H("lead", node, k)`` for the k-th lead input
set of a node, ``H("join", join, target, source ids, part)`` for what a join passes
on. A replay therefore meets the same ids as the run it replays, and a dispatch the
store has as done is never executed again.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec.structs import force_setattr

from retap import hashing

__all__ = ["Attempt", "Dispatch", "JoinIds", "Log", "Outcome", "join_dispatch_id",
           "lead_dispatch_id"]

NodeId = int | str


class Log(msgspec.Struct, frozen=True):
    """What one attempt printed and logged, in the order written; ``dropped`` characters
    were left out of its middle (0: it is whole)."""

    text: str
    dropped: int = 0

    def __post_init__(self) -> None:
        # as every store can hold it: no NUL (PostgreSQL text refuses it), no lone
        # surrogate (not UTF-8)
        text = self.text.replace("\x00", "\\x00")
        force_setattr(self, "text", text.encode("utf-8", "backslashreplace").decode())


def _digest(parts: tuple[Any, ...]) -> str:
    # repr of tuples of str, int, None and lists of them is canonical, and fast
    return _hash(repr(parts))


def _hash(text: str) -> str:
    return hashing.blake2b(text.encode(), digest_size=16).hexdigest()


def lead_dispatch_id(node: NodeId, k: int) -> str:
    """Id of the k-th lead dispatch of ``node``."""
    return _digest(("lead", node, k))


def join_dispatch_id(join: NodeId, target: NodeId, sources: tuple[str, ...] | list[str],
                     part: Any) -> str:
    """Id of what ``join`` passes to ``target`` from the ``sources`` dispatches."""
    return JoinIds(join, target)(sources, part)


class JoinIds:
    """``join_dispatch_id`` for one join and target, which a join makes an id for each
    result it passes on: the hash of what the ids share is taken once and copied."""

    __slots__ = ("_start",)

    def __init__(self, join: NodeId, target: NodeId) -> None:
        # the text hashed is _digest(("join", join, target, tuple(sources), part)) with the
        # tuple's repr written out: these ids took a fifth of a chain's time per dispatch
        self._start = hashing.blake2b(f"('join', {join!r}, {target!r}, ".encode(),
                                      digest_size=16)

    def __call__(self, sources: tuple[str, ...] | list[str], part: Any) -> str:
        hashed = self._start.copy()
        hashed.update(f"{tuple(sources)!r}, {part!r})".encode())
        return hashed.hexdigest()  # type: ignore[no-any-return]


class Dispatch:
    """One call of one node: its id, node, inputs and the audit ids of its sources.

    ``ref`` is private to the store that queued it (e.g. the digests of its inputs).
    """

    __slots__ = ("id", "inputs", "node", "ref", "sources")

    def __init__(self, id: str, node: NodeId, inputs: tuple[Any, ...],
                 sources: tuple[str, ...] = (), ref: Any = None) -> None:
        self.id = id
        self.node = node
        self.inputs = inputs
        self.sources = sources
        self.ref = ref

    def __repr__(self) -> str:
        return f"Dispatch({self.id[:12]}, node={self.node!r}, inputs={self.inputs!r})"


class Attempt(msgspec.Struct):
    """One attempt at a dispatch: its number, the session (the event that started the run,
    resume or replay it belonged to) and how it ended. ``lost``: its coordinator died while
    it ran."""

    n: int
    session: int
    status: str
    started: float | None = None
    finished: float | None = None
    error: dict[str, Any] | None = None
    log: Log | None = None  # what it printed and logged
    worker: tuple[str, int] | None = None  # (host, pid) that ran it, when not its coordinator


class Outcome(msgspec.Struct):
    """What executing (or looking up) one dispatch produced."""

    status: str  # "done" | "failed" | "interrupted"
    value: Any = None
    error: dict[str, Any] | None = None
    attempts: int = 1
    started: float = 0.0
    finished: float = 0.0
    cached: bool = False  # answered by the replay cache: nothing new to record
    reused: str | None = None  # answered by a memoized result of "RUN/DISPATCH"
    outputs: dict[str, str] | None = None  # files written, path -> digest
    memo: Any = None  # a MemoEntry to remember with the record
    earlier: tuple[Attempt, ...] = ()  # failed attempts before this one
    log: Log | None = None  # what this attempt printed and logged
    worker: tuple[str, int] | None = None  # (host, pid) that ran it, when not the coordinator
