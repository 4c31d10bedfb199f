"""What differs between the SQL databases a store can live in, and nothing else: how
parameters are marked, the names of two column types, how a row is inserted unless it is
there or replaced when it is, and how a writer takes a run for itself.

Every query is written once, in ``retap.store.queries``, with ``?`` marks and the type names
``BLOB`` / ``REAL``; a dialect turns it into its own SQL once, when first used.
"""

from __future__ import annotations

import msgspec

__all__ = ["POSTGRES", "SQLITE", "Dialect"]


class Dialect(msgspec.Struct, frozen=True):
    """One database's SQL spelling."""

    name: str
    mark: str  # the parameter mark
    blob: str  # the type of byte strings
    real: str  # the type of floating-point numbers
    table_suffix: str  # after a table's closing parenthesis (clustered tables in SQLite)
    begin_claim: str  # opens a transaction that will write a run's row
    for_update: str  # after a SELECT of a run's row: hold it until the transaction ends
    lock_values: str  # in a transaction: no other writer adds a value until it ends
    not_done: str  # after ``FROM dispatches d``: read through the index of what is not done
    _cache: dict[str, str] = msgspec.field(default_factory=dict)

    def sql(self, text: str) -> str:
        """``text`` (written with ``?`` marks, run with parameters) in this dialect. Literal
        ``?`` never occurs in retap's queries, so marks are replaced wherever they stand; a
        literal ``%`` is doubled where ``%s`` marks parameters."""
        done = self._cache.get(text)
        if done is None:
            done = text if self.mark == "?" else text.replace("%", "%%").replace("?", self.mark)
            self._cache[text] = done
        return done

    def ddl(self, text: str) -> str:
        """A schema statement: ``{blob}``, ``{real}`` and ``{clustered}`` filled in."""
        return text.format(blob=self.blob, real=self.real, clustered=self.table_suffix)

    def insert(self, table: str, columns: tuple[str, ...], *, ignore: bool = False,
               replace_on: tuple[str, ...] = (), only_if: str = "") -> str:
        """INSERT of one row; ``ignore``: keep a row already there (same key); ``replace_on``
        (the key's columns): overwrite every other column of a row already there;
        ``only_if``: a condition (its marks after the row's) without which nothing is
        written."""
        marks = ", ".join("?" * len(columns))
        head = f'INSERT INTO {table} ({", ".join(columns)}) ' + (
            f"SELECT {marks} WHERE {only_if}" if only_if else f"VALUES ({marks})")
        if ignore:
            return head + " ON CONFLICT DO NOTHING"
        if replace_on:
            sets = ", ".join(f"{c}=excluded.{c}" for c in columns if c not in replace_on)
            return head + f" ON CONFLICT ({', '.join(replace_on)}) DO UPDATE SET {sets}"
        return head


# SQLite locks the whole file for a writer (BEGIN IMMEDIATE); PostgreSQL locks the row.
# (SQLite's BEGIN IMMEDIATE already keeps other writers out of the whole file.)
# SQLite's planner, without statistics, prefers the primary key's prefix (run) to the small
# partial index of what is not done, and would read a run's whole history; it is named.
SQLITE = Dialect("sqlite", "?", "BLOB", "REAL", " WITHOUT ROWID", "BEGIN IMMEDIATE", "", "",
                 " INDEXED BY dispatches_not_done")
POSTGRES = Dialect("postgresql", "%s", "BYTEA", "DOUBLE PRECISION", "", "BEGIN",
                   " FOR UPDATE", 'LOCK TABLE "values" IN SHARE ROW EXCLUSIVE MODE', "")
