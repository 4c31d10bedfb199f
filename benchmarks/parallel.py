"""Parallel execution: what ``-j N`` buys on CPU-bound and waiting tasks, and what the
coordinator can pass through when tasks do nothing.

- **cpu**: 64 dispatches of ~100 ms of pure-Python arithmetic (``Burn``, calibrated on this
  machine before the runs) fanned out from one ``Spread``, run ``-j 1`` (in the App's
  thread), ``-j 2`` on worker processes and on a Dask ``LocalCluster`` of 2 workers. The
  figure is the time from calling ``App.run`` to its last commit (so not the executor's
  shut-down); the ratio is the speed-up over ``-j 1`` measured in the same repetition. The
  process pool starts inside ``App.run`` (so its start-up is paid for); the Dask cluster
  starts when the App is made and is timed apart.
- **sleep**: 200 dispatches that sleep 50 ms (``Nap``), ``-j 16`` on threads: the ideal is
  200 x 50 ms / 16 = 0.625 s; the ratio is the figure / ideal.
- **coordinator**: trivial dispatches (``Noop``) on 2 worker processes with the SQLite store
  at its default durability: dispatches per second through the one coordinator that
  records them all.

Stores are SQLite files in a fresh temp dir (default durability), as a user's run would
have. Best of N, repetitions interleaved across executors.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    REPEAT,
    Burn,
    Nap,
    Noop,
    Row,
    Stat,
    fan_out,
    open_store,
    rate,
    remove_store,
    seconds,
    spread_of,
    temp_dir,
)
from retap import App, Middleware, Workflow

ROOT = Path(__file__).resolve().parent.parent
CPU_ITEMS, CPU_SECONDS = 64, 0.1
NAPS, NAP_SECONDS, NAP_JOBS = 200, 0.05, 16


def calibrate(seconds_wanted: float) -> int:
    """How many ``Burn`` loops take ``seconds_wanted`` here (the fastest of 5 tries, as
    the timings are best of N too)."""
    loops = 10_000
    while _burn_seconds(loops) < 0.05:
        loops *= 2
    fastest = min(_burn_seconds(loops) for _ in range(5))
    return max(1, round(loops * seconds_wanted / fastest))


def _burn_seconds(loops: int) -> float:
    start = time.perf_counter()
    Burn(loops=loops).process(0)
    return time.perf_counter() - start


class LastCommit(Middleware):
    """When the last dispatch was committed: the run's work is over then, before the App
    shuts its executor down (a Dask cluster takes a while to stop)."""

    def __init__(self) -> None:
        self.at = 0.0

    def after_commit(self, app: object, dispatch: object, outcome: object) -> None:
        self.at = time.perf_counter()


def dask_available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _timed(workflow: Workflow, path: Path, jobs: int, executor: str | None) -> Timing:
    """Run ``workflow`` in a fresh SQLite store: seconds from ``App.run`` to the last
    commit, seconds making the App took (a Dask cluster starts there), and the
    coordinator's CPU seconds (all its threads, then its main thread alone)."""
    store = open_store(path)
    last = LastCommit()
    try:
        made = time.perf_counter()
        app = App(workflow, store, jobs=jobs, executor=executor, middleware=[last])
        startup = time.perf_counter() - made
        gc.collect()
        start, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
        result = app.run()  # closes its executor
        cpu, main = time.process_time() - cpu, time.thread_time() - main
    finally:
        store.close()
        remove_store(path)
    if result.status != "done":
        raise RuntimeError(f"{executor or 'inline'} -j {jobs} ended {result.status}")
    return Timing(last.at - start, startup, cpu, main)


@dataclass
class Timing:
    took: float
    startup: float
    cpu: float
    main_cpu: float


