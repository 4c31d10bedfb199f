"""Integrity checks of a SQL store: the database's own (SQLite's), then retap's invariants.

Used by ``retap check`` and the torture runner. Each problem is one line naming the
run and the dispatch it concerns; no problems means the store can be resumed from. A
queue may name a dispatch that is already done (a replay stopped part way saves the
queue it had, with recorded dispatches it had not reached yet): resume answers those
from the store, so they are not problems.
"""

from __future__ import annotations

import json

from retap.errors import RetapError, StoreCorrupt
from retap.store import boundary, rows
from retap.store.codec import digest
from retap.store.sql import SQLStore

__all__ = ["CHECKSUMMED", "check_store", "read_run", "run_problems"]


def check_store(store: SQLStore, run: str | None = None) -> list[str]:
    """Everything wrong with ``store`` (one run, or all); an empty list when it is sound.

    Damage (SQLite's own checks, row checksums, value digests) and broken invariants are
    listed. A row that passes its checksum but holds what retap never writes (a crafted
    store) raises ``StoreCorrupt``, as every other command does on reading it.
    """
    try:
        problems = store.structure_problems()
        if problems:
            return problems
        problems += _checksum_problems(store)
        if problems:
            return problems
        runs = [run] if run is not None else [r.run for r in store.runs()]
        for name in runs:
            read_run(store, name)
            problems += run_problems(store, name)
        return problems + _value_problems(store)
    except StoreCorrupt:
        raise
    except (RetapError, ValueError) as exc:
        return [f"store cannot be read: {exc}"]


def read_run(store: SQLStore, run: str) -> None:
    """Read every row of ``run`` through the store boundary (StoreCorrupt on a bad one)."""
    store.run_info(run)
    store.audits(run)
    store.queue(run)
    store.counts(run)
    store.earlier_attempts(run)
    store.events(run)
    store.logs(run)
    store.workers(run)
    with store.errors():
        for row in store.x("SELECT join_id, slot, audit FROM join_entries WHERE run=?",
                           (run,)).fetchall():
            store.row(boundary.JoinEntryRow, ("join_id", "slot", "audit"), row, "join entry")
        for row in store.x("SELECT join_id, count FROM join_counts WHERE run=?",
                           (run,)).fetchall():
            store.row(boundary.JoinCountRow, ("join_id", "count"), row, "join counter")


_TABLES = {"runs": ("run", rows.RUN), "dispatches": ("id", rows.DISPATCH),
           "queue": ("id", rows.QUEUE), "join_entries": ("audit", rows.JOIN_ENTRY),
           "join_counts": ("join_id", rows.JOIN_COUNT), "memo": ("key", rows.MEMO),
           "file_digests": ("path", rows.FILE), "attempts": ("dispatch", rows.ATTEMPT),
           "events": ("seq", rows.EVENT), "logs": ("dispatch", rows.LOG),
           "workers": ("dispatch", rows.WORKER), "counters": ("run", rows.COUNTER)}
# every table whose rows carry a checksum, and the columns it is of
CHECKSUMMED = {table: columns for table, (_, columns) in _TABLES.items()}


def _checksum_problems(store: SQLStore) -> list[str]:
    problems = []
    with store.errors():
        for table, (name, columns) in _TABLES.items():
            for row in store.x(f"SELECT {', '.join(columns)}, crc FROM {table}").fetchall():
                if not rows.matches(row, columns):
                    problems.append(f"{table} row {row[name]} fails its checksum")
    return problems


def run_problems(store: SQLStore, run: str) -> list[str]:
    problems = []
    x = store.x
    for r in x("SELECT id FROM dispatches WHERE run=? AND status='done' AND result IS NULL",
               (run,)).fetchall():
        problems.append(f"run {run}: done dispatch {r['id']} has no result")
    for r in x('SELECT d.result, d.id FROM dispatches d LEFT JOIN "values" v '
               "ON v.digest = d.result WHERE d.run=? AND d.status='done' AND "
               "substr(d.result, 1, 1) != '=' AND v.digest IS NULL", (run,)).fetchall():
        problems.append(f"run {run}: done dispatch {r['id']} refers to a missing value "
                        f"{r['result']}")
    for r in x("SELECT id, count(*) AS n FROM queue WHERE run=? GROUP BY id "
               "HAVING count(*) > 1", (run,)).fetchall():
        problems.append(f"run {run}: dispatch {r['id']} is queued {r['n']} times")
    for r in x("SELECT id, inputs FROM queue WHERE run=?", (run,)).fetchall():
        problems += _refs_problems(store, run, r["id"], r["inputs"])
    for r in x("SELECT e.join_id, e.audit FROM join_entries e LEFT JOIN dispatches d "
               "ON d.run = e.run AND d.id = e.audit WHERE e.run=? AND "
               "(d.id IS NULL OR d.status != 'done')", (run,)).fetchall():
        problems.append(f"run {run}: join {r['join_id']} holds {r['audit']}, which is not a "
                        "done dispatch")
    for r in x("SELECT join_id, count FROM join_counts WHERE run=?", (run,)).fetchall():
        if not isinstance(r["count"], int) or r["count"] < 0:
            problems.append(f"run {run}: join {r['join_id']} has a bad counter {r['count']!r}")
    for r in x("SELECT c.seq, (SELECT max(d.seq) FROM dispatches d WHERE d.run = c.run) AS top "
               "FROM counters c WHERE c.run=?", (run,)).fetchall():
        if r["top"] is not None and (type(r["seq"]) is not int or r["seq"] < r["top"]):
            problems.append(f"run {run}: its counter {r['seq']!r} is below the seq of a "
                            f"recorded dispatch ({r['top']})")
    for r in x("SELECT DISTINCT d.node, d.task, coalesce(d.code_version, '') AS v "
               "FROM dispatches d WHERE d.run=? AND d.status='done' AND NOT EXISTS (SELECT 1 "
               "FROM versions w WHERE w.run = d.run AND w.node = d.node AND "
               "w.task = d.task AND w.code_version = coalesce(d.code_version, ''))",
               (run,)).fetchall():
        problems.append(f"run {run}: code version {r['v']!r} of node {r['node']} is not "
                        "listed in its versions")
    return problems


def _refs_problems(store: SQLStore, run: str, ident: str, inputs: str) -> list[str]:
    try:
        refs = json.loads(inputs)
        store.values(refs)
    except (ValueError, TypeError, KeyError, RetapError) as exc:
        return [f"run {run}: queued dispatch {ident} has unreadable inputs: {exc}"]
    return []


def _value_problems(store: SQLStore) -> list[str]:
    problems = []
    for r in store.x('SELECT digest, codec, data FROM "values"').fetchall():
        if digest(r["codec"], rows.as_bytes(r["data"])) != r["digest"]:
            problems.append(f"value {r['digest']} does not match its digest")
    return problems
