"""The Dask executor (``pip install 'retap[dask]'``): jobs run on a Dask cluster, a local
one of N worker processes (``--executor dask``) or one a scheduler runs already
(``--executor dask://HOST:PORT``). The App stays the coordinator: workers only run task
bodies, and every result comes back here to be recorded.

Workers must see the project directory at the same path (file tasks write there): that is
checked when the executor starts. A worker that dies fails its dispatch (``WorkerLost``;
a local cluster is told not to run it again elsewhere, and a claim file in
``.retap/dask/`` refuses a second run of one job on any cluster); one past its timeout is
restarted. A local cluster's workers ignore SIGINT (``retap.executors.daskworker``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import time
import uuid
from typing import Any

from retap import faults
from retap.errors import DispatchTimeout, ExecutorError, WorkerLost
from retap.executors.base import Completion, Executor, Job, failed_by_executor
from retap.executors.work import run_job_elsewhere
from retap.taskdef import Task

__all__ = ["DaskExecutor"]

WORKERLESS = 5.0  # seconds a local cluster may go without a worker (a nanny restarts one)
RESULT_WAIT = 1.0  # seconds before a first look at whether a result being fetched was lost


def run_in_project(job: Job, project: str, claim: str) -> Completion:
    """``run_job`` in the project directory (a worker of another process or host), once.
    Dask runs a job again elsewhere when the worker running it leaves gracefully, while
    that first run may have gone on or even finished: an attempt the run would never
    know of. The job's ``claim`` file, made before it runs, refuses any run after the
    first."""
    if os.getcwd() != project:
        os.chdir(project)
    try:
        os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return failed_by_executor(job.dispatch, WorkerLost(
            job.dispatch, "Dask ran its job again after the worker running it left; the "
                          "second run was refused"))
    if faults.armed:  # a local cluster's workers inherit the coordinator's fault
        faults.hit("in_worker")
    return run_job_elsewhere(job)


class _AbandonedWaits(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" for ``exit_type`` (Dask's
    AllExit): a wait inside the client that it gave up on, when a result fetched with a
    timeout had lost its worker. The job's outcome reaches the user as its WorkerLost."""

    def __init__(self, exit_type: type[BaseException]) -> None:
        super().__init__()
        self.exit_type = exit_type

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], self.exit_type))


def quiet_abandoned_waits(exit_type: type[BaseException]) -> None:
    """Keep the Dask client's abandoned waits (see _AbandonedWaits) off stderr; once a
    process."""
    asyncio_logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _AbandonedWaits) for f in asyncio_logger.filters):
        asyncio_logger.addFilter(_AbandonedWaits(exit_type))


