"""The SQLite store: one file, no server, WAL mode, owner-only permissions.

Durability: ``normal`` (default) commits each dispatch in WAL mode with
``synchronous=NORMAL``, which survives ``kill -9`` of the process with nothing lost;
``power`` also syncs each commit to disk (survives power loss); ``batch`` groups
commits every ``batch_size`` dispatches or ``batch_ms`` milliseconds, so a crash
re-runs at most the last uncommitted batch. Driver errors are translated here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from retap import faults
from retap.dispatch import Dispatch, NodeId
from retap.errors import (
    CodecError,
    RetapError,
    RunBusy,
    StoreCorrupt,
    StoreError,
    StoreVersionError,
    StoreWriteError,
    UnknownRun,
    UsageError,
)
from retap.joins import Join, JoinState
from retap.store.base import (
    AuditRecord,
    DispatchRecord,
    Effects,
    Owner,
    RunInfo,
    RunLog,
    Store,
    now,
)
from retap.store.codec import Codec, JsonCodec, PickleCodec, codec_named, digest
from retap.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

__all__ = ["DURABILITY", "SQLiteStore"]

DURABILITY = ("normal", "power", "batch")
_HEADER = b"SQLite format 3\x00"
INLINE_MAX = 64  # JSON values this small live in the referring row: cheaper than a digest
_RETRY_FIRST = "CASE WHEN d.status IN ('failed','interrupted','running') THEN 0 ELSE 1 END"


class SQLiteStore(Store):
    """Runs recorded in a SQLite file."""

    def __init__(self, path: str | Path, *, durability: str = "normal", codec: str = "json",
                 batch_size: int = 256, batch_ms: float = 50.0, timeout: float = 10.0) -> None:
        if durability not in DURABILITY:
            raise UsageError(f"unknown durability {durability!r} (known: {', '.join(DURABILITY)})")
        self.location = str(path)
        self.path = Path(path)
        self.durability = durability
        self.batch_size = batch_size if durability == "batch" else 1
        self.batch_seconds = batch_ms / 1000.0
        self.codec: Codec = codec_named(codec)
        self._readers: dict[str, Codec] = {"json": JsonCodec(), self.codec.name: self.codec}
        self.conn = self._connect(timeout)

    # -- opening ----------------------------------------------------------------------------

    def _connect(self, timeout: float) -> sqlite3.Connection:
        self._prepare_file()
        with self.errors():
            conn = sqlite3.connect(self.location, isolation_level=None, timeout=timeout,
                                   check_same_thread=False)
            self.conn = conn
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            sync = "FULL" if self.durability == "power" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}")
            self._migrate(conn)
            if faults.armed:
                limit = faults.page_limit(conn.execute("PRAGMA page_count").fetchone()[0])
                if limit is not None:
                    conn.execute(f"PRAGMA max_page_count={limit}")
        return conn

    def _prepare_file(self) -> None:
        """Create the file owner-only, or check that an existing one is a SQLite database."""
        if self.path.exists():
            if self.path.is_dir():
                raise StoreError(self.location, "is a directory, not a store file")
            size = self.path.stat().st_size
            with open(self.path, "rb") as fh:
                header = fh.read(16)
            if size and (size < 100 or header != _HEADER):
                raise StoreCorrupt(self.location, "not a SQLite database (damaged, truncated "
                                                  "or another kind of file); move it aside")
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StoreError(self.location, f"cannot create it: {exc.strerror}") from None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = self._version(conn)
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._version(conn)
            for script in MIGRATIONS[version:]:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _version(self, conn: sqlite3.Connection) -> int:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id not in (0, APPLICATION_ID) or (version == 0 and conn.execute(
                "SELECT count(*) FROM sqlite_master").fetchone()[0]):
            raise StoreCorrupt(self.location, "a SQLite database, but not a retap store")
        if version > SCHEMA_VERSION:
            raise StoreVersionError(self.location, version, SCHEMA_VERSION)
        return int(version)

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate driver errors into StoreErrors; roll back what was open."""
        try:
            yield
        except sqlite3.Error as exc:
            conn = getattr(self, "conn", None)
            if conn is not None and conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise _translate(self.location, exc) from None

    # -- values -----------------------------------------------------------------------------

    def decode(self, codec: str, data: bytes) -> Any:
        """A stored value back; one that cannot be decoded safely means a damaged store."""
        reader = self._readers.get(codec)
        if reader is None:
            reader = self._readers[codec] = PickleCodec() if codec == "pickle" else \
                codec_named(codec)
        try:
            return reader.decode(data)
        except CodecError as exc:
            raise StoreCorrupt(self.location, exc.message) from None

    def value_of(self, ref: str | None, codec: str | None, data: bytes | None) -> Any:
        """The value a dispatch row refers to: inline (``=...``) or looked up by digest,
        verified against its digest so a changed store is refused, not believed."""
        if codec is not None and data is not None:
            if ref is not None and digest(codec, data) != ref:
                raise StoreCorrupt(self.location, f"value {ref} does not match its digest: "
                                                  "the store was changed outside retap")
            return self.decode(codec, data)
        if ref and ref[0] == "=":
            return self.decode("json", ref[1:].encode())
        return None

    def _values(self, refs: Iterable[str]) -> dict[str, Any]:
        """Values by ref (inline or digest), digests fetched in bulk."""
        wanted = list(set(refs))
        found: dict[str, Any] = {r: self.value_of(r, None, None) for r in wanted if r[0] == "="}
        wanted = [r for r in wanted if r[0] != "="]
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for d, codec, data in self.conn.execute(
                    f'SELECT digest, codec, data FROM "values" WHERE digest IN ({marks})', chunk):
                found[d] = self.value_of(d, codec, data)
        missing = [r for r in wanted if r not in found]
        if missing:
            raise StoreCorrupt(self.location, f"values {', '.join(missing[:3])} are missing")
        return found

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, run: str, spec: dict[str, Any], owner: Owner,
                   workflow: Any = None, leads: list[Dispatch] | None = None) -> RunLog:
        data = JsonCodec().encode(spec)
        with self.errors():
            self.conn.execute("BEGIN")
            try:
                self.conn.execute(
                    "INSERT INTO runs (run, status, created, updated, codec, spec, owner_host, "
                    "owner_pid, owner_started) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                    (run, now(), now(), self.codec.name, data, owner.host, owner.pid,
                     owner.started))
            except sqlite3.IntegrityError:
                self.conn.execute("ROLLBACK")
                raise UsageError(f"run {run!r} already exists in {self.location}",
                                 run=run) from None
            log = _SQLiteRunLog(self, run)
            log._effects_txn(Effects(back=leads or []))
            self.conn.execute("COMMIT")
        return log

    def claim_run(self, run: str, owner: Owner) -> RunLog:
        with self.errors():
            self.conn.execute("BEGIN IMMEDIATE")
            info = self._info(run)
            if info.status == "running" and info.owner is not None and info.owner.alive() \
                    and info.owner != owner:
                self.conn.execute("ROLLBACK")
                raise RunBusy(run, str(info.owner))
            self.conn.execute(
                "UPDATE runs SET status='running', updated=?, owner_host=?, owner_pid=?, "
                "owner_started=? WHERE run=?", (now(), owner.host, owner.pid, owner.started, run))
            self.conn.execute("COMMIT")
        log = _SQLiteRunLog(self, run)
        log.previous = info.effective_status
        return log

    def run_info(self, run: str) -> RunInfo:
        with self.errors():
            info = self._info(run)
            info.dispatches = self.conn.execute(
                "SELECT count(*) FROM dispatches WHERE run=?", (run,)).fetchone()[0]
        return info

    def _info(self, run: str) -> RunInfo:
        row = self.conn.execute(
            "SELECT run, status, created, spec, owner_host, owner_pid, owner_started "
            "FROM runs WHERE run=?", (run,)).fetchone()
        if row is None:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise UnknownRun(run, self.location)
        return RunInfo(row[0], row[1], row[2], JsonCodec().decode(row[3]), _owner(row[4:7]))

    def runs(self) -> list[RunInfo]:
        with self.errors():
            rows = self.conn.execute(
                "SELECT r.run, r.status, r.created, r.owner_host, r.owner_pid, r.owner_started, "
                "(SELECT count(*) FROM dispatches d WHERE d.run = r.run) FROM runs r "
                "ORDER BY r.created DESC, r.rowid DESC").fetchall()
        return [RunInfo(r[0], r[1], r[2], {}, _owner(r[3:6]), r[6]) for r in rows]

    # -- reading a run ----------------------------------------------------------------------

    def audits(self, run: str) -> list[AuditRecord]:
        self.run_info(run)
        with self.errors():
            rows = self.conn.execute(
                "SELECT d.id, d.node, d.task, d.sources, d.status, d.result, v.codec, v.data, "
                "d.attempts, d.seq, d.error, d.code_version, d.started, d.finished "
                'FROM dispatches d LEFT JOIN "values" v ON v.digest = d.result '
                "WHERE d.run=? ORDER BY d.seq", (run,)).fetchall()
            return [AuditRecord(r[0], json.loads(r[1]), r[2], tuple(json.loads(r[3])), r[4],
                                self.value_of(r[5], r[6], r[7]), r[8], r[9],
                                json.loads(r[10]) if r[10] else None, r[11] or "",
                                r[12] or 0.0, r[13] or 0.0) for r in rows]

    def dispatches(self, run: str, statuses: Iterable[str]) -> list[AuditRecord]:
        wanted = list(statuses)
        marks = ",".join("?" * len(wanted))
        with self.errors():
            rows = self.conn.execute(
                "SELECT d.id, d.node, d.task, d.sources, d.status, d.result, v.codec, v.data, "
                "d.attempts, d.seq, d.error, d.code_version, d.started, d.finished, d.inputs "
                'FROM dispatches d LEFT JOIN "values" v ON v.digest = d.result '
                f"WHERE d.run=? AND d.status IN ({marks}) ORDER BY d.seq",
                (run, *wanted)).fetchall()
            refs = [json.loads(r[14]) if r[14] else [] for r in rows]
            values = self._values(d for ref in refs for d in ref)
            return [AuditRecord(r[0], json.loads(r[1]), r[2], tuple(json.loads(r[3])), r[4],
                                self.value_of(r[5], r[6], r[7]), r[8], r[9],
                                json.loads(r[10]) if r[10] else None, r[11] or "",
                                r[12] or 0.0, r[13] or 0.0, tuple(values[d] for d in ref))
                    for r, ref in zip(rows, refs, strict=True)]

    def versions(self, run: str) -> list[tuple[NodeId, str, str]]:
        with self.errors():
            rows = self.conn.execute(
                "SELECT DISTINCT node, task, code_version FROM dispatches WHERE run=? AND "
                "status='done'", (run,)).fetchall()
        return [(json.loads(n), t, v or "") for n, t, v in rows]

    def counts(self, run: str) -> dict[str, int]:
        with self.errors():
            return dict(self.conn.execute(
                "SELECT status, count(*) FROM dispatches WHERE run=? GROUP BY status ORDER BY "
                "status", (run,)).fetchall())

    def queue(self, run: str) -> list[Dispatch]:
        with self.errors():
            rows = self.conn.execute(
                "SELECT q.id, q.node, q.sources, q.inputs, q.pos FROM queue q "
                "LEFT JOIN dispatches d ON d.run = q.run AND d.id = q.id "
                f"WHERE q.run=? ORDER BY {_RETRY_FIRST}, q.pos",
                (run,)).fetchall()
            refs = [json.loads(r[3]) for r in rows]
            values = self._values(d for ref in refs for d in ref)
            return [Dispatch(r[0], json.loads(r[1]), tuple(values[d] for d in ref),
                             tuple(json.loads(r[2])), (r[3], r[4]))
                    for r, ref in zip(rows, refs, strict=True)]

    def join_states(self, run: str, joins: Iterable[Join]) -> dict[NodeId, JoinState]:
        states = {}
        with self.errors():
            entries = self.conn.execute(
                "SELECT e.join_id, e.slot, e.audit, d.result, v.codec, v.data FROM join_entries e "
                "JOIN dispatches d ON d.run = e.run AND d.id = e.audit "
                'LEFT JOIN "values" v ON v.digest = d.result WHERE e.run=? ORDER BY e.seq',
                (run,)).fetchall()
            counts = dict(self.conn.execute(
                "SELECT join_id, count FROM join_counts WHERE run=?", (run,)).fetchall())
        for join in joins:
            state = join.new_state()
            if state is None:
                continue
            key = json.dumps(join.id)
            state.count = counts.get(key, 0)
            for join_id, slot, audit, ref, codec, data in entries:
                if join_id == key:
                    state.slots[slot].append((audit, self.value_of(ref, codec, data)))
            states[join.id] = state
        return states

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self.errors():
            self.conn.execute("BEGIN")  # a read transaction: one WAL snapshot for all reads
        try:
            yield
        finally:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def _owner(row: Any) -> Owner | None:
    host, pid, started = row
    return Owner(host, pid, started or 0.0) if host else None


