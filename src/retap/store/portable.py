"""Portable runs: ``retap export RUN -o FILE`` writes one run as a file of its own, and
``retap import FILE`` loads it into any SQL store, where it can be shown, resumed and
replayed like a run made there.

The file is gzip'd JSON lines: a header (the format, the run, each table's columns), one
line per row (``[table, [value, ...]]``, bytes as ``{"b64": ...}``), and a trailer with
the SHA-256 of every line before it. Rows travel with their checksums and values with
their digests, as ``retap store copy`` moves them.

A file to import is untrusted data. It is refused, with nothing written, unless its
digest, header and columns hold, every row names its run and passes its checksum, every
value matches its digest, and the run, written in one transaction, reads back through
the store's boundary checks (as ``retap check`` reads a run) before that transaction
commits. Not carried: the run's remembered results (``memo``) and its index of files
written: results made elsewhere are never offered to this store's other runs for reuse.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retap.errors import (
    RetapError,
    RunBusy,
    StoreCorrupt,
    StoreError,
    UsageError,
)
from retap.store import rows
from retap.store.codec import digest
from retap.store.copy import read_values, run_refs, run_rows
from retap.store.sql import SQLStore

__all__ = ["FORMAT", "ImportRefused", "Imported", "export_run", "import_run"]

FORMAT = "retap-run"
VERSION = 2  # 2: checksums may be marshalled (see retap.store.rows); 1 is read as well
READS = (1, 2)
# what travels: table -> the columns of a row, as written (checksum last where one is kept)
TABLES: dict[str, tuple[str, ...]] = {
    "runs": (*rows.RUN, "updated", "crc"),
    "dispatches": (*rows.DISPATCH, "crc"),
    "queue": (*rows.QUEUE, "crc"),
    "join_entries": (*rows.JOIN_ENTRY, "crc"),
    "join_counts": (*rows.JOIN_COUNT, "crc"),
    "attempts": (*rows.ATTEMPT, "crc"),
    "events": (*rows.EVENT, "crc"),
    "logs": (*rows.LOG, "crc"),
    "workers": (*rows.WORKER, "crc"),
    '"values"': ("digest", "codec", "data"),
}
CHECKED = {"runs": rows.RUN, "dispatches": rows.DISPATCH, "queue": rows.QUEUE,
           "join_entries": rows.JOIN_ENTRY, "join_counts": rows.JOIN_COUNT,
           "attempts": rows.ATTEMPT, "events": rows.EVENT, "logs": rows.LOG,
           "workers": rows.WORKER}
LINE_MAX = 1 << 30  # a longer line is not one retap wrote


class ImportRefused(UsageError):
    """A file that is not a sound exported run: nothing of it was imported."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"import {path}: {reason}; nothing was imported", path=path,
                         reason=reason)
        self.path, self.reason = path, reason


@dataclass
class Imported:
    run: str
    dispatches: int


