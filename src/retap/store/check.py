"""Integrity checks of a SQLite store: SQLite's own, then retap's invariants.

Used by ``retap check`` and the torture runner. Each problem is one line naming the
run and the dispatch it concerns; no problems means the store can be resumed from. A
queue may name a dispatch that is already done (a replay stopped part way saves the
queue it had, with recorded dispatches it had not reached yet): resume answers those
from the store, so they are not problems.
"""

from __future__ import annotations

import json
import sqlite3

from retap.errors import RetapError, StoreCorrupt
from retap.store import boundary, rows
from retap.store.codec import digest
from retap.store.sqlite import SQLiteStore

__all__ = ["check_store"]


def check_store(store: SQLiteStore, run: str | None = None) -> list[str]:
    """Everything wrong with ``store`` (one run, or all); an empty list when it is sound.

    Damage (SQLite's own checks, row checksums, value digests) and broken invariants are
    listed. A row that passes its checksum but holds what retap never writes (a crafted
    store) raises ``StoreCorrupt``, as every other command does on reading it.
    """
    try:
        problems = _sqlite_problems(store)
        if problems:
            return problems
        problems += _checksum_problems(store)
        if problems:
            return problems
        runs = [run] if run is not None else [r.run for r in store.runs()]
        for name in runs:
            _read_all(store, name)
            problems += _run_problems(store, name)
        return problems + _value_problems(store)
    except StoreCorrupt:
        raise
    except (RetapError, sqlite3.Error, ValueError) as exc:
        return [f"store cannot be read: {exc}"]


def _read_all(store: SQLiteStore, run: str) -> None:
    """Read every row of ``run`` through the store boundary (StoreCorrupt on a bad one)."""
    store.run_info(run)
    store.audits(run)
    store.queue(run)
    store.counts(run)
    with store.errors():
        for row in store.conn.execute("SELECT join_id, slot, audit FROM join_entries "
                                      "WHERE run=?", (run,)):
            store.row(boundary.JoinEntryRow, ("join_id", "slot", "audit"), row, "join entry")
        for row in store.conn.execute("SELECT join_id, count FROM join_counts WHERE run=?",
                                      (run,)):
            store.row(boundary.JoinCountRow, ("join_id", "count"), row, "join counter")


def _sqlite_problems(store: SQLiteStore) -> list[str]:
    rows = store.conn.execute("PRAGMA integrity_check").fetchall()
    return [] if rows == [("ok",)] else [f"sqlite: {r[0]}" for r in rows]


_TABLES = {"runs": ("run", rows.RUN), "dispatches": ("id", rows.DISPATCH),
           "queue": ("id", rows.QUEUE), "join_entries": ("audit", rows.JOIN_ENTRY),
           "join_counts": ("join_id", rows.JOIN_COUNT), "memo": ("key", rows.MEMO),
           "file_digests": ("path", rows.FILE)}


def _checksum_problems(store: SQLiteStore) -> list[str]:
    problems = []
    for table, (name, columns) in _TABLES.items():
        for (key,) in store.conn.execute(
                f"SELECT {name} FROM {table} WHERE NOT {rows.crc_ok(columns)}"):
            problems.append(f"{table} row {key} fails its checksum")
    return problems


def _run_problems(store: SQLiteStore, run: str) -> list[str]:
    conn = store.conn
    problems = []
    for (ident,) in conn.execute(
            "SELECT id FROM dispatches WHERE run=? AND status='done' AND result IS NULL", (run,)):
        problems.append(f"run {run}: done dispatch {ident} has no result")
    for ref, ident in conn.execute(
            'SELECT d.result, d.id FROM dispatches d LEFT JOIN "values" v '
            "ON v.digest = d.result WHERE d.run=? AND d.status='done' AND d.result NOT LIKE '=%' "
            "AND v.digest IS NULL", (run,)):
        problems.append(f"run {run}: done dispatch {ident} refers to a missing value {ref}")
    for ident, count in conn.execute(
            "SELECT id, count(*) FROM queue WHERE run=? GROUP BY id HAVING count(*) > 1", (run,)):
        problems.append(f"run {run}: dispatch {ident} is queued {count} times")
    for ident, inputs in conn.execute("SELECT id, inputs FROM queue WHERE run=?", (run,)):
        problems += _refs_problems(store, run, ident, inputs)
    for join_id, audit in conn.execute(
            "SELECT e.join_id, e.audit FROM join_entries e LEFT JOIN dispatches d "
            "ON d.run = e.run AND d.id = e.audit WHERE e.run=? AND "
            "(d.id IS NULL OR d.status != 'done')", (run,)):
        problems.append(f"run {run}: join {join_id} holds {audit}, which is not a done dispatch")
    for join_id, count in conn.execute("SELECT join_id, count FROM join_counts WHERE run=?",
                                       (run,)):
        if not isinstance(count, int) or count < 0:
            problems.append(f"run {run}: join {join_id} has a bad counter {count!r}")
    return problems


def _refs_problems(store: SQLiteStore, run: str, ident: str, inputs: str) -> list[str]:
    try:
        refs = json.loads(inputs)
        store.values(refs)
    except (ValueError, TypeError, KeyError, RetapError) as exc:
        return [f"run {run}: queued dispatch {ident} has unreadable inputs: {exc}"]
    return []


def _value_problems(store: SQLiteStore) -> list[str]:
    problems = []
    for key, codec, data in store.conn.execute('SELECT digest, codec, data FROM "values"'):
        if digest(codec, data) != key:
            problems.append(f"value {key} does not match its digest")
    return problems
