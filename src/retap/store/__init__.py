"""Stores: where runs are recorded. ``open_store`` picks one by location.

The store classes are imported when first used, so commands that never open a store of
some kind do not pay for it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from retap.store.base import (
        AuditRecord,
        DispatchRecord,
        Effects,
        Owner,
        RunInfo,
        RunLog,
        Store,
    )
    from retap.store.memory import MemoryStore

__all__ = ["DEFAULT_STORE", "DURABILITY", "AuditRecord", "DispatchRecord", "Effects",
           "MemoryStore", "Owner", "RunInfo", "RunLog", "Store", "open_store"]

DEFAULT_STORE = ".retap/retap.db"
DURABILITY = ("normal", "power", "batch")
_HOMES = {"MemoryStore": "retap.store.memory", **{
    name: "retap.store.base" for name in ("AuditRecord", "DispatchRecord", "Effects", "Owner",
                                          "RunInfo", "RunLog", "Store")}}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'retap.store' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def open_store(location: str | Path | None = None, **options: object) -> Store:
    """``:memory:`` for an in-memory store, ``postgresql://...`` for a PostgreSQL database,
    otherwise the path of a SQLite store file."""
    location = str(location or DEFAULT_STORE)
    if location == ":memory:":
        from retap.store.memory import MemoryStore

        return MemoryStore()
    if location.startswith(("postgresql://", "postgres://")):
        from retap.store.postgres import PostgresStore

        return PostgresStore(location, **options)  # type: ignore[arg-type]
    if "://" in location:
        from retap.errors import StoreError

        raise StoreError(location, "not a store this retap knows: a SQLite file path, "
                                   "postgresql://USER@HOST:PORT/DB, or :memory:")
    from retap.store.sqlite import SQLiteStore

    return SQLiteStore(location, **options)  # type: ignore[arg-type]


def open_existing(location: str | Path, readonly: bool = False) -> Store:
    """The store at ``location`` for commands that only read or continue runs: a store file
    that does not exist yet reads as an empty store and is not created. ``readonly``:
    opened for reading only (works where the directory is not writable)."""
    location = str(location)
    if location != ":memory:" and "://" not in location and not os.path.exists(location):
        from retap.store.memory import EmptyStore

        return EmptyStore(location)
    return open_store(location, readonly=True) if readonly else open_store(location)
