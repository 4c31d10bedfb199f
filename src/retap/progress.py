"""A live progress line for runs on a terminal: done, reused, failed, and what is running.

Drawn on stderr with rich, only when stderr is a terminal; task output keeps stdout.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from retap.middleware import Middleware

if TYPE_CHECKING:
    from retap.app import App
    from retap.dispatch import Dispatch, Outcome

__all__ = ["Progress", "wanted"]


def wanted(quiet: bool) -> bool:
    """A progress line only for a person watching a terminal."""
    return not quiet and sys.stderr.isatty()


class Progress(Middleware):
    """Counts dispatches by outcome and shows the one running, refreshed a few times a second."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.counts = {"done": 0, "reused": 0, "cached": 0, "failed": 0}
        self.running = ""
        self.started = time.monotonic()
        self.live: Live | None = None

    def before_run(self, app: App) -> None:
        self.started = time.monotonic()
        self.live = Live(self, console=self.console, refresh_per_second=8, transient=True,
                         redirect_stdout=sys.stdout.isatty(), redirect_stderr=False)
        self.live.start()

    def before_dispatch(self, app: App, dispatch: Dispatch) -> None:
        self.running = f"node {dispatch.node} ({app.workflow.nodes[dispatch.node].name})"

    def after_commit(self, app: App, dispatch: Dispatch, outcome: Outcome) -> None:
        if outcome.status == "failed":
            self.counts["failed"] += 1
        elif outcome.cached:
            self.counts["cached"] += 1
        elif outcome.reused:
            self.counts["reused"] += 1
        elif outcome.status == "done":
            self.counts["done"] += 1
        self.running = ""

    def after_run(self, app: App, status: str) -> None:
        if self.live is not None:
            self.live.stop()

    def __rich__(self) -> Any:
        parts = [f"{n} {k}" for k, n in self.counts.items() if n or k == "done"]
        line = Text(f"retap: {' · '.join(parts)} · {time.monotonic() - self.started:.0f}s",
                    style="bold")
        if self.running:
            line.append(f" · running {self.running}", style="cyan")
        return line
