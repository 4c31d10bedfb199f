"""``retap store copy``: move run history between stores (SQLite to PostgreSQL and back);
``retap export`` / ``retap import``: carry one run to another machine as a file;
``retap prune``: delete old runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from retap.cli.main import (
    echo_err,
    main,
    open_cli_store,
    removed_unless_done,
    store_location,
    store_option,
)

if TYPE_CHECKING:
    from retap.store.base import Store
    from retap.store.sql import SQLStore


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
    with removed_unless_done(destination):
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


@main.command("prune")
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="delete runs created before this: an age (30d, 12h, 90m) or a date or "
                   "time (2026-11-01)")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["done", "failed", "interrupted"]),
              help="only runs with this status (repeatable); default: any but running")
@click.option("--dry-run", "-n", "dry_run", is_flag=True, help="list them, delete nothing")
@store_option
@click.pass_context
def prune_cmd(ctx: click.Context, older_than: str, statuses: tuple[str, ...], dry_run: bool,
              store: str | None) -> None:
    """Delete old runs: everything recorded for them, their remembered results, and the
    values no other run uses. A running run is never deleted."""
    from retap.cli.cmd_inspect import parse_since

    before = parse_since(older_than, "--older-than")
    the_store = open_cli_store(ctx, store, create=False)
    chosen = [r.run for r in the_store.runs() if r.created < before and
              r.effective_status != "running" and
              (not statuses or r.effective_status in statuses)]
    if dry_run:
        for run in chosen:
            click.echo(run)
        echo_err(f"would delete {len(chosen)} run(s) from {the_store.location}")
        return
    deleted = the_store.delete_runs(chosen)
    for run in deleted:
        click.echo(run)
    echo_err(f"deleted {len(deleted)} run(s) from {the_store.location}")


def _sql_store(store: Store, run: str | None = None) -> SQLStore:
    """``store`` as a SQL store; ``run`` (to be exported) is refused first as unknown when
    the store file does not exist."""
    from retap.errors import StoreError, UnknownRun
    from retap.store.memory import EmptyStore
    from retap.store.sql import SQLStore

    if isinstance(store, EmptyStore) and run is not None:
        raise UnknownRun(run, store.location)
    if not isinstance(store, SQLStore):
        raise StoreError(store.location, "runs are exported from and imported into SQLite "
                                         "files and PostgreSQL databases")
    return store


@main.command("export")
@click.argument("run")
@click.option("-o", "--output", "output", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="the file to write (replaced whole; owner-only)")
@store_option
@click.pass_context
def export_cmd(ctx: click.Context, run: str, output: Path, store: str | None) -> None:
    """Write RUN to one checksummed file: its spec, dispatches, attempts, timeline, values
    and captured output. `retap import FILE` loads it into another store, where it can be
    shown, resumed and replayed."""
    from retap.runid import resolve_run
    from retap.store.portable import export_run

    the_store = _sql_store(open_cli_store(ctx, store, readonly=True), run)
    the_store.check_structure()
    run = resolve_run(the_store, run)
    count = export_run(the_store, run, output)
    echo_err(f"exported run {run} ({count} dispatch(es)) to {output}")


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@store_option
@click.pass_context
def import_cmd(ctx: click.Context, file: Path, store: str | None) -> None:
    """Load a run written by `retap export` into the store. The file is checked whole
    (its digest, every row's checksum, every value's digest, every record as the store
    reads it) before anything is kept; a run the store already has is refused. Prints
    the run's id."""
    from retap.history import actor
    from retap.store.portable import import_run

    with removed_unless_done(store_location(ctx, store)):
        the_store = _sql_store(open_cli_store(ctx, store))
        try:
            done = import_run(the_store, file, {"file": str(file.resolve()), **actor()})
        finally:
            the_store.close()
    click.echo(done.run)
    echo_err(f"imported run {done.run} ({done.dispatches} dispatch(es)) into "
             f"{the_store.location}")
