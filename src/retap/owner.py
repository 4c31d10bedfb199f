"""Who runs a run: the host, pid and start time of a process, and whether it still lives.

Liveness is read through psutil, so it works where ``/proc`` does not (macOS, BSD). A
process whose state cannot be read is taken to be alive: wrongly calling a live owner
dead would let two processes write one run. ``$RETAP_HOST`` overrides the host name,
for containers whose host name changes on every start.
"""

from __future__ import annotations

import os

import msgspec

__all__ = ["HOST_ENV", "Owner", "host_name", "process_start"]

HOST_ENV = "RETAP_HOST"
_STARTED: dict[int, float] = {}  # this process's start time, by pid: a forked child reads its own


def host_name() -> str:
    """This machine's name as runs record it: ``$RETAP_HOST``, else the host name."""
    import socket  # here: a listing of runs never asks

    return os.environ.get(HOST_ENV) or socket.gethostname()


def process_start(pid: int) -> float:
    """When process ``pid`` started (seconds since the epoch); 0.0 when it cannot be read."""
    import psutil  # here: reading a store (``retap runs``) seldom looks at a process

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError, ValueError, OverflowError):
        return 0.0


class Owner(msgspec.Struct, frozen=True):
    """The process that runs a run: a lease other processes respect while it is alive."""

    host: str
    pid: int
    started: float  # process start time, so a recycled pid is not taken for the owner

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        started = _STARTED.get(pid)
        if started is None:
            started = _STARTED[pid] = process_start(pid)
        return cls(host_name(), pid, started)

    @property
    def local(self) -> bool:
        """True when the owner ran on this host, where its process can be looked at."""
        return self.host == host_name()

    def alive(self) -> bool:
        """True unless this owner's process is provably gone. Owners on other hosts cannot
        be looked at, so they count as alive (``resume --take-over`` overrides that)."""
        if not self.local:
            return True
        import psutil

        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            return not self.started or abs(process.create_time() - self.started) < 1.0
        except psutil.NoSuchProcess:
            return False
        except (psutil.Error, OSError, ValueError, OverflowError):
            return True  # cannot tell: never call a live owner dead

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"