def _translate(location: str, exc: sqlite3.Error) -> RetapError:
    text = str(exc)
    lower = text.lower()
    if "full" in lower or "disk i/o" in lower:
        return StoreWriteError(location, f"{text}: free some space, then `retap resume` the "
                                         "run (what was committed is kept)")
    if isinstance(exc, sqlite3.DatabaseError) and any(
            k in lower for k in ("malformed", "not a database", "encrypted", "corrupt")):
        return StoreCorrupt(location, f"{text}: the store is damaged; move it aside")
    if "locked" in lower or "busy" in lower:
        return StoreError(location, f"{text}: another process holds it too long")
    return StoreError(location, text)


class _SQLiteRunLog(RunLog):
    """The writes of one run; commits grouped in ``batch`` durability."""

    def __init__(self, store: SQLiteStore, run: str) -> None:
        self.store = store
        self.conn = store.conn
        self.run = run
        self._nodes: dict[NodeId, str] = {}
        self._pending = 0
        self._since = 0.0
        with store.errors():
            low, high = self.conn.execute(
                "SELECT min(pos), max(pos) FROM queue WHERE run=?", (run,)).fetchone()
            self.front, self.back = low or 0, high or 0
            self.seq = self.conn.execute("SELECT coalesce(max(seq), 0) FROM dispatches "
                                         "WHERE run=?", (run,)).fetchone()[0]
            self.jseq = self.conn.execute("SELECT coalesce(max(seq), 0) FROM join_entries "
                                          "WHERE run=?", (run,)).fetchone()[0]

    # -- writing ----------------------------------------------------------------------------

    def commit_dispatch(self, record: DispatchRecord, effects: Effects) -> None:
        values: dict[str, tuple[str, bytes]] = {}
        memo: dict[int, tuple[Any, str]] = {}
        result = self._ref(record.value, values, memo) if record.status == "done" else None
        inputs = record.ref[0] if record.ref is not None else self._refs(record.inputs, values,
                                                                          memo)
        queued = self._queued(effects, values, memo)
        error = json.dumps(record.error) if record.error else None
        self.seq += 1
        with self._transaction():
            self._insert_values(values)
            self.conn.execute(
                "INSERT INTO dispatches (run, id, node, task, sources, inputs, status, result, "
                "error, attempts, seq, started, finished, code_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run, id) DO UPDATE "
                "SET task=excluded.task, inputs=excluded.inputs, status=excluded.status, "
                "result=excluded.result, error=excluded.error, "
                "attempts=dispatches.attempts + excluded.attempts, seq=excluded.seq, "
                "started=excluded.started, finished=excluded.finished, "
                "code_version=excluded.code_version",
                (self.run, record.id, self._node(record.node), record.task,
                 json.dumps(record.sources), inputs, record.status, result, error,
                 record.attempts, self.seq, record.started, record.finished,
                 record.code_version))
            if faults.armed:
                faults.hit("in_commit")
            self._write_effects(effects, queued)

    def commit_effects(self, effects: Effects) -> None:
        values: dict[str, tuple[str, bytes]] = {}
        queued = self._queued(effects, values, {})
        with self._transaction():
            self._insert_values(values)
            self._write_effects(effects, queued)

    def _effects_txn(self, effects: Effects) -> None:
        """Write ``effects`` inside the caller's open transaction."""
        values: dict[str, tuple[str, bytes]] = {}
        queued = self._queued(effects, values, {})
        self._insert_values(values)
        self._write_effects(effects, queued)

    def mark_running(self, dispatch: Dispatch, task: str, code_version: str) -> None:
        values: dict[str, tuple[str, bytes]] = {}
        inputs = dispatch.ref[0] if dispatch.ref is not None else self._refs(dispatch.inputs,
                                                                             values, {})
        self.seq += 1
        with self._transaction(force=True):
            self._insert_values(values)
            self.conn.execute(
                "INSERT INTO dispatches (run, id, node, task, sources, inputs, status, attempts, "
                "seq, started, code_version) VALUES (?, ?, ?, ?, ?, ?, 'running', 0, ?, ?, ?) "
                "ON CONFLICT (run, id) DO UPDATE SET status='running', seq=excluded.seq, "
                "started=excluded.started, code_version=excluded.code_version",
                (self.run, dispatch.id, self._node(dispatch.node), task,
                 json.dumps(dispatch.sources), inputs, self.seq, now(), code_version))

    def save_state(self, queue: Iterable[Dispatch], states: Mapping[NodeId, JoinState]) -> None:
        values: dict[str, tuple[str, bytes]] = {}
        memo: dict[int, tuple[Any, str]] = {}
        rows = []
        for pos, d in enumerate(queue):
            inputs = d.ref[0] if d.ref is not None else self._refs(d.inputs, values, memo)
            d.ref = (inputs, pos)
            rows.append((self.run, pos, d.id, self._node(d.node), json.dumps(d.sources), inputs))
        self.front, self.back = 0, len(rows)
        with self._transaction(force=True):
            self._insert_values(values)
            for table in ("queue", "join_entries", "join_counts"):
                self.conn.execute(f"DELETE FROM {table} WHERE run=?", (self.run,))
            self.conn.executemany("INSERT INTO queue (run, pos, id, node, sources, inputs) "
                                  "VALUES (?, ?, ?, ?, ?, ?)", rows)
            if faults.armed:
                faults.hit("in_save_state")
            for join_id, state in states.items():
                key = json.dumps(join_id)
                for slot, fifo in enumerate(state.slots):
                    for audit, _ in fifo:
                        self.jseq += 1
                        self.conn.execute("INSERT INTO join_entries (run, join_id, slot, audit, "
                                          "seq) VALUES (?, ?, ?, ?, ?)",
                                          (self.run, key, slot, audit, self.jseq))
                self.conn.execute("INSERT INTO join_counts (run, join_id, count) "
                                  "VALUES (?, ?, ?)", (self.run, key, state.count))

    def finish(self, status: str) -> None:
        with self._transaction(force=True):
            self.conn.execute("UPDATE runs SET status=?, updated=? WHERE run=?",
                              (status, now(), self.run))

    def update_spec(self, spec: dict[str, Any]) -> None:
        with self._transaction(force=True):
            self.conn.execute("UPDATE runs SET spec=? WHERE run=?",
                              (JsonCodec().encode(spec), self.run))

    def flush_if_due(self) -> None:
        if self._pending and time.monotonic() - self._since >= self.store.batch_seconds:
            self.flush()

    def flush(self) -> None:
        """Commit a pending batch now."""
        if self.conn.in_transaction:
            with self.store.errors():
                self.conn.execute("COMMIT")
            self._pending = 0

    # -- reading ----------------------------------------------------------------------------

    def cached(self) -> Mapping[str, Any]:
        with self.store.errors():
            rows = self.conn.execute(
                'SELECT d.id, d.result, v.codec, v.data FROM dispatches d LEFT JOIN "values" v '
                "ON v.digest = d.result WHERE d.run=? AND d.status='done'", (self.run,))
            return _Cached({i: (ref, c, data) for i, ref, c, data in rows}, self.store.value_of)

    # -- helpers ----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, force: bool = False) -> Iterator[None]:
        """Statements inside run in the open transaction; committed now, or with the batch."""
        with self.store.errors():
            if not self.conn.in_transaction:
                self.conn.execute("BEGIN")
                self._since = time.monotonic()
            yield
            self._pending += 1
            if force or self._pending >= self.store.batch_size or \
                    time.monotonic() - self._since >= self.store.batch_seconds:
                self.conn.execute("COMMIT")
                self._pending = 0

    def _node(self, node: NodeId) -> str:
        text = self._nodes.get(node)
        if text is None:
            text = self._nodes[node] = json.dumps(node)
        return text

    def _ref(self, value: Any, values: dict[str, tuple[str, bytes]],
             memo: dict[int, tuple[Any, str]]) -> str:
        """The digest of ``value``, encoding it once per commit."""
        hit = memo.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        codec = self.store.codec
        data = codec.encode(value)
        if len(data) <= INLINE_MAX and codec.name == "json":
            key = "=" + data.decode()
        else:
            key = digest(codec.name, data)
            values[key] = (codec.name, data)
        memo[id(value)] = (value, key)
        return key

    def _refs(self, inputs: Iterable[Any], values: dict[str, tuple[str, bytes]],
              memo: dict[int, tuple[Any, str]]) -> str:
        return json.dumps([self._ref(v, values, memo) for v in inputs])

    def _queued(self, effects: Effects, values: dict[str, tuple[str, bytes]],
                memo: dict[int, tuple[Any, str]]) -> list[tuple[Any, ...]]:
        """Queue rows for the dispatches ``effects`` adds; their inputs encoded first."""
        rows = []
        positions = [*range(self.front - len(effects.front), self.front),
                     *range(self.back + 1, self.back + 1 + len(effects.back))]
        for pos, d in zip(positions, [*effects.front, *effects.back], strict=True):
            d.ref = (self._refs(d.inputs, values, memo), pos)
            rows.append((self.run, pos, d.id, self._node(d.node), json.dumps(d.sources),
                         d.ref[0]))
        return rows

    def _insert_values(self, values: dict[str, tuple[str, bytes]]) -> None:
        if values:
            self.conn.executemany('INSERT OR IGNORE INTO "values" (digest, codec, data) '
                                  "VALUES (?, ?, ?)", [(k, c, d) for k, (c, d) in values.items()])

    def _write_effects(self, effects: Effects, queued: list[tuple[Any, ...]]) -> None:
        run = self.run
        removed = effects.removed
        if removed is not None:
            if removed.ref is not None:
                self.conn.execute("DELETE FROM queue WHERE run=? AND pos=?", (run, removed.ref[1]))
            else:
                self.conn.execute("DELETE FROM queue WHERE run=? AND id=?", (run, removed.id))
        if queued:
            self.conn.executemany("INSERT INTO queue (run, pos, id, node, sources, inputs) "
                                  "VALUES (?, ?, ?, ?, ?, ?)", queued)
            self.front -= len(effects.front)
            self.back += len(effects.back)
        if effects.joins and faults.armed:
            faults.hit("in_join_write")
        for join_id, change in effects.joins:
            key = self._node(join_id)
            if change[0] == "add":
                self.jseq += 1
                self.conn.execute("INSERT INTO join_entries (run, join_id, slot, audit, seq) "
                                  "VALUES (?, ?, ?, ?, ?)", (run, key, change[1], change[2],
                                                             self.jseq))
            elif change[0] == "take":
                self.conn.execute("DELETE FROM join_entries WHERE run=? AND join_id=? AND "
                                  "slot=? AND audit=?", (run, key, change[1], change[2]))
            else:
                self.conn.execute("INSERT OR REPLACE INTO join_counts (run, join_id, count) "
                                  "VALUES (?, ?, ?)", (run, key, change[1]))


class _Cached(Mapping[str, Any]):
    """Done results by dispatch id, decoded when asked for."""

    def __init__(self, raw: dict[str, tuple[str, str | None, bytes | None]], decode: Any
                 ) -> None:
        self.raw = raw
        self.decode = decode

    def __getitem__(self, key: str) -> Any:
        return self.decode(*self.raw[key])

    def get(self, key: str, default: Any = None) -> Any:
        hit = self.raw.get(key)
        return default if hit is None else self.decode(*hit)

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)
