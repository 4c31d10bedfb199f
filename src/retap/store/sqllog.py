"""The writes of one run in a SQL store: one transaction per dispatch (or per batch).

Values are encoded before a transaction opens, so a value the codec refuses fails the
dispatch without touching the store; everything a dispatch caused is then written in
one transaction with its record. Every row carries its checksum (``retap.store.rows``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any

from retap import faults
from retap.dispatch import Dispatch, NodeId
from retap.errors import LeaseLost, RetapError
from retap.joins import JoinState
from retap.store import rows
from retap.store.base import (
    SESSIONS,
    Attempt,
    DispatchRecord,
    Effects,
    LogRecord,
    Recorded,
    RunLog,
    kept_attempt,
    lease_seconds,
    logs_of,
    now,
    session_of,
    session_starts,
    workers_of,
)
from retap.store.codec import Codec, JsonCodec, digest
from retap.store.sql import SQLStore

__all__ = ["INLINE_MAX", "LEASE_HELD", "QUEUE_INSERT", "SEQ_BLOCK", "SQLRunLog"]

INLINE_MAX = 64  # JSON values this small live in the referring row: cheaper than a digest
Values = dict[str, tuple[str, bytes]]
Memo = dict[int, tuple[Any, str]]

_D = ", ".join(f"d.{c}" for c in rows.DISPATCH)
LEASE_HELD = "EXISTS (SELECT 1 FROM runs WHERE run=? AND lease_token=?)"  # the lease is ours
QUEUE_INSERT = ("INSERT INTO queue (run, pos, id, node, sources, inputs, crc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)")
_RUNNING = ("status", "seq", "started", "code_version")  # what marking a dispatch running sets
_SEQ, _STATUS, _VERSION = map(rows.DISPATCH.index, ("seq", "status", "code_version"))
# seqs reserved at a time in the run's counter: a killed session leaves at most this gap
SEQ_BLOCK = 128


class SQLRunLog(RunLog):
    """The writes of one run; commits grouped in ``batch`` durability."""

    # done dispatches a replay's cache holds read ahead, at most (``cached``); the torture
    # runner sets a few, so a replay's every way to its answers is taken
    AHEAD = int(os.environ.get("RETAP_REPLAY_AHEAD", "512"))

    def __init__(self, store: SQLStore, run: str, token: str,
                 codec: Codec | None = None) -> None:
        self.store = store
        self.x = store.x
        self.run = run
        self.token = token  # the lease this coordinator holds: every commit checks it
        # where the store allows it, writing a dispatch's row checks the lease too, so a
        # commit that writes one needs no statement of its own for that (``_fenced``)
        self._write_checks_lease = store.write_checks_lease
        self._upsert_dispatch = store.dialect.insert(
            "dispatches", (*rows.DISPATCH, "crc"), replace_on=("run", "id"),
            only_if=LEASE_HELD if self._write_checks_lease else "")
        self._fenced = False  # the open transaction has checked the lease
        self._renewed = time.monotonic()  # when the lease was last taken or renewed
        self._overdue = lease_seconds() * 2 / 3  # a renewal this late means a pause
        self._checked: Callable[[], None] | None = None  # see hold_writes_until
        self._readers: list[_Streamed] = []  # what cached() opened, closed with the log
        self._upsert_counter = store.dialect.insert("counters", (*rows.COUNTER, "crc"),
                                                    replace_on=("run",))
        self._insert_version = store.dialect.insert(
            "versions", ("run", "node", "task", "code_version"), ignore=True)
        self.codec = codec or store.codec  # the run's own codec, whatever the store's default
        self._nodes: dict[NodeId, str] = {}
        self._pending = 0
        self._since = 0.0
        self._lock = threading.RLock()
        self._closed = threading.Event()
        if store.batch_size > 1:  # commit an aging group even while a long task runs
            threading.Thread(target=self._commit_aging_batches, daemon=True).start()
        self._lease = threading.Thread(target=self._keep_lease, name="retap-lease",
                                       daemon=True)
        self._lease.start()
        with store.errors():
            ends = self.x("SELECT min(pos) AS low, max(pos) AS high FROM queue WHERE run=?",
                          (run,)).fetchone()
            self.front, self.back = ends["low"] or 0, ends["high"] or 0
            counter = self.x("SELECT run, seq, crc FROM counters WHERE run=?",
                             (run,)).fetchone()
            if counter is not None:  # no seq above it was used: the history is not read
                store.verify(counter, rows.COUNTER, "the counter of run {run}")
                self.seq = counter["seq"]
            else:  # a run recorded before counters were kept
                self.seq = self.x("SELECT coalesce(max(seq), 0) AS n FROM dispatches "
                                  "WHERE run=?", (run,)).fetchone()["n"]
            self._reserved = self.seq  # a higher seq reserves a block in the same commit
            self._versions = {(r["node"], r["task"], r["code_version"]) for r in self.x(
                "SELECT node, task, code_version FROM versions WHERE run=?", (run,))}
            self.jseq = self.x("SELECT coalesce(max(seq), 0) AS n FROM join_entries "
                               "WHERE run=?", (run,)).fetchone()["n"]
            # the sessions so far (where each began), to name the session of an attempt
            # that is written over; the run's events are few
            events = store.events(run)
            self._sessions = session_starts(events)
            self.eseq = events[-1].seq if events else 0
            self._marked: set[str] = set()  # marked running in this session
            # rows a dispatch of this run may be recorded over (a resume runs them again):
            # read once, so a commit writes without asking the database first
            self._before = {}
            for row in self.x(f"SELECT {_D}, d.crc FROM dispatches d{store.dialect.not_done} "
                              "WHERE d.run=? AND d.status != 'done'", (run,)).fetchall():
                self.store.verify(row, rows.DISPATCH, "dispatch {id}")
                if type(row["attempts"]) is not int:
                    raise store.corrupt(f"dispatch {row['id']} has no count of attempts")
                self._before[row["id"]] = {c: row[c] for c in rows.DISPATCH}
        counters = (self.front, self.back, self.seq, self.jseq)
        if not all(type(c) is int for c in counters):
            raise store.corrupt(f"run {run}: queue positions or sequence numbers are not "
                                "integers")

    # -- writing ----------------------------------------------------------------------------

    def commit_dispatch(self, record: DispatchRecord, effects: Effects) -> None:
        values: Values = {}
        memo: Memo = {}
        result = self._ref(record.value, values, memo) if record.status == "done" else None
        inputs = record.ref[0] if record.ref is not None else self._refs(record.inputs, values,
                                                                          memo)
        queued = self._queued(effects, values, memo)
        error = json.dumps(record.error) if record.error else None
        outputs = json.dumps(record.outputs) if record.outputs else None
        self.seq += 1
        fields = [self.run, record.id, self._node(record.node), record.task,
                  _ids(record.sources), inputs, record.status, result, error,
                  record.attempts, self.seq, record.started, record.finished,
                  record.code_version, record.reused, outputs]
        with self._transaction(row_checks_lease=True):
            self._insert_values(values)
            base = self._write_dispatch(fields, _add_attempts)
            for i, attempt in enumerate(record.earlier):  # this session's failed attempts
                attempt.n, attempt.session = base + i + 1, self.session
                self._write_attempt(record.id, attempt)
            if record.log is not None or record.earlier:
                self._write_logs(logs_of(record, base, self.seq))
            if record.worker is not None or record.earlier:
                self._write_workers(workers_of(record, base))
            if record.memo is not None and result is not None:
                self._remember(record, result)
            if record.outputs and record.status == "done":
                self.store.write_many(
                    self.store.dialect.insert("outputs", ("path", "digest", "run", "dispatch"),
                                              ignore=True),
                    [(os.path.abspath(path), file_digest, self.run, record.id)
                     for path, file_digest in record.outputs.items()])
            if faults.armed:
                faults.hit("in_commit")
            self._write_effects(effects, queued)

    def commit_effects(self, effects: Effects) -> None:
        values: Values = {}
        queued = self._queued(effects, values, {})
        with self._transaction():
            self._insert_values(values)
            self._write_effects(effects, queued)

    def effects_txn(self, effects: Effects) -> None:
        """Write ``effects`` inside the caller's open transaction."""
        values: Values = {}
        queued = self._queued(effects, values, {})
        self._insert_values(values)
        self._write_effects(effects, queued)

    def mark_running(self, dispatch: Dispatch, task: str, code_version: str) -> None:
        values: Values = {}
        inputs = dispatch.ref[0] if dispatch.ref is not None else self._refs(dispatch.inputs,
                                                                             values, {})
        self.seq += 1
        fields = [self.run, dispatch.id, self._node(dispatch.node), task,
                  _ids(dispatch.sources), inputs, "running", None, None, 0, self.seq,
                  now(), None, code_version, None, None]
        with self._transaction(force=True, row_checks_lease=True):
            self._insert_values(values)
            self._write_dispatch(fields, _running_again)
        self._marked.add(dispatch.id)

    def rerunning(self, dispatch: str) -> None:
        with self.store.errors():
            row = self.x(f"SELECT {_D}, d.crc FROM dispatches d WHERE d.run=? AND d.id=?",
                         (self.run, dispatch)).fetchone()
            if row is not None:
                self.store.verify(row, rows.DISPATCH, "dispatch {id}")
                self._before[dispatch] = {c: row[c] for c in rows.DISPATCH}

    def save_state(self, queue: Iterable[Dispatch], states: Mapping[NodeId, JoinState]) -> None:
        values: Values = {}
        memo: Memo = {}
        queued = []
        for pos, d in enumerate(queue):
            inputs = d.ref[0] if d.ref is not None else self._refs(d.inputs, values, memo)
            d.ref = (inputs, pos)
            queued.append(self._queue_row(pos, d, inputs))
        self.front, self.back = 0, len(queued)
        with self._transaction(force=True):
            self._insert_values(values)
            for table in ("queue", "join_entries", "join_counts"):
                self.store.write(f"DELETE FROM {table} WHERE run=?", (self.run,))
            self._insert_queue(queued)
            if faults.armed:
                faults.hit("in_save_state")
            for join_id, state in states.items():
                key = self._node(join_id)
                for slot, fifo in enumerate(state.slots):
                    for audit, _ in fifo:
                        self._add_entry(key, slot, audit)
                self._set_count(key, state.count)

    @property
    def commits(self) -> int:
        return self.seq

    def event(self, kind: str, data: dict[str, Any]) -> int:
        with self._transaction():
            self._write_event(kind, data)
        return self.eseq

    def finish(self, status: str) -> None:
        try:
            with self._transaction(force=True):
                self._write_event("finished", {"status": status})
                self._write_counter(self.seq)  # exact: the next session leaves no gap
                self.store.update_run_txn(self.run, status=status)
        finally:
            self.close()

    def close(self) -> None:
        self._closed.set()
        for reader in self._readers:
            reader.close()
        if self._lease is not threading.current_thread():
            self._lease.join(timeout=5)  # it holds the store: let it go before exit

    def update_spec(self, spec: dict[str, Any]) -> None:
        with self._transaction(force=True):
            self.store.update_run_txn(self.run, spec=JsonCodec().encode(spec))

    def synced(self) -> bool:
        with self._lock, self.store.errors():
            return self.store.committed()

    def about_to_run(self) -> None:
        now_ = time.monotonic()
        if now_ - self._renewed > self._overdue:
            self._renew_now()
        if self._pending and now_ - self._since >= self.store.batch_seconds:
            self.flush()

    def _renew_now(self) -> None:
        """The lease was not renewed when due: the coordinator was paused (a stopped VM)
        and its run may have been taken over meanwhile, or busy groups of commits kept the
        renewing thread out. Commit what is pending (its fence says whether the lease still
        holds) and renew it before running anything more."""
        with self._lock, self.store.errors():
            if self.store.in_transaction:
                self._commit()
            if not self.store.renew(self.run, self.token):
                raise LeaseLost(self.store.location, self.run)
            self._renewed = time.monotonic()

    def flush(self) -> None:
        """Commit a pending batch now."""
        with self._lock:
            if self.store.in_transaction:
                with self.store.errors():
                    self._commit()

    def _commit_aging_batches(self) -> None:
        """Batch durability: commit a group once it is ``batch_ms`` old, even when no new
        dispatch comes to trigger it (a long task), so no group stays open for long."""
        while not self._closed.wait(self.store.batch_seconds / 2):
            with self._lock:
                if self._pending and time.monotonic() - self._since >= self.store.batch_seconds:
                    try:
                        self.flush()
                    except RetapError:
                        return  # the next commit in the run's own thread reports it

    # -- reading ----------------------------------------------------------------------------

    def lookup(self) -> Recorded:
        return _Lookup(self)

    def cached(self) -> Recorded:
        streamed = _Streamed(self)
        self._readers.append(streamed)
        return streamed

    # -- helpers ----------------------------------------------------------------------------

    def hold_writes_until(self, checked: Callable[[], None]) -> None:
        self._checked = checked

    @contextmanager
    def _transaction(self, force: bool = False, row_checks_lease: bool = False
                     ) -> Iterator[None]:
        """Statements inside run in the open transaction; committed now, or with the batch.
        A transaction checks the lease before it writes anything (``fence``), so that a
        coordinator that lost its run learns so before any of its writes can meet the new
        owner's; where the store lets the row of a dispatch check it (``row_checks_lease``:
        the block writes one before anything that could conflict), that row does."""
        if self._checked is not None:
            checked, self._checked = self._checked, None
            checked()
        with self._lock, self.store.errors(), self.store.round_trip():
            if not self.store.in_transaction:
                self.store.begin()
                self._since = time.monotonic()
                self._fenced = False
                if not (row_checks_lease and self._write_checks_lease):
                    self.store.fence(self.run, self.token)
                    self._fenced = True
            yield
            self._pending += 1
            if force or self._pending >= self.store.batch_size or \
                    time.monotonic() - self._since >= self.store.batch_seconds:
                # a group of several commits may go out while the next one is built (the
                # store waits for it before anything else); a forced or single one is done
                self._commit(wait=force or self.store.batch_size == 1)

    def _commit(self, wait: bool = True) -> None:
        """Commit what is open, if this coordinator still holds the run's lease."""
        if not self._fenced:
            self.store.fence(self.run, self.token)
        self._fenced = False
        self.store.commit(wait)
        self._pending = 0

    def _keep_lease(self) -> None:
        """Renew the lease while the run goes on (a third of its length before it ends), so
        a long task does not let another host take the run over."""
        while not self._closed.wait(lease_seconds() / 3):
            with self._lock:
                if self.store.in_transaction:
                    continue  # a group is open: its commit is near, the next turn renews
                try:
                    if not self.store.renew(self.run, self.token):
                        return  # taken over: the next commit says so and stops the run
                    self._renewed = time.monotonic()
                except RetapError:
                    return  # the store failed: the run's own next commit reports it

    def _write_counter(self, seq: int) -> None:
        self.store.write(self._upsert_counter, (self.run, seq, rows.crc(self.run, seq)))

    def _write_dispatch(self, fields: list[Any],
                        merge: Callable[[list[Any], Any], list[Any]]) -> int:
        """Write a dispatch's row; over an earlier attempt's row, ``merge`` says what the row
        becomes, and that attempt is kept in "attempts" first (the checksum is always of the
        row as written). The attempts the row counted before: 0 for a first record."""
        before = self._before.get(fields[1])
        base = 0
        if before is not None:
            before = self._keep_attempt(before)
            base = before["attempts"]
            fields = merge(fields, before)
        if self._write_checks_lease:
            row = (*fields, rows.crc(*fields), self.run, self.token)
            if not self.store.insert_new(self._upsert_dispatch, row):
                raise LeaseLost(self.store.location, self.run)
            self._fenced = True
        else:
            self.store.write(self._upsert_dispatch, (*fields, rows.crc(*fields)))
        if fields[_SEQ] > self._reserved:
            self._reserved = fields[_SEQ] + SEQ_BLOCK
            self._write_counter(self._reserved)
        if fields[_STATUS] == "done":
            self._before.pop(fields[1], None)
            version = (fields[2], fields[3], fields[_VERSION] or "")
            if version not in self._versions:
                self.store.write(self._insert_version, (self.run, *version))
                self._versions.add(version)
        else:
            self._before[fields[1]] = dict(zip(rows.DISPATCH, fields, strict=True))
        return base

    def _keep_attempt(self, before: dict[str, Any]) -> dict[str, Any]:
        """Keep the attempt a dispatch's row holds before it is written over (see
        ``kept_attempt``); the row as the merge should see it (a lost attempt counts)."""
        error = before["error"]
        kept = kept_attempt(before["status"], before["attempts"], before["started"],
                            before["finished"], json.loads(error) if error else None,
                            before["id"] in self._marked,
                            session_of(self._sessions, before["seq"]), before["reused"])
        if kept is None:
            return before
        self._write_attempt(before["id"], kept)
        return {**before, "attempts": kept.n}

    def _write_attempt(self, dispatch: str, a: Attempt) -> None:
        fields = (self.run, dispatch, a.n, a.session, a.status, a.started, a.finished,
                  json.dumps(a.error) if a.error else None)
        self.store.write(self.store.dialect.insert("attempts", (*rows.ATTEMPT, "crc"),
                                                   ignore=True), (*fields, rows.crc(*fields)))

    def _write_logs(self, logs: list[LogRecord]) -> None:
        if logs:
            self.store.write_many(self.store.dialect.insert("logs", (*rows.LOG, "crc")), [
                (*fields, rows.crc(*fields)) for fields in
                ((self.run, e.seq, e.dispatch, e.attempt, e.text, e.dropped) for e in logs)])

    def _write_workers(self, workers: list[tuple[str, int, str, int]]) -> None:
        if workers:
            self.store.write_many(self.store.dialect.insert("workers", (*rows.WORKER, "crc"),
                                                            ignore=True), [
                (self.run, *w, rows.crc(self.run, *w)) for w in workers])

    def _write_event(self, kind: str, data: dict[str, Any]) -> None:
        self.eseq += 1
        fields = (self.run, self.eseq, now(), kind, json.dumps(data, default=str))
        self.store.write("INSERT INTO events (run, seq, at, kind, data, crc) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (*fields, rows.crc(*fields)))
        if kind in SESSIONS:
            self._sessions.append((data.get("first", 0), self.eseq))

    def _remember(self, record: DispatchRecord, result: str) -> None:
        entry = record.memo
        assert entry is not None
        fields = (entry.task, entry.key, self.run, record.id, result,
                  json.dumps(entry.outputs, sort_keys=True), json.dumps(entry.facts), now())
        self.store.write(self.store.dialect.insert("memo", (*rows.MEMO, "crc"),
                                         replace_on=("task", "key")),
               (*fields, rows.crc(*fields)))

    def _node(self, node: NodeId) -> str:
        text = self._nodes.get(node)
        if text is None:
            text = self._nodes[node] = json.dumps(node)
        return text

    def _ref(self, value: Any, values: Values, memo: Memo) -> str:
        """The ref of ``value``: inline when small, else its digest; encoded once per commit."""
        hit = memo.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        codec = self.codec
        data = codec.encode(value)
        if len(data) <= INLINE_MAX and codec.name == "json":
            key = "=" + data.decode()
        else:
            key = digest(codec.name, data)
            values[key] = (codec.name, data)
        memo[id(value)] = (value, key)
        return key

    def _refs(self, inputs: Iterable[Any], values: Values, memo: Memo) -> str:
        # json.dumps of a list of str, without the encoder's machinery (once a commit)
        return "[" + ", ".join([_quoted(self._ref(v, values, memo)) for v in inputs]) + "]"

    def _queue_row(self, pos: int, d: Dispatch, inputs: str) -> tuple[Any, ...]:
        fields = (self.run, pos, d.id, self._node(d.node), _ids(d.sources), inputs)
        return (*fields, rows.crc(*fields))

    def _queued(self, effects: Effects, values: Values, memo: Memo) -> list[tuple[Any, ...]]:
        """Queue rows for the dispatches ``effects`` adds; their inputs encoded first."""
        queued = []
        positions = [*range(self.front - len(effects.front), self.front),
                     *range(self.back + 1, self.back + 1 + len(effects.back))]
        for pos, d in zip(positions, [*effects.front, *effects.back], strict=True):
            d.ref = (self._refs(d.inputs, values, memo), pos)
            queued.append(self._queue_row(pos, d, d.ref[0]))
        return queued

    def _insert_values(self, values: Values) -> None:
        if values:
            self.store.write_many(self.store.dialect.insert('"values"', ("digest", "codec",
                                                                         "data"),
                                                       ignore=True),
                             [(k, c, d) for k, (c, d) in values.items()])

    def _insert_queue(self, queued: list[tuple[Any, ...]]) -> None:
        self.store.write_many(QUEUE_INSERT, queued)

    def _add_entry(self, key: str, slot: int, audit: str) -> None:
        self.jseq += 1
        fields = (self.run, key, slot, audit, self.jseq)
        self.store.write("INSERT INTO join_entries (run, join_id, slot, audit, seq, crc) "
               "VALUES (?, ?, ?, ?, ?, ?)", (*fields, rows.crc(*fields)))

    def _set_count(self, key: str, count: int) -> None:
        fields = (self.run, key, count)
        self.store.write(self.store.dialect.insert("join_counts", (*rows.JOIN_COUNT, "crc"),
                                         replace_on=("run", "join_id")),
               (*fields, rows.crc(*fields)))

    def _write_effects(self, effects: Effects, queued: list[tuple[Any, ...]]) -> None:
        removed = effects.removed
        if removed is not None:
            if removed.ref is not None:
                self.store.write("DELETE FROM queue WHERE run=? AND pos=?",
                                 (self.run, removed.ref[1]))
            else:
                self.store.write("DELETE FROM queue WHERE run=? AND id=?",
                                 (self.run, removed.id))
        if queued:
            self._insert_queue(queued)
            self.front -= len(effects.front)
            self.back += len(effects.back)
        if effects.joins and faults.armed:
            faults.hit("in_join_write")
        for join_id, change in effects.joins:
            key = self._node(join_id)
            if change[0] == "add":
                self._add_entry(key, change[1], change[2])
            elif change[0] == "take":
                self.store.write("DELETE FROM join_entries WHERE run=? AND join_id=? AND "
                                 "slot=? AND "
                       "audit=?", (self.run, key, change[1], change[2]))
            else:
                self._set_count(key, change[1])


_UPDATE_DISPATCH = (f"UPDATE dispatches SET {', '.join(f'{c}=?' for c in rows.DISPATCH[2:])}, "
                    "crc=? WHERE run=? AND id=?")


def _ids(sources: tuple[str, ...] | list[str]) -> str:
    """``json.dumps(sources)`` for dispatch ids (hex digits: nothing to escape), without the
    encoder's machinery: every commit writes one or two such lists."""
    return "[" + ", ".join(f'"{s}"' for s in sources) + "]"


def _add_attempts(fields: list[Any], before: Any) -> list[Any]:
    """A dispatch recorded again (a resume ran it again): its attempts add up."""
    attempts = rows.DISPATCH.index("attempts")
    return [*fields[:attempts], fields[attempts] + before["attempts"], *fields[attempts + 1:]]


def _running_again(fields: list[Any], before: Any) -> list[Any]:
    """A dispatch that runs again: its record says so, the rest of it is kept."""
    return [fields[i] if c in _RUNNING else before[c] for i, c in enumerate(rows.DISPATCH)]


# A done dispatch's row and its value, the row's columns first: read by position, since a
# replay reads one per dispatch and a lookup by name scans the columns' names.
_DONE = (f"SELECT {_D}, d.crc, v.codec AS vcodec, v.data AS vdata FROM dispatches d "
         'LEFT JOIN "values" v ON v.digest = d.result ')
_WIDTH = len(rows.DISPATCH)
_ID, _RESULT, _ATTEMPTS = map(rows.DISPATCH.index, ("id", "result", "attempts"))

# a done dispatch's seq, result ref, value codec and data
Done = tuple[int, str, Any, Any]


def _done(store: SQLStore, row: Any) -> tuple[str, Done]:
    """A done dispatch's id, and its commit number, result ref and value, its row
    checked."""
    fields = store.leading(row, _WIDTH + 3)
    ident, seq, ref, attempts = fields[_ID], fields[_SEQ], fields[_RESULT], fields[_ATTEMPTS]
    if not rows.holds(fields[_WIDTH], fields[:_WIDTH]):
        raise store.corrupt(f"dispatch {ident} fails its checksum")
    if not isinstance(ident, str) or type(seq) is not int or not isinstance(ref, str) or \
            not ref or type(attempts) is not int:
        raise store.corrupt(f"done dispatch {ident!r} has no readable result")
    return ident, (seq, ref, fields[_WIDTH + 1], fields[_WIDTH + 2])


class _Lookup(Recorded):
    """Done dispatches looked up one at a time (resume)."""

    def __init__(self, log: SQLRunLog) -> None:
        self.log = log

    def find(self, key: str) -> Done | None:
        store = self.log.store
        with store.errors():
            row = self.log.x(_DONE + "WHERE d.run=? AND d.id=? AND d.status='done'",
                             (self.log.run, key)).fetchone()
        return None if row is None else _done(store, row)[1]

    def seq(self, dispatch: str) -> int | None:
        hit = self.find(dispatch)
        return None if hit is None else hit[0]

    def value(self, dispatch: str) -> Any:
        hit = self.find(dispatch)
        if hit is None:
            raise self.log.store.corrupt(f"done dispatch {dispatch} is no longer recorded")
        return self.log.store.value_of(hit[1], hit[2], hit[3])


class _Streamed(Recorded):
    """Done dispatches for a replay, which asks for them in about the order they were
    recorded: read in ``seq`` order, a chunk ahead of it, on a connection of its own (one
    snapshot, and no read held open on the one that writes); one the chunk does not hold
    is looked up alone. Memory holds what was read ahead and not answered yet, not the
    history."""

    def __init__(self, log: SQLRunLog) -> None:
        self.alone = _Lookup(log)
        self.store = log.store
        self.ahead: dict[str, Done] = {}
        self.answered = 0  # the highest seq answered so far
        self.reader: SQLStore | None = log.store.reader()
        with self.store.errors():
            self.reader.begin_snapshot()
            self.rows: Iterator[Any] = self.reader.stream(
                _DONE + "WHERE d.run=? AND d.status='done' ORDER BY d.seq", (log.run,))
        self._read_on()

    def _read_on(self) -> None:
        if len(self.ahead) >= SQLRunLog.AHEAD:  # full of rows no answer took (run again):
            self.ahead = {k: v for k, v in self.ahead.items() if v[0] > self.answered}
        with self.store.errors():
            while len(self.ahead) < SQLRunLog.AHEAD:
                row = next(self.rows, None)
                if row is None:  # every done dispatch was read
                    self.close()
                    return
                ident, done = _done(self.store, row)
                self.ahead[ident] = done

    def _find(self, dispatch: str) -> Done | None:
        hit = self.ahead.get(dispatch)
        if hit is None and self.reader is not None:
            self._read_on()
            hit = self.ahead.get(dispatch)
        if hit is None:  # far ahead, answered already, or not done: ask for it alone
            hit = self.alone.find(dispatch)
            if hit is None:
                return None
            self.ahead[dispatch] = hit
        return hit

    def seq(self, dispatch: str) -> int | None:
        hit = self.ahead.get(dispatch) or self._find(dispatch)
        return None if hit is None else hit[0]

    def value(self, dispatch: str) -> Any:
        hit = self._find(dispatch)
        if hit is None:
            raise self.store.corrupt(f"done dispatch {dispatch} is no longer recorded")
        del self.ahead[dispatch]  # answered: it is not asked for again
        self.answered = max(self.answered, hit[0])
        return self.store.value_of(hit[1], hit[2], hit[3])

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
