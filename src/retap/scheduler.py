"""The scheduler: a run's pending dispatches, in the order they are to run, and which of
them are running, parked after a failure, or answerable from the store.

The queue's head runs first: targets of a depth-first join are put at the head (they run
next, as a nested call would), targets of a ``q`` join at the tail. Up to ``jobs``
dispatches run at once, taken from the head, never more of one task than its
``max_parallel``. A dispatch the store has as done (a replay, or a resume whose saved
queue names one) is never run: it is answered from the store, in the order the store
recorded those dispatches (their ``seq``), before anything is run, so joins see recorded
results in the order they first arrived, whatever order workers finished in. One it has
as done but must run again (``replay --from``) is remembered with its ``seq`` too: what
was recorded after it is answered, and a gate the recorded run drained after it is
released, only once it has run.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable, Iterable

from retap.dispatch import Dispatch
from retap.store.base import Recorded

__all__ = ["Scheduler"]


class Scheduler:
    """Pending dispatches (queued, parked, running) and those the store can answer."""

    def __init__(self, limit: Callable[[Dispatch], tuple[object, int | None]]) -> None:
        self.queue: deque[Dispatch] = deque()
        self.queued: set[str] = set()  # every pending id: queued, parked or running
        self.parked: list[Dispatch] = []  # failed here, pending for a later resume
        self.running: dict[str, Dispatch] = {}
        self.limit = limit  # a dispatch's task, and how many of it may run at once
        self._per_task: Counter[object] = Counter()
        self._answers: list[tuple[int, int, Dispatch]] = []  # a heap by recorded seq
        self._answerable: set[str] = set()
        self._reruns: list[tuple[int, str]] = []  # a heap of recorded done to run again
        self._parked_ids: set[str] = set()
        self._held: dict[str, str] = {}  # dispatch -> memo key another dispatch is computing
        self.cache: Recorded | None = None
        self.must_run: Callable[[Dispatch], bool] = lambda d: False

    # -- what is pending --------------------------------------------------------------------

    def load(self, dispatches: Iterable[Dispatch], cache: Recorded | None) -> None:
        """Start from a saved queue, with the store's answers for done dispatches."""
        self.queue = deque(dispatches)
        self.queued = {d.id for d in self.queue}
        self.cache = cache
        for d in self.queue:
            self._note(d)

    def fresh(self, dispatches: Iterable[Dispatch], seen: set[str]) -> list[Dispatch]:
        """Drop dispatches already pending (or already passed on here): no id twice."""
        fresh = []
        for d in dispatches:
            if d.id not in self.queued and d.id not in seen:
                seen.add(d.id)
                fresh.append(d)
        return fresh

    def add(self, front: list[Dispatch], back: list[Dispatch]) -> None:
        """``front`` to the head in order (they run next), ``back`` to the tail."""
        queued = self.queued
        if front:
            self.queue.extendleft(reversed(front))
            for d in front:
                queued.add(d.id)
        if back:
            self.queue.extend(back)
            for d in back:
                queued.add(d.id)
        if self.cache is not None:  # only a resume or replay has answers to note
            for d in (*front, *back):
                self._note(d)

    def remove(self, d: Dispatch) -> None:
        """``d`` is done: it leaves the queue."""
        self._out_of_queue(d)
        self.queued.discard(d.id)

    def park(self, d: Dispatch) -> None:
        """``d`` failed: out of the way, still pending (it is saved first for a resume)."""
        self._out_of_queue(d)
        self.parked.append(d)
        self._parked_ids.add(d.id)

    def pending(self) -> list[Dispatch]:
        """What a resume must still do, failed dispatches first."""
        return [*self.parked, *self.queue]

    @property
    def waiting(self) -> bool:
        """Something in the queue is not running yet."""
        return len(self.queue) > len(self.running)

    def _out_of_queue(self, d: Dispatch) -> None:
        if self.queue and self.queue[0] is d:
            self.queue.popleft()
        else:
            self.queue.remove(d)

    # -- answers from the store -------------------------------------------------------------

    def _note(self, d: Dispatch) -> None:
        if self.cache is None:
            return
        seq = self.cache.seq(d.id)
        if seq is None:
            return
        if self.must_run(d):
            heapq.heappush(self._reruns, (seq, d.id))
        else:
            heapq.heappush(self._answers, (seq, len(self._answerable), d))
            self._answerable.add(d.id)

    def first_rerun(self) -> int | None:
        """The lowest recorded ``seq`` of a dispatch queued or running that the store has
        as done but must run again, if any."""
        while self._reruns:
            seq, ident = self._reruns[0]
            if ident in self.queued and ident not in self._parked_ids:
                return seq
            heapq.heappop(self._reruns)
        return None

    def next_answer(self) -> Dispatch | None:
        """The pending dispatch the store answers that was recorded first, if any."""
        d = self.peek_answer()
        if d is not None:
            heapq.heappop(self._answers)
            self._answerable.discard(d.id)
        return d

    def peek_answer(self) -> Dispatch | None:
        """The dispatch ``next_answer`` would give, left where it is (answers no longer
        pending are dropped on the way). None while a dispatch to run again that was
        recorded before it is pending: it runs first, as it came first."""
        while self._answers:
            seq, _, d = self._answers[0]
            if d.id in self.queued and d.id not in self.running:
                if self._reruns:
                    rerun = self.first_rerun()
                    if rerun is not None and rerun < seq:
                        return None
                return d
            heapq.heappop(self._answers)
            self._answerable.discard(d.id)
        return None

    @property
    def answerable(self) -> bool:
        return bool(self._answers)

    # -- what runs --------------------------------------------------------------------------

    def next_runnable(self, jobs: int) -> Dispatch | None:
        """The first queued dispatch that may start now, within ``jobs`` and each task's
        ``max_parallel``; None when none may."""
        if len(self.running) >= jobs or not self.queue:
            return None
        head = self.queue[0]
        if jobs == 1 and head.id not in self._answerable and head.id not in self._held:
            return head  # one at a time: the head, whatever its task's max_parallel
        for d in self.queue:
            if d.id in self.running or d.id in self._answerable or d.id in self._held:
                continue
            task, most = self.limit(d)
            if most is None or self._per_task[task] < most:
                return d
        return None

    def hold(self, d: Dispatch, key: str) -> None:
        """Keep ``d`` back until the dispatch computing the same memo key has finished: then
        its result may stand in for ``d``."""
        self._held[d.id] = key

    def release(self, key: str) -> None:
        """The dispatch computing ``key`` finished: what waited on it may start."""
        for dispatch in [i for i, k in self._held.items() if k == key]:
            del self._held[dispatch]

    def start(self, d: Dispatch) -> None:
        self.running[d.id] = d
        self._per_task[self.limit(d)[0]] += 1

    def stop(self, d: Dispatch) -> None:
        """``d`` no longer runs (finished, failed or given up)."""
        if self.running.pop(d.id, None) is not None:
            self._per_task[self.limit(d)[0]] -= 1
