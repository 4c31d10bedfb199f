"""Shared parts of the benchmarks: the workflows, stores in a temp dir, timing, rows.

The tasks live in tasks.py (see there why) and are taken from here too.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import retap
from benchmarks.tasks import (  # noqa: F401 (the benchmarks take them from here)
    FAIL,
    KILL_AT_ENV,
    STAMPS_ENV,
    BenchFailure,
    Burn,
    End,
    KillableStep,
    Nap,
    Noop,
    Spread,
    Start,
    Step,
)
from retap import App, Workflow, open_store
from retap.store.base import Store

# -- workflows --------------------------------------------------------------------------------

def chain(n: int, enq: bool = False, step: type[Step] = Step) -> Workflow:
    """Start(0) -> Step, Step --switch--> [Step, End]: Step runs n times, one after another.

    n + 2 dispatches (Start, n x Step, End); the queue never holds more than one.
    Each Step dispatch's id hashes its source's audit id, so ids are unique.
    ``step``: Step or a subclass of it (KillableStep).
    """
    wf = Workflow()
    a = wf.add(Start(), 0)
    b = wf.add(step(n=n))
    c = wf.add(End())
    wf.join(a, b)
    wf.join(b, [b, c], "switch", enq=enq)
    return wf


def fan_out(n: int, enq: bool = False, target_task: retap.Task | None = None) -> Workflow:
    """Spread(n) --iterate--> Noop (or ``target_task``): n + 1 dispatches, n of them queued
    at once.

    ``enq=False`` (depth-first, the default) puts the n targets at the head of the queue;
    ``enq=True`` appends them at its tail.
    """
    wf = Workflow()
    lead = wf.add(Spread(), n)
    target = wf.add(target_task or Noop())
    wf.join(lead, target, iterate=True, enq=enq)
    return wf


WORKFLOWS: dict[str, Callable[[int], Workflow]] = {
    "chain": chain,
    "fan-out": fan_out,
    "fan-out q": lambda n: fan_out(n, enq=True),
}

# -- stores -----------------------------------------------------------------------------------

STORES: dict[str, Callable[[Path], Store]] = {
    "memory": lambda path: retap.MemoryStore(),
    "sqlite": lambda path: open_store(path),
    "sqlite power": lambda path: open_store(path, durability="power"),
    "sqlite batch": lambda path: open_store(path, durability="batch"),
}


@contextmanager
def temp_dir() -> Iterator[Path]:
    """A fresh directory under the system temp dir, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="retap-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def store_bytes(path: Path) -> int:
    """Size of a SQLite store file with its -wal and -shm files."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
               if p.exists())


def remove_store(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)


def run_app(workflow: Workflow, store: Store, **options: Any) -> tuple[retap.RunResult, float]:
    """Run ``workflow`` in ``store``; the result and the seconds ``App.run`` took."""
    app = App(workflow, store, **options)
    gc.collect()
    start = time.perf_counter()
    result = app.run()
    return result, time.perf_counter() - start


class FirstDispatch(retap.Middleware):
    """Records when the first dispatch that really executes is about to start."""

    def __init__(self) -> None:
        self.at: float | None = None

    def before_dispatch(self, app: Any, dispatch: Any) -> None:
        if self.at is None:
            self.at = time.perf_counter()


class FirstAnswer(retap.Middleware):
    """Records when the first dispatch (cached or executed) has its outcome."""

    def __init__(self) -> None:
        self.at: float | None = None

    def after_dispatch(self, app: Any, dispatch: Any, outcome: Any) -> None:
        if self.at is None:
            self.at = time.perf_counter()


# -- figures ----------------------------------------------------------------------------------

REPEAT = 3  # best of N: the machine is noisy


@dataclass
class Stat:
    """Repeated measurements of one figure; ``best`` is the max (rates) or min (times)."""

    values: list[float]
    higher_is_better: bool = True

    @property
    def best(self) -> float:
        return max(self.values) if self.higher_is_better else min(self.values)

    @property
    def worst(self) -> float:
        return min(self.values) if self.higher_is_better else max(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        """(worst - best) relative to best, in percent (0 when measured once)."""
        if len(self.values) < 2 or not self.best:
            return 0.0
        return abs(self.best - self.worst) / abs(self.best) * 100.0


@dataclass
class Row:
    """One line of the results table."""

    bench: str           # benchmark module: throughput, resume, replay, memory
    case: str            # what was measured, e.g. "chain, sqlite"
    figure: str          # best value, formatted with its unit
    spread: str = ""     # "worst..best (x%)" or "" when measured once
    ratio: str = ""      # relative figure, e.g. "0.28x memory"
    target: str = ""     # e.g. ">= 10,000/s"
    met: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "NO", None: ""}[self.met]


def rate(x: float) -> str:
    return f"{x:,.0f}/s"


def seconds(x: float) -> str:
    return f"{x * 1000:,.1f} ms" if x < 1 else f"{x:,.2f} s"


def mb(x: float) -> str:
    """Megabytes (10**6 bytes)."""
    return f"{x:,.1f} MB"


def spread_of(stat: Stat, fmt: Callable[[float], str]) -> str:
    if len(stat.values) < 2:
        return "(1 run)"
    return f"{fmt(stat.worst)} .. {fmt(stat.best)} ({stat.spread:.0f}%)"


def rss_now_mb() -> float:
    """Current resident set size in MB (10**6 bytes), from /proc (0 where missing)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0
