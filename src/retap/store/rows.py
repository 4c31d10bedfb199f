"""Row checksums: every row retap writes carries a CRC of its columns, and every row it
reads is checked against it, so a damaged page is refused instead of believed.

SQLite checks its own page structure but not the bytes of a row; a flipped byte inside
a record would otherwise be read back as a different value. The CRC is computed in
Python for plain inserts and by the SQL function ``retap_crc`` (registered on every
connection) where an update derives the final values in SQL.
"""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["DISPATCH", "FILE", "JOIN_COUNT", "JOIN_ENTRY", "MEMO", "QUEUE", "RUN", "crc",
           "crc_ok", "crc_sql"]

RUN = ("run", "status", "created", "codec", "spec", "owner_host", "owner_pid",
       "owner_started")
DISPATCH = ("run", "id", "node", "task", "sources", "inputs", "status", "result", "error",
            "attempts", "seq", "started", "finished", "code_version", "reused", "outputs")
QUEUE = ("run", "pos", "id", "node", "sources", "inputs")
JOIN_ENTRY = ("run", "join_id", "slot", "audit", "seq")
JOIN_COUNT = ("run", "join_id", "count")
MEMO = ("task", "key", "run", "dispatch", "result", "outputs", "facts", "created")
FILE = ("path", "size", "mtime_ns", "inode", "digest")

def crc(*fields: Any) -> int:
    """The checksum of a row's fields, in column order.

    It is taken over ``repr`` of the fields, so writers must hand each column the type
    SQLite gives back (float for REAL columns, int for INTEGER, str, bytes or None).
    """
    return zlib.crc32(repr(fields).encode())


def crc_sql(columns: tuple[str, ...], alias: str = "", final: dict[str, str] | None = None
            ) -> str:
    """``retap_crc(...)`` over ``columns``; ``final`` gives SQL for columns an update changes."""
    final = final or {}
    prefix = f"{alias}." if alias else ""
    return f"retap_crc({', '.join(final.get(c, prefix + c) for c in columns)})"


def crc_ok(columns: tuple[str, ...], alias: str = "") -> str:
    """A SQL expression true when the row's stored checksum matches its columns."""
    prefix = f"{alias}." if alias else ""
    return f"({prefix}crc = {crc_sql(columns, alias)})"
