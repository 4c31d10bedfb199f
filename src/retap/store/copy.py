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

__all__ = ["Copied", "copy_runs"]

# table -> the columns its checksum covers (None: no checksum of its own)
_TABLES: dict[str, tuple[str, ...] | None] = {
    "dispatches": rows.DISPATCH, "queue": rows.QUEUE, "join_entries": rows.JOIN_ENTRY,
    "join_counts": rows.JOIN_COUNT, "memo": rows.MEMO, "outputs": None,
    "attempts": rows.ATTEMPT, "events": rows.EVENT, "logs": rows.LOG,
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
                raise RunExists(run, dst.location)
    done = []
    with src.snapshot(), dst.transaction():
        for run in wanted:
            done.append(Copied(run, _copy_run(src, dst, run)))
    return done


def _copy_run(src: SQLStore, dst: SQLStore, run: str) -> int:
    row = _rows(src, "runs", (*rows.RUN, "updated"), rows.RUN, run)[0]
    _insert(dst, "runs", (*rows.RUN, "updated", "crc"), [row])
    refs: set[str] = set()
    count = 0
    for table, checked in _TABLES.items():
        columns = _OUTPUTS if checked is None else checked
        found = _rows(src, table, columns, checked, run)
        if table == "dispatches":
            count = len(found)
            for r in found:
                refs.update(rows.refs(r[columns.index("result")], r[columns.index("inputs")]))
        elif table == "queue":
            for r in found:
                refs.update(rows.refs(None, r[columns.index("inputs")]))
        elif table == "memo":
            refs.update(r[columns.index("result")] for r in found)
        _insert(dst, table, columns if checked is None else (*columns, "crc"), found)
    _copy_values(src, dst, sorted(r for r in refs if r and not r.startswith("=")))
    return count


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


def _copy_values(src: SQLStore, dst: SQLStore, refs: list[str]) -> None:
    """The values the copied rows refer to by digest, checked against their digests."""
    insert = dst.dialect.insert('"values"', ("digest", "codec", "data"), ignore=True)
    for i in range(0, len(refs), 500):
        chunk = refs[i:i + 500]
        found = src.x(f'SELECT digest, codec, data FROM "values" WHERE digest IN '
                      f'({",".join("?" * len(chunk))})', chunk).fetchall()
        values = [(r["digest"], r["codec"], rows.as_bytes(r["data"])) for r in found]
        for key, codec, data in values:
            if digest(codec, data) != key:
                raise src.corrupt(f"value {key} does not match its digest")
        if len(values) != len(chunk):
            raise src.corrupt(f"values of the run are missing ({len(chunk) - len(values)})")
        dst.xmany(insert, values)
