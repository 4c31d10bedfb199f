"""The store interface: where runs, dispatch records, values, join state and queues live.

The App talks to a store only through ``Store`` (runs as a whole) and ``RunLog``
(one claimed run). Each method states its contract. Implementations: ``MemoryStore``
(``:memory:``, nothing survives the process) and ``SQLiteStore`` (the default file).
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self

import msgspec

from retap.dispatch import Attempt, Dispatch, Log, NodeId
from retap.errors import RunBusy
from retap.owner import Owner

if TYPE_CHECKING:
    from retap.joins import Join, JoinState

__all__ = ["LOST", "SESSIONS", "Attempt", "AuditRecord", "DispatchRecord", "Effects", "LogRecord",
           "Owner", "Recorded", "RunEvent", "RunInfo", "RunLog", "Store", "busy_owner",
           "kept_attempt", "logs_of", "made_attempts", "session_of", "session_starts", "workers_of"]

SESSIONS = ("created", "resumed", "replayed")  # the events that start a session of a run


class RunEvent(msgspec.Struct):
    """One entry of a run's timeline: its number in the run, when, what, and the details."""

    seq: int
    at: float
    kind: str
    data: dict[str, Any]


class LogRecord(msgspec.Struct):
    """What one attempt at a dispatch printed and logged, stored with the commit ``seq``
    that recorded the attempt (``dropped``: characters left out of its middle)."""

    dispatch: str
    attempt: int
    seq: int
    text: str
    dropped: int = 0


class DispatchRecord(msgspec.Struct):
    """What one attempt at a dispatch left: written by ``RunLog.commit_dispatch``."""

    id: str
    node: NodeId
    task: str
    sources: tuple[str, ...]
    status: str
    value: Any = None
    error: dict[str, Any] | None = None
    attempts: int = 1
    started: float = 0.0
    finished: float = 0.0
    code_version: str = ""
    inputs: tuple[Any, ...] = ()
    ref: Any = None
    reused: str | None = None  # "RUN/DISPATCH" whose memoized result this one took
    outputs: dict[str, str] | None = None  # files written: path -> content digest
    memo: MemoEntry | None = None  # a result to remember for later runs, with this commit
    earlier: tuple[Attempt, ...] = ()  # this session's failed attempts
    log: Log | None = None  # what this attempt printed and logged
    worker: tuple[str, int] | None = None  # (host, pid) that ran it, when not the coordinator


class MemoEntry(msgspec.Struct):
    """A result another run may reuse: what it was made from (``facts``, hashed into
    ``key``), the value, and the files written with their digests."""

    task: str
    key: str
    value: Any
    outputs: dict[str, str]
    facts: dict[str, Any]
    run: str = ""
    dispatch: str = ""
    created: float = 0.0


class Effects(msgspec.Struct):
    """What committing one dispatch changes besides its record.

    ``removed`` leaves the queue; ``front`` go to the head of the queue in order (they run
    next: depth-first), ``back`` to its tail (enqueued); ``joins`` are join-state changes as
    ``(join id, change)`` with the change as logged by ``JoinState``.
    """

    removed: Dispatch | None = None
    front: list[Dispatch] = msgspec.field(default_factory=list)
    back: list[Dispatch] = msgspec.field(default_factory=list)
    joins: list[tuple[NodeId, tuple[Any, ...]]] = msgspec.field(default_factory=list)


class AuditRecord(msgspec.Struct):
    """One dispatch as the audit shows it: its latest attempt."""

    id: str
    node: NodeId
    task: str
    sources: tuple[str, ...]
    status: str
    value: Any
    attempts: int
    seq: int
    error: dict[str, Any] | None = None
    code_version: str = ""
    started: float = 0.0
    finished: float = 0.0
    inputs: tuple[Any, ...] = ()
    reused: str | None = None
    outputs: dict[str, str] | None = None


class RunInfo(msgspec.Struct):
    """A run as the store knows it."""

    run: str
    status: str
    created: float
    spec: dict[str, Any]
    owner: Owner | None
    dispatches: int = 0
    workflow: Any = None  # the live Workflow, kept only by in-memory stores
    codec: str = "json"  # how the run's values are stored
    lease_expires: float | None = None  # until when the owner's lease holds (None: no lease)

    @property
    def lease_expired(self) -> bool:
        return self.lease_expires is not None and self.lease_expires < now()

    @property
    def effective_status(self) -> str:
        """``running`` only while the owner lives: a dead owner's run (or, on another host,
        one whose lease expired) is ``interrupted``."""
        if self.status == "running" and (self.owner is None or not self.owner.alive() or
                                         (not self.owner.local and self.lease_expired)):
            return "interrupted"
        return self.status


