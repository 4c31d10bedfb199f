"""Row checksums: every row retap writes carries a CRC of its columns, and every row it
reads is checked against it, so a damaged page is refused instead of believed.

SQLite checks its own page structure but not the bytes of a row; a flipped byte inside
a record would otherwise be read back as a different value. The CRC is computed in
Python, from the values as Python holds them, on writing and on reading: the same on
every backend, with no function registered in the database.

Two forms of checksum exist, told apart by their range. Rows written since schema 9 carry
``MARSHALLED + crc32(marshal.dumps(fields, 2))``: marshal's version 2 writes each value
with its type and length and nothing else (no shared references, no interning), so equal
rows give equal bytes, and it costs a quarter of ``repr``. Older rows, and a row whose
fields marshal cannot write (a subclass of str, say), carry ``crc32(repr(fields))``, below
``MARSHALLED``; both are read. Nothing is ever unmarshalled.
"""

from __future__ import annotations

import json
import marshal
import zlib
from typing import Any

__all__ = ["ATTEMPT", "COUNTER", "DISPATCH", "EVENT", "FILE", "JOIN_COUNT", "JOIN_ENTRY", "LOG",
           "MEMO", "QUEUE", "RUN", "WORKER", "as_bytes", "crc", "holds", "matches",
           "older_crc", "refs"]

RUN = ("run", "status", "created", "codec", "spec", "owner_host", "owner_pid",
       "owner_started")
DISPATCH = ("run", "id", "node", "task", "sources", "inputs", "status", "result", "error",
            "attempts", "seq", "started", "finished", "code_version", "reused", "outputs")
QUEUE = ("run", "pos", "id", "node", "sources", "inputs")
JOIN_ENTRY = ("run", "join_id", "slot", "audit", "seq")
JOIN_COUNT = ("run", "join_id", "count")
MEMO = ("task", "key", "run", "dispatch", "result", "outputs", "facts", "created")
FILE = ("path", "size", "mtime_ns", "inode", "digest")
ATTEMPT = ("run", "dispatch", "n", "session", "status", "started", "finished", "error")
EVENT = ("run", "seq", "at", "kind", "data")
LOG = ("run", "seq", "dispatch", "attempt", "text", "dropped")
WORKER = ("run", "dispatch", "attempt", "host", "pid")
COUNTER = ("run", "seq")

def crc(*fields: Any) -> int:
    """The checksum of a row's fields, in column order.

    It is computed in Python over the typed values, never by the database: each column
    holds one of str, int, float, bytes or None, and writers hand each column that type
    (a float for a REAL column even when it is whole), so every driver reads back what
    was checksummed. Bytes a driver returns as a buffer are taken as bytes.
    """
    marshalled = _marshalled(fields)
    return older_crc(*fields) if marshalled is None else marshalled


def _marshalled(fields: tuple[Any, ...]) -> int | None:
    """The checksum of ``fields`` in the marshalled form; None when marshal cannot write
    one of them exactly."""
    try:
        return MARSHALLED + zlib.crc32(marshal.dumps(fields, 2))
    except ValueError:
        return None


def older_crc(*fields: Any) -> int:
    """The checksum in the form of rows written before schema 9 (see the module's doc)."""
    return zlib.crc32(repr(fields).encode())


MARSHALLED = 1 << 32  # a checksum at or above it is of the fields' marshal bytes (see above)


def matches(row: Any, columns: tuple[str, ...], prefix: str = "", crc_column: str = "crc"
            ) -> bool:
    """True when ``row`` (read by column name; ``prefix`` before each name) holds the
    checksum of its ``columns``."""
    stored = row[prefix + crc_column]
    keys = _KEYS.get((prefix, columns))
    if keys is None:
        keys = _KEYS[prefix, columns] = [prefix + c for c in columns]
    # every read row passes here: map, no Python loop
    return holds(stored, tuple(map(row.__getitem__, keys)))


def holds(stored: Any, fields: tuple[Any, ...]) -> bool:
    """True when ``stored`` is the checksum of ``fields`` (a row's columns, in order)."""
    if memoryview in map(type, fields):
        fields = tuple(as_bytes(f) for f in fields)
    if type(stored) is not int:
        return False
    if stored >= MARSHALLED:
        return stored == _marshalled(fields)
    return stored == older_crc(*fields)


_KEYS: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # the names matches() reads


def refs(result: Any, inputs: Any) -> list[str]:
    """The value refs a row names: its ``result`` ref and the refs in its ``inputs`` (a
    JSON list), as stored."""
    found = [result] if isinstance(result, str) else []
    if isinstance(inputs, str):
        listed = json.loads(inputs)
        found += [r for r in listed if isinstance(r, str)] if isinstance(listed, list) else []
    return found


def as_bytes(value: Any) -> Any:
    """A driver's buffer as bytes; anything else as it is."""
    return bytes(value) if isinstance(value, memoryview) else value
