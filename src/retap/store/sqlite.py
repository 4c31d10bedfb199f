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
from urllib.parse import quote

from retap import faults
from retap.dispatch import Dispatch, NodeId
from retap.errors import (
    CodecError,
    RetapError,
    RunExists,
    SpecError,
    StoreCorrupt,
    StoreError,
    StoreVersionError,
    StoreWriteError,
    UnknownRun,
    UsageError,
)
from retap.joins import Join, JoinState
from retap.spec import check_spec
from retap.store import DURABILITY, boundary, rows
from retap.store.base import (
    AuditRecord,
    Effects,
    MemoEntry,
    Owner,
    RunInfo,
    RunLog,
    Store,
    busy_owner,
    now,
)
from retap.store.codec import (
    PICKLE_KEY_ENV,
    Codec,
    JsonCodec,
    Opaque,
    PickleCodec,
    codec_named,
    digest,
)
from retap.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

__all__ = ["DURABILITY", "SQLiteStore"]

_HEADER = b"SQLite format 3\x00"
_RETRY_FIRST = "CASE WHEN d.status IN ('failed','interrupted','running') THEN 0 ELSE 1 END"
_AUDIT_COLUMNS = ("id", "node", "task", "sources", "status", "result", "attempts", "seq",
                  "error", "code_version", "started", "finished", "inputs", "reused", "outputs")
_AUDIT = (f"SELECT {', '.join('d.' + c for c in _AUDIT_COLUMNS)}, v.codec, v.data, "
          f"{rows.crc_ok(rows.DISPATCH, 'd')} "
          'FROM dispatches d LEFT JOIN "values" v ON v.digest = d.result ')
_MEMO_COLUMNS = ("task", "key", "result", "outputs", "facts", "run", "dispatch", "created")
_MEMO = (f"SELECT {', '.join('m.' + c for c in _MEMO_COLUMNS)}, v.codec, v.data, "
         f"{rows.crc_ok(rows.MEMO, 'm')} FROM memo m "
         'LEFT JOIN "values" v ON v.digest = m.result ')
_RUN_COLUMNS = ("run", "status", "created", "codec", "owner_host", "owner_pid", "owner_started")


