"""The SQLite store: one file, no server, WAL mode, owner-only permissions.

Durability: ``normal`` (default) commits each dispatch in WAL mode with
``synchronous=NORMAL``, which survives ``kill -9`` of the process with nothing lost;
``power`` also syncs each commit to disk (survives power loss); ``batch`` groups
commits every ``batch_size`` dispatches or ``batch_ms`` milliseconds, so a crash
re-runs at most the last uncommitted batch. Driver errors are translated here, and
every row read is checked against its checksum (``retap.store.rows``).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
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
from retap.store import rows
from retap.store.base import (
    AuditRecord,
    Effects,
    MemoEntry,
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
_RETRY_FIRST = "CASE WHEN d.status IN ('failed','interrupted','running') THEN 0 ELSE 1 END"
_AUDIT = ("SELECT d.id, d.node, d.task, d.sources, d.status, d.result, v.codec, v.data, "
          "d.attempts, d.seq, d.error, d.code_version, d.started, d.finished, d.inputs, "
          f"{rows.crc_ok(rows.DISPATCH, 'd')}, d.reused, d.outputs "
          'FROM dispatches d LEFT JOIN "values" v ON v.digest = d.result ')
_MEMO = (f"SELECT m.task, m.key, m.result, v.codec, v.data, m.outputs, m.facts, m.run, "
         f"m.dispatch, m.created, {rows.crc_ok(rows.MEMO, 'm')} FROM memo m "
         'LEFT JOIN "values" v ON v.digest = m.result ')


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
        self._json = JsonCodec()
        self._readers: dict[str, Codec] = {"json": self._json, self.codec.name: self.codec}
        self.conn = self._connect(timeout)

    # -- opening ----------------------------------------------------------------------------

    def _connect(self, timeout: float) -> sqlite3.Connection:
        self._prepare_file()
        with self.errors():
            conn = sqlite3.connect(self.location, isolation_level=None, timeout=timeout,
                                   check_same_thread=False)
            self.conn = conn
            conn.create_function("retap_crc", -1, rows.crc, deterministic=True)
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
        """Roll back what was open on any error; translate driver and decoding errors."""
        try:
            yield
        except BaseException as exc:
            conn = getattr(self, "conn", None)
            if conn is not None and conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _translate(self.location, exc) from None
            if isinstance(exc, ValueError | KeyError):
                raise self.corrupt(f"a stored record cannot be read ({exc})") from None
            raise

    def corrupt(self, what: str) -> StoreCorrupt:
        return StoreCorrupt(self.location, f"{what}: the store was damaged or changed outside "
                                           "retap; move it aside (`retap check` lists problems)")

    def verify(self, ok: Any, what: str) -> None:
        """Refuse a row whose checksum does not match its columns."""
        if ok != 1:
            raise self.corrupt(f"{what} fails its checksum")

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
        """The value a row refers to: inline (``=...``) or looked up by digest, verified
        against its digest so a changed store is refused, not believed."""
        if codec is not None and data is not None:
            if ref is not None and digest(codec, data) != ref:
                raise self.corrupt(f"value {ref} does not match its digest")
            return self.decode(codec, data)
        if ref and ref[0] == "=":
            try:
                return self._json.decode_text(ref[1:])
            except CodecError as exc:
                raise StoreCorrupt(self.location, exc.message) from None
        if ref:
            raise self.corrupt(f"value {ref} is missing")
        return None

    def values(self, refs: Iterable[str]) -> dict[str, Any]:
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
            raise self.corrupt(f"values {', '.join(missing[:3])} are missing")
        return found

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, run: str, spec: dict[str, Any], owner: Owner,
                   workflow: Any = None, leads: list[Dispatch] | None = None) -> RunLog:
        from retap.store.sqlite_log import SQLiteRunLog

        data = JsonCodec().encode(spec)
        created = now()
        fields = (run, "running", created, self.codec.name, data, owner.host, owner.pid,
                  owner.started)
        with self.errors():
            self.conn.execute("BEGIN")
            try:
                self.conn.execute(
                    "INSERT INTO runs (run, status, created, codec, spec, owner_host, owner_pid, "
                    "owner_started, updated, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*fields, created, rows.crc(*fields)))
            except sqlite3.IntegrityError:
                self.conn.execute("ROLLBACK")
                raise UsageError(f"run {run!r} already exists in {self.location}",
                                 run=run) from None
            log = SQLiteRunLog(self, run)
            log.effects_txn(Effects(back=leads or []))
            self.conn.execute("COMMIT")
        return log

    def claim_run(self, run: str, owner: Owner) -> RunLog:
        from retap.store.sqlite_log import SQLiteRunLog

        with self.errors():
            self.conn.execute("BEGIN IMMEDIATE")
            info = self._info(run)
            if info.status == "running" and info.owner is not None and info.owner.alive() \
                    and info.owner != owner:
                self.conn.execute("ROLLBACK")
                raise RunBusy(run, str(info.owner))
            self.update_run_txn(run, status="running", owner_host=owner.host,
                                owner_pid=owner.pid, owner_started=owner.started)
            self.conn.execute("COMMIT")
        log = SQLiteRunLog(self, run)
        log.previous = info.effective_status
        return log

    def update_run_txn(self, run: str, **changes: Any) -> None:
        """Change columns of a run's row, and its checksum, in the caller's transaction."""
        sets = ", ".join(f"{column}=?" for column in changes)
        self.conn.execute(f"UPDATE runs SET {sets}, updated=? WHERE run=?",
                          (*changes.values(), now(), run))
        self.conn.execute(f"UPDATE runs SET crc={rows.crc_sql(rows.RUN)} WHERE run=?", (run,))

    def run_info(self, run: str) -> RunInfo:
        with self.errors():
            info = self._info(run)
            info.dispatches = self.conn.execute(
                "SELECT count(*) FROM dispatches WHERE run=?", (run,)).fetchone()[0]
        return info

    def _info(self, run: str) -> RunInfo:
        row = self.conn.execute(
            "SELECT run, status, created, spec, owner_host, owner_pid, owner_started, "
            f"{rows.crc_ok(rows.RUN)} FROM runs WHERE run=?", (run,)).fetchone()
        if row is None:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise UnknownRun(run, self.location)
        self.verify(row[7], f"the record of run {run}")
        return RunInfo(row[0], row[1], row[2], JsonCodec().decode(row[3]), _owner(row[4:7]))

    def runs(self) -> list[RunInfo]:
        with self.errors():
            found = self.conn.execute(
                "SELECT r.run, r.status, r.created, r.owner_host, r.owner_pid, r.owner_started, "
                "(SELECT count(*) FROM dispatches d WHERE d.run = r.run), "
                f"{rows.crc_ok(rows.RUN, 'r')} FROM runs r "
                "ORDER BY r.created DESC, r.rowid DESC").fetchall()
            for r in found:
                self.verify(r[7], f"the record of run {r[0]}")
        return [RunInfo(r[0], r[1], r[2], {}, _owner(r[3:6]), r[6]) for r in found]

    # -- reading a run ----------------------------------------------------------------------

    def audits(self, run: str) -> list[AuditRecord]:
        self.run_info(run)
        with self.errors():
            found = self.conn.execute(_AUDIT + "WHERE d.run=? ORDER BY d.seq", (run,)).fetchall()
            return [self._audit(r) for r in found]

    def dispatches(self, run: str, statuses: Iterable[str]) -> list[AuditRecord]:
        wanted = list(statuses)
        marks = ",".join("?" * len(wanted))
        with self.errors():
            found = self.conn.execute(_AUDIT + f"WHERE d.run=? AND d.status IN ({marks}) "
                                      "ORDER BY d.seq", (run, *wanted)).fetchall()
            refs = [json.loads(r[14]) if r[14] else [] for r in found]
            values = self.values(d for ref in refs for d in ref)
            return [self._audit(r, tuple(values[d] for d in ref))
                    for r, ref in zip(found, refs, strict=True)]

    def _audit(self, r: Any, inputs: tuple[Any, ...] = ()) -> AuditRecord:
        self.verify(r[15], f"dispatch {r[0]}")
        return AuditRecord(r[0], json.loads(r[1]), r[2], tuple(json.loads(r[3])), r[4],
                           self.value_of(r[5], r[6], r[7]), r[8], r[9],
                           json.loads(r[10]) if r[10] else None, r[11] or "", r[12] or 0.0,
                           r[13] or 0.0, inputs, r[16], json.loads(r[17]) if r[17] else None)

    def versions(self, run: str) -> list[tuple[NodeId, str, str]]:
        # Advisory (it only words a warning), so rows are not checksummed here: that would
        # make every resume cost a checksum per dispatch ever done.
        with self.errors():
            found = self.conn.execute(
                "SELECT DISTINCT node, task, code_version FROM dispatches WHERE run=? AND "
                "status='done'", (run,)).fetchall()
            return [(json.loads(n), t, v or "") for n, t, v in found]

    def counts(self, run: str) -> dict[str, int]:
        with self.errors():
            found = self.conn.execute(
                f"SELECT status, count(*), min({rows.crc_ok(rows.DISPATCH)}) FROM dispatches "
                "WHERE run=? GROUP BY status ORDER BY status", (run,)).fetchall()
            for r in found:
                self.verify(r[2], f"a dispatch of run {run}")
        return {status: count for status, count, _ in found}

    def queue(self, run: str) -> list[Dispatch]:
        with self.errors():
            found = self.conn.execute(
                "SELECT q.id, q.node, q.sources, q.inputs, q.pos, "
                f"{rows.crc_ok(rows.QUEUE, 'q')}, "
                f"coalesce({rows.crc_ok(rows.DISPATCH, 'd')}, 1) FROM queue q "
                "LEFT JOIN dispatches d ON d.run = q.run AND d.id = q.id "
                f"WHERE q.run=? ORDER BY {_RETRY_FIRST}, q.pos", (run,)).fetchall()
            for r in found:
                self.verify(r[5] and r[6], f"queued dispatch {r[0]}")
            refs = [json.loads(r[3]) for r in found]
            values = self.values(d for ref in refs for d in ref)
            return [Dispatch(r[0], json.loads(r[1]), tuple(values[d] for d in ref),
                             tuple(json.loads(r[2])), (r[3], r[4]))
                    for r, ref in zip(found, refs, strict=True)]

    def join_states(self, run: str, joins: Iterable[Join]) -> dict[NodeId, JoinState]:
        with self.errors():
            entries = self.conn.execute(
                "SELECT e.join_id, e.slot, e.audit, d.result, v.codec, v.data, "
                f"{rows.crc_ok(rows.JOIN_ENTRY, 'e')} AND {rows.crc_ok(rows.DISPATCH, 'd')} "
                "FROM join_entries e JOIN dispatches d ON d.run = e.run AND d.id = e.audit "
                'LEFT JOIN "values" v ON v.digest = d.result WHERE e.run=? ORDER BY e.seq',
                (run,)).fetchall()
            counts = self.conn.execute(
                f"SELECT join_id, count, {rows.crc_ok(rows.JOIN_COUNT)} FROM join_counts "
                "WHERE run=?", (run,)).fetchall()
            for row in [*entries, *counts]:
                self.verify(row[-1], f"the state of join {row[0]}")
            states = {}
            for join in joins:
                state = join.new_state()
                if state is None:
                    continue
                key = json.dumps(join.id)
                state.count = next((c for j, c, _ in counts if j == key), 0)
                for join_id, slot, audit, ref, codec, data, _ in entries:
                    if join_id == key:
                        state.slots[slot].append((audit, self.value_of(ref, codec, data)))
                states[join.id] = state
            return states

    def check_structure(self) -> None:
        """SQLite's quick check: a damaged page can hide rows from a query without an error,
        so a store is checked before a run is continued or shown from it (O(file size))."""
        with self.errors():
            problems = [r[0] for r in self.conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise self.corrupt(f"its structure is damaged ({problems[0].splitlines()[-1]})")

    # -- memo and file digests ---------------------------------------------------------------

    def memo_get(self, task: str, key: str) -> MemoEntry | None:
        with self.errors():
            row = self.conn.execute(_MEMO + "WHERE m.task=? AND m.key=?", (task, key)).fetchone()
            return self._memo(row) if row else None

    def memo_latest(self, task: str, dispatch: str) -> MemoEntry | None:
        with self.errors():
            row = self.conn.execute(_MEMO + "WHERE m.task=? ORDER BY m.dispatch = ? DESC, "
                                    "m.created DESC LIMIT 1", (task, dispatch)).fetchone()
            return self._memo(row) if row else None

    def _memo(self, r: Any) -> MemoEntry:
        self.verify(r[10], f"the remembered result {r[1]} of {r[0]}")
        return MemoEntry(r[0], r[1], self.value_of(r[2], r[3], r[4]), json.loads(r[5]),
                         json.loads(r[6]), r[7], r[8], r[9])

    def forget(self, task: str, run: str | None = None) -> int:
        where, args = ("task=?", (task,)) if run is None else ("task=? AND run=?", (task, run))
        with self.errors():
            return self.conn.execute(f"DELETE FROM memo WHERE {where}", args).rowcount

    def file_digest(self, path: str, stat: tuple[int, int, int]) -> str | None:
        with self.errors():
            row = self.conn.execute(
                f"SELECT size, mtime_ns, inode, digest, {rows.crc_ok(rows.FILE)} "
                "FROM file_digests WHERE path=?", (path,)).fetchone()
        if row is None or tuple(row[:3]) != stat:
            return None
        self.verify(row[4], f"the remembered digest of {path}")
        return str(row[3])

    def remember_file(self, path: str, stat: tuple[int, int, int], digest: str) -> None:
        fields = (path, *stat, digest)
        with self.errors():
            self.conn.execute("INSERT OR REPLACE INTO file_digests (path, size, mtime_ns, inode, "
                              "digest, crc) VALUES (?, ?, ?, ?, ?, ?)", (*fields,
                                                                         rows.crc(*fields)))

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