class DaskExecutor(Executor):
    """Futures on a distributed Client; completions come back through one queue."""

    name = "dask"
    kills = True

    def __init__(self, jobs: int, address: str | None = None) -> None:
        try:
            import dask
            import distributed
        except ImportError:
            raise ExecutorError("dask", "Dask is not installed: pip install 'retap[dask]'"
                                ) from None
        self.distributed = distributed
        self.cluster: Any = None
        # a cluster of the run's own says nothing: what it would log as an error (a worker
        # that died, the dying worker's tracebacks) reaches the user as the dispatch's
        # one-line WorkerLost; a cluster someone else runs keeps its errors
        quiet = logging.CRITICAL if address is None else logging.ERROR
        logging.getLogger("distributed").setLevel(quiet)
        quiet_abandoned_waits(distributed.client.AllExit)
        if address is None:
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self.cluster = distributed.LocalCluster(
                    n_workers=jobs, threads_per_worker=1, processes=True,
                    # the scheduler serves HTTP even without a dashboard: on loopback,
                    # on a free port (8787 by default, and a warning when another run
                    # has it)
                    dashboard_address="127.0.0.1:0", silence_logs=quiet,
                    preload=["retap.executors.daskworker"])
            self.client = distributed.Client(self.cluster)
        else:
            self.client = _connect(distributed, address)
        self.project = os.getcwd()
        # each job's claim file (see run_in_project), kept until the executor closes: a
        # worker that dies holding a finished job's result makes Dask run the job again
        # if its future is still wanted, and it may be still, for a moment, after the
        # completion is in (seed 12323 case 79)
        self.claims = os.path.join(self.project, ".retap", "dask", uuid.uuid4().hex)
        self._check_project()
        try:
            os.makedirs(self.claims, mode=0o700)
        except OSError as exc:
            self.close()
            raise ExecutorError("dask", f"cannot make the jobs' claim folder {self.claims}: "
                                        f"{exc.strerror}") from None
        self.done: queue.Queue[tuple[str, Completion]] = queue.Queue()  # (future key, ...)
        self.futures: dict[str, Any] = {}  # dispatch -> the future whose completion counts
        self.deadlines: dict[str, tuple[float, Job]] = {}
        self.workerless_since: float | None = None  # since when a local cluster has none

    def _check_project(self) -> None:
        seen = self.client.run(os.path.isdir, self.project)
        blind = sorted(worker for worker, ok in seen.items() if not ok)
        if blind:
            self.close()
            raise ExecutorError("dask", f"worker {blind[0]} cannot see the project directory "
                                        f"{self.project}; workers need it at the same path "
                                        "(a shared filesystem)")

    def submit(self, job: Job) -> None:
        key = f"retap-{job.dispatch}-{time.monotonic_ns()}"
        future = self.client.submit(run_in_project, job, self.project,
                                    os.path.join(self.claims, key), pure=False, key=key)
        self.futures[job.dispatch] = future
        if job.timeout is not None:
            self.deadlines[job.dispatch] = (time.monotonic() + job.timeout, job)
        started = time.time()
        future.add_done_callback(
            lambda f: self.done.put((f.key, _completion(job, f, started))))

    def next(self, timeout: float | None) -> Completion | None:
        self._stop_overdue()
        while True:
            try:
                key, completion = self.done.get(timeout=timeout)
            except queue.Empty:
                self._fail_if_no_workers()
                return None
            future = self.futures.get(completion.dispatch)
            if future is not None and future.key == key:  # else cancelled or superseded
                del self.futures[completion.dispatch]
                self.deadlines.pop(completion.dispatch, None)
                return completion

    def _stop_overdue(self) -> None:
        """Restart the worker of each dispatch past its timeout; it ends timed out."""
        now = time.monotonic()
        for dispatch, (deadline, job) in list(self.deadlines.items()):
            future = self.futures.get(dispatch)
            if deadline > now or future is None:
                continue
            del self.deadlines[dispatch]
            self._restart_worker_of(future.key)
            error = DispatchTimeout(dispatch, job.timeout or 0.0)
            self.done.put((future.key, failed_by_executor(dispatch, error)))
            future.cancel()

    def _fail_if_no_workers(self) -> None:
        """A local cluster whose nannies could not bring a worker back (a worker killed
        at the wrong moment can take its nanny with it) would leave every job waiting for
        good: once it has had no worker for WORKERLESS seconds, each job fails as lost."""
        if self.cluster is None or not self.futures or self.cluster.scheduler is None:
            return
        if self.cluster.scheduler.workers:
            self.workerless_since = None
            return
        now = time.monotonic()
        self.workerless_since = self.workerless_since or now
        if now - self.workerless_since < WORKERLESS:
            return
        for dispatch, future in list(self.futures.items()):
            self.deadlines.pop(dispatch, None)
            self.done.put((future.key, failed_by_executor(dispatch, WorkerLost(
                dispatch, "the local Dask cluster has no workers left"))))
            future.cancel()

    def _restart_worker_of(self, key: str) -> None:
        with contextlib.suppress(Exception):
            busy = self.client.processing()
            workers = [w for w, keys in busy.items() if key in keys]
            if workers:
                self.client.restart_workers(workers, raise_for_error=False)

    def cancel(self) -> list[str]:
        gone = sorted(self.futures)
        futures, self.futures = list(self.futures.values()), {}
        self.deadlines.clear()
        with contextlib.suppress(Exception):
            self.client.cancel(futures, force=True)
        return gone

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()
        shutil.rmtree(self.claims, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(self.claims))  # when no other run uses it

    def dumps(self, task: Task) -> bytes:
        import cloudpickle

        return bytes(cloudpickle.dumps(task))

    @property
    def busy(self) -> int:
        return len(self.futures)


def _connect(distributed: Any, address: str) -> Any:
    try:
        return distributed.Client(f"tcp://{address}", timeout=10)
    except (OSError, TimeoutError) as exc:
        raise ExecutorError(f"dask://{address}", f"cannot reach the scheduler: {exc}") from None


def _completion(job: Job, future: Any, started: float) -> Completion:
    """How a job ended, whatever happened to its worker."""
    if future.cancelled():
        return Completion(job.dispatch, "interrupted", started=started, finished=time.time())
    wait = RESULT_WAIT
    while future.status in ("finished", "error"):
        try:
            result: Completion = future.result(timeout=wait)
            return result
        except TimeoutError:  # still fetching, or the worker holding it died meanwhile
            wait *= 2  # a large result gets the time it needs to come back
            continue
        except Exception as exc:  # KilledWorker and the like: the worker is gone
            error = WorkerLost(job.dispatch, f"its Dask worker died or dropped it "
                                             f"({type(exc).__name__}: {exc})")
            return failed_by_executor(job.dispatch, error, started)
    # "lost": the job ran, but the worker holding its result died before it came back.
    # Dask would run it again on another worker: an attempt retap never made; cancelled
    # instead, it is a lost attempt the run records, and a resume runs it again.
    future.cancel()
    error = WorkerLost(job.dispatch, "its Dask worker died before its result came back")
    return failed_by_executor(job.dispatch, error, started)

