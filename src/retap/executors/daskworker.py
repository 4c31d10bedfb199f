"""Set-up of each worker of the local Dask cluster retap starts (a Dask preload module).

Ctrl-C on a terminal sends SIGINT to the whole foreground process group, the cluster's
worker processes included. Dask's workers would shut down at once, their running jobs
lost, while retap's first SIGINT asks for what runs to finish and be committed: the
workers ignore SIGINT and leave it to the coordinator (a second signal cancels them).

Its workers log nothing either: Dask silences their log handlers only while a worker
object lives, so a replacement worker closed with the cluster once printed its start-up
lines and a traceback beside the run's one-line report; the logger's own level stays. And
such a worker's close can fail on Dask's own connections, already closed with the cluster:
that failure is dropped rather than printed by the worker process as it exits."""

from __future__ import annotations

import logging
import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    """Called by Dask in the worker process's main thread as the worker starts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    close = worker.close

    async def closing(*args: Any, **kwargs: Any) -> Any:
        try:
            return await close(*args, **kwargs)
        except RuntimeError as exc:  # "ConnectionPool is closed": the cluster went first
            if "ConnectionPool is closed" not in str(exc):
                raise
            return None

    worker.close = closing
