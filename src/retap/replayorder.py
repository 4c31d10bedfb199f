"""When the recorded run first had a dispatch, and when it had one done: what a replay
compares to tell whether the recorded run drained a gate before or after a dispatch.

A point is ``(session, commit)``. A done record's point is its commit and the session
that made it. A dispatch whose earlier attempts failed or were lost was first had in the
session of its first attempt, at a commit not recorded: ``(session, 0)``, the start of
that session. Points order as the recorded run went on.
"""

from __future__ import annotations

from retap.store.base import Recorded, Store, session_of, session_starts

__all__ = ["Point", "RecordedOrder"]

Point = tuple[int, int]


class RecordedOrder:
    """The points of a recorded run's dispatches, read from its timeline and kept attempts
    when first asked for (a replay asks only around a retried or re-run dispatch)."""

    def __init__(self, store: Store, run: str, cache: Recorded) -> None:
        self.store, self.run, self.cache = store, run, cache
        self._sessions: list[tuple[int, int]] | None = None
        self._first_tried: dict[str, int] = {}

    def _starts(self) -> list[tuple[int, int]]:
        if self._sessions is None:
            self._sessions = session_starts(self.store.events(self.run))
            self._first_tried = {d: min(a.session for a in tried) for d, tried in
                                 self.store.earlier_attempts(self.run).items() if tried}
        return self._sessions

    def done(self, seq: int) -> Point:
        """The point of the commit numbered ``seq``."""
        return session_of(self._starts(), seq), seq

    def first(self, dispatch: str) -> Point | None:
        """When the recorded run first had ``dispatch``; None when it has no attempt of
        it kept and no done record (it failed, and failed only once)."""
        starts = self._starts()
        tried = self._first_tried.get(dispatch)
        if tried is not None:
            return tried, 0
        seq = self.cache.seq(dispatch)
        return None if seq is None else (session_of(starts, seq), seq)