class Recorded(ABC):
    """A run's done dispatches as a replay or resume asks for them: when each was recorded
    (its ``seq``: they are answered in that order) and what it returned."""

    @abstractmethod
    def seq(self, dispatch: str) -> int | None:
        """The commit number of ``dispatch`` when the store has it as done, else None."""

    @abstractmethod
    def value(self, dispatch: str) -> Any:
        """The recorded result of a done ``dispatch`` (StoreCorrupt when it is unreadable)."""


LEASE_ENV = "RETAP_LEASE_SECONDS"


def lease_seconds() -> float:
    """How long a coordinator's lease on its run lasts unless renewed: ``$RETAP_LEASE_SECONDS``
    (a positive number), else 30 s. It is renewed every third of that while the run goes on."""
    try:
        seconds = float(os.environ.get(LEASE_ENV, "30"))
    except ValueError:
        seconds = 30.0
    return seconds if 0 < seconds < 86_400 else 30.0


class Store(ABC):
    """All runs in one place."""

    location: str = ""
    durable: bool = True  # False: nothing survives the process (specs may hold live objects)

    @abstractmethod
    def create_run(self, run: str, spec: dict[str, Any], owner: Owner,
                   workflow: Any = None, leads: list[Dispatch] | None = None) -> RunLog:
        """Record a new run owned by ``owner`` with ``leads`` queued, in one transaction,
        and return its log. Raises ``RunExists`` when a run with that id exists."""

    @abstractmethod
    def claim_run(self, run: str, owner: Owner, take_over: bool = False) -> RunLog:
        """Take an existing run over for ``owner``, atomically; the log writes values with
        the codec the run was recorded with.

        Succeeds when the run is not ``running`` or its owner is dead; raises ``RunBusy``
        when a live owner holds it (an owner on another host counts as live unless
        ``take_over``), ``UnknownRun`` when there is no such run. Two claims at once:
        exactly one succeeds.
        """

    # Every read of one run (``run_info`` to ``join_states``) raises ``UnknownRun`` when the
    # store has no such run: a mistyped run id is refused, never answered with nothing.

    @abstractmethod
    def run_info(self, run: str, count: bool = True) -> RunInfo:
        """The run's record; ``count=False``: without counting its dispatches (a pass over
        its whole history in a SQL store), ``dispatches`` is then 0."""

    @abstractmethod
    def runs(self) -> list[RunInfo]:
        """Every run, newest first (an empty list when there are none)."""

    @abstractmethod
    def audits(self, run: str, limit: int | None = None) -> list[AuditRecord]:
        """Every dispatch recorded for ``run`` (latest attempt), in recording order; with
        ``limit``, only the first so many (the rest are not read)."""

    @abstractmethod
    def dispatch_ids(self, run: str, prefix: str) -> list[str]:
        """The ids of ``run``'s dispatches that begin with ``prefix`` (any case), read
        without the rest of their rows."""

    @abstractmethod
    def earlier_attempts(self, run: str) -> dict[str, list[Attempt]]:
        """Every attempt the dispatches' rows no longer hold (each row is its dispatch's
        latest attempt), by dispatch id, in order."""

    @abstractmethod
    def delete_runs(self, runs: Iterable[str]) -> list[str]:
        """Delete these runs with everything recorded for them (their remembered results
        too) and the values nothing else refers to, in one transaction; a run held by a
        live owner is left alone. The runs deleted (an unknown run is not one)."""

    @abstractmethod
    def events(self, run: str) -> list[RunEvent]:
        """The run's timeline, in order."""

    @abstractmethod
    def logs(self, run: str, after: int = 0) -> list[LogRecord]:
        """What the run's attempts printed and logged, those recorded by commits after
        ``after`` (a ``seq``), in recording order."""

    @abstractmethod
    def workers(self, run: str) -> dict[tuple[str, int], tuple[str, int]]:
        """``(host, pid)`` of each attempt that ran outside its coordinator (a worker
        process, a Dask worker), by ``(dispatch, attempt)``; any other attempt ran in the
        coordinator of its session."""

    @abstractmethod
    def dispatches(self, run: str, statuses: Iterable[str], ids: Iterable[str] | None = None
                   ) -> list[AuditRecord]:
        """The run's dispatches with these statuses, in recording order, inputs included;
        with ``ids``, only those of them (without reading the rest of the history)."""

    @abstractmethod
    def versions(self, run: str) -> list[tuple[NodeId, str, str]]:
        """``(node, task, code version)`` of every distinct version among done dispatches,
        sorted (by ``repr``), read without a pass over the history: it may also name a
        version no done dispatch holds any longer (``holds_version`` tells)."""

    @abstractmethod
    def holds_version(self, run: str, node: NodeId, task: str, version: str) -> bool:
        """Some done dispatch of ``node`` holds ``version`` (of ``task``)."""

    @abstractmethod
    def counts(self, run: str) -> dict[str, int]:
        """Dispatches of ``run`` by status, e.g. ``{"done": 3, "failed": 1}`` (``{}`` when
        nothing is recorded yet)."""

    @abstractmethod
    def queue(self, run: str) -> list[Dispatch]:
        """The run's pending dispatches: failed and interrupted first, then in queue order."""

    @abstractmethod
    def join_states(self, run: str, joins: Iterable[Join]) -> dict[NodeId, JoinState]:
        """The saved state of each stateful join of ``joins`` (a fresh one where nothing is
        saved), values filled in from the audit."""

    @abstractmethod
    def dispatch_status(self, run: str, dispatch: str) -> str | None:
        """The status of one dispatch of ``run``; None when it was never recorded (or the
        run is unknown)."""

    @abstractmethod
    def recorded_output(self, path: str, digest: str) -> bool:
        """True when a committed dispatch of any run recorded the file at absolute ``path``
        with content ``digest`` as an output."""

    @abstractmethod
    def memo_get(self, task: str, key: str) -> MemoEntry | None:
        """The remembered result of ``task`` for ``key``, or None."""

    @abstractmethod
    def memo_latest(self, task: str, dispatch: str) -> MemoEntry | None:
        """The newest remembered result of ``task`` for the same dispatch id (the same place
        in the same workflow), else the newest of ``task``; None when there is none. It is
        what a miss is explained against."""

    @abstractmethod
    def forget(self, task: str, run: str | None = None) -> int:
        """Drop remembered results of ``task`` (only those made by ``run``); how many."""

    @abstractmethod
    def file_digest(self, path: str, stat: tuple[int, int, int]) -> str | None:
        """The remembered digest of ``path`` if its (size, mtime_ns, inode) is unchanged."""

    @abstractmethod
    def remember_file(self, path: str, stat: tuple[int, int, int], digest: str) -> None:
        """Remember the digest of ``path`` at this (size, mtime_ns, inode)."""

    def check_structure(self) -> None:
        """Raise StoreCorrupt when the store's structure is damaged (before trusting it)."""

    def start_structure_check(self) -> Callable[[], None]:
        """``check_structure`` beside what the caller does next, where it takes a pass over
        the whole store; the function returned waits for it (and raises what it found)."""
        self.check_structure()
        return _checked

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one consistent state of the store, and never block a writer."""
        yield

    def close(self) -> None:
        """Release connections; the store may not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RunLog(ABC):
    """The writes of one claimed run. Only the owner of the run holds one."""

    run: str
    previous: str = "running"  # the run's status before it was claimed (resume, replay)
    session: int = 0  # the event that started this session (0: none recorded yet)

    @abstractmethod
    def event(self, kind: str, data: dict[str, Any]) -> int:
        """Add an entry to the run's timeline (with the next commit in ``batch``); its
        number."""

    def hold_writes_until(self, checked: Callable[[], None]) -> None:
        """Call ``checked`` (a store's structure check under way) before this log's next
        write: what it raises stops that write."""
        checked()

    def start_session(self, kind: str, data: dict[str, Any]) -> None:
        """Record that a run, resume or replay of the run starts here: the attempts made
        from now on belong to it."""
        self.session = self.event(kind, {**data, "first": self.commits + 1})

    @property
    @abstractmethod
    def commits(self) -> int:
        """How many dispatch records were committed so far (the ``seq`` of the latest)."""

    @abstractmethod
    def commit_dispatch(self, record: DispatchRecord, effects: Effects) -> None:
        """One transaction: the record, the join-state and queue changes it caused.

        A ``done`` record's dispatch leaves the queue (``effects.removed``); a ``failed`` or
        ``interrupted`` one stays queued for resume. Once this returns the change survives
        the process being killed (in ``batch`` durability: once the batch is flushed).
        """

    @abstractmethod
    def commit_effects(self, effects: Effects) -> None:
        """One transaction of queue and join-state changes without a dispatch record
        (leads enqueued, a gate released on drain)."""

    @abstractmethod
    def mark_running(self, dispatch: Dispatch, task: str, code_version: str) -> None:
        """Record, durably, that ``dispatch`` is about to execute (non-idempotent tasks)."""

    def rerunning(self, dispatch: str) -> None:
        """``dispatch``, recorded done, runs again (``--rerun-changed``): its done attempt
        is kept when its row is written over, and its attempts count on."""

    def about_to_run(self) -> None:
        """Before a dispatch runs: commit a pending group of commits if it has waited long
        enough (``batch``), and raise ``LeaseLost`` if the lease was not renewed when due
        (the coordinator was paused) and another coordinator has taken the run over."""

    def synced(self) -> bool:
        """True when every commit made so far is durable (``batch``: the group is flushed)."""
        return True

    @abstractmethod
    def save_state(self, queue: Iterable[Dispatch], states: Mapping[NodeId, JoinState]) -> None:
        """Replace the run's whole queue and join state with these, in one transaction."""

    @abstractmethod
    def cached(self) -> Recorded:
        """The run's done dispatches as they stood when asked, what a replay answers from
        (a SQL store reads them in recorded order, a chunk ahead of the replay)."""

    def lookup(self) -> Recorded:
        """The same answers as ``cached``, looked up one dispatch at a time: what a resume
        checks before it runs a dispatch (a saved queue may name a done one)."""
        return self.cached()

    @abstractmethod
    def finish(self, status: str) -> None:
        """Flush pending writes, set the run's status and release the lease."""

    @abstractmethod
    def update_spec(self, spec: dict[str, Any]) -> None:
        """Replace the run's stored spec (``resume --set`` changes configs)."""

    def close(self) -> None:
        """Let go of the run without writing: its lease is no longer renewed, so another
        host may take it over once the lease expires (``finish`` does this too)."""


