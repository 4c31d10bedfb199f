"""The processes executor: up to N jobs at once in worker processes, for CPU-bound Python.
A worker that dies (SIGKILL, a segfault, the OOM killer) fails only its own dispatch, with
``WorkerLost``; one past its timeout is killed and fails with ``DispatchTimeout``; either
way a new worker takes its place. Workers are forked from a fork server, so they never
inherit the App's threads or open store.

The coordinator talks to each worker over a pipe of its own and keeps no threads: a job
goes down the pipe of an idle worker, its completion comes back up it, and one ``poll`` on
the pipes and the workers' sentinels says which finished or died. A task travels to a
worker once (it keeps it), then each job is its dispatch id and inputs. A pool with helper
threads (pebble, ``concurrent.futures``) cost the coordinator about as much CPU per trivial
dispatch as the App's own work (``benchmarks/README.md``)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import select
import signal
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from retap import faults
from retap.capture import capturing
from retap.context import TaskContext
from retap.errors import DispatchTimeout, WorkerLost
from retap.executors.base import Completion, Executor, Job, failed_by_executor
from retap.executors.work import run_job_elsewhere
from retap.owner import Owner
from retap.taskdef import Task

__all__ = ["ProcessExecutor", "serve", "start_method"]

STOP_WAIT = 5.0  # seconds close() gives idle workers to leave before they are killed


def start_method() -> str:
    """How workers start: forked from a fork server where there is one, else spawned."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def serve(conn: Connection, coordinator: Owner) -> None:
    """A worker's life: run each job that comes down ``conn`` and send its completion back,
    until the pipe closes or says stop (None). A Ctrl-C reaches the whole process group:
    workers ignore it, since the coordinator decides what a first and a second signal do."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(coordinator)
    with capturing():  # held for the worker's life: each job only marks its thread
        _serve(conn)


def _serve(conn: Connection) -> None:
    tasks: dict[int, Task] = {}
    facts: tuple[str, str, Owner, int] | None = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the coordinator is gone (or closed the pipe)
            return
        # The coordinator sends a job only to an idle worker, so anything more in the pipe
        # now is the end of it: a job sent just before the coordinator died is not started
        # (its changes could begin after a resume has settled what the dead run left).
        if message is None or conn.poll():
            return
        dispatch, node, inputs, key, task, new_facts = message
        if task is not None:
            tasks[key] = task
        facts = new_facts or facts
        assert facts is not None
        run, store, owner, limit = facts
        if faults.armed:
            faults.hit("in_worker")
        done = run_job_elsewhere(Job(dispatch, node, tasks[key], inputs,
                           TaskContext(run, dispatch, store, owner, limit)))
        try:
            data = pickle.dumps(_wire(done))
        except Exception as exc:  # the value does not pickle
            data = pickle.dumps(_wire(failed_by_executor(dispatch, WorkerLost(
                dispatch, f"its result could not be sent back: {type(exc).__name__}: {exc}"),
                done.started)))
        try:
            conn.send_bytes(data)
        except OSError:  # the coordinator is gone: nobody to tell
            return


def _wire(c: Completion) -> tuple[Any, ...]:
    """A completion as it travels: a plain tuple pickles in a fraction of the time."""
    return (c.dispatch, c.status, c.value, c.error, c.started, c.finished, c.outputs, c.log,
            c.worker)


def _die_with(coordinator: Owner) -> None:
    """In a worker: exit as soon as the coordinator is gone (a zombie counts as gone), so
    no task of a dead run goes on changing files while a resume runs it again."""
    def watch() -> None:
        while coordinator.alive():
            time.sleep(0.1)
        os._exit(1)

    threading.Thread(target=watch, name="retap-watch-coordinator", daemon=True).start()


class _Worker:
    """One worker process, the coordinator's end of its pipe, and the job it runs."""

    __slots__ = ("conn", "deadline", "facts", "job", "process", "started", "tasks")

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process, self.conn = process, conn
        self.tasks: set[int] = set()  # the tasks it has been sent (it keeps them)
        self.facts: tuple[str, str, Owner, int] | None = None  # the run's, as last sent
        self.job: Job | None = None
        self.started = 0.0
        self.deadline: float | None = None  # time.monotonic() past which it is killed


