"""Named fault points, for crash tests: the process kills itself at a chosen point.

Off unless ``$RETAP_FAULT`` names a point (``POINT:N[:ACTION]``: act the N-th time
POINT is reached; ACTION is ``kill`` (SIGKILL, the default), ``exit`` (``os._exit``)
or ``sigint``/``sigterm``/``stop`` (send that signal to itself: ``stop`` pauses the
process, as a stopped VM would, until SIGCONT)). Code marks a point with
``if faults.armed: faults.hit("name")``, so production pays one attribute test.

Points: ``before_dispatch``, ``after_execute`` (the task returned, nothing committed),
``in_commit`` (between statements of a dispatch's transaction), ``in_join_write``
(while join-state changes are written), ``after_commit`` (committed, results not yet
passed on), ``in_save_state`` (while a replay saves the rebuilt queue and joins),
``in_journal_write`` (a file-task journal or its run folder's owner file written, not yet
renamed into place), ``in_worker`` (a worker process of ``--executor processes`` or of
a local Dask cluster about to run a job: its task is lost, a failure the run records). A
worker starts with the fault its coordinator had armed and counts its own hits.

``disk_full:N`` instead lets a SQLite store grow by only N more pages, so a commit
fails as on a full disk (SQLITE_FULL).
"""

from __future__ import annotations

import os
import signal

__all__ = ["IN_WORKER", "JOURNAL_WRITE", "POINTS", "arm", "armed", "hit"]

POINTS = ("before_dispatch", "after_execute", "in_commit", "in_join_write", "after_commit",
          "in_save_state")
JOURNAL_WRITE = "in_journal_write"  # drawn apart from POINTS, only for cases with file tasks
IN_WORKER = "in_worker"  # drawn apart from POINTS, only for attempts on worker processes
DISK_FULL = "disk_full"
ACTIONS = ("kill", "exit", "sigint", "sigterm", "stop")

armed = False
_point = ""
_countdown = 0
_action = "kill"


def arm(spec: str | None) -> None:
    """Arm the fault ``POINT:N[:ACTION]``; None or "" disarms."""
    global armed, _point, _countdown, _action
    if not spec:
        armed = False
        return
    point, _, rest = spec.partition(":")
    count, _, action = rest.partition(":")
    if point not in (*POINTS, JOURNAL_WRITE, IN_WORKER, DISK_FULL) or not count.isdigit() or \
            (action or "kill") not in ACTIONS:
        raise ValueError(f"RETAP_FAULT={spec!r}: expected POINT:N[:ACTION], POINT one of "
                         f"{', '.join((*POINTS, JOURNAL_WRITE, IN_WORKER))}, "
                         f"ACTION one of {', '.join(ACTIONS)}")
    _point, _countdown, _action, armed = point, int(count), action or "kill", True


def page_limit(page_count: int) -> int | None:
    """With ``disk_full:N`` armed: the page count a store may grow to; else None."""
    return page_count + _countdown if armed and _point == DISK_FULL else None


def hit(point: str) -> None:
    """Called at a fault point: act when it is the armed point's N-th hit."""
    global _countdown, armed
    if point != _point:
        return
    _countdown -= 1
    if _countdown > 0:
        return
    armed = False
    if _action == "exit":
        os._exit(137)
    sig = {"kill": signal.SIGKILL, "sigint": signal.SIGINT, "sigterm": signal.SIGTERM,
           "stop": signal.SIGSTOP}[_action]
    os.kill(os.getpid(), sig)


arm(os.environ.get("RETAP_FAULT"))
