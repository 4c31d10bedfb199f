"""What a worker does with a job: run the task's body and report how it ended. The same
function runs in the App's thread (``inline``), in a thread, a process or on Dask."""

from __future__ import annotations

import os
import time
from functools import cache

from retap.capture import Capture
from retap.errors import Interrupted, error_record
from retap.executors.base import Completion, Job
from retap.owner import host_name

__all__ = ["run_job", "run_job_elsewhere"]


def run_job(job: Job) -> Completion:
    """Run ``job.task`` on ``job.inputs``, keeping what it prints and logs; never raises for
    what the task does."""
    task = job.task
    task._context = job.context
    started = time.time()
    with Capture(job.context.output_limit) as captured:
        try:
            value = task.execute(*job.inputs)
            outputs = task.written_files() if task.journaled else None
            done = Completion(job.dispatch, "done", value, None, started, time.time(), outputs)
        except Interrupted as exc:
            done = Completion(job.dispatch, "interrupted", error=error_record(exc),
                              started=started, finished=time.time())
        except KeyboardInterrupt:
            done = Completion(job.dispatch, "interrupted",
                              error=error_record(Interrupted("SIGINT")), started=started,
                              finished=time.time())
        except BaseException as exc:  # SystemExit too: a task's exit fails its dispatch
            done = Completion(job.dispatch, "failed", error=error_record(exc), started=started,
                              finished=time.time())
        finally:
            task._context = None
    done.log = captured.log
    return done


def run_job_elsewhere(job: Job) -> Completion:
    """``run_job`` in a process other than the run's coordinator (a worker process, a Dask
    worker): the completion names that process (``worker``)."""
    done = run_job(job)
    done.worker = (_host(), os.getpid())
    return done


@cache
def _host() -> str:
    return host_name()