class SQLiteStore(Store):
    """Runs recorded in a SQLite file."""

    def __init__(self, path: str | Path, *, durability: str = "normal", codec: str = "json",
                 batch_size: int = 256, batch_ms: float = 50.0, timeout: float = 10.0,
                 readonly: bool = False) -> None:
        if durability not in DURABILITY:
            raise UsageError(f"unknown durability {durability!r} (known: {', '.join(DURABILITY)})")
        self.location = str(path)
        self.path = Path(path)
        self.durability = durability
        self.readonly = readonly  # readers: never write, never unpickle
        self.batch_size = batch_size if durability == "batch" else 1
        self.batch_seconds = batch_ms / 1000.0
        self.codec: Codec = codec_named(codec) if not readonly else JsonCodec()
        self._json = JsonCodec()
        self._readers: dict[str, Codec] = {"json": self._json, self.codec.name: self.codec}
        self.conn = self._connect_readonly(timeout) if readonly else self._connect(timeout)

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

    def _connect_readonly(self, timeout: float) -> sqlite3.Connection:
        """Open for reading only, also where the directory cannot be written: WAL mode needs
        its shared-memory file, so a store that cannot have one is read as immutable."""
        self._check_file()
        if self._version_on_disk() < SCHEMA_VERSION and os.access(self.path, os.W_OK):
            self._connect(timeout).close()  # an older store: upgrade it once, then read
        uri = f"file:{quote(str(self.path.absolute()))}?mode=ro"
        for suffix in ("", "&immutable=1"):
            try:
                conn = sqlite3.connect(uri + suffix, uri=True, isolation_level=None,
                                       timeout=timeout, check_same_thread=False)
                conn.create_function("retap_crc", -1, rows.crc, deterministic=True)
                conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
                self.conn = conn
                with self.errors():
                    if self._version(conn) != SCHEMA_VERSION:
                        raise StoreError(self.location, "written by an older retap; open it "
                                                        "once with write access to upgrade it")
                return conn
            except StoreError as exc:
                if suffix or not any(k in exc.reason for k in ("readonly", "unable to open")):
                    raise
        raise AssertionError("unreachable")

    def _version_on_disk(self) -> int:
        """The schema version in the file's header (0 for an empty file)."""
        with open(self.path, "rb") as fh:
            header = fh.read(100)
        return int.from_bytes(header[60:64], "big") if len(header) == 100 else 0

    def _check_file(self) -> None:
        if self.path.is_dir():
            raise StoreError(self.location, "is a directory, not a store file")
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as fh:
                header = fh.read(16)
        except FileNotFoundError:
            raise StoreError(self.location, "no such store") from None
        except OSError as exc:
            raise StoreError(self.location, f"cannot read it: {exc.strerror}") from None
        if size and (size < 100 or header != _HEADER):
            raise StoreCorrupt(self.location, "not a SQLite database (damaged, truncated "
                                              "or another kind of file); move it aside")

    def _prepare_file(self) -> None:
        """Create the file owner-only, or check that an existing one is a SQLite database."""
        if self.path.exists():
            self._check_file()
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
        """Roll back what was open on any error; translate driver and decoding errors (a
        value no row retap writes can hold means a damaged or crafted store)."""
        try:
            yield
        except BaseException as exc:
            conn = getattr(self, "conn", None)
            if conn is not None and conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _translate(self.location, exc) from None
            if isinstance(exc, SpecError):
                raise self.corrupt(f"a stored spec cannot be used ({exc.message})") from None
            if isinstance(exc, _UNREADABLE):
                raise self.corrupt(f"a stored record cannot be read ({type(exc).__name__}: "
                                   f"{_clip(exc)})") from None
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
        """A stored value back; one that cannot be decoded safely means a damaged store.
        A reader never unpickles: a pickled value is shown as opaque."""
        if self.readonly and codec == "pickle":
            return self._peek_pickle(data)
        reader = self._readers.get(codec)
        if reader is None:
            if codec not in ("json", "pickle"):
                raise self.corrupt(f"a value is stored with an unknown codec {codec!r}")
            reader = self._readers[codec] = codec_named(codec)
        try:
            return reader.decode(data)
        except CodecError as exc:
            raise StoreCorrupt(self.location, exc.message) from None

    def _peek_pickle(self, data: bytes) -> Any:
        """A reader's view of a pickled value: loaded when the key is at hand and the value's
        class can be imported, else shown as opaque; a bad signature is refused."""
        opaque = Opaque("pickle", len(data), digest("pickle", data))
        key = os.environ.get(PICKLE_KEY_ENV, "")
        if not key:
            return opaque
        reader = PickleCodec(key.encode())
        if not reader.signed(data):
            raise self.corrupt("a pickled value's signature does not match")
        try:
            return reader.decode(data)
        except CodecError:
            return opaque

    def value_of(self, ref: str | None, codec: str | None, data: bytes | None) -> Any:
        """The value a row refers to: inline (``=...``) or looked up by digest, verified
        against its digest so a changed store is refused, not believed."""
        if codec is not None and data is not None:
            if not isinstance(codec, str) or not isinstance(data, bytes):
                raise self.corrupt(f"value {_clip(ref)} is not stored as retap stores values")
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
        found: dict[str, Any] = {r: self.value_of(r, None, None) for r in wanted
                                 if r.startswith("=")}
        wanted = [r for r in wanted if not r.startswith("=")]
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
                raise RunExists(run, self.location) from None
            log = SQLiteRunLog(self, run)
            log.effects_txn(Effects(back=leads or []))
            self.conn.execute("COMMIT")
        return log

    def claim_run(self, run: str, owner: Owner, take_over: bool = False) -> RunLog:
        from retap.store.sqlite_log import SQLiteRunLog

        with self.errors():
            self.conn.execute("BEGIN IMMEDIATE")
            info = self._info(run)
            busy = busy_owner(info, owner, take_over)
            if busy is not None:
                self.conn.execute("ROLLBACK")
                raise busy
            self.update_run_txn(run, status="running", owner_host=owner.host,
                                owner_pid=owner.pid, owner_started=owner.started)
            self.conn.execute("COMMIT")
        log = SQLiteRunLog(self, run, codec_named(info.codec))
        log.previous = "interrupted" if busy_owner(info, owner, False) else info.effective_status
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
            f"SELECT {', '.join(_RUN_COLUMNS)}, spec, {rows.crc_ok(rows.RUN)} FROM runs "
            "WHERE run=?", (run,)).fetchone()
        if row is None:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise UnknownRun(run, self.location)
        self.verify(row[-1], f"the record of run {run}")
        info = self._run_row(row[:len(_RUN_COLUMNS)])
        spec = self.decode("json", row[len(_RUN_COLUMNS)]) if isinstance(
            row[len(_RUN_COLUMNS)], bytes) else None
        info.spec = check_spec(spec).model_dump()
        return info

    def _run_row(self, row: Any, dispatches: int = 0) -> RunInfo:
        r = self.row(boundary.RunRow, _RUN_COLUMNS, row, "run")
        owner = Owner(r.owner_host, r.owner_pid or 0, r.owner_started or 0.0) \
            if r.owner_host else None
        return RunInfo(r.run, r.status, r.created, {}, owner, dispatches, codec=r.codec)

    def row(self, model: type[boundary.M], columns: tuple[str, ...], row: Any,
            what: str) -> boundary.M:
        """A row as ``model``, or StoreCorrupt naming the row and what is wrong with it."""
        checked = boundary.valid(model, dict(zip(columns, row, strict=True)))
        if isinstance(checked, str):
            raise self.corrupt(f"{what} {_clip(row[0])} holds what retap never writes "
                               f"({checked})")
        return checked

    def runs(self) -> list[RunInfo]:
        with self.errors():
            found = self.conn.execute(
                f"SELECT {', '.join('r.' + c for c in _RUN_COLUMNS)}, "
                "(SELECT count(*) FROM dispatches d WHERE d.run = r.run), "
                f"{rows.crc_ok(rows.RUN, 'r')} FROM runs r "
                "ORDER BY r.created DESC, r.rowid DESC").fetchall()
            for r in found:
                self.verify(r[-1], f"the record of run {_clip(r[0])}")
            return [self._run_row(r[:len(_RUN_COLUMNS)], r[-2]) for r in found]

    # -- reading a run ----------------------------------------------------------------------

    def audits(self, run: str) -> list[AuditRecord]:
        self.run_info(run)
        with self.errors():
            found = self.conn.execute(_AUDIT + "WHERE d.run=? ORDER BY d.seq", (run,)).fetchall()
            return [self._audit(None, r) for r in found]

    def dispatches(self, run: str, statuses: Iterable[str]) -> list[AuditRecord]:
        wanted = list(statuses)
        marks = ",".join("?" * len(wanted))
        with self.errors():
            found = self.conn.execute(_AUDIT + f"WHERE d.run=? AND d.status IN ({marks}) "
                                      "ORDER BY d.seq", (run, *wanted)).fetchall()
            checked = [self._dispatch_row(r) for r in found]
            values = self.values(ref for c in checked for ref in c.inputs or [])
            return [self._audit(c, r, tuple(values[ref] for ref in c.inputs or []))
                    for c, r in zip(checked, found, strict=True)]

    def _dispatch_row(self, r: Any) -> boundary.DispatchRow:
        self.verify(r[-1], f"dispatch {_clip(r[0])}")
        return self.row(boundary.DispatchRow, _AUDIT_COLUMNS, r[:len(_AUDIT_COLUMNS)],
                        "dispatch")

    def _audit(self, c: boundary.DispatchRow | None, r: Any, inputs: tuple[Any, ...] = ()
               ) -> AuditRecord:
        c = c or self._dispatch_row(r)
        n = len(_AUDIT_COLUMNS)
        return AuditRecord(c.id, c.node, c.task, c.sources, c.status,
                           self.value_of(c.result, r[n], r[n + 1]), c.attempts, c.seq,
                           c.error, c.code_version or "", c.started or 0.0, c.finished or 0.0,
                           inputs, c.reused, c.outputs)

    def versions(self, run: str) -> list[tuple[NodeId, str, str]]:
        # Advisory (it only words a warning), so rows are not checksummed here: that would
        # make every resume cost a checksum per dispatch ever done.
        with self.errors():
            found = self.conn.execute(
                "SELECT DISTINCT node, task, code_version FROM dispatches WHERE run=? AND "
                "status='done'", (run,)).fetchall()
            nodes = [json.loads(n) for n, _, _ in found]
            if not all(isinstance(n, int | str) and not isinstance(n, bool) for n in nodes) or \
                    not all(isinstance(t, str) and isinstance(v, str | None) for _, t, v in found):
                raise self.corrupt(f"a dispatch of run {run} holds what retap never writes "
                                   "(its node, task or code version)")
            return [(n, t, v or "") for n, (_, t, v) in zip(nodes, found, strict=True)]

    def counts(self, run: str) -> dict[str, int]:
        with self.errors():
            found = self.conn.execute(
                f"SELECT status, count(*), min({rows.crc_ok(rows.DISPATCH)}) FROM dispatches "
                "WHERE run=? GROUP BY status ORDER BY status", (run,)).fetchall()
            for r in found:
                self.verify(r[2], f"a dispatch of run {run}")
                if r[0] not in boundary.STATUSES:
                    raise self.corrupt(f"a dispatch of run {run} has the status {_clip(r[0])}")
        return {status: count for status, count, _ in found}

    def queue(self, run: str) -> list[Dispatch]:
        with self.errors():
            found = self.conn.execute(
                "SELECT q.id, q.node, q.sources, q.inputs, q.pos, "
                f"{rows.crc_ok(rows.QUEUE, 'q')}, "
                f"coalesce({rows.crc_ok(rows.DISPATCH, 'd')}, 1) FROM queue q "
                "LEFT JOIN dispatches d ON d.run = q.run AND d.id = q.id "
                f"WHERE q.run=? ORDER BY {_RETRY_FIRST}, q.pos", (run,)).fetchall()
            checked = []
            for r in found:
                self.verify(r[5] and r[6], f"queued dispatch {_clip(r[0])}")
                checked.append(self.row(boundary.QueueRow, _QUEUE_COLUMNS, r[:5],
                                        "queued dispatch"))
            values = self.values(ref for c in checked for ref in c.inputs)
            return [Dispatch(c.id, c.node, tuple(values[ref] for ref in c.inputs), c.sources,
                             (r[3], c.pos)) for c, r in zip(checked, found, strict=True)]

    def join_states(self, run: str, joins: Iterable[Join]) -> dict[NodeId, JoinState]:
        with self.errors():
            entries = self.conn.execute(
                f"SELECT e.join_id, e.slot, e.audit, {rows.crc_ok(rows.JOIN_ENTRY, 'e')}, "
                f"{', '.join('d.' + c for c in _AUDIT_COLUMNS)}, v.codec, v.data, "
                f"{rows.crc_ok(rows.DISPATCH, 'd')} FROM join_entries e JOIN dispatches d "
                'ON d.run = e.run AND d.id = e.audit LEFT JOIN "values" v ON v.digest = '
                "d.result WHERE e.run=? ORDER BY e.seq", (run,)).fetchall()
            counts = self.conn.execute(
                f"SELECT join_id, count, {rows.crc_ok(rows.JOIN_COUNT)} FROM join_counts "
                "WHERE run=?", (run,)).fetchall()
            held = [self._held(e) for e in entries]
            fired = {c.join_id: c.count for c in (self._counter(c) for c in counts)}
            states = {}
            for join in joins:
                state = join.new_state()
                if state is not None:
                    state.count = fired.get(join.id, 0)
                    self._fill(join, state, held)
                    states[join.id] = state
            return states

    def _held(self, e: Any) -> tuple[boundary.JoinEntryRow, Any]:
        """One result a join holds: its entry and the dispatch it refers to, both checked."""
        self.verify(e[3], f"the state of join {_clip(e[0])}")
        entry = self.row(boundary.JoinEntryRow, ("join_id", "slot", "audit"), e[:3],
                         "join entry")
        record = self._audit(None, e[4:])
        if record.status != "done":
            raise self.corrupt(f"join {entry.join_id} holds dispatch {entry.audit}, which "
                               "is not done")
        return entry, record.value

    def _counter(self, c: Any) -> boundary.JoinCountRow:
        self.verify(c[-1], f"the counter of join {_clip(c[0])}")
        return self.row(boundary.JoinCountRow, ("join_id", "count"), c[:2], "join counter")

    def _fill(self, join: Join, state: JoinState,
              held: list[tuple[boundary.JoinEntryRow, Any]]) -> None:
        for entry, value in held:
            if entry.join_id != join.id:
                continue
            if entry.slot >= len(state.slots):
                raise self.corrupt(f"join {join.id} holds a result in slot {entry.slot}, but "
                                   f"it has {len(state.slots)}")
            state.slots[entry.slot].append((entry.audit, value))

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
        self.verify(r[-1], f"the remembered result {_clip(r[1])} of {_clip(r[0])}")
        m = self.row(boundary.MemoRow, _MEMO_COLUMNS, r[:len(_MEMO_COLUMNS)],
                     "remembered result")
        n = len(_MEMO_COLUMNS)
        return MemoEntry(m.task, m.key, self.value_of(m.result, r[n], r[n + 1]), m.outputs,
                         m.facts, m.run, m.dispatch, m.created)

    def dispatch_status(self, run: str, dispatch: str) -> str | None:
        with self.errors():
            row = self.conn.execute(
                f"SELECT status, {rows.crc_ok(rows.DISPATCH)} FROM dispatches WHERE run=? "
                "AND id=?", (run, dispatch)).fetchone()
        if row is None:
            return None
        self.verify(row[1], f"dispatch {dispatch}")
        return str(row[0]) if row[0] in boundary.STATUSES else None

    def recorded_output(self, path: str, digest: str) -> bool:
        with self.errors():
            return self.conn.execute("SELECT 1 FROM outputs WHERE path=? AND digest=? LIMIT 1",
                                     (path, digest)).fetchone() is not None

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


_QUEUE_COLUMNS = ("id", "node", "sources", "inputs", "pos")
_UNREADABLE = (ValueError, KeyError, TypeError, IndexError, ArithmeticError, RecursionError,
               UnicodeError, AttributeError)


def _clip(value: Any, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) else value
    text = text.encode("unicode_escape", "replace").decode("ascii", "replace")
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
