"""A store in a SQL database: every query retap makes of one, written once for all of them.

A backend (``SQLiteStore``, ``PostgresStore``) brings its connection, its dialect
(``retap.store.dialect``), the way it opens a transaction that will write, and the
translation of its driver's errors; the rest lives here. Rows are read by column name,
and every row read is checked against its checksum (``retap.store.rows``) and against
what retap writes (``retap.store.boundary``) before anything else sees it.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import TracebackType
from typing import TYPE_CHECKING, Any

from retap.dispatch import Dispatch, NodeId
from retap.errors import (
    CodecError,
    LeaseLost,
    RetapError,
    RunExists,
    SpecError,
    StoreCorrupt,
    UnknownRun,
)
from retap.runid import valid_run_id
from retap.spec import check_spec, spec_dict
from retap.store import boundary, rows
from retap.store.base import (
    Attempt,
    AuditRecord,
    Effects,
    LogRecord,
    MemoEntry,
    Owner,
    RunEvent,
    RunInfo,
    RunLog,
    Store,
    busy_owner,
    lease_seconds,
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
from retap.store.dialect import Dialect
from retap.store.schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    from retap.joins import Join, JoinState

__all__ = ["SQLStore", "clip"]

Row = Any  # a driver's row, read by column name
_RETRY_FIRST = "CASE WHEN d.status IN ('failed','interrupted','running') THEN 0 ELSE 1 END"
_AUDIT_COLUMNS = ("id", "node", "task", "sources", "status", "result", "attempts", "seq",
                  "error", "code_version", "started", "finished", "inputs", "reused", "outputs")
_D = ", ".join(f"d.{c}" for c in rows.DISPATCH)
_AUDIT_FROM = (f'SELECT {_D}, d.crc, v.codec AS vcodec, v.data AS vdata FROM dispatches d'
               '{hint} LEFT JOIN "values" v ON v.digest = d.result ')
_AUDIT = _AUDIT_FROM.format(hint="")
_MEMO_COLUMNS = ("task", "key", "result", "outputs", "facts", "run", "dispatch", "created")
_MEMO = (f"SELECT {', '.join('m.' + c for c in rows.MEMO)}, m.crc, v.codec AS vcodec, "
         'v.data AS vdata FROM memo m LEFT JOIN "values" v ON v.digest = m.result ')
_RUN_COLUMNS = ("run", "status", "created", "codec", "owner_host", "owner_pid", "owner_started")
_RUN = (f"SELECT {', '.join('r.' + c for c in rows.RUN)}, r.crc, r.lease_token, "
        "r.lease_expires FROM runs r ")
_QUEUE_COLUMNS = ("id", "node", "sources", "inputs", "pos")
_UNREADABLE = (ValueError, KeyError, TypeError, IndexError, ArithmeticError, RecursionError,
               UnicodeError, AttributeError)


class SQLStore(Store):
    """Runs recorded in a SQL database; a backend supplies the connection and its dialect."""

    dialect: Dialect
    location: str
    readonly: bool = False
    durability: str = "normal"
    batch_size: int = 1
    batch_seconds: float = 0.05
    codec: Codec

    def _set_codecs(self, codec: str) -> None:
        self.codec = codec_named(codec) if not self.readonly else JsonCodec()
        self._json = JsonCodec()
        self._readers: dict[str, Codec] = {"json": self._json, self.codec.name: self.codec}

    # -- what a backend brings ----------------------------------------------------------------

    @abstractmethod
    def x(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement (written with ``?`` marks); its cursor."""

    @abstractmethod
    def xmany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each row of ``args``."""

    @property
    @abstractmethod
    def in_transaction(self) -> bool:
        """A transaction is open on the connection."""

    @abstractmethod
    def _abort(self) -> None:
        """Roll back what is open, quietly (an error is on its way)."""

    @abstractmethod
    def _translate(self, exc: BaseException) -> RetapError | None:
        """The driver's error ``exc`` as retap's, one line; None for any other error."""

    def errors(self) -> _Errors:
        """Roll back what was open on any error; turn driver errors into ``StoreError``s and
        undecodable rows (a value no row retap writes can hold means a damaged or crafted
        store) into ``StoreCorrupt``."""
        return _Errors(self)

    def begin(self, claim: bool = False) -> None:
        """Open a transaction; ``claim``: one that will write a run's row, so writers wait
        for each other here, not at their first write."""
        self.x(self.dialect.begin_claim if claim else "BEGIN")

    def commit(self, wait: bool = True) -> None:
        """Commit what is open; ``wait=False``: a server backend may return before the
        server has answered (a group commit: the next use of the store waits for it and
        raises what it met)."""
        self.x("COMMIT")

    def committed(self) -> bool:
        """Nothing written is still open or on its way: every commit so far is done."""
        return not self.in_transaction

    def rollback(self) -> None:
        if self.in_transaction:
            self.x("ROLLBACK")

    def write(self, sql: str, args: Sequence[Any] = ()) -> None:
        """Run a statement whose result is not needed (inside ``round_trip`` a server
        backend may send it later, with the others)."""
        self.x(sql, args)

    def write_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """``write`` for each row of ``args``."""
        self.xmany(sql, args)

    def insert_new(self, sql: str, args: Sequence[Any]) -> bool:
        """Run an INSERT that may write nothing (``ON CONFLICT DO NOTHING``, or a condition
        it was given); True when it wrote its row."""
        return bool(self.x(sql, args).rowcount == 1)

    def round_trip(self) -> AbstractContextManager[None]:
        """Statements inside may travel to the database together (a server backend sends
        them in one go); a result asked for inside waits for those before it."""
        return _AS_THEY_COME

    @contextmanager
    def transaction(self, claim: bool = False) -> Iterator[None]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self.errors():
            self.begin(claim)
            yield
            self.commit()

    # -- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The version of the schema in the database: 0 for an empty one."""
        if not self._has_table("retap_schema"):
            return self._legacy_version()
        row = self.x("SELECT max(version) AS version FROM retap_schema").fetchone()
        version = row["version"] if row is not None else None
        if type(version) is not int:
            raise self.corrupt("its schema version is unreadable")
        return version

    def _legacy_version(self) -> int:
        """Where a database without the version table keeps its version (0: nowhere)."""
        return 0

    @abstractmethod
    def _has_table(self, name: str) -> bool:
        """The database has a table ``name`` (in the store's schema)."""

    def migrate(self) -> None:
        """Bring the schema to ``SCHEMA_VERSION``, in one transaction (a newer store is
        refused by the caller before this)."""
        with self.errors():
            self.begin(claim=True)
            self._lock_schema()
            version = self.schema_version()
            for script in MIGRATIONS[version:]:
                for statement in script.split(";"):
                    if statement.strip():
                        self.x(self.dialect.ddl(statement))
            if version < SCHEMA_VERSION:
                self.x("DELETE FROM retap_schema")
                self.x("INSERT INTO retap_schema (version) VALUES (?)", (SCHEMA_VERSION,))
                self._versioned(SCHEMA_VERSION)
            self.commit()

    def _lock_schema(self) -> None:
        """Keep a second process from migrating at the same time (SQLite: the file lock
        ``begin(claim=True)`` took is enough)."""

    def _versioned(self, version: int) -> None:
        """Note the new version where the backend also keeps it (SQLite: the file header)."""

    # -- checks -------------------------------------------------------------------------------

    def corrupt(self, what: str) -> StoreCorrupt:
        return StoreCorrupt(self.location, f"{what}: the store was damaged or changed outside "
                                           "retap; move it aside (`retap check` lists problems)")

    def leading(self, row: Row, n: int) -> tuple[Any, ...]:
        """The first ``n`` columns of ``row``, in the order the query selected them (a row
        read by name here: a mapping)."""
        return tuple(itertools.islice(row.values(), n))

    def verify(self, row: Row, columns: tuple[str, ...], what: str) -> None:
        """Refuse a row whose checksum does not match its columns. ``what`` names the row:
        a template of its columns (``"dispatch {id}"``), filled in only for the message,
        since read commands check every row they show."""
        if not rows.matches(row, columns):
            named = what.format_map({c: clip(row[c]) for c in columns})
            raise self.corrupt(f"{named} fails its checksum")

    def row(self, model: type[boundary.M], columns: tuple[str, ...], row: Row,
            what: str) -> boundary.M:
        """A row as ``model``, or StoreCorrupt naming the row and what is wrong with it."""
        checked = boundary.valid(model, {c: row[c] for c in columns})
        if isinstance(checked, str):
            raise self.corrupt(f"{what} {clip(row[columns[0]])} holds what retap never writes "
                               f"({checked})")
        return checked

    # -- values -------------------------------------------------------------------------------

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
            data = rows.as_bytes(data)
            if not isinstance(codec, str) or not isinstance(data, bytes):
                raise self.corrupt(f"value {clip(ref)} is not stored as retap stores values")
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
        for chunk, marks in _in_chunks(wanted):
            for r in self.x(f'SELECT digest, codec, data FROM "values" WHERE digest IN ({marks})',
                            chunk).fetchall():
                found[r["digest"]] = self.value_of(r["digest"], r["codec"], r["data"])
        missing = [r for r in wanted if r not in found]
        if missing:
            raise self.corrupt(f"values {', '.join(missing[:3])} are missing")
        return found

    # -- runs ---------------------------------------------------------------------------------

    def _log(self, run: str, token: str, codec: Codec | None = None) -> RunLog:
        from retap.store.sqllog import SQLRunLog

        return SQLRunLog(self, run, token, codec)

    # A write transaction holds the whole file (SQLite), so the lease can be checked by any
    # statement in it: the one that writes a dispatch's row checks it (see SQLRunLog).
    write_checks_lease = True

    def fence(self, run: str, token: str) -> None:
        """In a write transaction, before its writes: raise ``LeaseLost`` unless ``token``
        still holds the run's lease (the transaction is then rolled back). BEGIN IMMEDIATE
        holds SQLite's write lock, so no claim can come between this check and the
        commit."""
        row = self.x("SELECT lease_token FROM runs WHERE run=?", (run,)).fetchone()
        if row is None or row["lease_token"] != token:
            raise LeaseLost(self.location, run)

    def renew(self, run: str, token: str) -> bool:
        """Extend the lease ``token`` holds on ``run``; False when it no longer holds it.
        One statement, committed on its own: no lock on the run's row is held between
        round trips, where a paused process would keep it from another host."""
        with self.errors():
            renewed = self.x("UPDATE runs SET lease_expires=? WHERE run=? AND lease_token=?",
                             (now() + lease_seconds(), run, token)).rowcount
        return bool(renewed == 1)

    def create_run(self, run: str, spec: dict[str, Any], owner: Owner,
                   workflow: Any = None, leads: list[Dispatch] | None = None) -> RunLog:
        data = JsonCodec().encode(spec)
        created = now()
        fields = (run, "running", created, self.codec.name, data, owner.host, owner.pid,
                  owner.started)
        token = uuid.uuid4().hex
        columns = (*rows.RUN, "updated", "crc", "lease_token", "lease_expires")
        with self.transaction():
            if not self.insert_new(self.dialect.insert("runs", columns, ignore=True),
                                   (*fields, created, rows.crc(*fields), token,
                                    created + lease_seconds())):
                raise RunExists(run, self.location)
            log = self._log(run, token)
            log.effects_txn(Effects(back=leads or []))  # type: ignore[attr-defined]
        return log

    def claim_run(self, run: str, owner: Owner, take_over: bool = False) -> RunLog:
        with self.transaction(claim=True):
            info = self._info(run, lock=True)
            busy = busy_owner(info, owner, take_over)
            if busy is not None:
                raise busy
            token = uuid.uuid4().hex
            self.update_run_txn(run, status="running", owner_host=owner.host,
                                owner_pid=owner.pid, owner_started=owner.started,
                                lease_token=token, lease_expires=now() + lease_seconds())
        log = self._log(run, token, codec_named(info.codec))
        log.previous = "interrupted" if busy_owner(info, owner, False) else info.effective_status
        return log

    def update_run_txn(self, run: str, **changes: Any) -> None:
        """Change columns of a run's row, and its checksum, in the caller's transaction."""
        row = self.x(_RUN + "WHERE r.run=?", (run,)).fetchone()
        if row is None:
            raise UnknownRun(run, self.location)
        self.verify(row, rows.RUN, "the record of run {run}")
        final = {c: changes.get(c, row[c]) for c in rows.RUN}
        fields = tuple(final[c] for c in rows.RUN)
        sets = ", ".join(f"{c}=?" for c in changes)
        self.x(f"UPDATE runs SET {sets}, updated=?, crc=? WHERE run=?",
               (*changes.values(), now(), rows.crc(*fields), run))

    def run_info(self, run: str, count: bool = True) -> RunInfo:
        with self.errors():
            info = self._info(run)
            if count:
                info.dispatches = self.x("SELECT count(*) AS n FROM dispatches WHERE run=?",
                                         (run,)).fetchone()["n"]
        return info

    def _info(self, run: str, lock: bool = False) -> RunInfo:
        # an id no run can have (a lone surrogate from a command line, say) is not looked up
        row = self.x(_RUN + "WHERE r.run=?" + (self.dialect.for_update if lock else ""),
                     (run,)).fetchone() if valid_run_id(run) else None
        if row is None:
            raise UnknownRun(run, self.location)
        self.verify(row, rows.RUN, "the record of run {run}")
        info = self._run_row(row)
        spec = row["spec"]
        spec = self.decode("json", rows.as_bytes(spec)) if isinstance(
            spec, bytes | memoryview) else None
        info.spec = spec_dict(check_spec(spec))
        return info

    def _run_row(self, row: Row, dispatches: int = 0) -> RunInfo:
        r = self.row(boundary.RunRow, _RUN_COLUMNS, row, "run")
        owner = Owner(r.owner_host, r.owner_pid or 0, r.owner_started or 0.0) \
            if r.owner_host else None
        expires = row["lease_expires"]
        if expires is not None and not isinstance(expires, float):
            raise self.corrupt(f"run {r.run} has a lease that is not a time")
        return RunInfo(r.run, r.status, r.created, {}, owner, dispatches, codec=r.codec,
                       lease_expires=expires)

    def runs(self) -> list[RunInfo]:
        with self.errors():
            found = self.x(
                f"SELECT {', '.join('r.' + c for c in rows.RUN)}, r.crc, r.lease_expires, "
                "(SELECT count(*) FROM dispatches d WHERE d.run = r.run) AS n FROM runs r "
                "ORDER BY r.created DESC, r.run DESC").fetchall()
            for r in found:
                self.verify(r, rows.RUN, "the record of run {run}")
            return [self._run_row(r, r["n"]) for r in found]

    # -- reading a run ------------------------------------------------------------------------

    def _known(self, run: str) -> None:
        """Raise ``UnknownRun`` unless ``run`` is recorded (reads of a run refuse a typo
        rather than answer it with nothing)."""
        if not valid_run_id(run) or \
                self.x("SELECT 1 AS hit FROM runs WHERE run=?", (run,)).fetchone() is None:
            raise UnknownRun(run, self.location)

    def audits(self, run: str, limit: int | None = None) -> list[AuditRecord]:
        with self.errors():
            self._known(run)
            if limit is None:
                found = self.x(_AUDIT + "WHERE d.run=? ORDER BY d.seq", (run,)).fetchall()
            else:
                found = self.x(_AUDIT + "WHERE d.run=? ORDER BY d.seq LIMIT ?",
                               (run, max(limit, 0))).fetchall()
            return [self._audit(None, r) for r in found]

    def dispatch_ids(self, run: str, prefix: str) -> list[str]:
        with self.errors():
            self._known(run)
            prefix = prefix.lower()
            if not prefix.isascii():  # no id is (and a lone surrogate cannot be sent)
                return []
            return [str(r["id"]) for r in self.x(
                "SELECT id FROM dispatches WHERE run=? AND substr(id, 1, ?) = ?",
                (run, len(prefix), prefix)).fetchall()]

    def earlier_attempts(self, run: str) -> dict[str, list[Attempt]]:
        found: dict[str, list[Attempt]] = {}
        with self.errors():
            self._known(run)
            for r in self.x(f"SELECT {', '.join(rows.ATTEMPT)}, crc FROM attempts WHERE run=? "
                            "ORDER BY dispatch, n", (run,)).fetchall():
                self.verify(r, rows.ATTEMPT, "attempt {n} of dispatch {dispatch}")
                a = self.row(boundary.AttemptRow, rows.ATTEMPT[1:], r, "attempt of dispatch")
                found.setdefault(a.dispatch, []).append(
                    Attempt(a.n, a.session, a.status, a.started, a.finished, a.error))
        return found

    def delete_runs(self, runs: Iterable[str]) -> list[str]:
        from retap.store.prune import delete_runs

        return delete_runs(self, runs)

    def events(self, run: str) -> list[RunEvent]:
        with self.errors():
            self._known(run)
            found = []
            for r in self.x(f"SELECT {', '.join(rows.EVENT)}, crc FROM events WHERE run=? "
                            "ORDER BY seq", (run,)).fetchall():
                self.verify(r, rows.EVENT, "event {seq} of run {run}")
                e = self.row(boundary.EventRow, rows.EVENT[1:], r, "event")
                found.append(RunEvent(e.seq, e.at, e.kind, e.data))
        return found

    def logs(self, run: str, after: int = 0) -> list[LogRecord]:
        with self.errors():
            self._known(run)
            found = []
            for r in self.x(f"SELECT {', '.join(rows.LOG)}, crc FROM logs WHERE run=? AND "
                            "seq>? ORDER BY seq, dispatch, attempt", (run, after)).fetchall():
                self.verify(r, rows.LOG, "the log of attempt {attempt} of dispatch "
                                         "{dispatch}")
                e = self.row(boundary.LogRow, rows.LOG[1:], r, "log")
                found.append(LogRecord(e.dispatch, e.attempt, e.seq, e.text, e.dropped))
        return found

    def workers(self, run: str) -> dict[tuple[str, int], tuple[str, int]]:
        found = {}
        with self.errors():
            self._known(run)
            for r in self.x(f"SELECT {', '.join(rows.WORKER)}, crc FROM workers WHERE run=?",
                            (run,)).fetchall():
                self.verify(r, rows.WORKER, "the worker of attempt {attempt} of "
                                            "dispatch {dispatch}")
                w = self.row(boundary.WorkerRow, rows.WORKER[1:], r, "worker")
                found[(w.dispatch, w.attempt)] = (w.host, w.pid)
        return found

    def dispatches(self, run: str, statuses: Iterable[str], ids: Iterable[str] | None = None
                   ) -> list[AuditRecord]:
        wanted = list(statuses) or [""]
        marks = ",".join("?" * len(wanted))
        # without done ones, the index of what is not done serves: a resume asks for those,
        # and reads its pending dispatches, not its history
        if "done" in wanted or ids is not None:
            query = _AUDIT + f"WHERE d.run=? AND d.status IN ({marks}) "
        else:
            query = _AUDIT_FROM.format(hint=self.dialect.not_done) + \
                f"WHERE d.run=? AND d.status IN ({marks}) AND d.status != 'done' "
        with self.errors():
            self._known(run)
            if ids is None:
                found = self.x(query + "ORDER BY d.seq", (run, *wanted)).fetchall()
            else:
                found = [r for chunk, chosen in _in_chunks(list(dict.fromkeys(ids)))
                         for r in self.x(query + f"AND d.id IN ({chosen})",
                                         (run, *wanted, *chunk)).fetchall()]
            checked = [self._dispatch_row(r) for r in found]
            values = self.values(ref for c in checked for ref in c.inputs or [])
            audits = [self._audit(c, r, tuple(values[ref] for ref in c.inputs or []))
                      for c, r in zip(checked, found, strict=True)]
        # rows read in slices by id come in no order; each seq is checked as an int by now
        return audits if ids is None else sorted(audits, key=lambda a: a.seq)

    def _dispatch_row(self, r: Row) -> boundary.DispatchRow:
        self.verify(r, rows.DISPATCH, "dispatch {id}")
        return self.row(boundary.DispatchRow, _AUDIT_COLUMNS, r, "dispatch")

    def _audit(self, c: boundary.DispatchRow | None, r: Row, inputs: tuple[Any, ...] = ()
               ) -> AuditRecord:
        c = c or self._dispatch_row(r)
        return AuditRecord(c.id, c.node, c.task, c.sources, c.status,
                           self.value_of(c.result, r["vcodec"], r["vdata"]), c.attempts, c.seq,
                           c.error, c.code_version or "", c.started or 0.0, c.finished or 0.0,
                           inputs, c.reused, c.outputs)

    def versions(self, run: str) -> list[tuple[NodeId, str, str]]:
        # Read from the run's "versions" (O(nodes), not O(history)); advisory, and a caller
        # asks ``holds_version`` before it reports one as changed.
        with self.errors():
            self._known(run)
            found = self.x("SELECT node, task, code_version FROM versions WHERE run=?",
                           (run,)).fetchall()
            nodes = [json.loads(r["node"]) for r in found]
            if not all(isinstance(n, int | str) and not isinstance(n, bool) for n in nodes) or \
                    not all(isinstance(r["task"], str) and isinstance(r["code_version"],
                                                                      str | None)
                            for r in found):
                raise self.corrupt(f"a dispatch of run {run} holds what retap never writes "
                                   "(its node, task or code version)")
            return sorted(((n, r["task"], r["code_version"] or "")
                           for n, r in zip(nodes, found, strict=True)), key=repr)

    def record_versions_txn(self, run: str) -> None:
        """Fill the run's "versions" from its done dispatches (a run copied or imported
        whole), in the caller's transaction."""
        self.x("INSERT INTO versions (run, node, task, code_version) SELECT DISTINCT run, "
               "node, task, coalesce(code_version, '') FROM dispatches WHERE run=? AND "
               "status='done'", (run,))

    def holds_version(self, run: str, node: NodeId, task: str, version: str) -> bool:
        with self.errors():
            return self.x("SELECT 1 AS hit FROM dispatches WHERE run=? AND node=? AND task=? "
                          "AND coalesce(code_version, '')=? AND status='done' LIMIT 1",
                          (run, json.dumps(node), task, version)).fetchone() is not None

    def counts(self, run: str) -> dict[str, int]:
        # counted by the database, as ``runs`` counts dispatches: checking every row's
        # checksum here made ``show`` of a long run take seconds; the rows it shows are
        # checked, and so is every row a resume, replay, audit or check reads
        counts: dict[str, int] = {}
        with self.errors():
            self._known(run)
            for r in self.x("SELECT status, count(*) AS n FROM dispatches WHERE run=? "
                            "GROUP BY status", (run,)).fetchall():
                if r["status"] not in boundary.STATUSES:
                    raise self.corrupt(f"a dispatch of run {run} has the status "
                                       f"{clip(r['status'])}")
                counts[r["status"]] = int(r["n"])
        return dict(sorted(counts.items()))

    def queue(self, run: str) -> list[Dispatch]:
        with self.errors():
            self._known(run)
            found = self.x(
                f"SELECT {', '.join('q.' + c for c in rows.QUEUE)}, q.crc, "
                f"{', '.join(f'd.{c} AS d_{c}' for c in rows.DISPATCH)}, d.crc AS d_crc "
                "FROM queue q LEFT JOIN dispatches d ON d.run = q.run AND d.id = q.id "
                f"WHERE q.run=? ORDER BY {_RETRY_FIRST}, q.pos", (run,)).fetchall()
            checked = []
            for r in found:
                ok = rows.matches(r, rows.QUEUE) and (
                    r["d_crc"] is None or rows.matches(r, rows.DISPATCH, prefix="d_"))
                if not ok:
                    raise self.corrupt(f"queued dispatch {clip(r['id'])} fails its checksum")
                checked.append(self.row(boundary.QueueRow, _QUEUE_COLUMNS, r,
                                        "queued dispatch"))
            values = self.values(ref for c in checked for ref in c.inputs)
            return [Dispatch(c.id, c.node, tuple(values[ref] for ref in c.inputs), c.sources,
                             (r["inputs"], c.pos)) for c, r in zip(checked, found, strict=True)]

    def join_states(self, run: str, joins: Iterable[Join]) -> dict[NodeId, JoinState]:
        with self.errors():
            self._known(run)
            entries = self.x(
                f"SELECT {', '.join(f'e.{c} AS e_{c}' for c in rows.JOIN_ENTRY)}, e.crc AS e_crc, "
                f"{_D}, d.crc, v.codec AS vcodec, v.data AS vdata FROM join_entries e "
                "JOIN dispatches d ON d.run = e.run AND d.id = e.audit "
                'LEFT JOIN "values" v ON v.digest = d.result WHERE e.run=? ORDER BY e.seq',
                (run,)).fetchall()
            counts = self.x(f"SELECT {', '.join(rows.JOIN_COUNT)}, crc FROM join_counts "
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

    def _held(self, e: Row) -> tuple[boundary.JoinEntryRow, Any]:
        """One result a join holds: its entry and the dispatch it refers to, both checked."""
        if not rows.matches(e, rows.JOIN_ENTRY, prefix="e_"):
            raise self.corrupt(f"the state of join {clip(e['e_join_id'])} fails its checksum")
        entry = self.row(boundary.JoinEntryRow, ("join_id", "slot", "audit"),
                         {c: e["e_" + c] for c in ("join_id", "slot", "audit")}, "join entry")
        record = self._audit(None, e)
        if record.status != "done":
            raise self.corrupt(f"join {entry.join_id} holds dispatch {entry.audit}, which "
                               "is not done")
        return entry, record.value

    def _counter(self, c: Row) -> boundary.JoinCountRow:
        self.verify(c, rows.JOIN_COUNT, "the counter of join {join_id}")
        return self.row(boundary.JoinCountRow, ("join_id", "count"), c, "join counter")

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
        """Nothing to check beyond the rows themselves (SQLite checks its pages)."""

    def structure_problems(self) -> list[str]:
        """What the database's own full check finds wrong, one line each."""
        return []

    # -- memo and file digests ----------------------------------------------------------------

    def memo_get(self, task: str, key: str) -> MemoEntry | None:
        with self.errors():
            row = self.x(_MEMO + "WHERE m.task=? AND m.key=?", (task, key)).fetchone()
            return self._memo(row) if row else None

    def memo_latest(self, task: str, dispatch: str) -> MemoEntry | None:
        with self.errors():
            row = self.x(_MEMO + "WHERE m.task=? ORDER BY CASE WHEN m.dispatch = ? THEN 0 "
                         "ELSE 1 END, m.created DESC LIMIT 1", (task, dispatch)).fetchone()
            return self._memo(row) if row else None

    def _memo(self, r: Row) -> MemoEntry:
        self.verify(r, rows.MEMO, "the remembered result {key} of {task}")
        m = self.row(boundary.MemoRow, _MEMO_COLUMNS, r, "remembered result")
        return MemoEntry(m.task, m.key, self.value_of(m.result, r["vcodec"], r["vdata"]),
                         m.outputs, m.facts, m.run, m.dispatch, m.created)

    def dispatch_status(self, run: str, dispatch: str) -> str | None:
        with self.errors():
            row = self.x(f"SELECT {_D}, d.crc FROM dispatches d WHERE d.run=? AND d.id=?",
                         (run, dispatch)).fetchone()
        if row is None:
            return None
        self.verify(row, rows.DISPATCH, "dispatch {id}")
        return str(row["status"]) if row["status"] in boundary.STATUSES else None

    def recorded_output(self, path: str, digest: str) -> bool:
        with self.errors():
            return self.x("SELECT 1 AS hit FROM outputs WHERE path=? AND digest=? LIMIT 1",
                          (path, digest)).fetchone() is not None

    def forget(self, task: str, run: str | None = None) -> int:
        where, args = ("task=?", (task,)) if run is None else ("task=? AND run=?", (task, run))
        with self.errors():
            return int(self.x(f"DELETE FROM memo WHERE {where}", args).rowcount)

    def file_digest(self, path: str, stat: tuple[int, int, int]) -> str | None:
        with self.errors():
            row = self.x(f"SELECT {', '.join(rows.FILE)}, crc FROM file_digests WHERE path=?",
                         (path,)).fetchone()
        if row is None or (row["size"], row["mtime_ns"], row["inode"]) != stat:
            return None
        self.verify(row, rows.FILE, "the remembered digest of {path}")
        return str(row["digest"])

    def remember_file(self, path: str, stat: tuple[int, int, int], digest: str) -> None:
        fields = (path, *stat, digest)
        with self.errors():
            self.x(self.dialect.insert("file_digests", (*rows.FILE, "crc"),
                                       replace_on=("path",)), (*fields, rows.crc(*fields)))

    @abstractmethod
    def reader(self) -> SQLStore:
        """The same store opened again, read-only, on a connection of its own (a long read
        that must not hold up the writes on this one)."""

    def begin_snapshot(self) -> None:
        """Open a read transaction: one snapshot for all reads until it ends."""
        self.begin()

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[Any]:
        """The rows of a long query, fetched as they are iterated, not all at once (inside
        ``begin_snapshot``): SQLite's cursor steps through them as it is."""
        return iter(self.x(sql, args))

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self.errors():
            self.begin_snapshot()
        try:
            yield
        finally:
            if self.in_transaction:
                self.commit()


def clip(value: Any, limit: int = 40) -> str:
    """A value as one short, printable line, for a message."""
    text = repr(value) if not isinstance(value, str) else value
    text = text.encode("unicode_escape", "replace").decode("ascii", "replace")
    return text if len(text) <= limit else text[:limit - 3] + "..."


_AS_THEY_COME = nullcontext()  # each statement goes when it is run


class _Errors:
    """What ``SQLStore.errors()`` returns: a class, not a generator, since every commit
    enters one (a generator costs a microsecond more each time)."""

    __slots__ = ("store",)

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            return
        store = self.store
        store._abort()
        translated = store._translate(exc)
        if translated is not None:
            raise translated from None
        if isinstance(exc, SpecError):
            raise store.corrupt(f"a stored spec cannot be used ({exc.message})") from None
        if isinstance(exc, _UNREADABLE):
            raise store.corrupt(f"a stored record cannot be read ({type(exc).__name__}: "
                                f"{clip(exc)})") from None


def _in_chunks(items: list[str]) -> Iterator[tuple[list[str], str]]:
    """``items`` in slices a statement can take as parameters, each with its ``?`` marks."""
    for i in range(0, len(items), 500):
        chunk = items[i:i + 500]
        yield chunk, ",".join("?" * len(chunk))
