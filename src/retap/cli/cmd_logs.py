"""``retap logs RUN [NODE|DISPATCH]``: what a run's attempts printed and logged."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from retap.cli.main import main, one_dispatch, open_cli_store, store_option
from retap.errors import UsageError
from retap.runid import resolve_run
from retap.store.boundary import STATUSES

if TYPE_CHECKING:
    from retap.dispatch import NodeId
    from retap.store.base import LogRecord, Store

POLL = 0.5  # seconds between looks at the store while following


@main.command("logs")
@click.argument("run")
@click.argument("which", required=False, metavar="[NODE|DISPATCH]")
@store_option
@click.option("-f", "--follow", is_flag=True,
              help="go on printing what is recorded until the run stops running")
@click.option("-q", "--quiet", is_flag=True, help="no header line before each attempt's output")
@click.option("--json", "as_json", is_flag=True, help="as JSON, one entry per attempt")
@click.pass_context
def logs_cmd(ctx: click.Context, run: str, which: str | None, store: str | None,
             follow: bool, quiet: bool, as_json: bool) -> None:
    """What RUN's attempts printed (stdout, stderr) and logged, in recording order; only
    NODE's (a node id or name) or DISPATCH's (an id or a unique prefix) when given. Each
    attempt's output is recorded when the attempt is."""
    if follow and as_json:
        raise UsageError("--follow and --json do not go together")
    the_store = open_cli_store(ctx, store, readonly=True)
    the_store.check_structure()
    run = resolve_run(the_store, run)
    nodes = _Nodes(the_store, run)
    wanted = nodes.resolve(which) if which is not None else None
    if as_json:
        entries = nodes.learned(the_store.logs(run))
        entries = [e for e in entries if nodes.wanted(e, wanted)]
        click.echo(json.dumps([nodes.json(e) for e in entries], indent=2, ensure_ascii=False))
        return
    after, printed = _print(the_store, run, nodes, wanted, 0, quiet)
    if not follow:
        if not printed:
            click.echo(f"retap: nothing printed or logged is recorded for {which or run}",
                       err=True)
        return
    try:
        while True:
            running = the_store.run_info(run).effective_status == "running"
            after, _ = _print(the_store, run, nodes, wanted, after, quiet)
            if not running:
                return
            time.sleep(POLL)
    except KeyboardInterrupt:
        ctx.exit(130)


def _print(store: Store, run: str, nodes: _Nodes, wanted: tuple[str, set[str]] | None,
           after: int, quiet: bool) -> tuple[int, int]:
    """Print the wanted logs recorded after commit ``after``; the last commit seen, and
    how many were printed."""
    printed = 0
    for entry in nodes.learned(store.logs(run, after)):
        after = max(after, entry.seq)
        if not nodes.wanted(entry, wanted):
            continue
        if not quiet:
            click.echo(nodes.header(entry))
        click.echo(entry.text, nl=not entry.text.endswith("\n"))
        printed += 1
    return after, printed


class _Nodes:
    """The run's nodes and which node each dispatch that logged belongs to, read for those
    dispatches only: a long run's history is not read to print a few logs."""

    def __init__(self, store: Store, run: str) -> None:
        self.store, self.run = store, run
        spec = store.run_info(run).spec
        self.tasks = {str(n["id"]): str(n.get("name") or n.get("task", ""))
                      for n in spec.get("nodes", [])}
        self.of: dict[str, NodeId] = {}

    def learned(self, entries: list[LogRecord]) -> list[LogRecord]:
        """``entries``, once the nodes of their dispatches are known."""
        new = [d for d in dict.fromkeys(e.dispatch for e in entries) if d not in self.of]
        if new:
            self.of.update((a.id, a.node) for a in self.store.dispatches(self.run, STATUSES,
                                                                          new))
        return entries

    def node_id(self, dispatch: str) -> NodeId:
        return self.of.get(dispatch, "?")

    def node(self, dispatch: str) -> str:
        return str(self.node_id(dispatch))

    def resolve(self, which: str) -> tuple[str, set[str]]:
        """``("node", {id})`` when ``which`` is a node of the run, else ``("dispatch",
        {id})`` for the one dispatch it names."""
        if which in self.tasks:
            return "node", {which}
        return "dispatch", {one_dispatch(self.store.dispatch_ids(self.run, which), which, (
            f"{which!r} is neither a node nor a dispatch of run {self.run} "
            f"(nodes: {', '.join(self.tasks) or 'none'})"))}

    def wanted(self, entry: LogRecord, wanted: tuple[str, set[str]] | None) -> bool:
        if wanted is None:
            return True
        kind, ids = wanted
        return (self.node(entry.dispatch) if kind == "node" else entry.dispatch) in ids

    def header(self, entry: LogRecord) -> str:
        node = self.node(entry.dispatch)
        cut = f", {entry.dropped} characters left out" if entry.dropped else ""
        return (f"==> {entry.dispatch[:12]} node {node} ({self.tasks.get(node, '?')}) "
                f"attempt {entry.attempt}{cut} <==")

    def json(self, entry: LogRecord) -> dict[str, Any]:
        node = self.node_id(entry.dispatch)
        return {"dispatch": entry.dispatch, "node": node, "task": self.tasks.get(str(node), ""),
                "attempt": entry.attempt, "text": entry.text, "dropped": entry.dropped}
