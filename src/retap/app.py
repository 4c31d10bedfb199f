"""The App: the loop that runs a workflow, one commit per dispatch.

It ties together a scheduler (what is pending, what runs, what the store can answer), an
executor (where task bodies run: inline, threads, processes or Dask), a recorder (every
write to the store) and, for dry runs, a plan. Each turn of the loop does one thing: answer
a dispatch from the store, start one (or answer it from the memo), or take one completion
and commit it: the record, the join-state changes and the queue changes together, before
its result is passed on. Targets of a depth-first join go to the head of the queue (they
run next, as a nested call would); targets of a ``q`` join go to its tail.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from retap import capture, faults
from retap.collector import fewer_full_collections
from retap.context import TaskContext
from retap.dispatch import Attempt, Dispatch, NodeId, Outcome, lead_dispatch_id
from retap.dryrun import DryPlan
from retap.errors import Interrupted, JoinError, error_record
from retap.executors import Completion, Executor, Job, make_executor
from retap.executors.choose import check_tasks
from retap.executors.inline import InlineExecutor
from retap.executors.work import run_job
from retap.files import absolute_store, settle_journals
from retap.history import session_facts
from retap.joins import JoinState
from retap.memo import Decision, Memoizer, memoized
from retap.middleware import Middleware, call_hooks
from retap.owner import Owner
from retap.recorder import Recorder
from retap.replayorder import Point, RecordedOrder
from retap.result import RunResult
from retap.runid import check_new_run_id, check_run_id, new_run_id
from retap.scheduler import Scheduler
from retap.signals import StopOnSignals
from retap.store.base import Effects, MemoEntry, Recorded, RunLog, Store
from retap.store.memory import MemoryStore
from retap.taskdef import Task
from retap.workflow import Workflow

__all__ = ["READY", "RUN", "STOP", "TERMINATE", "App", "RunResult", "new_run_id"]

READY, RUN, STOP, TERMINATE = 0, 1, 2, 3
STATE_NAMES = {READY: "READY", RUN: "RUN", STOP: "STOP", TERMINATE: "TERMINATE"}
TICK = 0.1  # longest wait for a completion before the loop looks at signals and retries


class App:
    """Runs a workflow, recording every dispatch in ``store`` (in memory by default), with
    up to ``jobs`` dispatches at once on ``executor`` (a name or an Executor)."""

    def __init__(self, workflow: Workflow, store: Store | None = None, *,
                 run_id: str | None = None, middleware: Iterable[Middleware] = (),
                 on_error: str = "stop", notify: Callable[[str], None] | None = None,
                 memo: Store | None = None, explain: Callable[[str], None] | None = None,
                 dry_run: bool = False, jobs: int = 1, executor: str | Executor | None = None,
                 timeout: float | None = None, output_limit: int | None = None) -> None:
        if on_error not in ("stop", "continue"):
            raise ValueError(f"on_error must be 'stop' or 'continue', not {on_error!r}")
        self.workflow = workflow
        self.store = store if store is not None else MemoryStore()
        self.run_id = check_run_id(run_id) if run_id is not None else new_run_id()
        self.middleware = list(middleware)
        self.on_error = on_error
        self.notify = notify or _to_stderr
        self.explain = explain
        self.jobs, self.timeout = jobs, timeout
        # characters of printed and logged output kept per attempt (0: none)
        self.output_limit = capture.output_limit() if output_limit is None else output_limit
        self.state = READY
        self.in_task = False  # a task runs in this very thread: a second signal may abort it
        self.stop_signal: str | None = None
        self.aborting = False  # a second signal: stop what runs, do not wait for it
        self.sched = Scheduler(self._limit)
        self.states: dict[NodeId, JoinState] = {
            j.id: s for j in workflow.joins if (s := j.new_state()) is not None}
        self.log: RunLog | None = None
        self.recorder: Recorder | None = None
        self.cache: Recorded | None = None
        self._rerun: set[NodeId] = set()
        self.force_nodes: set[NodeId] = set()  # run even where the memo has a result
        self.halt_before_execute = False
        self.failures: list[tuple[Dispatch, Outcome]] = []
        self.memoizer = Memoizer(memo or self.store, remember=not dry_run)
        self.plan = DryPlan(workflow, explain) if dry_run else None
        self.cached_hits = 0
        self._fresh: set[str] = set()
        self._dirty = False  # the state changed without a commit: saved whole before one
        self._decisions: dict[str, Decision | None] = {}
        self._computing: dict[str, str] = {}  # memo key -> the dispatch computing it
        self._attempts: dict[str, tuple[int, float]] = {}  # attempts made, first start
        self._retries: list[tuple[float, Dispatch, Completion]] = []  # waiting to run again
        self._earlier: dict[str, list[Attempt]] = {}  # failed attempts made again, by dispatch
        self._owner = Owner.current()
        self._store_at = absolute_store(self.store.location)
        self._is_stopping = lambda: self.stopping
        self._signal_name = lambda: self.stop_signal or "SIGINT"
        self._here = TaskContext(self.run_id, "", self._store_at, self._owner,
                                 self.output_limit, self._is_stopping, self._signal_name)
        self._joins_from = workflow.joins_from()
        self._gates = [j for j in workflow.joins if j.kind == "gate"]
        # what a gate held when it was last tried and not released, whether its batch was
        # recorded, and when the recorded run first had it (see _replayed_drain)
        self._gates_tried: dict[NodeId, tuple[tuple[int, int], bool, Point | None]] = {}
        self._order: RecordedOrder | None = None
        self.executor = self._open_executor(executor)
        self._runs_here = isinstance(self.executor, InlineExecutor)  # -j 1: no queue between

    # -- control --------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.state in (STOP, TERMINATE)

    def stop(self, signal_name: str | None = None) -> None:
        """Start nothing more; what runs finishes and is recorded; the queue is kept."""
        if signal_name and self.stop_signal is None:
            self.stop_signal = signal_name
        if self.state == RUN:
            self.state = STOP

    def terminate(self) -> None:
        """Stop at the next checkpoint inside the running task (``check_terminate``)."""
        self.state = TERMINATE

    def abort(self) -> None:
        """Stop what runs (a second signal): it is recorded interrupted, to run again."""
        self.aborting = True
        self.stop(self.stop_signal or "SIGINT")

    def info(self) -> str:
        return f"state: {self.state} ({STATE_NAMES[self.state]}) queue: {len(self.queue)}"

    @property
    def queue(self) -> deque[Dispatch]:
        """The pending dispatches, head first (running ones included)."""
        return self.sched.queue

    @property
    def executed(self) -> int:
        return self.recorder.executed if self.recorder is not None else 0

    @property
    def rerun_nodes(self) -> set[NodeId]:
        return self._rerun

    @rerun_nodes.setter
    def rerun_nodes(self, nodes: set[NodeId]) -> None:
        """Nodes whose dispatches run again though the store has them (--rerun-changed),
        and so does everything fed by a dispatch that ran again."""
        self._rerun = set(nodes)
        self.sched.must_run = lambda d: d.node in self._rerun or any(
            s in self._fresh for s in d.sources)

    # -- running --------------------------------------------------------------------------

    def attach(self, log: RunLog, queue: Iterable[Dispatch] = (),
               states: Mapping[NodeId, JoinState] | None = None,
               cache: Recorded | None = None) -> None:
        """Continue a claimed run: its log, its saved queue and join states (resume), and
        the store's answers for dispatches already done (``cache``: never run them)."""
        self.log = log
        self.recorder = Recorder(self.store, log)
        self.run_id = self._here.run = log.run
        self.cache = cache
        self._order = None if cache is None else RecordedOrder(self.store, log.run, cache)
        self.sched.load(queue, cache)
        if states is not None:
            self.states.update(states)

    def run(self) -> RunResult:
        """Run until nothing is pending, a task fails (on_error=stop) or a stop is asked."""
        if self.state != READY:
            raise RuntimeError(f"the app is not ready ({self.info()})")
        if self.log is None:
            self._warn_main()
            self._start()
        if self.plan is None:
            for note in settle_journals(self.store, self.run_id):
                self.notify(note)
        self.state = RUN
        call_hooks(self.middleware, "before_run", self)
        try:
            # stdout and stderr stay wrapped for the run: each attempt only marks its thread
            with StopOnSignals(self), capture.capturing(), fewer_full_collections():
                self._loop()
                self._wind_down()
                status = self._close()
        except BaseException:
            self._abandon()
            raise
        finally:
            self.state = READY
            self.executor.close()
        return self._result(status)

    def _warn_main(self) -> None:
        """Tasks defined in the script being run (``__main__``) are found again only by
        running that same script: say so once when the run is kept for later."""
        if not self.store.durable or self.plan is not None:
            return
        found = sorted({n.name for n in self.workflow.nodes.values()
                        if type(n.task).__module__ == "__main__"})
        if found:
            self.notify(f"warning: task(s) {', '.join(found)} are defined in the script being "
                        "run (__main__): resuming or replaying this run needs that same "
                        "script (define them in a module or a retapfile to resume from the CLI)")

    def _open_executor(self, given: str | Executor | None) -> Executor:
        """The executor named (or given), checked against every task of the workflow: a
        task it cannot take is refused here, before anything is recorded."""
        if isinstance(given, Executor):
            executor = given
        elif self.plan is not None:
            executor = make_executor("inline", 1)
        else:
            executor = make_executor(given, self.jobs)
        check_tasks(executor, ((n.id, n.task) for n in self.workflow.nodes.values()))
        timed = sorted({n.name for n in self.workflow.nodes.values() if self._timeout_of(
            n.task) is not None})
        if timed and not executor.kills and self.plan is None:
            self.notify(f"warning: the {executor.name} executor cannot stop a running task: "
                        f"timeouts of {', '.join(timed)} are not enforced (use --executor "
                        "processes or dask)")
        return executor

    def _close(self) -> str:
        """Save what is left and write the run's status (a signal meanwhile counts)."""
        if self._dirty:
            self._save_state()
        status = self._status()
        assert self.recorder is not None and self.log is not None
        if self.stop_signal:
            self.log.event("signal", {"signal": self.stop_signal})
        self.recorder.finish(status)
        return status

    def _result(self, status: str) -> RunResult:
        assert self.recorder is not None
        call_hooks(self.middleware, "after_run", self, status)
        failures = [(d.node, self.workflow.nodes[d.node].name,
                     {**(o.error or {}), "attempts": o.attempts}) for d, o in self.failures]
        return RunResult(self.run_id, status, self.store, self.stop_signal,
                         self.recorder.executed - self.recorder.reused, self.cached_hits,
                         self.recorder.reused, failures)

    def _loop(self) -> None:
        turn = self._turn_here if self._runs_here else self._turn
        while self.state == RUN and turn():
            pass

    def _turn(self) -> bool:
        """One turn with an executor running dispatches elsewhere; False: nothing is left."""
        if self._answer() or self._replayed_drain() or self._retry_due() or self._launch():
            return True
        if self.executor_busy:
            self._collect()
            return True
        return not self.sched.queue and self._drain_gates()

    def _turn_here(self) -> bool:
        """One turn running dispatches in this thread, one at a time (``-j 1``)."""
        if self.cache is not None and (self._answer() or self._replayed_drain()):
            return True
        if self._launch():
            return True
        return not self.sched.queue and self._drain_gates()

    def _wind_down(self) -> None:
        """Stopped: what still runs finishes and is recorded (a second signal: it is
        stopped and recorded interrupted); dispatches waiting to be retried stay failed."""
        for _, d, completion in self._retries:
            self._settle(d, self._outcome(d, completion))
        self._retries.clear()
        while self.executor_busy:
            if self.aborting:
                self._cancel_running()
            else:
                self._collect()

    @property
    def executor_busy(self) -> bool:
        return bool(self._retries) or self.executor.busy > 0

    def _abandon(self) -> None:
        """The loop broke on an unexpected error: leave the run interrupted if we still can,
        or as it was when nothing was executed here (a resume refused on reading the store)."""
        try:
            assert self.log is not None
            untouched = self.executed == 0 and self.log.previous != "running"
            self.log.finish(self.log.previous if untouched else "interrupted")
        except Exception:
            pass  # the store itself may be what failed; the run then reads as interrupted
        finally:
            if self.log is not None:
                self.log.close()

    def _start(self) -> None:
        check_new_run_id(self.run_id)
        spec = self.workflow.spec(strict=self.store.durable)
        leads = self._leads()
        self.log = self.store.create_run(self.run_id, spec, self._owner, self.workflow,
                                         leads)
        self.log.start_session("created", session_facts(self.workflow))
        self.recorder = Recorder(self.store, self.log)
        self.sched.add([], leads)

    def _leads(self) -> list[Dispatch]:
        leads = [Dispatch(lead_dispatch_id(node, k), node, inputs)
                 for node, k, inputs in self.workflow.leads()]
        return self.sched.fresh(leads, set())

    def enqueue_leads_for_replay(self) -> None:
        """Queue every lead dispatch in memory; the store sees them with the rebuilt state."""
        self._dirty = True
        self.sched.add([], self._leads())

    def _status(self) -> str:
        """``done`` only when nothing is failed, queued or in flight."""
        if self.stop_signal:
            return "interrupted"
        if self.failures or self.sched.parked:
            return "failed"
        return "interrupted" if self.sched.queue else "done"

    # -- one turn of the loop -----------------------------------------------------------

    def _answer(self) -> bool:
        """Answer the pending dispatch the store recorded first, if it has one. A gate
        whose batch the recorded run had before that dispatch was done is released first:
        the dispatch may have sat failed while the recorded run drained the gate, or be
        pending early because what made it was answered or run again early (a batch of
        another gate, a dispatch run again with ``--from`` that finished before the
        recorded run's queue ran dry); answered first, it could join the batch."""
        if self._gates and self.cache is not None:
            d = self.sched.peek_answer()
            if d is not None and self._replayed_drain(before=self.cache.seq(d.id)):
                return True
        d = self.sched.next_answer() if self.sched.answerable else None
        if d is None:
            return False
        assert self.cache is not None
        self._settle(d, Outcome("done", self.cache.value(d.id), attempts=0, cached=True))
        return True

    def _launch(self) -> bool:
        """Start the next runnable dispatch, or answer it from the memo (or, in a dry run,
        note that it would run)."""
        d = self.sched.next_runnable(self.jobs)
        if d is None:
            return False
        task = self.workflow.nodes[d.node].task
        if self.plan is not None and (why := self.plan.waiting(d)):
            self.plan.runs(d, why, self._describe(d, inputs=False))
            self.sched.remove(d)
            return True
        decision = self._decide(task, d)
        if decision is not None and decision.hit is not None:
            if self._rerun:
                self._again(d)
            self._settle(d, self._reuse(decision.hit))
        elif self.plan is not None:
            reason = decision.reason if decision else "runs every time (not cached)"
            self.plan.runs(d, reason, None if decision else self._describe(d))
            self.sched.remove(d)
        elif self.halt_before_execute:
            self.state = STOP
            return False
        elif decision is not None and decision.key in self._computing:
            self.sched.hold(d, decision.key)  # the same result is being computed: wait
        elif self._runs_here:
            self._execute_here(d, task, decision)
        else:
            self._submit(d, task, decision)
        return True

    def _about_to_run(self, d: Dispatch, task: Task) -> None:
        """Before ``d``'s first attempt: save a replay's state, and (for a task that is not
        idempotent) record that ``d`` runs."""
        assert self.recorder is not None and self.log is not None
        if self._dirty:
            self._save_state()
        if faults.armed:
            faults.hit("before_dispatch")
        if self.middleware:
            call_hooks(self.middleware, "before_dispatch", self, d)
        if self._rerun:
            self._again(d)
        if not task.idempotent:
            self.recorder.mark_running(d, type(task).__retap__)
        else:
            self.log.about_to_run()

    def _execute_here(self, d: Dispatch, task: Task, decision: Decision | None) -> None:
        """Run ``d`` in this thread, retrying as its task says, and record the outcome."""
        self._about_to_run(d, task)
        self._here.dispatch = d.id  # one dispatch at a time: one context serves them all
        job = Job(d.id, d.node, task, d.inputs, self._here)
        made = 0
        earlier: tuple[Attempt, ...] = ()
        while True:
            made += 1
            self.in_task = True  # a second signal now aborts the task where it stands
            try:
                completion = run_job(job)
            finally:
                self.in_task = False
            if faults.armed:
                faults.hit("after_execute")
            if completion.status != "failed" or made > task.retries or self.stopping:
                break
            self._backoff(self._announce_retry(d, task, completion, made))
            earlier += (_attempt(completion),)
        self._settle(d, _outcome(task, completion, made, completion.started, decision,
                                 earlier), task)

    def _again(self, d: Dispatch) -> None:
        """``d``, recorded done, is run or answered from the memo again (--rerun-changed,
        --from): the store keeps its done attempt when its row is written over."""
        if self.cache is not None and self.cache.seq(d.id) is not None:
            assert self.log is not None
            self.log.rerunning(d.id)

    def _backoff(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))

    def _context(self, d: Dispatch) -> TaskContext:
        return TaskContext(self.run_id, d.id, self._store_at, self._owner, self.output_limit,
                           self._is_stopping, self._signal_name)

    def _submit(self, d: Dispatch, task: Task, decision: Decision | None) -> None:
        """Hand ``d`` to the executor."""
        self._about_to_run(d, task)
        self._decisions[d.id] = decision
        if decision is not None and decision.key is not None:
            self._computing[decision.key] = d.id
        self._attempts[d.id] = (0, time.time())
        self.sched.start(d)
        self._run(d, task)

    def _run(self, d: Dispatch, task: Task) -> None:
        """One attempt at ``d`` on the executor."""
        made, started = self._attempts[d.id]
        self._attempts[d.id] = (made + 1, started)
        self.executor.submit(Job(d.id, d.node, task, d.inputs, self._context(d),
                                 self._timeout_of(task)))

    def _collect(self) -> None:
        """Take the next completion (waiting at most until a retry is due) and record it."""
        due = min((at for at, _, _ in self._retries), default=None)
        wait = TICK if due is None else max(0.0, min(TICK, due - time.monotonic()))
        if self.executor.busy == 0:
            time.sleep(wait)  # only retries wait: the executor has nothing to hand back
            return
        completion = self.executor.next(wait)
        if completion is None:
            return
        if faults.armed:
            faults.hit("after_execute")
        self._completed(completion)

    def _completed(self, completion: Completion) -> None:
        d = self.sched.running[completion.dispatch]
        task = self.workflow.nodes[d.node].task
        made, _ = self._attempts[d.id]
        if completion.status == "failed" and made <= task.retries and not self.stopping:
            self._retry_later(d, task, completion)
            return
        self._settle(d, self._outcome(d, completion))

    def _outcome(self, d: Dispatch, completion: Completion) -> Outcome:
        """A completion as the outcome to record (with a memo entry when it is one)."""
        made, started = self._attempts.pop(d.id, (1, completion.started))
        decision = self._decisions.pop(d.id, None)
        if decision is not None and decision.key is not None:
            self._computing.pop(decision.key, None)
            self.sched.release(decision.key)
        return _outcome(self.workflow.nodes[d.node].task, completion, made,
                        completion.started or started, decision,
                        tuple(self._earlier.pop(d.id, ())))

    def _retry_later(self, d: Dispatch, task: Task, completion: Completion) -> None:
        made, _ = self._attempts[d.id]
        delay = self._announce_retry(d, task, completion, made)
        self._retries.append((time.monotonic() + delay, d, completion))

    def _announce_retry(self, d: Dispatch, task: Task, completion: Completion,
                        made: int) -> float:
        """A failed attempt that will be made again: undo its files, say so in a line;
        the seconds to wait before the next attempt."""
        if task.journaled:
            assert self.recorder is not None
            self.recorder.settle_journal(d, done=False)
        delay = task.retry_delay * 2 ** (made - 1)
        error = completion.error or {}
        self.notify(f"{self._describe(d, inputs=False)} failed ({error.get('type')}: "
                    f"{_short(str(error.get('message', '')), 80)}); retry {made} of "
                    f"{task.retries}" + (f" in {delay:g} s" if delay else ""))
        return delay

    def _retry_due(self) -> bool:
        """Run again the first failed dispatch whose retry delay has passed."""
        now = time.monotonic()
        for i, (at, d, failed) in enumerate(self._retries):
            if at <= now:
                del self._retries[i]
                self._earlier.setdefault(d.id, []).append(_attempt(failed))
                self._run(d, self.workflow.nodes[d.node].task)
                return True
        return False

    def _cancel_running(self) -> None:
        """A second signal: stop what runs; each is recorded interrupted."""
        for dispatch in self.executor.cancel():
            d = self.sched.running[dispatch]
            record = error_record(Interrupted(self.stop_signal or "SIGINT"))
            self._settle(d, self._outcome(d, Completion(dispatch, "interrupted", error=record,
                                                        finished=time.time())))

    # -- recording an outcome -----------------------------------------------------------

    def _settle(self, d: Dispatch, outcome: Outcome, task: Task | None = None) -> None:
        """Pass ``d``'s result on and commit its outcome with what that changed."""
        if self.sched.running:
            self.sched.stop(d)
        if task is None:
            task = self.workflow.nodes[d.node].task
        if self.middleware:
            call_hooks(self.middleware, "after_dispatch", self, d, outcome)
        returned = not outcome.cached and outcome.reused is None
        if self._dirty and not outcome.cached:
            self._save_state()  # the state before ``d``: its own changes go with its record
        if outcome.status != "done":
            effects = Effects()
        else:
            try:
                effects = self._pass_on(d, outcome.value)
            except JoinError as exc:  # recorded as a failure of the dispatch that fed it
                effects = Effects()
                outcome = Outcome("failed", error=error_record(exc), attempts=outcome.attempts,
                                  started=outcome.started, finished=outcome.finished)
        outcome = self._commit(task, d, outcome, effects)
        if returned and task.journaled:
            assert self.recorder is not None
            self.recorder.settle_journal(d, outcome.status == "done")
        if self.middleware:
            call_hooks(self.middleware, "after_commit", self, d, outcome)

    def _limit(self, d: Dispatch) -> tuple[object, int | None]:
        task = self.workflow.nodes[d.node].task
        return type(task), task.max_parallel

    def _timeout_of(self, task: Task) -> float | None:
        return task.timeout if task.timeout is not None else self.timeout

    def _decide(self, task: Task, d: Dispatch) -> Decision | None:
        """For a memoized task: whether an earlier result stands in for running ``d``."""
        if not memoized(task):
            return None
        decision = self.memoizer.decide(task, d)
        if decision.hit is not None and d.node in self.force_nodes:
            decision.hit, decision.reason = None, "asked to run again (--force, replay --from)"
        if self.explain is not None:
            verb = "skip" if decision.hit is not None else "run "
            self.explain(f"{verb} {self._describe(d)}: {decision.reason}")
        return decision

    @staticmethod
    def _reuse(hit: MemoEntry) -> Outcome:
        return Outcome("done", hit.value, attempts=0, started=time.time(),
                       finished=time.time(), reused=f"{hit.run}/{hit.dispatch}",
                       outputs=hit.outputs or None)

    def _describe(self, d: Dispatch, inputs: bool = True) -> str:
        node = self.workflow.nodes[d.node]
        shown = " ".join(_short(v) for v in d.inputs) if inputs else ""
        return f"node {d.node} ({node.name})" + (f" {shown}" if shown else "")

    def _pass_on(self, d: Dispatch, value: Any) -> Effects:
        """Feed ``value`` to every join ``d``'s node is a source of; collect what goes on."""
        effects = Effects(removed=d)
        joins = self._joins_from.get(d.node)
        if not joins:
            return effects
        touched: list[tuple[NodeId, JoinState]] = []
        seen: set[str] = set()
        try:
            for join, slot in joins:
                state = self.states.get(join.id)
                if state is not None:
                    touched.append((join.id, state))
                out = effects.back if join.enq else effects.front
                out.extend(self.sched.fresh(join.receive(state, slot, d.id, value), seen))
        except JoinError:
            for _, state in touched:
                state.undo(state.changes)
                state.changes.clear()
            raise
        for join_id, state in touched:
            effects.joins.extend((join_id, change) for change in state.changes)
            state.changes.clear()
        return effects

    def _commit(self, task: Task, d: Dispatch, outcome: Outcome, effects: Effects) -> Outcome:
        """Record ``d``'s outcome and apply its effects; returns the outcome as recorded."""
        if outcome.cached:
            self.cached_hits += 1
            self._dirty = True  # the state is saved whole before the next real write
        else:
            assert self.recorder is not None
            if self._rerun:
                self._fresh.add(d.id)
            recorded, kept = self.recorder.commit(type(task).__retap__, d, outcome, effects)
            if kept is not effects:
                self._undo(effects)  # the store refused the result: its changes are void
            outcome, effects = recorded, kept
        if outcome.status == "done":
            self.sched.remove(d)
            self.sched.add(effects.front, effects.back)
        elif outcome.status == "failed":
            self.sched.park(d)
            self.failures.append((d, outcome))
            if self.on_error == "stop":
                self.stop()
        else:
            self.stop(self.stop_signal or "SIGINT")
        return outcome

    def _undo(self, effects: Effects) -> None:
        """Take back the join-state changes of effects that could not be committed."""
        for join_id, change in reversed(effects.joins):
            self.states[join_id].undo([change])

    def _drain_gates(self) -> bool:
        """Nothing is pending: release the first gate holding results. False when none does."""
        seen: set[str] = set()
        for gate in self._gates:
            state = self.states[gate.id]
            released = self.sched.fresh(gate.drain(state), seen)
            if state.changes:
                self._commit_drain(gate.id, gate.enq, state, released)
                return True
        return False

    def _replayed_drain(self, before: int | None = None) -> bool:
        """Answering from the store: release a gate whose held results form a batch the
        recorded run released (every dispatch it makes is recorded), as it did when its
        queue ran dry. Tried when nothing pending is answered from the store, and before
        answering any dispatch (recorded done at commit ``before``; see ``_answer``). A
        batch the recorded run first had after that dispatch was done, or after one
        pending that must run again was (``replay --from``), waits for it (see
        RecordedOrder). A gate is tried again only once what it holds or
        those bounds have changed; a batch not released is taken back untouched."""
        if self._order is None:
            return False
        seqs = [s for s in (before, self.sched.first_rerun()) if s is not None]
        bound = self._order.done(min(seqs)) if seqs else None
        for gate in self._gates:
            state = self.states[gate.id]
            if not state.slots[0]:
                continue
            holds = (len(state.slots[0]), state.count)
            tried = self._gates_tried.get(gate.id)
            if tried is not None and tried[0] == holds and \
                    not (tried[1] and _in_order(tried[2], bound)):
                continue
            released = gate.drain(state)
            recorded = all(self._recorded(d) for d in released)
            first = None if bound is None or not recorded else \
                min(filter(None, map(self._order.first, (d.id for d in released))),
                    default=None)
            if recorded and _in_order(first, bound):
                self._commit_drain(gate.id, gate.enq, state, self.sched.fresh(released, set()))
                return True
            state.undo(state.changes)
            state.changes.clear()
            self._gates_tried[gate.id] = (holds, recorded, first)
        return False

    def _recorded(self, d: Dispatch) -> bool:
        """The run being replayed has a record of ``d``: done, or failed, interrupted or
        running (a batch whose dispatch failed under ``--on-error continue`` was released
        all the same; releasing it elsewhere would make other ids and orphan that record)."""
        assert self.cache is not None
        return self.cache.seq(d.id) is not None or \
            self.store.dispatch_status(self.run_id, d.id) is not None

    def _commit_drain(self, join: NodeId, enq: bool, state: JoinState,
                      released: list[Dispatch]) -> None:
        effects = Effects(joins=[(join, change) for change in state.changes])
        state.changes.clear()
        (effects.back if enq else effects.front).extend(released)
        assert self.log is not None
        if not self._dirty:  # when replaying from the cache, the whole state is saved later
            self.log.commit_effects(effects)
        self.sched.add(effects.front, effects.back)

    def _save_state(self) -> None:
        """Replace the stored queue and join states with these; failed dispatches stay
        queued (first) for a later resume."""
        assert self.recorder is not None
        self.recorder.save(self.sched.pending(), self.states)
        self._dirty = False


def _in_order(first: Point | None, bound: Point | None) -> bool:
    """A recorded batch the recorded run first had at ``first`` may be released while what
    is pending was done at ``bound`` (None: nothing pending was recorded done, or no point
    of the batch is known)."""
    return first is None or bound is None or first < bound


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _to_stderr(message: str) -> None:
    print(f"retap: {message}", file=sys.stderr, flush=True)


def _attempt(completion: Completion) -> Attempt:
    """A completion as an attempt to keep (numbered when it is recorded)."""
    return Attempt(0, 0, completion.status, completion.started, completion.finished,
                   completion.error, completion.log, completion.worker)


def _outcome(task: Task, completion: Completion, made: int, started: float,
             decision: Decision | None, earlier: tuple[Attempt, ...] = ()) -> Outcome:
    """A completion as the outcome to record (with a memo entry when it is one), after
    the ``earlier`` failed attempts."""
    outcome = Outcome(completion.status, completion.value, completion.error, made, started,
                      completion.finished, outputs=completion.outputs or None,
                      earlier=earlier, log=completion.log, worker=completion.worker)
    if outcome.status == "done" and decision is not None:
        outcome.memo = decision.remember(task, completion.value, completion.outputs or {})
    return outcome
