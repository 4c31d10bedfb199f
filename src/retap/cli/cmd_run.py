"""``retap run``: run a workflow given in Tap's syntax or as a file, recording it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from retap.cli.main import (
    echo_err,
    main,
    open_cli_store,
    running_options,
    store_location,
    store_option,
)
from retap.store import DEFAULT_STORE, DURABILITY

if TYPE_CHECKING:
    from retap.app import RunResult
    from retap.workflow import Workflow

@main.command("run")
@store_option
@click.option("--run-id", metavar="ID", help="id for the new run (default: time + random)")
@click.option("--on-error", type=click.Choice(["stop", "continue"]), default="stop",
              show_default=True, help="on a failed task: stop the run, or keep running "
                                      "independent branches")
@click.option("--durability", type=click.Choice(DURABILITY), default="normal", show_default=True,
              help="normal: survives kill -9; power: also power loss (fsync each commit); "
                   "batch: group commits (a crash re-runs the last batch)")
@click.option("--codec", type=click.Choice(["json", "pickle"]), default="json",
              show_default=True, help="how values are stored; pickle is signed with "
                                      "$RETAP_PICKLE_KEY")
@click.option("--dry-run", "-n", is_flag=True, help="list what would run and what would be "
                                                    "skipped, and why; run nothing, record "
                                                    "nothing")
@click.option("--explain", is_flag=True, help="say on stderr why each cached task runs or is "
                                              "skipped")
@click.option("--quiet", "-q", is_flag=True, help="no progress or status lines on stderr; "
                                                   "failures still show")
@click.option("--set", "settings", multiple=True, metavar="NODE.KEY=VALUE",
              help="set a node's config (NODE: its id, index or task name), over what the "
                   "workflow gives (repeatable)")
@click.option("--force", "-R", "forced", multiple=True, metavar="NODE",
              help="run NODE (an id, index or task name) and everything downstream of it "
                   "even where remembered results are up to date (repeatable)")
@running_options
@click.argument("words", nargs=-1, type=click.UNPROCESSED, metavar="-- WORKFLOW... | FILE")
@click.pass_context
def run_cmd(ctx: click.Context, store: str | None, run_id: str | None, on_error: str,
            durability: str, codec: str, dry_run: bool, explain: bool, quiet: bool,
            settings: tuple[str, ...], forced: tuple[str, ...], jobs: int,
            executor: str | None, timeout: float | None, words: tuple[str, ...]) -> None:
    """Run a workflow given as words after `--` (Tap's syntax) or as a FILE.yaml.

    \b
    The workflow words:
      --            starts a node: a task name, its inputs, its --config values
      --:           joins the node before to the node after (a sequence)
      --:FLAGS      the same with flags: i iterate (each item of a list result),
                    s splat (a list result as several inputs), q enqueue (at the
                    queue's tail instead of running next)
      --[A][B]      joins nodes A to nodes B (0-based indexes, comma lists), with
                    FLAGS and a .KIND: .sync (wait for all of A, pass a list),
                    .gate:N (pass results in batches of N), .switch (a result
                    [index, value] goes to the index-th of B); written last
    Nodes that no join targets are leads: they run first, with their inputs.

    \b
    Examples:
      retap run -- load 'goodnight moon' --: dump
      retap run -- load --yaml '[1, 2]' --:i dump            (1, then 2)
      retap run -- load a -- load b -- dump --[0,1][2].sync  (["a", "b"])
      retap run -n pipeline.yaml          (what would run, and why)
      retap run -- TASK --help            (a task's inputs and configs)
    """
    from retap import dryrun
    from retap.app import App
    from retap.help import task_help
    from retap.progress import progress_for
    from retap.recovery import parse_set, set_config
    from retap.runid import check_new_run_id
    from retap.syntax import HelpRequested

    if run_id is not None:
        check_new_run_id(run_id)
    try:
        workflow = build_workflow(list(words), quiet)
    except HelpRequested as request:
        click.echo(task_help(request.task, request.name), nl=False)
        return
    for node, key, value in map(parse_set, settings):
        set_config(workflow, node, key, value)
    starts = [workflow.find_node(node, "--force") for node in forced]
    force = {*starts, *workflow.downstream(starts)}
    if dry_run:
        lines = dryrun.dry_run(workflow, open_cli_store(ctx, store, readonly=True), force)
        click.echo("\n".join(lines) if lines else "nothing to run")
        return
    the_store = open_cli_store(ctx, store, durability=durability, codec=codec)
    app = App(workflow, the_store, run_id=run_id, on_error=on_error,
              notify=(lambda m: None) if quiet else echo_err,
              explain=echo_err if explain else None, jobs=jobs, executor=executor,
              timeout=timeout, middleware=progress_for(quiet))
    app.force_nodes = force
    result = app.run()
    report(result, store_location(ctx, store), quiet)
    ctx.exit(result.exit_code)


def build_workflow(words: list[str], quiet: bool = False) -> Workflow:
    """The workflow from the command line: a workflow file, or Tap's workflow syntax."""
    from retap.discovery import Registry
    from retap.errors import UsageError
    from retap.syntax import WORKFLOW_SUFFIXES, is_break, parse_workflow

    registry = Registry()
    if words and words[0].endswith(WORKFLOW_SUFFIXES) and not is_break(words[0]):
        from retap.workfile import read_workflow_file  # (pydantic's models, yaml)

        if len(words) > 1:
            raise UsageError(f"unexpected words after the workflow file {words[0]}: "
                             f"{' '.join(words[1:])}")
        workflow = read_workflow_file(words[0], registry)
    else:
        workflow, warnings = parse_workflow(words, registry)
        if not quiet:
            for warning in warnings:
                echo_err(f"warning: {warning}")
    if not workflow.leads():
        raise UsageError("no lead node: every node is the target of a join, so nothing would "
                         "run")
    return workflow


def report(result: RunResult, location: str, quiet: bool = False) -> None:
    """The run's id, status and what to do next, on stderr; ``quiet``: only what failed."""
    store = "" if location == DEFAULT_STORE else f" --store {location}"
    if quiet:
        for line in _failure_lines(result):
            echo_err(line.strip())
        return
    counts = ", ".join([f"{result.executed} executed"]
                       + [f"{result.reused} reused"] * bool(result.reused)
                       + [f"{result.cached} cached"] * bool(result.cached))
    how = f" by {result.signal}" if result.status == "interrupted" and result.signal else ""
    echo_err(f"run {result.run}: {result.status}{how} ({counts})")
    for line in _failure_lines(result):
        echo_err(line)
    if result.status != "done" and result.store.durable:
        echo_err(f"  inspect: retap show {result.run}{store}   "
                 f"continue: retap resume {result.run}{store}")


def _failure_lines(result: RunResult) -> list[str]:
    """One line per failed dispatch: its node, its error, how many attempts were made."""
    lines = []
    for node, task, error in result.failures:
        attempts = error.get("attempts", 1)
        tries = f" after {attempts} attempts" if isinstance(attempts, int) and attempts > 1 \
            else ""
        lines.append(f"  node {node} ({task}) failed{tries}: {error.get('type')}: "
                     f"{error.get('message')}")
    return lines
