"""``retap runs``, ``retap show RUN`` and ``retap audit RUN``: read a store, never write."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from retap.cli.main import main, one_dispatch, open_cli_store, store_option
from retap.errors import RetapError, UsageError
from retap.history import as_shown, attempt_history, run_summary
from retap.render import (
    audit_dot,
    audit_json,
    audit_mermaid,
    audit_trail,
    runs_json,
    runs_table,
    short,
    upstream_trail,
)
from retap.report import show_report
from retap.runid import resolve_run
from retap.store.boundary import STATUSES

if TYPE_CHECKING:
    from retap.store.base import Store


@main.command("runs")
@store_option
@click.option("--json", "as_json", is_flag=True, help="as JSON")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["running", "done", "failed", "interrupted"]),
              help="only runs with this status (repeatable)")
@click.option("--since", default=None, metavar="WHEN",
              help="only runs created since WHEN: a date or time (2026-11-30, "
                   "2026-11-30T08:00) or an age (30m, 12h, 7d)")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="only the N newest runs")
@click.pass_context
def runs_cmd(ctx: click.Context, store: str | None, as_json: bool, statuses: tuple[str, ...],
             since: str | None, limit: int | None) -> None:
    """The runs in the store, newest first: status, when created, how long they ran,
    dispatches, the command that started them."""
    after = parse_since(since) if since is not None else None
    the_store = open_cli_store(ctx, store, readonly=True)
    runs = [r for r in the_store.runs() if (not statuses or r.effective_status in statuses)
            and (after is None or r.created >= after)][:limit]
    now = time.time()
    summaries = {r.run: run_summary(the_store.events(r.run), r.effective_status == "running",
                                    now) for r in runs}
    if as_json:
        click.echo(json.dumps(runs_json(runs, summaries), indent=2))
    else:
        width = None
        if sys.stdout.isatty():
            import shutil  # (and its compression modules) only for a terminal

            width = shutil.get_terminal_size().columns
        click.echo(runs_table(runs, summaries, width), nl=False)


def parse_since(text: str, option: str = "--since") -> float:
    """``--since`` (or ``option``): an ISO date or time (UTC unless it says otherwise) or
    an age such as ``30m``, ``12h``, ``7d``; seconds since the epoch."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[-1:] in units and text[:-1].isdigit():
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a date or time (2026-11-30, "
                                 "2026-11-30T08:00) nor an age (30m, 12h, 7d)",
                                 param_hint=option) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@main.command("show")
@click.argument("run")
@store_option
@click.option("--json", "as_json", is_flag=True, help="as JSON")
@click.pass_context
def show_cmd(ctx: click.Context, run: str, store: str | None, as_json: bool) -> None:
    """A run's status, counts, failed dispatches (inputs, configs, traceback) and queue."""
    the_store = open_cli_store(ctx, store, readonly=True)
    the_store.check_structure()
    run = resolve_run(the_store, run)
    _import_pickled_classes(the_store, run)
    report = show_report(the_store, run)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        click.echo(show_text(report), nl=False)


def _import_pickled_classes(store: Store, run: str) -> None:
    """A run stored with ``--codec pickle`` may hold values of its tasks' own classes:
    import its task modules first, so those values can be shown (else they are opaque)."""
    from retap.store.codec import PICKLE_KEY_ENV

    info = store.run_info(run)
    if info.codec != "pickle" or not os.environ.get(PICKLE_KEY_ENV):
        return
    from retap.discovery import resolve_task  # (and pydantic, for the tasks' configs)

    for node in info.spec.get("nodes", []):
        with contextlib.suppress(RetapError):
            resolve_task(node["task"])