def busy_owner(info: RunInfo, owner: Owner, take_over: bool) -> RunBusy | None:
    """Why ``owner`` may not claim the run, or None: a live owner on this host keeps its run;
    an owner on another host (which cannot be looked at) keeps it while its lease holds,
    unless ``take_over`` is asked."""
    current = info.owner
    if info.status != "running" or current is None or current == owner:
        return None
    if not current.local:
        return None if take_over or info.lease_expired else RunBusy(info.run, str(current),
                                                                    remote=True)
    return RunBusy(info.run, str(current)) if current.alive() else None


LOST = "lost"  # an attempt whose coordinator died while it ran


def kept_attempt(status: str, attempts: int, started: float | None, finished: float | None,
                 error: dict[str, Any] | None, marked: bool, session: int,
                 reused: str | None = None) -> Attempt | None:
    """The attempt a dispatch's row holds, to keep before the row is written over; None
    when there is none. A row marked running in an earlier session is an attempt lost with
    its coordinator (it counts); one ``marked`` in this session is the attempt now being
    recorded, not an earlier one. A result ``reused`` from the memo is no attempt."""
    if reused is not None:
        return None
    if status == "running":
        if marked:
            return None
        return Attempt(attempts + 1, session, LOST, started)
    return Attempt(attempts, session, status, started, finished, error) if attempts else None


