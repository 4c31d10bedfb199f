"""The SQLite store: one file, no server, WAL mode, owner-only permissions. What it shares
with other SQL stores lives in ``retap.store.sql``; here are the file, the connection and
SQLite's own errors and checks.

Durability: ``normal`` (default) commits each dispatch in WAL mode with
``synchronous=NORMAL``, which survives ``kill -9`` of the process with nothing lost;
``power`` also syncs each commit to disk (survives power loss); ``batch`` groups
commits every ``batch_size`` dispatches or ``batch_ms`` milliseconds, so a crash
re-runs at most the last uncommitted batch. Driver errors are translated here, and
every row read is checked against its checksum (``retap.store.rows``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from retap import faults
from retap.errors import (
    RetapError,
    StoreCorrupt,
    StoreError,
    StoreVersionError,
    StoreWriteError,
    UsageError,
)
from retap.store import DURABILITY
from retap.store.dialect import SQLITE
from retap.store.schema import APPLICATION_ID, SCHEMA_VERSION
from retap.store.sql import SQLStore

__all__ = ["DURABILITY", "SQLiteStore"]

_HEADER = b"SQLite format 3\x00"

# SQLite keeps POSIX locks on a store file while a connection has it open, and POSIX drops
# every lock a process holds on a file when the process closes any descriptor of it. Had
# retap read the header with its own open() and close() beside a connection of the same
# process (a replay's reader, a second store object), another process closing the store
# would find no lock, take itself for the last user, checkpoint and delete the WAL this
# process goes on writing to: its later commits would be lost. So the header is read only
# while no connection of this process has the file open ((device, inode) -> connections).
_open_here: Counter[tuple[int, int]] = Counter()
_open_lock = threading.Lock()


class SQLiteStore(SQLStore):
    """Runs recorded in a SQLite file."""

    dialect = SQLITE

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
        self._set_codecs(codec)
        self.conn = self._connect_readonly(timeout) if readonly else self._connect(timeout)
        self._key: tuple[int, int] | None = self._file_key()
        if self._key is not None:
            with _open_lock:
                _open_here[self._key] += 1

    # -- opening ----------------------------------------------------------------------------

    def _connect(self, timeout: float) -> sqlite3.Connection:
        self._prepare_file()
        with self.errors():
            conn = sqlite3.connect(self.location, isolation_level=None, timeout=timeout,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            self.conn = conn
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            sync = "FULL" if self.durability == "power" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}")
            if self._version(conn) < SCHEMA_VERSION:
                self.migrate()
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
                conn.row_factory = sqlite3.Row
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
        """The schema version in the file's header (0 for an empty file); the current one
        when a connection of this process has the file open (it upgraded it)."""
        header = self._header(100)
        if header is None:
            return SCHEMA_VERSION
        return int.from_bytes(header[60:64], "big") if len(header) == 100 else 0

    def _file_key(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _header(self, size: int) -> bytes | None:
        """The file's first ``size`` bytes; None while a connection of this process has it
        open (see ``_open_here``: it was checked when that connection was made)."""
        key = self._file_key()
        with _open_lock:
            if key is not None and _open_here[key]:
                return None
        with open(self.path, "rb") as fh:
            return fh.read(size)

    def _check_file(self) -> None:
        if self.path.is_dir():
            raise StoreError(self.location, "is a directory, not a store file")
        try:
            size = self.path.stat().st_size
            header = self._header(16)
        except FileNotFoundError:
            raise StoreError(self.location, "no such store") from None
        except OSError as exc:
            raise StoreError(self.location, f"cannot read it: {exc.strerror}") from None
        if header is not None and size and (size < 100 or header != _HEADER):
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

    def _version(self, conn: sqlite3.Connection) -> int:
        """The schema version, after checking the file is a retap store at all."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = self.schema_version()
        if app_id not in (0, APPLICATION_ID) or (version == 0 and conn.execute(
                "SELECT count(*) FROM sqlite_master").fetchone()[0]):
            raise StoreCorrupt(self.location, "a SQLite database, but not a retap store")
        if version > SCHEMA_VERSION:
            raise StoreVersionError(self.location, version, SCHEMA_VERSION)
        return version

    def _has_table(self, name: str) -> bool:
        return self.x("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                      (name,)).fetchone() is not None

    def _legacy_version(self) -> int:
        """Stores before the version table kept their version in the file header."""
        return int(self.x("PRAGMA user_version").fetchone()[0])

    def _versioned(self, version: int) -> None:
        # the header keeps it too: a reader can tell an old store without opening it
        self.x(f"PRAGMA user_version={version}")
        self.x(f"PRAGMA application_id={APPLICATION_ID}")

    def leading(self, row: sqlite3.Row, n: int) -> tuple[Any, ...]:
        return row[:n]  # type: ignore[no-any-return]  # (a slice of a Row is a tuple)

    def x(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def xmany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, args)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def _abort(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None and conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _translate(self, exc: BaseException) -> RetapError | None:
        return _translate(self.location, exc) if isinstance(exc, sqlite3.Error) else None

    def check_structure(self) -> None:
        """SQLite's quick check: a damaged page can hide rows from a query without an error,
        so a store is checked before a run is continued or shown from it (O(file size))."""
        with self.errors():
            problems = [r[0] for r in self.conn.execute("PRAGMA quick_check")]
        self._refuse_damage(problems)

    def _refuse_damage(self, problems: list[str]) -> None:
        if problems != ["ok"]:
            raise self.corrupt(f"its structure is damaged ({problems[0].splitlines()[-1]})")

    def reader(self) -> SQLiteStore:
        return SQLiteStore(self.path, readonly=True)

    def start_structure_check(self) -> Callable[[], None]:
        """The quick check on a connection of its own, in a thread (SQLite leaves Python's
        lock while it reads pages): a resume's reads and first dispatch go on beside it."""
        found: list[list[str] | BaseException] = []
        with self.errors():  # opened here: the thread makes one call, without the GIL
            conn = sqlite3.connect(f"file:{quote(str(self.path.absolute()))}?mode=ro",
                                   uri=True, isolation_level=None, check_same_thread=False)

        def check() -> None:
            try:
                found.append([r[0] for r in conn.execute("PRAGMA quick_check").fetchall()])
            except BaseException as exc:  # handed to the waiter, raised in the run's thread
                found.append(exc)
            finally:
                conn.close()

        thread = threading.Thread(target=check, name="retap-quick-check", daemon=True)
        thread.start()

        def wait() -> None:
            thread.join()
            problems = found[0]
            if isinstance(problems, BaseException):  # a driver error, told as any other
                raise self._translate(problems) or problems
            self._refuse_damage(problems)

        return wait

    def structure_problems(self) -> list[str]:
        with self.errors():
            found = [r[0] for r in self.x("PRAGMA integrity_check").fetchall()]
        return [] if found == ["ok"] else [f"sqlite: {r}" for r in found]

    def close(self) -> None:
        self.conn.close()
        key, self._key = self._key, None
        if key is not None:
            with _open_lock:
                _open_here[key] -= 1


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
    if "too big" in lower:  # a length no row retap wrote can have, or a value over 1 GB
        return StoreError(location, f"{text}: the store is damaged, or a value passed the "
                                    "size SQLite can hold")
    return StoreError(location, text)
