"""The command group, its shared ``--store`` option, and how errors leave the process."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import click

from retap import __version__
from retap.errors import RetapError, UsageError
from retap.store import DEFAULT_STORE, open_existing, open_store

if TYPE_CHECKING:
    from retap.store.base import Store

__all__ = ["echo_err", "main", "open_cli_store", "running_options", "store_option"]

F = Callable[..., Any]


INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug in retap, not a mistake of the user's


# Each subcommand's module, imported when the subcommand is asked for: a command pays for
# what it uses, not for every other command's imports.
COMMANDS = {"audit": "cmd_inspect", "check": "cmd_inspect", "export": "cmd_store",
            "forget": "cmd_recover", "graph": "cmd_graph", "import": "cmd_store",
            "list": "cmd_list", "logs": "cmd_logs", "prune": "cmd_store", "replay": "cmd_recover",
            "resume": "cmd_recover", "run": "cmd_run", "runs": "cmd_inspect",
            "schema": "cmd_schema", "show": "cmd_inspect", "store": "cmd_store", "ui": "cmd_ui"}


class _Group(click.Group):
    """Turns a RetapError into one line on stderr and its exit code: no traceback. Anything
    else is a bug: one line too (the traceback with ``RETAP_DEBUG=1``), exit 70."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"retap.cli.{COMMANDS[name]}")  # it registers itself
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in COMMANDS:  # a typo: every command, for click's suggestion
            for module in sorted(set(COMMANDS.values())):
                importlib.import_module(f"retap.cli.{module}")
        return super().resolve_command(ctx, args)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:  # before any command: `retap --nope`
            _refuse(exc)
            sys.exit(exc.exit_code)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RetapError as exc:
            echo_err(f"error: {_one_line(exc.message)}")
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:  # a bad option or argument: one line, not three
            sub = ctx.invoked_subcommand
            if exc.ctx is None and sub:  # click names no command for a missing option value
                exc.ctx = click.Context(self.get_command(ctx, sub) or self, info_name=sub,
                                        parent=ctx)
            _refuse(exc)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("RETAP_DEBUG"):
                raise
            echo_err(f"internal error: {type(exc).__name__}: {_one_line(str(exc))} (a bug in "
                     "retap; RETAP_DEBUG=1 shows the traceback)")
            ctx.exit(INTERNAL_ERROR)


# click >= 8.2 raises this for a group given no command (`retap`, `retap store`); 8.1 printed
# the help itself
_NO_ARGS: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _refuse(exc: click.UsageError) -> None:
    """A usage error on stderr: the help as click writes it when a group was given no
    command, else one line."""
    if isinstance(exc, _NO_ARGS):
        exc.show()
    else:
        echo_err(f"error: {usage_line(exc)}")


def usage_line(exc: click.UsageError) -> str:
    """Click's usage error as one line naming the command: ``retap run: no such option
    --dryrun (did you mean --dry-run?)``."""
    message = exc.format_message()
    found = re.match(r"No such option:? '?([^'\s]+)'?\.?(.*)", message, re.S)
    if found:
        hints = re.findall(r"'([^']+)'", found[2]) if "Did you mean" in found[2] else []
        message = f"no such option {found[1]}" + (f" (did you mean {' or '.join(hints)}?)"
                                                  if hints else "")
    elif message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    where = exc.ctx.command_path if exc.ctx is not None else "retap"
    return f"{where}: {_one_line(message)}"


def _one_line(text: str, limit: int = 2000) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def store_option(fn: F) -> F:
    """``--store`` on a subcommand; it also works before the subcommand."""
    return click.option("--store", "store", metavar="PATH_OR_URL", default=None,
                        help=f"the audit store: a SQLite file or postgresql://USER@HOST:PORT/DB "
                             f"(env RETAP_STORE; default {DEFAULT_STORE}; `:memory:` keeps "
                             "nothing)")(fn)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="retap")
@store_option
@click.pass_context
def main(ctx: click.Context, store: str | None) -> None:
    """retap: configurable, file-based tasks and workflows whose runs are recorded,
    recoverable and replayable.

    Wherever a command takes RUN, it may be a run id, `last` (the newest run in the
    store) or a prefix of exactly one run's id."""
    ctx.obj = {"store": store}


def running_options(fn: F) -> F:
    """``-j/--jobs``, ``--executor`` and ``--timeout``: how dispatches run."""
    fn = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
                      metavar="SECONDS", help="stop a dispatch running longer than this "
                      "(processes, dask; a task's own `timeout` wins)")(fn)
    fn = click.option("--executor", metavar="NAME", default=None,
                      help="inline, threads, processes (the default for -j above 1), dask, "
                           "or dask://HOST:PORT for a running scheduler")(fn)
    return click.option("-j", "--jobs", type=click.IntRange(min=1), default=1,
                        show_default=True, help="dispatches to run at once")(fn)


def store_location(ctx: click.Context, store: str | None) -> str:
    """The store named after the subcommand, else before it, else $RETAP_STORE, else default."""
    root = ctx.find_root().obj or {}
    return store or root.get("store") or os.environ.get("RETAP_STORE") or DEFAULT_STORE


def open_cli_store(ctx: click.Context, store: str | None, *, create: bool = True,
                   readonly: bool = False, **options: Any) -> Store:
    """The store the command names. ``create=False`` (commands that only read or continue
    runs): a store file that does not exist yet is read as an empty store, not created.
    ``readonly``: opened for reading only (works where the directory is not writable)."""
    location = store_location(ctx, store)
    if (readonly or not create) and not options:
        folder = os.path.dirname(location) or "."
        if location != DEFAULT_STORE and "://" not in location and location != ":memory:" \
                and not os.path.isdir(folder):
            from retap.errors import StoreError

            # a store named by hand in a folder that is not there is a typo, not a fresh
            # project (which is what the default store's missing folder means)
            raise StoreError(location, f"no such directory: {folder}")
        return open_existing(location, readonly)
    return open_store(location, **options)


@contextlib.contextmanager
def removed_unless_done(location: str) -> Iterator[None]:
    """A store file the command creates at ``location`` is removed again if the command
    fails: a refused copy or import leaves nothing behind."""
    fresh = "://" not in location and location != ":memory:" and not os.path.exists(location)
    try:
        yield
    except BaseException:
        if fresh:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(location + suffix)
        raise


def echo_err(message: str) -> None:
    print(f"retap: {message}", file=sys.stderr, flush=True)


def one_dispatch(ids: Iterable[str], wanted: str, missing: str, what: str = "") -> str:
    """The one id among ``ids`` that ``wanted`` is or begins; a UsageError saying ``missing``
    when there is none, listing them when there are several (``what``: the option, as
    the message begins with it)."""
    found = sorted({i for i in ids if i.startswith(wanted.lower())}) if wanted else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(missing)
    raise UsageError(f"{what}{wanted!r} names {len(found)} dispatches ("
                     f"{', '.join(f[:12] for f in found[:5])}{', ...' if len(found) > 5 else ''}"
                     "); give more of its id")
