"""Who runs a run: the host, pid and start time of a process, and whether it still lives.

Liveness is read from ``/proc`` on Linux and through psutil elsewhere (``procstat``). A
process whose state cannot be read is taken to be alive: wrongly calling a live owner
dead would let two processes write one run. ``$RETAP_HOST`` overrides the host name,
for containers whose host name changes on every start.
"""

from __future__ import annotations

import os

import msgspec

from retap import procstat

__all__ = ["HOST_ENV", "Owner", "host_name", "process_start"]

HOST_ENV = "RETAP_HOST"
_STARTED: dict[int, float] = {}  # this process's start time, by pid: a forked child reads its own


def host_name() -> str:
    """This machine's name as runs record it: ``$RETAP_HOST``, else the host name (the
    node name ``gethostname`` returns, read without importing ``socket``)."""
    return os.environ.get(HOST_ENV) or _node_name()


def _node_name() -> str:
    try:
        return os.uname().nodename
    except AttributeError:  # Windows has no uname
        import socket

        return socket.gethostname()


def process_start(pid: int) -> float:
    """When process ``pid`` started (seconds since the epoch); 0.0 when it cannot be read."""
    return procstat.start_time(pid)


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
        state, started = procstat.state(self.pid)
        if state == procstat.UNKNOWN:
            return True  # cannot tell: never call a live owner dead
        if state == procstat.ENDED:
            return False
        return not self.started or abs(started - self.started) < 1.0

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"
