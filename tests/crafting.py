"""Editing a store as someone crafting one on purpose would: change rows with SQL, then
recompute their checksums with the same function retap uses (registered in SQLite here,
by the test, never by retap)."""

from __future__ import annotations

import sqlite3

from retap.store import rows


def seal_sql(columns: tuple[str, ...]) -> str:
    """SQL for the checksum of a row's ``columns`` (after ``allow_sealing`` on the
    connection)."""
    return f"retap_crc({', '.join(columns)})"


def allow_sealing(conn: sqlite3.Connection) -> None:
    conn.create_function("retap_crc", -1, rows.crc, deterministic=True)
