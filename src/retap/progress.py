"""Progress of a run on stderr: done, reused, failed, what is running, and how many of the
dispatches known so far have finished (a workflow's total grows as joins pass results on,
so the total is what is known, not a forecast).

On a terminal it is a live line drawn with rich. Elsewhere (stderr in a file, a CI log) it
is a plain line when something has finished since the last one, at most every
``$RETAP_PROGRESS_SECONDS`` (10 s): never silent for long, never a line per dispatch.
Task output keeps stdout.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

from retap.middleware import Middleware

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from retap.app import App
    from retap.dispatch import Dispatch, Outcome

__all__ = ["Progress", "ProgressLines", "progress_for"]

INTERVAL_ENV = "RETAP_PROGRESS_SECONDS"


def progress_for(quiet: bool) -> list[Middleware]:
    """How a run shows its progress: a live line on a terminal, plain lines elsewhere,
    nothing with ``-q``."""
    if quiet:
        return []
    return [Progress() if sys.stderr.isatty() else ProgressLines()]


class Progress(Middleware):
    """Counts dispatches by outcome and shows the one running, refreshed a few times a second."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console  # made when the line is first drawn (rich loads only then)
        self.counts = {"done": 0, "reused": 0, "cached": 0, "failed": 0}
        self.running: dict[str, str] = {}  # dispatch id -> what it is, in start order
        self.pending = 0  # queued or running, as of the last commit
        self.started = time.monotonic()
        self.live: Live | None = None

    def before_run(self, app: App) -> None:
        from rich.console import Console
        from rich.live import Live

        self.started = time.monotonic()
        self.pending = len(app.queue)
        self.console = self.console or Console(stderr=True)
        self.live = Live(self, console=self.console, refresh_per_second=8, transient=True,
                         redirect_stdout=sys.stdout.isatty(), redirect_stderr=False)
        self.live.start()

    def before_dispatch(self, app: App, dispatch: Dispatch) -> None:
        name = app.workflow.nodes[dispatch.node].name
        self.running[dispatch.id] = f"node {dispatch.node} ({name})"
        self.pending = len(app.queue)

    def after_commit(self, app: App, dispatch: Dispatch, outcome: Outcome) -> None:
        if outcome.status == "failed":
            self.counts["failed"] += 1
        elif outcome.cached:
            self.counts["cached"] += 1
        elif outcome.reused:
            self.counts["reused"] += 1
        elif outcome.status == "done":
            self.counts["done"] += 1
        self.running.pop(dispatch.id, None)
        self.pending = len(app.queue)

    def after_run(self, app: App, status: str) -> None:
        if self.live is not None:
            self.live.stop()

    def line(self) -> str:
        """The progress line as plain text."""
        finished = sum(self.counts.values())
        parts = [f"{n} {k}" for k, n in self.counts.items() if n or k == "done"]
        parts.append(f"{finished}/{finished + max(self.pending, len(self.running))}")
        parts.append(f"{time.monotonic() - self.started:.0f}s")
        line = f"retap: {' · '.join(parts)}"
        if self.running:
            shown = list(self.running.values())
            more = f" +{len(shown) - 3}" if len(shown) > 3 else ""
            line += f" · {len(shown)} running: {', '.join(shown[:3])}{more}"
        return line

    def __rich__(self) -> Any:
        from rich.text import Text

        return Text(self.line(), style="bold")


class ProgressLines(Progress):
    """The progress line printed plainly, when a dispatch has finished since the last one,
    at most every ``interval`` seconds (``$RETAP_PROGRESS_SECONDS``, else 10)."""

    def __init__(self, interval: float | None = None) -> None:
        super().__init__()
        self.interval = interval if interval is not None else _interval()
        self.shown_at = 0.0
        self.shown: str | None = None  # the counts last shown

    def before_run(self, app: App) -> None:
        self.started = self.shown_at = time.monotonic()
        self.pending = len(app.queue)

    def after_commit(self, app: App, dispatch: Dispatch, outcome: Outcome) -> None:
        super().after_commit(app, dispatch, outcome)
        now = time.monotonic()
        counts = repr(self.counts)
        if now - self.shown_at >= self.interval and counts != self.shown:
            self.shown_at, self.shown = now, counts
            print(self.line(), file=sys.stderr, flush=True)

    def after_run(self, app: App, status: str) -> None:
        pass


def _interval() -> float:
    try:
        seconds = float(os.environ.get(INTERVAL_ENV, "10"))
    except ValueError:
        return 10.0
    return seconds if seconds >= 0 else 10.0
