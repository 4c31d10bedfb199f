"""Stores: where runs are recorded. ``open_store`` picks one by location."""

from __future__ import annotations

from pathlib import Path

from retap.store.base import AuditRecord, DispatchRecord, Effects, Owner, RunInfo, RunLog, Store
from retap.store.memory import MemoryStore

__all__ = ["AuditRecord", "DispatchRecord", "Effects", "MemoryStore", "Owner", "RunInfo",
           "RunLog", "Store", "open_store"]

DEFAULT_STORE = ".retap/retap.db"


def open_store(location: str | Path | None = None, **options: object) -> Store:
    """``:memory:`` for an in-memory store, otherwise the path of a SQLite store file."""
    location = str(location or DEFAULT_STORE)
    if location == ":memory:":
        return MemoryStore()
    if "://" in location:
        from retap.errors import StoreError

        raise StoreError(location, "only SQLite store files and :memory: are supported here")
    from retap.store.sqlite import SQLiteStore

    return SQLiteStore(location, **options)  # type: ignore[arg-type]