def export_run(store: SQLStore, run: str, path: Path) -> int:
    """Write ``run`` to ``path`` (owner-only, replaced whole); how many dispatches it
    holds. A run whose owner still runs it is refused."""
    info = store.run_info(run)
    if info.effective_status == "running" and info.owner is not None:
        raise RunBusy(run, str(info.owner))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:  # no such folder, not allowed to write there
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        # store.errors(): a row that cannot be decoded is a damaged store, not a traceback
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as out, \
                store.snapshot(), store.errors():
            os.fchmod(raw.fileno(), 0o600)
            sha = hashlib.sha256()

            def line(item: Any) -> None:
                data = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
                sha.update(data + b"\n")
                out.write(data + b"\n")

            line({"format": FORMAT, "version": VERSION, "run": run, "exported": time.time(),
                  "tables": {t: list(c) for t, c in TABLES.items()}})
            found = run_rows(store, run, [t for t in TABLES if t != '"values"'])
            for table, table_rows in found.items():
                for row in table_rows:
                    line([table, [_encode(v) for v in row]])
            for value in read_values(store, run_refs(found)):
                line(['"values"', [_encode(v) for v in value]])
            out.write(json.dumps({"sha256": sha.hexdigest()}).encode() + b"\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(found["dispatches"])


def _encode(value: Any) -> Any:
    return {"b64": base64.b64encode(value).decode()} if isinstance(value, bytes) else value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and list(value) == ["b64"] and isinstance(value["b64"], str):
        return base64.b64decode(value["b64"], validate=True)
    if value is None or type(value) in (str, int, float):
        return value
    raise ValueError(f"a column holds {type(value).__name__}")


def import_run(store: SQLStore, path: Path, importer: dict[str, Any]) -> Imported:
    """Load the run exported to ``path`` into ``store``, in one transaction, with an
    ``imported`` event (``importer``: who imports it, where from). A file that does not
    hold up, or holds a run the store already has, is refused (``ImportRefused``)."""
    where = str(path)
    _check_digest(path, where)
    with _lines(path, where) as lines:
        header = _header(next(lines, None), where)
        run = header["run"]
        with store.errors():
            if store.x("SELECT 1 AS hit FROM runs WHERE run=?", (run,)).fetchone():
                raise ImportRefused(where, f"run {run!r} is in {store.location} already")
        count = 0
        try:
            with store.transaction():
                for table, row in _rows(lines, where, run):
                    if table == "runs":
                        row = _as_imported(row)
                    elif table == "dispatches":
                        count += 1
                    store.x(store.dialect.insert(table, TABLES[table],
                                                 ignore=table == '"values"'), row)
                store.record_versions_txn(run)
                _event(store, run, importer)
                _read_back(store, run, where)
        except ImportRefused:
            raise
        except StoreError as exc:  # a row the tables refuse (the same key twice, say)
            raise ImportRefused(where, exc.reason) from None
    return Imported(run, count)


def _check_digest(path: Path, where: str) -> None:
    """The file's lines hash to the digest its last line holds."""
    sha = hashlib.sha256()
    last = None
    with _lines(path, where, raw=True) as lines:
        for data in lines:
            if last is not None:
                sha.update(last)
            last = data
    try:
        trailer = json.loads(last or b"")
        expected = trailer["sha256"] if isinstance(trailer, dict) else None
    except (ValueError, KeyError):
        expected = None
    if not isinstance(expected, str):
        raise ImportRefused(where, "not an exported run (no digest at its end)")
    if expected != sha.hexdigest():
        raise ImportRefused(where, "its content does not match its digest (damaged or "
                                   "changed since it was exported)")


@contextlib.contextmanager
def _lines(path: Path, where: str, raw: bool = False) -> Iterator[Iterator[Any]]:
    """The file's lines (``raw``: as bytes with their newline, the digest's last)."""
    try:
        with gzip.open(path, "rb") as fh:
            yield _read(fh, where, raw)
    except FileNotFoundError:
        raise ImportRefused(where, "no such file") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as exc:
        raise ImportRefused(where, f"not an exported run ({type(exc).__name__}: "
                                   f"{exc})") from None


def _read(fh: gzip.GzipFile, where: str, raw: bool) -> Iterator[Any]:
    while data := fh.readline(LINE_MAX + 1):
        if len(data) > LINE_MAX or not data.endswith(b"\n"):
            raise ImportRefused(where, "not an exported run (a line is cut or too long)")
        if raw:
            yield data
            continue
        try:
            yield json.loads(data)
        except ValueError:
            raise ImportRefused(where, "not an exported run (a line is not JSON)") from None


def _header(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict) or item.get("format") != FORMAT:
        raise ImportRefused(where, "not an exported run")
    if type(item.get("version")) is not int or item["version"] not in READS:
        raise ImportRefused(where, f"exported in format {item.get('version')!r}; this retap "
                                   f"reads formats {', '.join(map(str, READS))}")
    tables = item.get("tables")
    if tables != {t: list(c) for t, c in TABLES.items()}:
        raise ImportRefused(where, "its tables are not those of this retap's stores (it was "
                                   "exported by another version)")
    if not isinstance(item.get("run"), str):
        raise ImportRefused(where, "it names no run")
    return item


def _rows(lines: Iterator[Any], where: str, run: str) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Each row of the file, checked: its table, its run, its checksum, a value's digest."""
    runs = 0
    for n, item in enumerate(lines, start=2):
        if isinstance(item, dict) and "sha256" in item:
            break
        if not (isinstance(item, list) and len(item) == 2 and item[0] in TABLES and
                isinstance(item[1], list) and len(item[1]) == len(TABLES[item[0]])):
            raise ImportRefused(where, f"line {n} is not a row of a table it declared")
        table, values = item
        try:
            row = tuple(_decode(v) for v in values)
        except ValueError as exc:
            raise ImportRefused(where, f"line {n} ({table}): {exc}") from None
        named = dict(zip(TABLES[table], row, strict=True))
        if table == '"values"':
            if not (isinstance(named["codec"], str) and isinstance(named["data"], bytes) and
                    digest(named["codec"], named["data"]) == named["digest"]):
                raise ImportRefused(where, f"line {n}: a value does not match its digest")
        else:
            if named["run"] != run:
                raise ImportRefused(where, f"line {n} ({table}) belongs to run "
                                           f"{named['run']!r}, not {run!r}")
            if not rows.matches(named, CHECKED[table]):
                raise ImportRefused(where, f"line {n} ({table}) fails its checksum")
            runs += table == "runs"
        yield table, row
    if runs != 1:
        raise ImportRefused(where, f"it holds {runs} records of run {run!r}, not one")


def _as_imported(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The run's record as this store takes it: owned by no process (its coordinator ran
    elsewhere), so it can be resumed here; a run that was running is interrupted."""
    named = dict(zip(TABLES["runs"], row, strict=True))
    if named["status"] == "running":
        named["status"] = "interrupted"
    named.update(owner_host=None, owner_pid=None, owner_started=None)
    fields = tuple(named[c] for c in rows.RUN)
    return (*fields, named["updated"], rows.crc(*fields))


def _event(store: SQLStore, run: str, importer: dict[str, Any]) -> None:
    """An ``imported`` entry at the end of the run's timeline."""
    top = store.x("SELECT max(seq) AS top FROM events WHERE run=?", (run,)).fetchone()["top"]
    fields = (run, (top or 0) + 1, time.time(), "imported", json.dumps(importer, default=str))
    store.x("INSERT INTO events (run, seq, at, kind, data, crc) VALUES (?, ?, ?, ?, ?, ?)",
            (*fields, rows.crc(*fields)))


def _read_back(store: SQLStore, run: str, where: str) -> None:
    """Read the run back through the store's checks, inside the importing transaction: a
    row that passes its checksum but holds what retap never writes refuses the file."""
    from retap.store.check import read_run, run_problems

    try:
        read_run(store, run)
        problems = run_problems(store, run)
    except StoreCorrupt as exc:
        raise ImportRefused(where, exc.reason) from None
    except RetapError as exc:
        raise ImportRefused(where, exc.message) from None
    if problems:
        raise ImportRefused(where, problems[0])
