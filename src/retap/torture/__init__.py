"""The torture runner: try hard to break retap's promises, and say so when it does.

``python -m retap.torture --cases N --seed S`` generates N random cases. Each is a workflow
(every join kind and modifier, iterate over lists, slow and flaky tasks, some of which retry
within their session as a task's ``retries`` say; per case also file tasks that write
outputs or change files in place, and memoized tasks), a durability mode, an on-error mode
and a scenario: ``single`` (one run brought to done) or ``rerun`` (r1 brought to done,
then an input file or a lead input changes and a new run on the same project and store is
brought to done). The scenario runs once without faults for reference, in a folder of its
own; then in subprocesses killed at random named fault points (SIGKILL, ``_exit``,
SIGINT, SIGTERM: see ``retap.faults``) and continued by resume, replay or a fresh run
until done; some attempts are paused instead and their runs taken over by another
coordinator (``retap.torture.pause``), and beside some other processes open and close the
store (``retap.torture.neighbours``).

After every attempt it checks the store's integrity, that no dispatch the store had as
done in a run executed again in that run, that no memoized result with intact files was
executed instead of reused, that no in-place change was applied twice, and after an
attempt that ended on its own, that no journal was left and the run's status agrees with
the exit code and its dispatches. At the end of each phase the run's audit and every file
must equal the reference's, and ``.retap/backup`` must be empty. It exits 0 only when
every case held; a failing case prints the command that replays it alone.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CaseResult", "run_case"]


def __getattr__(name: str) -> Any:
    # lazy: the subprocesses import the task modules, and need none of the runner
    if name in __all__:
        from retap.torture import cases

        return getattr(cases, name)
    raise AttributeError(name)
