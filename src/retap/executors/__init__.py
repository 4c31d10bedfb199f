"""Executors: where task bodies run. The App is the single coordinator and the only writer
of the store; an executor only runs ``work.run_job`` for the jobs it is given and hands
back completions, in the order they finish.

``inline`` runs one job at a time in the App's own thread (``-j 1``, the default);
``threads`` and ``processes`` run up to N at once on this machine; ``dask`` on a Dask
cluster (``pip install 'retap[dask]'``).
"""

from __future__ import annotations

from retap.executors.base import Completion, Executor, Job
from retap.executors.choose import EXECUTORS, make_executor

__all__ = ["EXECUTORS", "Completion", "Executor", "Job", "make_executor"]
