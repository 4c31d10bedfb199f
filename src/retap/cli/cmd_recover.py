"""``retap resume RUN`` and ``retap replay RUN``: continue a failed or interrupted run."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import click

from retap.cli.main import (
    echo_err,
    main,
    open_cli_store,
    running_options,
    store_location,
    store_option,
)

if TYPE_CHECKING:
    from retap.app import RunResult


def _common(fn):  # type: ignore[no-untyped-def]
    fn = click.option("--quiet", "-q", is_flag=True, help="no progress or status "
                                                          "lines on stderr; failures still "
                                                          "show")(fn)
    fn = click.option("--explain", is_flag=True, help="say on stderr why each cached task "
                                                      "runs or is skipped")(fn)
    fn = click.option("--on-error", type=click.Choice(["stop", "continue"]), default="stop",
                      show_default=True, help="on a failed task: stop, or keep running "
                                              "independent branches")(fn)
    fn = click.option("--rerun-changed", is_flag=True,
                      help="re-run done dispatches whose task code changed, and everything "
                           "downstream of them")(fn)
    fn = click.option("--rerun-inflight", is_flag=True,
                      help="re-run dispatches of non-idempotent tasks that were running when "
                           "the run stopped")(fn)
    fn = click.option("--set", "settings", multiple=True, metavar="NODE.KEY=VALUE",
                      help="change a node's config before continuing")(fn)
    fn = click.option("--take-over", is_flag=True,
                      help="continue a run whose owner ran on another host (a restarted "
                           "container, a renamed host) and is gone")(fn)
    fn = running_options(fn)
    fn = store_option(fn)
    return click.argument("run")(fn)


@main.command("resume")
@_common
@click.pass_context
def resume_cmd(ctx: click.Context, run: str, store: str | None, **options: Any) -> None:
    """Continue RUN from its saved queue and join states; done work is not re-run."""
    _continue(ctx, "resume", run, store, **options)


@main.command("replay")
@_common
@click.option("--from", "from_nodes", multiple=True, metavar="NODE",
              help="run NODE's dispatches again (even where they are done or remembered) "
                   "and everything downstream of them; reuse the rest (repeatable)")
@click.pass_context
def replay_cmd(ctx: click.Context, run: str, store: str | None,
               from_nodes: tuple[str, ...], **options: Any) -> None:
    """Run RUN again from its spec, taking done dispatches' results from the store."""
    _continue(ctx, "replay", run, store, from_nodes=from_nodes, **options)


def _continue(ctx: click.Context, verb: str, run: str, store: str | None,
              settings: tuple[str, ...], rerun_inflight: bool, rerun_changed: bool,
              on_error: str, explain: bool, quiet: bool, take_over: bool, jobs: int,
              executor: str | None, timeout: float | None,
              from_nodes: tuple[str, ...] = ()) -> None:
    from retap.progress import progress_for
    from retap.recovery import parse_set, replay, resume
    from retap.runid import resolve_run

    the_store = open_cli_store(ctx, store, create=False)
    run = resolve_run(the_store, run)
    parsed = [parse_set(s) for s in settings]
    say = (lambda m: None) if quiet else echo_err
    action = resume if verb == "resume" else partial(replay, from_nodes=from_nodes)
    result: RunResult = action(the_store, run, settings=parsed, rerun_inflight=rerun_inflight,
                               rerun_changed=rerun_changed, on_error=on_error, notify=say,
                               explain=echo_err if explain else None, take_over=take_over,
                               jobs=jobs, executor=executor, timeout=timeout,
                               middleware=progress_for(quiet))
    if result.status == "done" and not (result.executed or result.cached or result.reused):
        say(f"run {run} is already done; nothing to {verb}")
        ctx.exit(0)
    from retap.cli.cmd_run import report

    report(result, store_location(ctx, store), quiet)
    ctx.exit(result.exit_code)


@main.command("forget")
@click.argument("task")
@click.option("--run", "run", default=None, metavar="RUN", help="only results made by RUN")
@store_option
@click.pass_context
def forget_cmd(ctx: click.Context, task: str, run: str | None, store: str | None) -> None:
    """Drop TASK's remembered results (cache="inputs", file tasks), so it runs again."""
    from retap.discovery import Registry
    from retap.runid import resolve_run

    path = Registry().find(task).__retap__.import_path
    the_store = open_cli_store(ctx, store, create=False)
    if run is not None:
        run = resolve_run(the_store, run)
    count = the_store.forget(path, run)
    echo_err(f"forgot {count} remembered result(s) of {task}")
