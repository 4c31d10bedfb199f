"""Copying runs between SQL stores (SQLite to PostgreSQL and back), row for row.

Both stores share one schema and checksums computed in Python from the values, so a row
is copied as it is, checksum included: every row is checked on the way out, and the copy
in the new store checks as the original did. A run is copied with its dispatches, the
values they refer to, its queue and join states, the files it recorded and the results it
left for reuse; not with a lease (a copy belongs to no coordinator).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from retap.errors import RunBusy, RunExists
from retap.store import rows
from retap.store.codec import digest
from retap.store.sql import SQLStore

__all__ = ["Copied", "copy_runs", "read_values", "run_refs", "run_rows"]

# table -> the columns its checksum covers (None: no checksum of its own)
_TABLES: dict[str, tuple[str, ...] | None] = {
    "dispatches": rows.DISPATCH, "queue": rows.QUEUE, "join_entries": rows.JOIN_ENTRY,
    "join_counts": rows.JOIN_COUNT, "memo": rows.MEMO, "outputs": None,
    "attempts": rows.ATTEMPT, "events": rows.EVENT, "logs": rows.LOG,
    "workers": rows.WORKER,
}
_OUTPUTS = ("path", "digest", "run", "dispatch")


@dataclass
class Copied:
    run: str
    dispatches: int


def copy_runs(src: SQLStore, dst: SQLStore, runs: Iterable[str] | None = None) -> list[Copied]:
    """Copy ``runs`` (every run when None) from ``src`` to ``dst`` in one transaction of
    ``dst``. Refuses, before writing anything, a run ``dst`` already has and one whose owner
    still runs it."""
    wanted = [i.run for i in src.runs()] if runs is None else list(runs)
    for run in wanted:
        info = src.run_info(run)  # UnknownRun for a run src does not have
        if info.effective_status == "running" and info.owner is not None:
            raise RunBusy(run, str(info.owner))
    with dst.errors():
        for run in wanted:
            if dst.x("SELECT 1 AS hit FROM runs WHERE run=?", (run,)).fetchone() is not None:
                raise RunExists(run, dst.location, "nothing was copied (name the other runs "
                                                   "with --run, or copy into another store)")
    done = []
    with src.snapshot(), dst.transaction():
        for run in wanted:
            with src.errors():  # a row that cannot be decoded: the source is damaged
                done.append(Copied(run, _copy_run(src, dst, run)))
    return done


def _copy_run(src: SQLStore, dst: SQLStore, run: str) -> int:
    found = run_rows(src, run, ["runs", *_TABLES])
    _insert(dst, "runs", (*rows.RUN, "updated", "crc"), found["runs"])
    for table, checked in _TABLES.items():
        columns = _OUTPUTS if checked is None else (*checked, "crc")
        _insert(dst, table, columns, found[table])
    dst.record_versions_txn(run)
    insert = dst.dialect.insert('"values"', ("digest", "codec", "data"), ignore=True)
    dst.xmany(insert, read_values(src, run_refs(found)))
    return len(found["dispatches"])


def run_refs(found: dict[str, list[tuple[Any, ...]]]) -> list[str]:
    """The values rows read by ``run_rows`` refer to by digest (not those held inline)."""
    refs: set[str] = set()
    for r in found.get("dispatches", []):
        refs.update(rows.refs(r[rows.DISPATCH.index("result")], r[rows.DISPATCH.index("inputs")]))
    for r in found.get("queue", []):
        refs.update(rows.refs(None, r[rows.QUEUE.index("inputs")]))
    refs.update(r[rows.MEMO.index("result")] for r in found.get("memo", []))
    return sorted(r for r in refs if r and not r.startswith("="))


def run_rows(src: SQLStore, run: str, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """The run's rows of each of ``tables``, each checked against its checksum, as tuples
    of the table's columns, its checksum last (``runs``: with ``updated`` before it; a
    run's lease is not read)."""
    found = {}
    for table in tables:
        if table == "runs":
            found[table] = _rows(src, "runs", (*rows.RUN, "updated"), rows.RUN, run)
        else:
            checked = _TABLES[table]
            found[table] = _rows(src, table, _OUTPUTS if checked is None else checked,
                                 checked, run)
    return found


def _rows(src: SQLStore, table: str, columns: tuple[str, ...],
          checked: tuple[str, ...] | None, run: str) -> list[tuple[Any, ...]]:
    """The run's rows of ``table``, each checked against its checksum, as tuples of
    ``columns`` (and the checksum last, when the table has one)."""
    crc = ", crc" if checked is not None else ""
    found = src.x(f"SELECT {', '.join(columns)}{crc} FROM {table} WHERE run=?",
                  (run,)).fetchall()
    out = []
    for r in found:
        if checked is not None and not rows.matches(r, checked):
            raise src.corrupt(f"a row of {table} of run {run} fails its checksum")
        values = tuple(rows.as_bytes(r[c]) for c in columns)
        out.append(values + ((r["crc"],) if checked is not None else ()))
    return out


def _insert(dst: SQLStore, table: str, columns: tuple[str, ...],
            found: list[tuple[Any, ...]]) -> None:
    if found:
        dst.xmany(dst.dialect.insert(table, columns), found)


def read_values(src: SQLStore, refs: list[str]) -> list[tuple[str, str, bytes]]:
    """The values ``refs`` name, as ``(digest, codec, data)``, checked against their
    digests."""
    out = []
    for i in range(0, len(refs), 500):
        chunk = refs[i:i + 500]
        found = src.x(f'SELECT digest, codec, data FROM "values" WHERE digest IN '
                      f'({",".join("?" * len(chunk))})', chunk).fetchall()
        values = [(r["digest"], r["codec"], rows.as_bytes(r["data"])) for r in found]
        for key, codec, data in values:
            if not (isinstance(codec, str) and isinstance(data, bytes)) or \
                    digest(codec, data) != key:
                raise src.corrupt(f"value {key} does not match its digest")
        if len(values) != len(chunk):
            raise src.corrupt(f"values of the run are missing ({len(chunk) - len(values)})")
        out.extend(values)
    return out
