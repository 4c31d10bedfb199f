"""The App: a queue of dispatches and the loop that runs them, one commit per dispatch.

Every dispatch passes through ``_step``: look it up in the replay cache or execute
it, let the joins it feeds compute what goes on, then commit the record, the
join-state changes and the queue changes together before anything downstream runs.
Targets of a depth-first join go to the head of the queue (they run next, as a nested
call would); targets of a ``q`` join go to its tail.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from retap import faults, journal
from retap.dispatch import Dispatch, NodeId, Outcome, lead_dispatch_id
from retap.errors import CodecError, Interrupted, JoinError, error_record
from retap.files import digest_file, settle_journals
from retap.joins import JoinState
from retap.memo import Decision, Memoizer, memoized
from retap.middleware import Middleware, call_hooks
from retap.result import RunResult
from retap.runid import check_run_id, new_run_id
from retap.signals import StopOnSignals
from retap.store.base import (
    DispatchRecord,
    Effects,
    MemoEntry,
    Owner,
    RunLog,
    Store,
)
from retap.store.memory import MemoryStore
from retap.taskdef import Task
from retap.workflow import Workflow

__all__ = ["READY", "RUN", "STOP", "TERMINATE", "App", "RunResult", "new_run_id"]

READY, RUN, STOP, TERMINATE = 0, 1, 2, 3
STATE_NAMES = {READY: "READY", RUN: "RUN", STOP: "STOP", TERMINATE: "TERMINATE"}
_MISS = object()


class App:
    """Runs a workflow, recording every dispatch in ``store`` (in memory by default)."""

    def __init__(self, workflow: Workflow, store: Store | None = None, *,
                 run_id: str | None = None, middleware: Iterable[Middleware] = (),
                 on_error: str = "stop", notify: Callable[[str], None] | None = None,
                 memo: Store | None = None, explain: Callable[[str], None] | None = None,
                 dry_run: bool = False) -> None:
        if on_error not in ("stop", "continue"):
            raise ValueError(f"on_error must be 'stop' or 'continue', not {on_error!r}")
        self.workflow = workflow
        self.store = store if store is not None else MemoryStore()
        self.run_id = check_run_id(run_id) if run_id is not None else new_run_id()
        self.middleware = list(middleware)
        self.on_error = on_error
        self.notify = notify or _to_stderr
        self.state = READY
        self.stop_signal: str | None = None
        self.queue: deque[Dispatch] = deque()
        self.queued: set[str] = set()
        self.parked: list[Dispatch] = []  # failed here, still pending (on_error="continue")
        self.states: dict[NodeId, JoinState] = {
            j.id: s for j in workflow.joins if (s := j.new_state()) is not None}
        self.log: RunLog | None = None
        self.cache: Mapping[str, Any] | None = None
        self.rerun_nodes: set[NodeId] = set()
        self.halt_before_execute = False
        self.failures: list[tuple[Dispatch, Outcome]] = []
        self.memoizer = Memoizer(memo or self.store, remember=not dry_run)
        self.explain = explain
        self.dry_run = dry_run
        self.would_run: list[tuple[Dispatch, str]] = []
        self.waits_on: dict[NodeId, str] = {}  # dry run: nodes that wait on one that runs
        self.executed = 0
        self.cached_hits = 0
        self.reused = 0
        self._fresh: set[str] = set()
        self._dirty = False
        self._unsynced: list[str] = []  # journals to drop once their records are durable
        self.in_task = False  # a task's code is running (a second signal may abort it)
        self.current: Dispatch | None = None  # the dispatch whose task is running
        self._joins_from = workflow.joins_from()
        self._gates = [j for j in workflow.joins if j.kind == "gate"]
        for node in workflow.nodes.values():
            node.task._app = self

    # -- control --------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.state in (STOP, TERMINATE)

    def stop(self, signal_name: str | None = None) -> None:
        """Finish the current dispatch, then stop; the queue is kept for resume."""
        if signal_name and self.stop_signal is None:
            self.stop_signal = signal_name
        if self.state == RUN:
            self.state = STOP

    def terminate(self) -> None:
        """Stop at the next checkpoint inside the running task (``check_terminate``)."""
        self.state = TERMINATE

    def info(self) -> str:
        return f"state: {self.state} ({STATE_NAMES[self.state]}) queue: {len(self.queue)}"

    # -- running --------------------------------------------------------------------------

    def attach(self, log: RunLog, queue: Iterable[Dispatch] = (),
               states: Mapping[NodeId, JoinState] | None = None,
               cache: Mapping[str, Any] | None = None) -> None:
        """Continue a claimed run: its log, its saved queue and join states (resume), and
        the store's answers for dispatches already done (``cache``: never run them)."""
        self.log = log
        self.run_id = log.run
        self.queue = deque(queue)
        self.queued = {d.id for d in self.queue}
        self.cache = cache
        if states is not None:
            self.states.update(states)

    def run(self) -> RunResult:
        """Run until the queue drains, a task fails (on_error=stop) or a stop is asked."""
        if self.state != READY:
            raise RuntimeError(f"the app is not ready ({self.info()})")
        if self.log is None:
            self._start()
        if not self.dry_run:
            for note in settle_journals(self.store, self.run_id):
                self.notify(note)
        self.state = RUN
        call_hooks(self.middleware, "before_run", self)
        try:
            with StopOnSignals(self):
                self._loop()
        except BaseException:
            self._abandon()
            raise
        finally:
            self.state = READY
        status = self._status()
        if self._dirty:
            self._save_state()
        assert self.log is not None
        self.log.finish(status)
        self._drop_journals(synced=True)
        call_hooks(self.middleware, "after_run", self, status)
        failures = [(d.node, self.workflow.nodes[d.node].name, o.error or {})
                    for d, o in self.failures]
        return RunResult(self.run_id, status, self.store, self.stop_signal,
                         self.executed - self.reused, self.cached_hits, self.reused, failures)

    def _loop(self) -> None:
        while self.state == RUN:
            if self.queue:
                self._step(self.queue[0])
            elif not self._drain_gates():
                break

    def _abandon(self) -> None:
        """The loop broke on an unexpected error: leave the run interrupted if we still can,
        or as it was when nothing was executed here (a resume refused on reading the store)."""
        try:
            assert self.log is not None
            untouched = self.executed == 0 and self.log.previous != "running"
            self.log.finish(self.log.previous if untouched else "interrupted")
        except Exception:
            pass  # the store itself may be what failed; the run then reads as interrupted

    def _start(self) -> None:
        spec = self.workflow.spec(strict=self.store.durable)
        leads = self._leads()
        self.log = self.store.create_run(self.run_id, spec, Owner.current(), self.workflow,
                                         leads)
        self._apply(Effects(back=leads))

    def _leads(self) -> list[Dispatch]:
        leads = [Dispatch(lead_dispatch_id(node, k), node, inputs)
                 for node, k, inputs in self.workflow.leads()]
        return self._new(leads, set())

    def enqueue_leads_for_replay(self) -> None:
        """Queue every lead dispatch in memory; the store sees them with the rebuilt state."""
        self._dirty = True
        self._apply(Effects(back=self._leads()))

    def _status(self) -> str:
        """``done`` only when nothing is failed, queued or in flight."""
        if self.stop_signal:
            return "interrupted"
        if self.failures or self.parked:
            return "failed"
        return "interrupted" if self.queue else "done"

    def _step(self, d: Dispatch) -> None:
        node = self.workflow.nodes[d.node]
        outcome = self._lookup(d)
        decision = None
        if self.dry_run and d.node in self.waits_on:
            self._skip_dry(d, None, f"after node {self.waits_on[d.node]} runs")
            return
        if outcome is None:
            decision = self._decide(node.task, d)
            if decision is not None and decision.hit is not None:
                outcome = self._reuse(decision.hit)
            elif self.dry_run:
                self._skip_dry(d, decision, decision.reason if decision else
                               "runs every time (not cached)")
                return
        if outcome is None:
            if self.halt_before_execute:
                self.state = STOP
                return
            if self._dirty:
                self._save_state()
            if faults.armed:
                faults.hit("before_dispatch")
            outcome = self._execute(node.task, d, decision)
            if faults.armed:
                faults.hit("after_execute")
        call_hooks(self.middleware, "after_dispatch", self, d, outcome)
        returned = outcome.status == "done" and not outcome.cached and outcome.reused is None
        if self._dirty and not outcome.cached:
            self._save_state()  # the state before ``d``: its own changes go with its record
        effects = Effects()
        if outcome.status == "done":
            try:
                effects = self._pass_on(d, outcome.value)
            except JoinError as exc:  # recorded as a failure of the dispatch that fed it
                outcome = Outcome("failed", error=error_record(exc), attempts=outcome.attempts,
                                  started=outcome.started, finished=outcome.finished)
        outcome = self._commit(node.task, d, outcome, effects)
        if returned and node.task.journaled:
            self._settle_journal(d, outcome.status == "done")
        call_hooks(self.middleware, "after_commit", self, d, outcome)

    def _lookup(self, d: Dispatch) -> Outcome | None:
        """The recorded result of ``d`` when replaying and it is done, else None."""
        if self.cache is None:
            return None
        if self.rerun_nodes and (d.node in self.rerun_nodes
                                 or any(s in self._fresh for s in d.sources)):
            return None
        value = self.cache.get(d.id, _MISS)
        if value is _MISS:
            return None
        return Outcome("done", value, attempts=0, cached=True)

    def _decide(self, task: Task, d: Dispatch) -> Decision | None:
        """For a memoized task: whether an earlier result stands in for running ``d``."""
        if not memoized(task):
            return None
        decision = self.memoizer.decide(task, d)
        if self.explain is not None:
            verb = "skip" if decision.hit is not None else "run "
            self.explain(f"{verb} {self._describe(d)}: {decision.reason}")
        return decision

    def _reuse(self, hit: MemoEntry) -> Outcome:
        return Outcome("done", hit.value, attempts=0, started=time.time(),
                       finished=time.time(), reused=f"{hit.run}/{hit.dispatch}",
                       outputs=hit.outputs or None)

    def _skip_dry(self, d: Dispatch, decision: Decision | None, reason: str) -> None:
        """Dry run: note that ``d`` would run and pass nothing on, its result being unknown;
        everything downstream of it would then run too (a join may have waited for it)."""
        if decision is None and self.explain is not None:
            waits = d.node in self.waits_on  # its inputs are not all known: do not show them
            self.explain(f"run  {self._describe(d, inputs=not waits)}: {reason}")
        self.would_run.append((d, reason))
        for node in self.workflow.downstream([d.node]):
            self.waits_on.setdefault(node, f"{d.node} ({self.workflow.nodes[d.node].name})")
        self.queue.popleft()
        self.queued.discard(d.id)

    def _describe(self, d: Dispatch, inputs: bool = True) -> str:
        node = self.workflow.nodes[d.node]
        shown = " ".join(_short(v) for v in d.inputs) if inputs else ""
        return f"node {d.node} ({node.name})" + (f" {shown}" if shown else "")

    def _execute(self, task: Task, d: Dispatch, decision: Decision | None = None) -> Outcome:
        info = type(task).__retap__
        assert self.log is not None
        call_hooks(self.middleware, "before_dispatch", self, d)
        if not task.idempotent:
            self.log.mark_running(d, info.name, info.code_version)
        else:
            self.log.flush_if_due()
        started, attempts = time.time(), 0
        while True:
            attempts += 1
            try:
                value = self._call(task, d)
            except Interrupted as exc:
                return Outcome("interrupted", error=error_record(exc), attempts=attempts,
                               started=started, finished=time.time())
            except BaseException as exc:  # SystemExit too: a task's exit fails its dispatch
                if attempts <= task.retries and not self.stopping:
                    self._backoff(task.retry_delay * 2 ** (attempts - 1))
                    continue
                return Outcome("failed", error=error_record(exc), attempts=attempts,
                               started=started, finished=time.time())
            outputs = task.written_files()
            memo = decision.remember(task, value, outputs) if decision is not None else None
            return Outcome("done", value, attempts=attempts, started=started,
                           finished=time.time(), outputs=outputs or None, memo=memo)

    def _call(self, task: Task, d: Dispatch) -> Any:
        self.in_task = True
        self.current = d
        try:
            return task.execute(*d.inputs)
        except KeyboardInterrupt:
            raise Interrupted("SIGINT") from None
        finally:
            self.in_task = False
            self.current = None

    def _backoff(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))

    def _pass_on(self, d: Dispatch, value: Any) -> Effects:
        """Feed ``value`` to every join ``d``'s node is a source of; collect what goes on."""
        effects = Effects(removed=d)
        touched: list[tuple[NodeId, JoinState]] = []
        seen: set[str] = set()
        try:
            for join, slot in self._joins_from.get(d.node, ()):
                state = self.states.get(join.id)
                if state is not None:
                    touched.append((join.id, state))
                out = effects.back if join.enq else effects.front
                out.extend(self._new(join.receive(state, slot, d.id, value), seen))
        except JoinError:
            for _, state in touched:
                state.undo(state.changes)
                state.changes.clear()
            raise
        for join_id, state in touched:
            effects.joins.extend((join_id, change) for change in state.changes)
            state.changes.clear()
        return effects

    def _new(self, dispatches: Iterable[Dispatch], seen: set[str]) -> list[Dispatch]:
        """Drop dispatches already queued (or already passed on here): no id is queued twice."""
        fresh = []
        for x in dispatches:
            if x.id not in self.queued and x.id not in seen:
                seen.add(x.id)
                fresh.append(x)
        return fresh

    def _commit(self, task: Task, d: Dispatch, outcome: Outcome, effects: Effects) -> Outcome:
        """Record ``d``'s outcome and apply its effects; returns the outcome as recorded."""
        if outcome.cached:
            self.cached_hits += 1
            self._dirty = True  # the state is saved whole before the next real write
        else:
            outcome, effects = self._record(task, d, outcome, effects)
            if outcome.reused is not None:
                self.reused += 1
            if faults.armed:
                faults.hit("after_commit")
        if outcome.status == "done":
            self.queue.popleft()
            self.queued.discard(d.id)
            self._apply(effects)
        elif outcome.status == "failed":
            self.queue.popleft()
            self.parked.append(d)
            self.failures.append((d, outcome))
            if self.on_error == "stop":
                self.state = STOP
        else:
            self.stop(self.stop_signal or "SIGINT")
        return outcome

    def _record(self, task: Task, d: Dispatch, outcome: Outcome,
                effects: Effects) -> tuple[Outcome, Effects]:
        """Commit ``d``'s record with its effects; a result the store cannot encode fails it."""
        assert self.log is not None
        self.executed += 1
        if self.rerun_nodes:
            self._fresh.add(d.id)
        info = type(task).__retap__
        try:
            self.log.commit_dispatch(self._as_record(info.name, info.code_version, d, outcome),
                                     effects)
        except CodecError as exc:
            self._undo(effects)
            error = {"type": "CodecError", "traceback": "",
                     "message": f"task {info.name} returned a value the store cannot keep: "
                                f"{exc.message}"}
            outcome = Outcome("failed", error=error, attempts=outcome.attempts,
                              started=outcome.started, finished=outcome.finished)
            effects = Effects()
            self.log.commit_dispatch(self._as_record(info.name, info.code_version, d, outcome),
                                     effects)
        return outcome, effects

    @staticmethod
    def _as_record(task: str, version: str, d: Dispatch, outcome: Outcome) -> DispatchRecord:
        return DispatchRecord(d.id, d.node, task, d.sources, outcome.status, outcome.value,
                              outcome.error, outcome.attempts, outcome.started, outcome.finished,
                              version, d.inputs, d.ref, outcome.reused, outcome.outputs,
                              outcome.memo)

    def _undo(self, effects: Effects) -> None:
        """Take back the join-state changes of effects that could not be committed."""
        for join_id, change in reversed(effects.joins):
            self.states[join_id].undo([change])

    def _apply(self, effects: Effects) -> None:
        if effects.front:
            self.queue.extendleft(reversed(effects.front))
            self.queued.update(x.id for x in effects.front)
        if effects.back:
            self.queue.extend(effects.back)
            self.queued.update(x.id for x in effects.back)

    def _commit_effects(self, effects: Effects) -> None:
        assert self.log is not None
        if not self._dirty:  # when replaying from the cache, the whole state is saved later
            self.log.commit_effects(effects)
        self._apply(effects)

    def _drain_gates(self) -> bool:
        """The queue is dry: release the first gate holding results. False when none does."""
        seen: set[str] = set()
        for gate in self._gates:
            state = self.states[gate.id]
            released = self._new(gate.drain(state), seen)
            if state.changes:
                joins = [(gate.id, change) for change in state.changes]
                state.changes.clear()
                effects = Effects(joins=joins)
                (effects.back if gate.enq else effects.front).extend(released)
                self._commit_effects(effects)
                return True
        return False

    def _save_state(self) -> None:
        """Replace the stored queue and join states with these; failed dispatches stay
        queued (first) for a later resume."""
        assert self.log is not None
        self.log.save_state([*self.parked, *self.queue], self.states)
        self._dirty = False

    # -- file journals ------------------------------------------------------------------------

    def _settle_journal(self, d: Dispatch, done: bool) -> None:
        """A file task's dispatch is recorded: its journal goes once the record is durable;
        a dispatch recorded as failed after its task returned has its changes undone now."""
        if done:
            self._unsynced.append(d.id)
            self._drop_journals()
        else:
            journal.undo(self.run_id, d.id, self.keeps_file)

    def _drop_journals(self, synced: bool = False) -> None:
        assert self.log is not None
        if self._unsynced and (synced or self.log.synced()):
            for dispatch in self._unsynced:
                journal.drop(self.run_id, dispatch)
            self._unsynced.clear()

    def keeps_file(self, path: str) -> bool:
        """True when ``path`` holds the recorded output of a committed dispatch: a roll-back
        leaves such a file alone."""
        return self.store.recorded_output(os.path.abspath(path), digest_file(path))


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _to_stderr(message: str) -> None:
    print(f"retap: {message}", file=sys.stderr, flush=True)

