"""The PostgreSQL store: runs of many coordinators, on many hosts, in one database.

``postgresql://user@host:port/db`` (add ``?schema=NAME`` to keep retap's tables in a
schema of their own, created when missing). Every query is the one SQLite stores run
(``retap.store.sql``); here are the connection, the dialect and the server's errors.

Durability keeps its meaning: ``normal`` commits each dispatch with
``synchronous_commit = off``: the commit is in the server's log when it returns, so a
coordinator that dies loses nothing (the promise of SQLite's WAL with
``synchronous=NORMAL``), while a server crash may lose the last fraction of a second;
``power`` waits for the server to flush each commit to disk; ``batch`` groups commits as
SQLite stores do. A lost connection stops the run with one line; what was committed is
kept, and ``retap resume`` continues once the server is back.

A commit is one round trip: its statements travel in one message, each a call of a
statement the server prepared once per connection. In ``batch`` durability a group travels
while the coordinator builds the next one; anything else the store does waits for it first,
so its error (a lost lease, a lost connection) stops the run at the next commit at the latest.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from retap.errors import (
    LeaseLost,
    LeasePausedOut,
    RetapError,
    StoreConnectionLost,
    StoreError,
    StoreVersionError,
    StoreWriteError,
    UsageError,
)
from retap.store import DURABILITY
from retap.store.base import RunLog, lease_seconds
from retap.store.codec import Codec
from retap.store.dialect import POSTGRES
from retap.store.schema import SCHEMA_VERSION
from retap.store.sql import SQLStore

__all__ = ["PostgresStore", "drop_schema", "is_postgres_url", "with_schema"]

_SCHEMA_LOCK = 0x72746170  # advisory lock key: one migration at a time per database
_FLOATS = {float("inf"): "Infinity", float("-inf"): "-Infinity"}
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# rows a streamed read fetches per round trip; the torture runner sets a few, so a replay
# of a small run also crosses fetches
STREAM_ROWS = int(os.environ.get("RETAP_STREAM_ROWS", "1000"))
_STREAMS = itertools.count()  # server-side cursors are named; each a name of its own


def is_postgres_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


class PostgresStore(SQLStore):
    """Runs recorded in a PostgreSQL database (psycopg 3)."""

    dialect = POSTGRES
    write_checks_lease = False  # a claim locks the run's row, not the database: see fence()

    def __init__(self, url: str, *, durability: str = "normal", codec: str = "json",
                 batch_size: int = 256, batch_ms: float = 50.0, timeout: float = 10.0,
                 readonly: bool = False) -> None:
        if durability not in DURABILITY:
            raise UsageError(f"unknown durability {durability!r} (known: {', '.join(DURABILITY)})")
        conninfo, self.schema = _split_schema(url)
        self.url = url
        self.location = _shown(url)
        self.durability = durability
        self.readonly = readonly
        self.batch_size = batch_size if durability == "batch" else 1
        self.batch_seconds = batch_ms / 1000.0
        self._set_codecs(codec)
        self._buffer: list[str] | None = None  # writes kept to send in one message
        self._open = False  # a transaction was begun (perhaps only in the buffer so far)
        self._sender: ThreadPoolExecutor | None = None  # sends group commits (batch)
        self._on_its_way: Future[Any] | None = None  # the group commit being sent
        self._fenced: str | None = None  # the run whose lease the last fence checked
        self._leased: str | None = None  # the run whose lease this coordinator took
        self._paused_out = False  # the server ended the session (see _log)
        self._prepared: dict[str, str] = {}  # a write's SQL -> how to execute it, prepared
        self._lock_wait = timeout  # seconds a statement waits for a lock
        self.conn = self._connect(conninfo, timeout)

    def _connect(self, conninfo: str, timeout: float) -> Any:
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError:
            raise StoreError(self.location, "PostgreSQL stores need psycopg: pip install "
                                            "'retap[postgres]'") from None
        self._psycopg = psycopg
        with self.errors():
            # the application name lets an operator tell the coordinators apart
            conn = psycopg.connect(conninfo, autocommit=True, row_factory=dict_row,
                                   connect_timeout=max(1, round(timeout)),
                                   application_name=f"retap {os.getpid()}")
            self.conn = conn
            conn.prepare_threshold = None  # writes are prepared by name (_prepare), once
            self._binder = psycopg.ClientCursor(conn)
            conn.execute(f"SET lock_timeout = '{int(timeout * 1000)}ms'")
            conn.execute("SET standard_conforming_strings = on")  # see _literal
            sync = "on" if self.durability == "power" else "off"
            conn.execute(f"SET synchronous_commit = {sync}")
            if self.schema is not None:
                if not self.readonly:
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                conn.execute(f"SET search_path TO {self.schema}")
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise StoreVersionError(self.location, version, SCHEMA_VERSION)
            if version < SCHEMA_VERSION:
                if self.readonly and version > 0:
                    raise StoreError(self.location, "written by an older retap; open it once "
                                                    "with write access to upgrade it")
                self.migrate()
            if self.readonly:
                conn.execute("SET default_transaction_read_only = on")
        return conn

    # -- what SQLStore asks of a backend ----------------------------------------------------

    def x(self, sql: str, args: Sequence[Any] = ()) -> Any:
        self._send()  # what was written before goes first
        if not args:
            return self.conn.execute(sql)
        return self.conn.execute(self.dialect.sql(sql), args)

    def xmany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        self._send()
        with self.conn.cursor() as cursor:
            cursor.executemany(self.dialect.sql(sql), list(args))

    def write(self, sql: str, args: Sequence[Any] = ()) -> None:
        if self._buffer is None:
            self.x(sql, args)
        else:
            self._buffer.append(self._bind(sql, args))

    def write_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        if self._buffer is None:
            self.xmany(sql, args)
        else:
            self._buffer.extend(self._bind(sql, row) for row in args)

    def _bind(self, sql: str, args: Sequence[Any]) -> str:
        """``sql`` run with its parameters, as literal SQL: the statement is prepared on the
        server once per connection (so it is not parsed and planned again for every commit)
        and called with its parameters quoted."""
        if not args:
            return sql
        call = self._prepared.get(sql)
        if call is None:
            call = self._prepare(sql, len(args))
        return f"{call}({', '.join([self._literal(v) for v in args])})"

    def _literal(self, value: Any) -> str:
        """``value`` as a SQL literal. The types every write uses are quoted here (the
        driver's adaptation costs more than the statement; with standard-conforming strings,
        set when connecting, doubling quotes is all a string literal needs); any other, and a
        string the server would refuse, goes through the driver."""
        kind = type(value)
        if kind is str and "\0" not in value:
            return "'" + value.replace("'", "''") + "'"
        if kind is int:
            return str(value)
        if value is None:
            return "NULL"
        if kind is float:
            return f"'{_FLOATS.get(value, value)!s}'" if value == value else "'NaN'"
        if kind is bytes:
            return f"'\\x{value.hex()}'::bytea"
        return str(self._binder.mogrify("%s", (value,)))

    def _prepare(self, sql: str, n: int) -> str:
        # a prepared statement belongs to the session, not to the transaction: a roll-back
        # keeps it. Sent on its own, so an error earlier in a kept message cannot skip it.
        name = f"retap_w{len(self._prepared)}"
        numbered = iter(range(1, n + 1))
        text = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)
        self.conn.execute(f"PREPARE {name} AS {text}")
        call = self._prepared[sql] = f"EXECUTE {name}"
        return call

    def _send(self, wait: bool = True) -> None:
        """Send what ``write`` kept, all of it in one message (one round trip), after the
        message still on its way; ``wait=False``: return while the server works on it."""
        self._arrived()
        if self._buffer:
            text, self._buffer[:] = ";\n".join(self._buffer), []
            if wait:
                self.conn.execute(text)
            else:
                if self._sender is None:
                    self._sender = ThreadPoolExecutor(1, thread_name_prefix="retap-pg")
                self._on_its_way = self._sender.submit(self.conn.execute, text)

    def _arrived(self) -> None:
        """Wait for the message on its way, if one is; its error is raised here."""
        sent, self._on_its_way = self._on_its_way, None
        if sent is not None:
            sent.result()

    @contextmanager
    def round_trip(self) -> Iterator[None]:
        """Writes are kept and sent in one message at the end; in ``batch`` durability they
        go on being kept until the group commits, and the group is sent while the next one
        is built (``commit(wait=False)``)."""
        if self._buffer is not None:
            yield
            return
        self._buffer = []
        try:
            yield
        except BaseException:
            self._buffer = None
            raise
        if not self._open:  # committed: all was sent (in batch, a group open keeps them)
            if self._buffer:
                self._send()
            self._buffer = None

    def begin(self, claim: bool = False) -> None:
        if self._buffer is not None:
            self._buffer.append(self.dialect.begin_claim if claim else "BEGIN")
        else:
            self.x(self.dialect.begin_claim if claim else "BEGIN")
        self._open = True
        if claim:
            # the run's row may be held by a coordinator paused inside a transaction: the
            # server ends that session after a lease (see _log), so a claim waits that long
            wait = max(self._lock_wait, lease_seconds() + 2.0)
            self.write(f"SET LOCAL lock_timeout = '{int(wait * 1000)}ms'")

    def commit(self, wait: bool = True) -> None:
        if self._buffer is not None:
            self._buffer.append("COMMIT")
            self._send(wait)
        else:
            self.x("COMMIT")
        self._open = False

    def committed(self) -> bool:
        self._arrived()
        return not self.in_transaction

    @property
    def in_transaction(self) -> bool:
        if self._open:
            return True
        if self._on_its_way is not None:
            return False  # a group commit on its way: it ends with its COMMIT
        return bool(self.conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE)

    def _has_table(self, name: str) -> bool:
        return self.x("SELECT 1 AS hit FROM information_schema.tables WHERE table_schema = "
                      "current_schema() AND table_name = ?", (name,)).fetchone() is not None

    def _lock_schema(self) -> None:
        self.x("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

    def fence(self, run: str, token: str) -> None:
        # One statement that locks the run's row (a claim waits for this commit, or this
        # waits for the claim and then finds the token changed) and fails the transaction
        # when the token no longer holds the lease. It comes first, so no write of a
        # coordinator that lost its run meets the new owner's rows (a duplicate key would
        # hide why), and travels in the message that carries the commit, so it costs no
        # round trip of its own; its error skips the rest and the COMMIT, and the
        # transaction is rolled back.
        self._fenced = run
        self.write("SELECT 1 / count(*) AS held FROM (SELECT 1 FROM runs WHERE run=? AND "
                   "lease_token=? FOR SHARE) AS held", (run, token))

    def _log(self, run: str, token: str, codec: Codec | None = None) -> RunLog:
        # A coordinator paused (a stopped VM) or cut off while a transaction of its own is
        # open would hold row locks that keep another host from taking the run over once
        # its lease runs out. The server ends a session that sits idle in a transaction as
        # long as a lease; by then the lease has expired anyway.
        timeout = int(lease_seconds() * 1000)
        self.x(f"SET idle_in_transaction_session_timeout = '{timeout}ms'")
        self._leased = run
        return super()._log(run, token, codec)

    def _abort(self) -> None:
        self._buffer, self._open = None, False  # what was kept is dropped with the rest
        with suppress(Exception):
            self._arrived()  # a group on its way failed, or is waited for before the rest
        conn = getattr(self, "conn", None)
        if conn is not None and not conn.closed and self.in_transaction:
            with suppress(Exception):
                conn.execute("ROLLBACK")

    def _translate(self, exc: BaseException) -> RetapError | None:
        psycopg = getattr(self, "_psycopg", None)
        if psycopg is None or not isinstance(exc, psycopg.Error):
            return None
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, psycopg.errors.DivisionByZero) and self._fenced is not None:
            return LeaseLost(self.location, self._fenced)  # see fence()
        if self._leased is not None and (self._paused_out or isinstance(
                exc, psycopg.errors.IdleInTransactionSessionTimeout)):
            self._paused_out = True  # what follows on the closed connection says the same
            return LeasePausedOut(self.location, self._leased)
        if isinstance(exc, psycopg.errors.DiskFull):
            return StoreWriteError(self.location, f"{text}: free some space on the server, "
                                                  "then `retap resume` the run")
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return StoreError(self.location, f"{text}: another coordinator holds it too long")
        if getattr(self, "conn", None) is None:
            return StoreError(self.location, f"cannot connect: {text}")
        if isinstance(exc, psycopg.OperationalError) or self.conn_lost():
            return StoreConnectionLost(self.location, f"lost the connection to the server "
                                                      f"({text}); what was committed is kept: "
                                                      "`retap resume` the run once the server "
                                                      "is back")
        return StoreError(self.location, text)

    def conn_lost(self) -> bool:
        conn = getattr(self, "conn", None)
        return conn is None or bool(conn.closed) or conn.broken

    def reader(self) -> PostgresStore:
        return PostgresStore(self.url, readonly=True)

    def begin_snapshot(self) -> None:
        self.x("BEGIN ISOLATION LEVEL REPEATABLE READ")

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[Any]:
        # a server-side cursor: the driver would otherwise receive the whole result before
        # the first row (a replay's history); this one fetches STREAM_ROWS at a time
        self._send()
        cursor = self.conn.cursor(name=f"retap_stream_{next(_STREAMS)}")
        cursor.itersize = STREAM_ROWS
        cursor.execute(self.dialect.sql(sql), args)
        return iter(cursor)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self.errors():
            self.begin_snapshot()
        try:
            yield
        finally:
            if self.in_transaction and not self.conn_lost():
                self.commit()

    def close(self) -> None:
        with suppress(Exception):
            self._arrived()
        if self._sender is not None:
            self._sender.shutdown()
        with suppress(Exception):
            self.conn.close()


def with_schema(url: str, schema: str) -> str:
    """``url`` with retap's tables in ``schema``."""
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def drop_schema(url: str) -> None:
    """Drop the schema a store URL names, with everything in it (tests, torture cases)."""
    import psycopg

    conninfo, schema = _split_schema(url)
    if schema is not None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _split_schema(url: str) -> tuple[str, str | None]:
    """The connection string without retap's own ``schema`` parameter, and that schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not _NAME.match(schema):
        raise UsageError(f"--store {_shown(url)}: schema {schema!r} is not a plain lower-case "
                         "name")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def _shown(url: str) -> str:
    """``url`` as messages show it: without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