class ProcessExecutor(Executor):
    """N worker processes, started as jobs need them; completions in finishing order."""

    name = "processes"
    kills = True

    def __init__(self, jobs: int) -> None:
        self.size = jobs
        self.context = multiprocessing.get_context(start_method())
        if start_method() == "forkserver":
            self.context.set_forkserver_preload(["retap.executors.processes"])
        self.owner = Owner.current()
        self.idle: list[_Worker] = []
        self.running: dict[str, _Worker] = {}
        self.waiting: deque[Job] = deque()  # submitted beyond N: sent as workers free up
        self.ready: deque[Completion] = deque()  # finished, not yet handed back
        self.poll = select.poll()  # every worker's pipe and sentinel, idle or not
        self.workers: dict[int, _Worker] = {}  # by the file descriptors polled
        self.tasks: dict[int, Task] = {}  # by id: each goes to a worker once

    def submit(self, job: Job) -> None:
        if len(self.running) >= self.size:
            self.waiting.append(job)
            return
        key = id(job.task)
        self.tasks[key] = job.task  # held, so its id names no other task while we run
        facts = (job.context.run, job.context.store, job.context.owner,
                 job.context.output_limit)
        while True:
            worker = self.idle.pop() if self.idle else self._start()
            try:
                data = pickle.dumps((job.dispatch, job.node, job.inputs, key,
                                     None if key in worker.tasks else job.task,
                                     None if facts == worker.facts else facts))
            except Exception as exc:
                self.idle.append(worker)
                self.ready.append(failed_by_executor(job.dispatch, WorkerLost(
                    job.dispatch, f"its job could not be sent to a worker: "
                                  f"{type(exc).__name__}: {exc}")))
                return
            try:
                worker.conn.send_bytes(data)
                break
            except OSError:  # it died while idle: another one takes the job
                self._discard(worker)
        worker.tasks.add(key)
        worker.facts = facts
        worker.job, worker.started = job, time.time()
        worker.deadline = None if job.timeout is None else time.monotonic() + job.timeout
        self.running[job.dispatch] = worker

    def next(self, timeout: float | None) -> Completion | None:
        end = None if timeout is None else time.monotonic() + timeout
        while not self.ready and self.running:
            deadline = min((w.deadline for w in self.running.values()
                            if w.deadline is not None), default=None)
            until = deadline if end is None or (deadline is not None and deadline < end) \
                else end
            wait_for = None if until is None else max(0.0, until - time.monotonic()) * 1000
            for fd, _ in self.poll.poll(wait_for):
                worker = self.workers.get(fd)
                if worker is None:
                    continue  # discarded earlier in this loop
                if worker.job is not None:
                    self._receive(worker, said=fd != worker.process.sentinel)
                elif not worker.process.is_alive():
                    self.idle.remove(worker)  # died between jobs
                    self._discard(worker)
            self._expire()
            if end is not None and time.monotonic() >= end:
                break
        return self.ready.popleft() if self.ready else None

    def cancel(self) -> list[str]:
        gone = sorted([*self.running, *(job.dispatch for job in self.waiting),
                       *(completion.dispatch for completion in self.ready)])
        for worker in self.running.values():
            self._discard(worker)
        self.running.clear()
        self.waiting.clear()
        self.ready.clear()
        return gone

    def close(self) -> None:
        for worker in self.idle:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self.running.values():
            self._discard(worker)
        self.running.clear()
        leave_by = time.monotonic() + STOP_WAIT
        for worker in self.idle:
            worker.process.join(max(0.0, leave_by - time.monotonic()))
            self._discard(worker)
        self.idle.clear()

    @property
    def busy(self) -> int:
        return len(self.running) + len(self.waiting) + len(self.ready)

    def _start(self) -> _Worker:
        ours, theirs = self.context.Pipe()
        # each start method's context declares its own Process; the base class has none
        make = self.context.Process  # type: ignore[attr-defined]
        process = make(target=serve, args=(theirs, self.owner), name="retap-worker",
                       daemon=True)
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        for fd in (ours.fileno(), process.sentinel):
            self.poll.register(fd, select.POLLIN)
            self.workers[fd] = worker
        return worker

    def _receive(self, worker: _Worker, said: bool) -> None:
        """The worker's pipe (``said``) or its sentinel is ready: take its completion, or
        note that it died."""
        job = worker.job
        assert job is not None
        completion: Completion
        try:
            if not said and not worker.conn.poll():
                raise EOFError  # only its sentinel: it exited without a word
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            worker.process.join(1.0)
            self._finished(worker, failed_by_executor(job.dispatch, WorkerLost(
                job.dispatch, f"its worker process died (exit code "
                              f"{worker.process.exitcode})"), worker.started), alive=False)
            return
        try:
            completion = Completion(*pickle.loads(data))
        except Exception as exc:
            completion = failed_by_executor(job.dispatch, WorkerLost(
                job.dispatch, f"its result could not be read back: {type(exc).__name__}: "
                              f"{exc}"), worker.started)
        self._finished(worker, completion, alive=True)

    def _expire(self) -> None:
        """Kill the workers whose job ran past its timeout; their dispatches fail."""
        now = time.monotonic()
        for worker in list(self.running.values()):
            if worker.deadline is not None and worker.deadline <= now and worker.job:
                job = worker.job
                self._finished(worker, failed_by_executor(
                    job.dispatch, DispatchTimeout(job.dispatch, job.timeout or 0.0),
                    worker.started), alive=False)

    def _finished(self, worker: _Worker, completion: Completion, alive: bool) -> None:
        assert worker.job is not None
        del self.running[worker.job.dispatch]
        worker.job = worker.deadline = None
        self.ready.append(completion)
        if alive:
            self.idle.append(worker)
        else:
            self._discard(worker)
        if self.waiting:
            self.submit(self.waiting.popleft())

    def _discard(self, worker: _Worker) -> None:
        """Kill ``worker`` if it still lives, and let go of it."""
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(5.0)
        for fd in (worker.conn.fileno(), worker.process.sentinel):
            self.poll.unregister(fd)
            del self.workers[fd]
        worker.conn.close()
        worker.process.close()
