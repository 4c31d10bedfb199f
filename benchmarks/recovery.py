"""Resume and replay of a long run: what it costs to continue after a failure.

Both start from the same kind of run: the ``chain`` workflow in a SQLite store (default
durability) whose Step fails on purpose right after ``done`` dispatches are done
(``FAIL["at"]``), so the run ends ``failed`` with ``done`` done dispatches and the failed
one at the head of its queue.

* resume (DESIGN §2.1) should cost O(pending + join state), not O(history): measured as
  the time from calling ``retap.resume`` to the first dispatch starting (a middleware's
  ``before_dispatch``), on a freshly opened store. The failure switch stays set, so each
  repetition fails again at the same place and the next one measures the same thing;
  a final resume with the switch cleared runs the run to ``done``. The same figure on a
  run a hundred times smaller shows whether it grows with history.
* replay (DESIGN §2.2) answers every done dispatch from the store and pushes the result
  through the joins again: measured as cached dispatches per second of the whole
  ``retap.replay`` call (setup, loading the done results, the loop, the final failing
  dispatch), and split once into setup (until the first cached answer) and loop. Beside
  it, the store's half alone: the same done dispatches asked for in recording order, as
  the replay asks (``seq`` then ``value`` of each), with no App, joins or queue: the
  most a replay could answer per second with a loop that cost nothing.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import retap
from benchmarks.common import (
    FAIL,
    REPEAT,
    FirstAnswer,
    FirstDispatch,
    Row,
    Stat,
    chain,
    rate,
    run_app,
    seconds,
    spread_of,
    temp_dir,
)
from retap import open_store
from retap.owner import Owner

RESUME_TARGET = 0.050  # seconds to the first new dispatch, on the long history
RESUME_SCALING = 1.5  # at most this many times the time on a history 100x shorter
REPLAY_TARGET = 150_000.0  # cached dispatches per second


def done_count(quick: bool) -> int:
    return 5_000 if quick else 100_000


def resume_count(quick: bool) -> int:
    return 20_000 if quick else 1_000_000


def build(path: Path, done: int) -> tuple[str, float]:
    """A chain run that fails after ``done`` done dispatches: (run id, seconds it took).

    Start and Step(1 .. done-1) are the done dispatches; Step(done) fails; Step(done ..
    done+10) and End remain, so a resume that succeeds runs 12 dispatches.
    """
    FAIL["at"] = done
    store = open_store(path)
    try:
        result, elapsed = run_app(chain(done + 10), store)
    finally:
        store.close()
    if result.status != "failed" or result.executed != done + 1:
        raise RuntimeError(f"building the run: {result.status}, {result.executed} executed")
    return result.run, elapsed


RESUMES = 3 * REPEAT  # a few ms each: the best of more is steadier, and costs little


def time_resumes(path: Path, run: str, done: int) -> tuple[Stat, Stat]:
    """Resume RESUMES times with the failure switch set: (time to first dispatch, whole
    call)."""
    first, whole = [], []
    FAIL["at"] = done
    for _ in range(RESUMES):
        store = open_store(path)
        probe = FirstDispatch()
        gc.collect()
        start = time.perf_counter()
        try:
            result = retap.resume(store, run, middleware=[probe])
        finally:
            end = time.perf_counter()
            store.close()
        if result.status != "failed" or result.executed != 1 or probe.at is None:
            raise RuntimeError(f"resume: {result.status}, {result.executed} executed")
        first.append(probe.at - start)
        whole.append(end - start)
    return Stat(first, higher_is_better=False), Stat(whole, higher_is_better=False)


def run_resume(quick: bool = False) -> list[Row]:
    done = resume_count(quick)
    small = done // 100
    rows = []
    with temp_dir() as tmp:
        path, small_path = tmp / "resume.db", tmp / "resume-small.db"
        run, built = build(path, done)
        small_run, _ = build(small_path, small)
        first, whole = time_resumes(path, run, done)
        small_first, _ = time_resumes(small_path, small_run, small)
        FAIL["at"] = None
        store = open_store(path)
        start = time.perf_counter()
        try:
            final = retap.resume(store, run)
        finally:
            finished = time.perf_counter() - start
            store.close()
        if final.status != "done":
            raise RuntimeError(f"the last resume ended {final.status}")
    scaling = first.best / small_first.best
    rows.append(Row(
        "resume", f"{done:,} done: resume -> first dispatch", seconds(first.best),
        spread_of(first, seconds), f"{scaling:.2f}x the {small:,}-done run",
        f"< {seconds(RESUME_TARGET)}, <= {RESUME_SCALING:g}x",
        first.best < RESUME_TARGET and scaling <= RESUME_SCALING,
        f"best of {RESUMES} resumes each; "
        f"whole resume call (fails again at once; its commit waits for the store's quick "
        f"check, which reads the whole file beside the dispatch): {seconds(whole.best)}; "
        f"building the run took {seconds(built)} ({done / built:,.0f}/s)"))
    rows.append(Row(
        "resume", f"{small:,} done: resume -> first dispatch", seconds(small_first.best),
        spread_of(small_first, seconds), "", "", None, "for comparison: 100x less history"))
    rows.append(Row(
        "resume", f"{done:,} done: resume to done", seconds(finished), "(1 run)", "", "",
        None, f"failure switch cleared; executed {final.executed} dispatches"))
    return rows


def run_replay(quick: bool = False) -> list[Row]:
    done = done_count(quick)
    rates, setup, loop, reads = [], 0.0, 0.0, []
    with temp_dir() as tmp:
        path = tmp / "replay.db"
        run, built = build(path, done)
        for _ in range(REPEAT):
            reads.append(done / read_alone(path, run))
        FAIL["at"] = done  # stays set: each replay fails again at the same place
        for rep in range(REPEAT + 1):
            instrumented = rep == REPEAT  # one extra run with a probe, for the split
            probe = FirstAnswer()
            store = open_store(path)
            gc.collect()
            start = time.perf_counter()
            try:
                result = retap.replay(store, run, middleware=[probe] if instrumented else [])
            finally:
                end = time.perf_counter()
                store.close()
            if result.status != "failed" or result.cached != done:
                raise RuntimeError(f"replay: {result.status}, {result.cached} cached")
            if instrumented:
                assert probe.at is not None
                setup, loop = probe.at - start, end - probe.at
            else:
                rates.append(result.cached / (end - start))
    stat, alone = Stat(rates), Stat(reads)
    return [Row(
        "replay", f"{done:,} done + 1 failing", rate(stat.best), spread_of(stat, rate),
        f"{stat.best / (done / built):.1f}x the recorded run's speed", f">= {REPLAY_TARGET:,.0f}/s",
        stat.best >= REPLAY_TARGET,
        f"one probed replay: setup until the first cached answer {seconds(setup)}, "
        f"then {seconds(loop)} for the rest ({done / loop:,.0f}/s)"), Row(
        "replay", f"{done:,} done: the store's reads alone", rate(alone.best),
        spread_of(alone, rate), f"replay {stat.best / alone.best:.2f}x of it", "", None,
        "each done dispatch's seq and value, asked in recording order as a replay asks, "
        "without the App: what a replay could reach if its loop cost nothing" +
        ("; below the replay's target: the target is above this machine's floor"
         if alone.best < REPLAY_TARGET else ""))]


def read_alone(path: Path, run: str) -> float:
    """Seconds to ask the store for every done dispatch of ``run`` as a replay does."""
    store = open_store(path)
    try:
        ids = [a.id for a in store.audits(run) if a.status == "done"]
        log = store.claim_run(run, Owner.current())
        gc.collect()
        start = time.perf_counter()
        cached = log.cached()
        for dispatch in ids:
            cached.seq(dispatch)
            cached.value(dispatch)
        took = time.perf_counter() - start
        log.close()
    finally:
        store.close()
    return took
