"""The benchmarks' tasks, apart from the harness in common.py.

A process that resumes or replays a recorded run imports the modules its tasks live in;
here that is this module, which imports what a user's task module would (retap and a
little of the standard library), so that process pays for retap, not for the harness's
statistics, tempfile and shutil. The tasks are module-level classes so a recorded run names
them by import path (``benchmarks.tasks:Step``).
"""

from __future__ import annotations

import os
import signal
import time

import retap

# Step raises when its input equals FAIL["at"]: a run that fails part way, then is resumed
# or replayed with the same switch still set (so it fails again at the same place and the
# measurement can be repeated) or cleared (so it finishes).
FAIL: dict[str, int | None] = {"at": None}


class BenchFailure(RuntimeError):
    """The failure a benchmark asked for."""


class Start(retap.Task):
    """Chain head: x + 1."""

    def process(self, x: int) -> int:
        return x + 1


class Step(retap.Task):
    """Chain link: ``[0, x + 1]`` (back to itself) while x < n, then ``[1, x]`` (to End)."""

    n: int = 0

    def process(self, x: int) -> list[int]:
        if x == FAIL["at"]:
            raise BenchFailure(f"asked to fail at {x}")
        if x < self.n:
            return [0, x + 1]
        return [1, x]


# KillableStep reads two environment variables, so a run in another process can be steered:
# KILL_AT_ENV kills that process (SIGKILL, as a machine dying would) when the step's input
# equals it; STAMPS_ENV names a file each dispatch appends ``time.time() x`` to as it starts.
KILL_AT_ENV, STAMPS_ENV = "RETAP_BENCH_KILL_AT", "RETAP_BENCH_STAMPS"


class KillableStep(Step):
    """Step that can stamp when it starts and kill its own process (see KILL_AT_ENV)."""

    def process(self, x: int) -> list[int]:
        stamps = os.environ.get(STAMPS_ENV)
        if stamps:
            with open(stamps, "a") as fh:
                fh.write(f"{time.time()!r} {x}\n")
        if str(x) == os.environ.get(KILL_AT_ENV):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().process(x)


class End(retap.Task):
    """Chain tail: returns its input."""

    def process(self, x: int) -> int:
        return x


class Spread(retap.Task):
    """Fan-out lead: ``list(range(n))``."""

    def process(self, n: int) -> list[int]:
        return list(range(n))


class Noop(retap.Task):
    """Fan-out target: returns its input."""

    def process(self, x: int) -> int:
        return x


class Burn(retap.Task):
    """CPU-bound work: ``loops`` rounds of arithmetic in pure Python (holds the GIL)."""

    loops: int = 0

    def process(self, x: int) -> int:
        total = 0
        for i in range(self.loops):
            total += i * i
        return (x + total) % 7


class Nap(retap.Task):
    """Waits ``seconds`` as a task waiting on I/O or a subprocess would (GIL released)."""

    seconds: float = 0.0

    def process(self, x: int) -> int:
        time.sleep(self.seconds)
        return x
