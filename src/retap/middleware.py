"""Middleware: hooks around every dispatch. Each hook is a no-op by default, and a hook
that raises is logged, never fatal to the run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retap.app import App
    from retap.dispatch import Dispatch, Outcome

__all__ = ["Middleware", "call_hooks"]

class Middleware:
    """Subclass and override the hooks you need."""

    def before_run(self, app: App) -> None:
        """The run is about to start (or continue)."""

    def before_dispatch(self, app: App, dispatch: Dispatch) -> None:
        """``dispatch`` is about to execute (not called for results taken from the cache)."""

    def after_dispatch(self, app: App, dispatch: Dispatch, outcome: Outcome) -> None:
        """``dispatch`` executed or was answered from the cache; not yet committed."""

    def after_commit(self, app: App, dispatch: Dispatch, outcome: Outcome) -> None:
        """The outcome of ``dispatch`` is recorded and its results passed on."""

    def after_run(self, app: App, status: str) -> None:
        """The loop ended with ``status``: done, failed or interrupted."""


def call_hooks(middleware: list[Middleware], hook: str, *args: Any) -> None:
    """Call ``hook`` on each middleware, logging (not raising) what fails."""
    for mw in middleware:
        try:
            getattr(mw, hook)(*args)
        except Exception:
            import logging  # only now: a run that logs nothing starts without it

            logging.getLogger("retap").exception("middleware %s.%s failed",
                                                 type(mw).__name__, hook)
