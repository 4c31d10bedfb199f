"""The in-memory store (``--store :memory:``): the same contract, nothing survives the process.

Values are kept as the objects themselves, so it also serves workflows whose parts
have no import path (lambdas, local classes).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from msgspec.structs import replace

from retap.dispatch import Dispatch, NodeId
from retap.errors import RunExists, UnknownRun
from retap.joins import Join, JoinState
from retap.store.base import (
    Attempt,
    AuditRecord,
    DispatchRecord,
    Effects,
    LogRecord,
    MemoEntry,
    Owner,
    Recorded,
    RunEvent,
    RunInfo,
    RunLog,
    Store,
    busy_owner,
    kept_attempt,
    lease_seconds,
    logs_of,
    now,
    session_of,
    session_starts,
    workers_of,
)

__all__ = ["EmptyStore", "MemoryStore"]

RETRY_FIRST = ("failed", "interrupted", "running")


class _Run(msgspec.Struct):
    info: RunInfo
    records: dict[str, DispatchRecord] = msgspec.field(default_factory=dict)
    seqs: dict[str, int] = msgspec.field(default_factory=dict)
    queue: dict[str, tuple[int, Dispatch]] = msgspec.field(default_factory=dict)
    joins: dict[NodeId, dict[str, Any]] = msgspec.field(default_factory=dict)
    front: int = 0
    back: int = 0
    seq: int = 0
    attempts: dict[str, list[Attempt]] = msgspec.field(default_factory=dict)  # written over
    events: list[RunEvent] = msgspec.field(default_factory=list)
    logs: list[LogRecord] = msgspec.field(default_factory=list)
    workers: dict[tuple[str, int], tuple[str, int]] = msgspec.field(default_factory=dict)


class MemoryStore(Store):
    """Runs kept in dicts for the life of the process."""

    durable = False

    def __init__(self) -> None:
        self.location = ":memory:"
        self._runs: dict[str, _Run] = {}
        self._memo: dict[tuple[str, str], MemoEntry] = {}
        self._files: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._outputs: set[tuple[str, str]] = set()

    def create_run(self, run: str, spec: dict[str, Any], owner: Owner,
                   workflow: Any = None, leads: list[Dispatch] | None = None) -> RunLog:
        if run in self._runs:
            raise RunExists(run, self.location)
        info = RunInfo(run, "running", now(), spec, owner, workflow=workflow,
                       lease_expires=now() + lease_seconds())
        self._runs[run] = _Run(info)
        log = _MemoryRunLog(self._runs[run], self._memo, self._outputs)
        log.commit_effects(Effects(back=leads or []))
        return log

    def claim_run(self, run: str, owner: Owner, take_over: bool = False) -> RunLog:
        state = self._get(run)
        busy = busy_owner(state.info, owner, take_over)
        if busy is not None:
            raise busy
        log = _MemoryRunLog(state, self._memo, self._outputs)
        log.previous = state.info.effective_status
        state.info.owner, state.info.status = owner, "running"
        state.info.lease_expires = now() + lease_seconds()
        return log

    def run_info(self, run: str, count: bool = True) -> RunInfo:
        state = self._get(run)
        state.info.dispatches = len(state.records) if count else 0
        return state.info

    def runs(self) -> list[RunInfo]:
        return sorted((self.run_info(r) for r in self._runs), key=lambda i: -i.created)

    def audits(self, run: str, limit: int | None = None) -> list[AuditRecord]:
        state = self._get(run)
        order = sorted(state.records, key=state.seqs.__getitem__)[:limit]
        return [_audit(state.records[i], state.seqs[i]) for i in order]

    def dispatch_ids(self, run: str, prefix: str) -> list[str]:
        return [i for i in self._get(run).records if i.startswith(prefix.lower())]

    def earlier_attempts(self, run: str) -> dict[str, list[Attempt]]:
        return {d: list(a) for d, a in self._get(run).attempts.items()}

    def delete_runs(self, runs: Iterable[str]) -> list[str]:
        deleted = [r for r in dict.fromkeys(runs) if r in self._runs and
                   self._runs[r].info.effective_status != "running"]
        for run in deleted:
            del self._runs[run]
        for key in [k for k, e in self._memo.items() if e.run in deleted]:
            del self._memo[key]
        return deleted

    def events(self, run: str) -> list[RunEvent]:
        return list(self._get(run).events)

    def logs(self, run: str, after: int = 0) -> list[LogRecord]:
        return [entry for entry in self._get(run).logs if entry.seq > after]

    def workers(self, run: str) -> dict[tuple[str, int], tuple[str, int]]:
        return dict(self._get(run).workers)

    def dispatches(self, run: str, statuses: Iterable[str], ids: Iterable[str] | None = None
                   ) -> list[AuditRecord]:
        wanted = set(statuses)
        state = self._get(run)
        chosen = state.records if ids is None else set(ids) & state.records.keys()
        return [_audit(state.records[i], state.seqs[i]) for i in sorted(
            chosen, key=state.seqs.__getitem__) if state.records[i].status in wanted]

    def versions(self, run: str) -> list[tuple[NodeId, str, str]]:
        found = {(r.node, r.task, r.code_version) for r in self._get(run).records.values()
                 if r.status == "done"}
        return sorted(found, key=repr)

    def holds_version(self, run: str, node: NodeId, task: str, version: str) -> bool:
        return (node, task, version) in self.versions(run)

    def counts(self, run: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self._get(run).records.values():
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts

    def queue(self, run: str) -> list[Dispatch]:
        state = self._get(run)

        def key(item: tuple[int, Dispatch]) -> tuple[bool, int]:
            record = state.records.get(item[1].id)
            return (record is None or record.status not in RETRY_FIRST, item[0])

        return [d for _, d in sorted(state.queue.values(), key=key)]

    def join_states(self, run: str, joins: Iterable[Join]) -> dict[NodeId, JoinState]:
        state = self._get(run)
        states = {}
        for join in joins:
            fresh = join.new_state()
            if fresh is None:
                continue
            saved = state.joins.get(join.id, {"slots": {}, "count": 0})
            for slot, ids in saved["slots"].items():
                fresh.slots[slot].extend((aid, state.records[aid].value) for aid in ids)
            fresh.count = saved["count"]
            states[join.id] = fresh
        return states

    def dispatch_status(self, run: str, dispatch: str) -> str | None:
        state = self._runs.get(run)
        record = state.records.get(dispatch) if state is not None else None
        return record.status if record is not None else None

    def recorded_output(self, path: str, digest: str) -> bool:
        return (path, digest) in self._outputs

    def memo_get(self, task: str, key: str) -> MemoEntry | None:
        return self._memo.get((task, key))

    def memo_latest(self, task: str, dispatch: str) -> MemoEntry | None:
        entries = sorted((e for (t, _), e in self._memo.items() if t == task),
                         key=lambda e: (e.dispatch == dispatch, e.created))
        return entries[-1] if entries else None

    def forget(self, task: str, run: str | None = None) -> int:
        gone = [k for k, e in self._memo.items() if k[0] == task and run in (None, e.run)]
        for key in gone:
            del self._memo[key]
        return len(gone)

    def file_digest(self, path: str, stat: tuple[int, int, int]) -> str | None:
        known = self._files.get(path)
        return known[1] if known is not None and known[0] == stat else None

    def remember_file(self, path: str, stat: tuple[int, int, int], digest: str) -> None:
        self._files[path] = (stat, digest)

    def _get(self, run: str) -> _Run:
        try:
            return self._runs[run]
        except KeyError:
            raise UnknownRun(run, self.location) from None


class _MemoryRunLog(RunLog):
    def __init__(self, state: _Run, memo: dict[tuple[str, str], MemoEntry],
                 outputs: set[tuple[str, str]]) -> None:
        self.state = state
        self.memo = memo
        self.outputs = outputs
        self.run = state.info.run
        self.state.front = min((p for p, _ in state.queue.values()), default=0)
        self.state.back = max((p for p, _ in state.queue.values()), default=0)
        self._marked: set[str] = set()  # marked running in this session

    @property
    def commits(self) -> int:
        return self.state.seq

    def event(self, kind: str, data: dict[str, Any]) -> int:
        events = self.state.events
        events.append(RunEvent(len(events) + 1, now(), kind, data))
        return len(events)

    def _keep_attempt(self, dispatch: str) -> int:
        """Keep the attempt the dispatch's record holds before it is replaced (see
        ``kept_attempt``); how many attempts it counted."""
        state = self.state
        previous = state.records.get(dispatch)
        if previous is None:
            return 0
        kept = kept_attempt(previous.status, previous.attempts, previous.started or None,
                            previous.finished or None, previous.error,
                            dispatch in self._marked,
                            session_of(session_starts(state.events), state.seqs.get(dispatch, 0)),
                            previous.reused)
        if kept is None:
            return previous.attempts
        state.attempts.setdefault(dispatch, []).append(kept)
        return kept.n

    def commit_dispatch(self, record: DispatchRecord, effects: Effects) -> None:
        state = self.state
        base = self._keep_attempt(record.id) if record.id in state.records else 0
        for i, attempt in enumerate(record.earlier):
            attempt.n, attempt.session = base + i + 1, self.session
            # its output and worker are kept on their own, as a SQL store keeps them
            state.attempts.setdefault(record.id, []).append(replace(attempt, log=None,
                                                                    worker=None))
        state.seq += 1
        if record.log is not None or record.worker is not None or record.earlier:
            state.logs.extend(logs_of(record, base, state.seq))
            state.workers.update(((d, n), (host, pid))
                                 for d, n, host, pid in workers_of(record, base))
        record.attempts += base
        state.records[record.id] = record
        state.seqs[record.id] = state.seq
        if record.memo is not None:
            entry = record.memo
            entry.run, entry.dispatch, entry.created = self.run, record.id, now()
            self.memo[(entry.task, entry.key)] = entry
        if record.outputs and record.status == "done":
            self.outputs.update((os.path.abspath(p), d) for p, d in record.outputs.items())
        self.commit_effects(effects)

    def commit_effects(self, effects: Effects) -> None:
        state = self.state
        if effects.removed is not None:
            state.queue.pop(effects.removed.id, None)
        for i, d in enumerate(effects.front):
            state.queue[d.id] = (state.front - len(effects.front) + i, d)
        state.front -= len(effects.front)
        for d in effects.back:
            state.back += 1
            state.queue[d.id] = (state.back, d)
        for join, change in effects.joins:
            saved = state.joins.setdefault(join, {"slots": {}, "count": 0})
            if change[0] == "add":
                saved["slots"].setdefault(change[1], []).append(change[2])
            elif change[0] == "take":
                saved["slots"][change[1]].remove(change[2])
            else:
                saved["count"] = change[1]

    def mark_running(self, dispatch: Dispatch, task: str, code_version: str) -> None:
        base = self._keep_attempt(dispatch.id)
        self.state.records[dispatch.id] = DispatchRecord(
            dispatch.id, dispatch.node, task, dispatch.sources, "running",
            attempts=base, started=now(), code_version=code_version, inputs=dispatch.inputs)
        self.state.seq += 1
        self.state.seqs.setdefault(dispatch.id, self.state.seq)
        self._marked.add(dispatch.id)

    def save_state(self, queue: Iterable[Dispatch], states: Mapping[NodeId, JoinState]) -> None:
        state = self.state
        state.queue = {d.id: (i, d) for i, d in enumerate(queue)}
        state.front, state.back = 0, len(state.queue)
        state.joins = {jid: {"slots": {i: [aid for aid, _ in fifo]
                                       for i, fifo in enumerate(js.slots)},
                             "count": js.count} for jid, js in states.items()}

    def cached(self) -> Recorded:
        return _MemoryRecorded(self.state)

    def finish(self, status: str) -> None:
        self.event("finished", {"status": status})
        self.state.info.status = status

    def update_spec(self, spec: dict[str, Any]) -> None:
        self.state.info.spec = spec


class _MemoryRecorded(Recorded):
    def __init__(self, state: _Run) -> None:
        self.state = state

    def seq(self, dispatch: str) -> int | None:
        record = self.state.records.get(dispatch)
        return self.state.seqs[dispatch] if record is not None and record.status == "done" \
            else None

    def value(self, dispatch: str) -> Any:
        return self.state.records[dispatch].value


def _audit(record: DispatchRecord, seq: int) -> AuditRecord:
    return AuditRecord(record.id, record.node, record.task, record.sources, record.status,
                       record.value, record.attempts, seq, record.error, record.code_version,
                       record.started, record.finished, record.inputs, record.reused,
                       record.outputs)


class EmptyStore(MemoryStore):
    """A store file that does not exist yet, read without creating it: it holds no runs."""

    def __init__(self, location: str) -> None:
        super().__init__()
        self.location = location
