"""A local process's start time and whether it has ended, for owner leases.

On Linux both come from ``/proc/PID/stat`` with psutil's own arithmetic (start ticks over
the clock rate, plus the boot time from ``/proc/stat``), so a start time recorded by either
way matches the other. Importing psutil costs a recovering process about 10 ms before its
first step (the benchmark README, issue 13); elsewhere (macOS, BSD) psutil answers.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import Any

__all__ = ["ENDED", "UNKNOWN", "start_time", "state"]

ENDED, UNKNOWN = "ended", "unknown"  # what ``state`` says besides a live process's state
_PROC = "/proc"


def start_time(pid: int) -> float:
    """When process ``pid`` started (seconds since the epoch); 0.0 when it cannot be read."""
    if _has_proc():
        try:
            return _stat_fields(pid)[19] / _clock_ticks() + _boot_time()
        except (OSError, ValueError, IndexError):
            return 0.0
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError, ValueError, OverflowError):
        return 0.0


def state(pid: int) -> tuple[str, float]:
    """(state, start time) of process ``pid``: ENDED when it is gone or a zombie, UNKNOWN
    when it cannot be read (a caller must then take it to be alive), else "running"."""
    if _has_proc():
        try:
            fields = _stat_fields(pid)
        except (FileNotFoundError, ProcessLookupError):
            return ENDED, 0.0
        except (OSError, ValueError, IndexError):
            return UNKNOWN, 0.0
        if fields[0] in ("Z", "X"):  # zombie or dead: it will never write again
            return ENDED, 0.0
        return "running", fields[19] / _clock_ticks() + _boot_time()
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return ENDED, 0.0
        return "running", float(process.create_time())
    except psutil.NoSuchProcess:
        return ENDED, 0.0
    except (psutil.Error, OSError, ValueError, OverflowError):
        return UNKNOWN, 0.0


def _stat_fields(pid: int) -> list[Any]:
    """The fields of ``/proc/PID/stat`` after the command name (which may hold spaces and
    parentheses): the state first, the start time in clock ticks at index 19."""
    with open(f"{_PROC}/{pid}/stat", "rb") as fh:
        data = fh.read()
    fields: list[Any] = data[data.rindex(b")") + 2:].split()
    fields[0] = fields[0].decode()
    fields[19] = int(fields[19])
    return fields


@cache
def _has_proc() -> bool:
    return sys.platform.startswith("linux") and os.path.exists(f"{_PROC}/self/stat")


@cache
def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


@cache
def _boot_time() -> float:
    with open(f"{_PROC}/stat", "rb") as fh:
        for line in fh:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise ValueError(f"no btime line in {_PROC}/stat")
