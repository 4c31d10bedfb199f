"""``retap store copy``: move run history between stores (SQLite to PostgreSQL and back)."""

from __future__ import annotations

import click

from retap.cli.main import echo_err, main


@main.group("store")
def store_group() -> None:
    """Work on stores as a whole."""


@store_group.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option("--run", "runs", multiple=True, metavar="RUN",
              help="copy only this run (repeatable); default: every run")
def copy_cmd(source: str, destination: str, runs: tuple[str, ...]) -> None:
    """Copy runs from the store SRC to the store DST (a SQLite file or postgresql://...),
    checksums and all; a run DST already has, or one still running, is refused before
    anything is written."""
    import os

    from retap.errors import StoreError
    from retap.store import open_store
    from retap.store.copy import copy_runs
    from retap.store.sql import SQLStore

    if "://" not in source and not os.path.exists(source):
        raise StoreError(source, "no such store")
    src = open_store(source, readonly=True)
    dst = open_store(destination)
    try:
        for store in (src, dst):
            if not isinstance(store, SQLStore):
                raise StoreError(store.location, "copy works between SQLite files and "
                                                 "PostgreSQL databases")
        assert isinstance(src, SQLStore) and isinstance(dst, SQLStore)
        copied = copy_runs(src, dst, runs or None)
    finally:
        src.close()
        dst.close()
    for item in copied:
        click.echo(f"{item.run}: {item.dispatches} dispatch(es)")
    echo_err(f"copied {len(copied)} run(s) from {src.location} to {dst.location}")
