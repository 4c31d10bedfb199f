"""A store as an older retap would have left it, once this one has opened it: what a user
who upgrades retap between two attempts at a run hands the next attempt."""

from __future__ import annotations

from retap.store import rows
from retap.store.check import CHECKSUMMED
from retap.store.sql import SQLStore

# each checksummed table's primary key: the row a new checksum is written to
KEYS = {"runs": ("run",), "dispatches": ("run", "id"), "queue": ("run", "pos"),
        "join_entries": ("run", "join_id", "slot", "audit"), "join_counts": ("run", "join_id"),
        "memo": ("task", "key"), "file_digests": ("path",),
        "attempts": ("run", "dispatch", "n"), "events": ("run", "seq"),
        "logs": ("run", "seq", "dispatch", "attempt"), "workers": ("run", "dispatch", "attempt"),
        "counters": ("run",)}


def as_older_retap(store: SQLStore, runs: list[str]) -> None:
    """Leave ``store`` as a retap before schema 8 would have, upgraded since to 8: no run's
    counter (the next session reads its history for the next seq), the versions list
    filled from the dispatches as that upgrade fills it, and every row's checksum in the
    form written before schema 9 (a row that fails its checksum is left as it is)."""
    with store.transaction():
        store.x("DELETE FROM counters")
        store.x("DELETE FROM versions")
        for run in runs:
            store.record_versions_txn(run)
        for table, columns in CHECKSUMMED.items():
            keys = KEYS[table]
            update = (f"UPDATE {table} SET crc=? WHERE "
                      + " AND ".join(f"{k}=?" for k in keys))
            for row in store.x(f"SELECT {', '.join(columns)}, crc FROM {table}").fetchall():
                if rows.matches(row, columns):
                    fields = tuple(rows.as_bytes(row[c]) for c in columns)
                    store.x(update, (rows.older_crc(*fields), *(row[k] for k in keys)))
        store.x("UPDATE retap_schema SET version = 8")
        store._versioned(8)