def show_text(report: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items()) or "none"
    lines = [f"run {report['run']}: {report['status']}",
             f"  created {report['created']}; dispatches: {counts}"]
    if report["events"]:
        lines.append("timeline:")
        lines += [f"  {e['seq']:>3}  {e['at']}  {e['text']}" for e in report["events"]]
    for f in report["failed"]:
        lines += [f"failed dispatch {f['dispatch'][:12]}: "
                  f"node {f['node']} ({f['task']})",
                  f"  configs: {json.dumps(f['configs'], ensure_ascii=False)}",
                  f"  inputs:  {json.dumps(f['inputs'], ensure_ascii=False)}",
                  f"  error:   {f['error']}"]
        if f["traceback"]:
            lines += ["  traceback:"] + ["    " + t for t in f["traceback"].rstrip().splitlines()]
    if report["attempted_again"]:
        lines.append("dispatches attempted more than once:")
        for r in report["attempted_again"]:
            lines.append(f"{r['dispatch'][:12]} node {r['node']} ({r['task']}): {r['status']} "
                         f"after {len(r['history'])} attempts")
            lines += r["lines"]
    if report["queue"]:
        lines.append(f"queue ({len(report['queue'])}):")
        lines += [f"  {q['dispatch'][:12]} node {q['node']} inputs {short(q['inputs'])}"
                  for q in report["queue"][:50]]
        if len(report["queue"]) > 50:
            lines.append(f"  ... and {len(report['queue']) - 50} more")
    return "\n".join(lines) + "\n"


@main.command("audit")
@click.argument("run")
@store_option
@click.option("--json", "as_json", is_flag=True, help="as JSON, in recording order")
@click.option("--dot", is_flag=True, help="as a Graphviz digraph")
@click.option("--mermaid", is_flag=True, help="as a Mermaid graph")
@click.option("--trail", "dispatch", default=None, metavar="DISPATCH",
              help="only where this dispatch's value came from (an id or a unique prefix)")
@click.pass_context
def audit_cmd(ctx: click.Context, run: str, store: str | None, as_json: bool, dot: bool,
              mermaid: bool, dispatch: str | None) -> None:
    """The provenance of every value of RUN: which dispatch fed which."""
    formats = [f for f, given in (("json", as_json), ("dot", dot), ("mermaid", mermaid))
               if given]
    if len(formats) > 1:
        raise UsageError(f"--{', --'.join(formats)}: one format at a time")
    fmt = formats[0] if formats else None
    the_store = open_cli_store(ctx, store, readonly=True)
    the_store.check_structure()
    run = resolve_run(the_store, run)
    _import_pickled_classes(the_store, run)
    info = the_store.run_info(run, count=False)
    live = info.effective_status == "running"
    audits = as_shown(the_store.audits(run), live)
    if dispatch is not None:
        chosen = one_dispatch((a.id for a in audits), dispatch,
                              f"--trail: no dispatch {dispatch!r} in this run", "--trail: ")
        click.echo(upstream_trail(audits, chosen), nl=False)
    elif fmt == "json":
        full = the_store.dispatches(run, STATUSES)  # with their inputs
        history = attempt_history(the_store, run, full)
        full = as_shown(full, live)
        configs = {n["id"]: n.get("config", {}) for n in info.spec.get("nodes", [])}
        click.echo(json.dumps(audit_json(full, history, configs), indent=2,
                              ensure_ascii=False))
    elif fmt == "dot":
        click.echo(audit_dot(audits), nl=False)
    elif fmt == "mermaid":
        click.echo(audit_mermaid(audits), nl=False)
    else:
        click.echo(audit_trail(audits), nl=False)


@main.command("check")
@click.argument("run", required=False)
@store_option
@click.pass_context
def check_cmd(ctx: click.Context, run: str | None, store: str | None) -> None:
    """Check the store's integrity (SQLite's and retap's own); exit 1 if anything is wrong."""
    from retap.store.check import check_store
    from retap.store.sql import SQLStore

    the_store = open_cli_store(ctx, store, readonly=True)
    if run is not None:
        run = resolve_run(the_store, run)  # an unknown run is a usage error, not damage
    if not isinstance(the_store, SQLStore):
        click.echo(f"{the_store.location}: nothing stored, nothing to check")
        return
    problems = check_store(the_store, run)
    for problem in problems:
        click.echo(problem)
    if problems:
        ctx.exit(1)
    click.echo(f"{the_store.location}: ok")
