"""Deleting runs from a SQL store: every row of each run, the results other runs may no
longer reuse (its memo entries), and then every value no remaining row refers to.

A run whose owner is alive (or, on another host, whose lease holds) is never deleted:
the check is made inside the deleting transaction, which a claim waits for, so a run
cannot be resumed and deleted at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from retap.store import rows
from retap.store.sql import SQLStore

__all__ = ["delete_runs"]

# every table with a row per run, but "runs" itself (deleted last)
RUN_TABLES = ("dispatches", "queue", "join_entries", "join_counts", "attempts", "events",
              "logs", "workers", "outputs", "memo", "versions", "counters")


def delete_runs(store: SQLStore, runs: Iterable[str]) -> list[str]:
    """Delete ``runs`` (those still held by a live owner are left alone), in one
    transaction; the runs deleted."""
    deleted = []
    with store.transaction(claim=True):
        if store.dialect.lock_values:
            # a commit that refers to a value inserts it (or finds it there): it waits
            # here, so no value is deleted under a commit that is about to refer to it
            store.x(store.dialect.lock_values)
        known = {info.run: info for info in store.runs()}  # read inside: they hold now
        for run in dict.fromkeys(runs):
            info = known.get(run)
            if info is None or info.effective_status == "running":
                continue  # not (or no longer) there, or its owner lives (its lease holds)
            for table in RUN_TABLES:
                store.x(f"DELETE FROM {table} WHERE run=?", (run,))
            store.x("DELETE FROM runs WHERE run=?", (run,))
            deleted.append(run)
        if deleted:
            _drop_unused_values(store)
    return deleted


def _drop_unused_values(store: SQLStore) -> None:
    """Delete every value no dispatch, queued dispatch or remembered result refers to."""
    used: set[str] = set()
    for r in store.x("SELECT result, inputs FROM dispatches").fetchall():
        used.update(rows.refs(r["result"], r["inputs"]))
    for r in store.x("SELECT inputs FROM queue").fetchall():
        used.update(rows.refs(None, r["inputs"]))
    used.update(r["result"] for r in store.x("SELECT result FROM memo").fetchall())
    unused = [(r["digest"],) for r in store.x('SELECT digest FROM "values"').fetchall()
              if r["digest"] not in used]
    if unused:
        store.xmany('DELETE FROM "values" WHERE digest=?', unused)