def measure_cpu(quick: bool, tmp: Path) -> tuple[dict[str, Stat], dict[str, Stat], int, int]:
    """Wall times per executor, speed-ups over -j 1 per repetition, items, loops."""
    items = 8 if quick else CPU_ITEMS
    loops = calibrate(CPU_SECONDS)
    setups: dict[str, tuple[int, str | None]] = {"-j 1": (1, None),
                                                  "-j 2 processes": (2, "processes")}
    if dask_available():
        setups["-j 2 dask LocalCluster"] = (2, "dask")
    walls: dict[str, list[float]] = {name: [] for name in setups}
    ups: dict[str, list[float]] = {name: [] for name in setups}
    startups: list[float] = []
    for rep in range(REPEAT):
        for name, (jobs, executor) in setups.items():
            timing = _timed(fan_out(items, target_task=Burn(loops=loops)),
                            tmp / f"cpu-{rep}-{jobs}-{executor}.db", jobs, executor)
            walls[name].append(timing.took)
            if executor == "dask":
                startups.append(timing.startup)
        for name in setups:
            ups[name].append(walls["-j 1"][-1] / walls[name][-1])
    walls_stat = {name: Stat(v, higher_is_better=False) for name, v in walls.items()}
    ups_stat = {name: Stat(v) for name, v in ups.items()}
    if startups:
        walls_stat["dask start-up"] = Stat(startups, higher_is_better=False)
    return walls_stat, ups_stat, items, loops


def measure_sleep(quick: bool, tmp: Path) -> tuple[Stat, int]:
    naps = 48 if quick else NAPS
    walls = [_timed(fan_out(naps, target_task=Nap(seconds=NAP_SECONDS)),
                    tmp / f"sleep-{rep}.db", NAP_JOBS, "threads").took for rep in range(REPEAT)]
    return Stat(walls, higher_is_better=False), naps


def measure_coordinator(quick: bool, tmp: Path) -> tuple[Stat, int, Timing]:
    """Dispatches per second, dispatches per run, and the timing of the fastest run."""
    n = 1_000 if quick else 10_000
    timings = [_timed(fan_out(n, target_task=Noop()), tmp / f"noop-{rep}.db", 2, "processes")
               for rep in range(REPEAT)]
    fastest = min(timings, key=lambda t: t.took)
    return Stat([(n + 1) / t.took for t in timings]), n + 1, fastest


def run(quick: bool = False) -> list[Row]:
    # Workers (forked from a fork server, or Dask's spawned ones) import the tasks from
    # ``benchmarks.common``: they need the repository root on their path.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    rows: list[Row] = []
    with temp_dir() as tmp:
        walls, ups, items, loops = measure_cpu(quick, tmp)
        ideal = items * CPU_SECONDS
        targets = {"-j 2 processes": 1.8, "-j 2 dask LocalCluster": 1.6}
        for name, stat in walls.items():
            if name == "dask start-up":
                rows.append(Row("parallel", "cpu: dask LocalCluster start-up (2 workers)",
                                seconds(stat.best), spread_of(stat, seconds),
                                note="making the App: not in the figures above"))
                continue
            up, target = ups[name], targets.get(name)
            rows.append(Row(
                "parallel", f"cpu: {items} x {CPU_SECONDS * 1000:.0f} ms, {name}",
                seconds(stat.best), spread_of(stat, seconds),
                ratio="" if name == "-j 1" else f"{up.best:.2f}x -j 1 (worst {up.worst:.2f}x)",
                target="" if target is None else f">= {target}x -j 1",
                met=None if target is None else up.best >= target,
                note=(f"Burn(loops={loops:,}) calibrated to {CPU_SECONDS * 1000:.0f} ms here; "
                      f"the serial ideal is {ideal:.1f} s" if name == "-j 1" else ""),
            ))
        nap, naps = measure_sleep(quick, tmp)
        ideal_nap = naps * NAP_SECONDS / NAP_JOBS
        rows.append(Row(
            "parallel", f"sleep: {naps} x {NAP_SECONDS * 1000:.0f} ms, -j {NAP_JOBS} threads",
            seconds(nap.best), spread_of(nap, seconds),
            ratio=f"{nap.best / ideal_nap:.2f}x the ideal {seconds(ideal_nap)}",
            target="<= 1.2x ideal", met=nap.best / ideal_nap <= 1.2))
        coord, count, timing = measure_coordinator(quick, tmp)
        per = 1e6 / count
        rows.append(Row(
            "parallel", "coordinator: trivial tasks, -j 2 processes, sqlite",
            rate(coord.best), spread_of(coord, rate), target=">= 3,000/s",
            met=coord.best >= 3000,
            note=f"{count:,} dispatches per run; the coordinator's CPU per dispatch in the "
                 f"fastest run: {timing.cpu * per:.0f} us, {timing.main_cpu * per:.0f} us of "
                 f"it in its main thread (the App, SQLite and the pipes to the workers); "
                 f"any rest in other threads of the coordinator"))
    return rows