def made_attempts(record: DispatchRecord, base: int) -> list[tuple[int, Attempt |
                                                                   DispatchRecord]]:
    """The attempts committing ``record`` records, numbered: its earlier attempts of this
    session, then its own, on from the ``base`` attempts its dispatch's row counted."""
    return [*((base + i + 1, a) for i, a in enumerate(record.earlier)),
            (base + record.attempts, record)]


def logs_of(record: DispatchRecord, base: int, seq: int) -> list[LogRecord]:
    """The output committing ``record`` stores (as commit ``seq``), by attempt."""
    return [LogRecord(record.id, n, seq, a.log.text, a.log.dropped)
            for n, a in made_attempts(record, base) if a.log is not None]


def workers_of(record: DispatchRecord, base: int) -> list[tuple[str, int, str, int]]:
    """``(dispatch, attempt, host, pid)`` of the attempts committing ``record`` records
    that ran outside their coordinator."""
    return [(record.id, n, *a.worker) for n, a in made_attempts(record, base)
            if a.worker is not None]


def session_starts(events: Iterable[RunEvent]) -> list[tuple[int, int]]:
    """``(first seq, session)`` of each session among a run's ``events``, in order."""
    return [(e.data.get("first", 0), e.seq) for e in events
            if e.kind in SESSIONS and type(e.data.get("first", 0)) is int]


def session_of(sessions: Iterable[tuple[int, int]], seq: int) -> int:
    """The session a commit numbered ``seq`` was made in, from ``(first seq, session)`` of
    each session in order (0: before any was recorded)."""
    found = 0
    for first, session in sessions:
        if first <= seq:
            found = session
    return found


def now() -> float:
    return time.time()


def _checked() -> None:
    """A structure check that has already passed."""
