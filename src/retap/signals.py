"""Stopping a run on SIGINT and SIGTERM.

The first signal asks the App to stop after the dispatch it is running (a task can see
``stopping`` and end early); a second one, arriving while a task runs, aborts that task.
A signal arriving during a commit only marks the stop: the commit finishes first.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from retap.errors import Interrupted

if TYPE_CHECKING:
    from retap.app import App

__all__ = ["StopOnSignals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignals:
    """A context in which SIGINT and SIGTERM stop ``app`` (handlers only on the main thread)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        app = self.app
        name = signal.Signals(signum).name
        first = app.stop_signal is None
        app.stop(name)
        if first:
            app.notify(f"{name}: stopping after the current dispatch "
                       "(send it again to abort the dispatch)")
        elif app.in_task:
            raise Interrupted(name)
        else:
            app.abort()  # dispatches running elsewhere are stopped by the loop
