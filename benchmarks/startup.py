"""What a fresh process pays before it does anything: the part of every command a user waits
for, and of a recovery after a crash.

Each figure is the wall time of whole processes (``sys.executable``, cwd a temp dir,
``PYTHONPATH`` pointing at this checkout's ``src/``), best of 3 after one untimed warm-up.
The children keep their bytecode in a cache of their own under the temp dir
(``PYTHONPYCACHEPREFIX``, and ``PYTHONDONTWRITEBYTECODE`` dropped): a user's installed
retap runs from compiled bytecode, and nothing is written into the checkout.

* ``import retap``: what ``python -X importtime -c "import retap"`` reports for ``retap``
  (its own import and everything it imports that the interpreter had not), as the issue
  asks it measured. The whole processes, ``python -c "import retap"`` against ``python -c
  pass``, are in the note: their difference is within their noise (it came out negative
  when the figure was that difference).
* ``retap runs`` on a SQLite store holding five short runs (made once, not timed).
* recovery: a 200-step chain of ``KillableStep`` in SQLite is killed with SIGKILL by its
  own step 150 (a real kill of a real process); a new process runs ``python -m retap
  --store S resume RUN``, and the figure is the time from starting it to the first
  re-executed step starting (the step's stamp in a side-channel file). Each repetition
  resumes a freshly killed run. The same from a Python process that calls
  ``retap.resume`` (RESUME_IN_PYTHON) shows what the command line adds: parsing with
  click, which a script does not load.
* ``retap show RUN`` and ``retap logs RUN`` of a run that failed after 100,000 done
  dispatches (``benchmarks.recovery.build``), against the same on a run of 1,000: what a
  user looking at a long run's failure waits for, and whether it grows with history.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (
    FAIL,
    KILL_AT_ENV,
    REPEAT,
    STAMPS_ENV,
    Row,
    Stat,
    chain,
    run_app,
    seconds,
    spread_of,
    temp_dir,
)
from retap import open_store
from retap.app import new_run_id

ROOT = Path(__file__).resolve().parent.parent
IMPORT_TARGET, RUNS_TARGET, RESUME_TARGET = 0.060, 0.080, 0.080
STEPS, KILL_AT = 200, 150

# What the killed child runs: the chain, under a run id the parent chose.
KILLED = """
import sys
from benchmarks.common import KillableStep, chain, open_store
from retap import App
App(chain(int(sys.argv[2]), step=KillableStep), open_store(sys.argv[1]), run_id=sys.argv[3]).run()
"""

# The same resume from Python, as a script that continues its own runs would call it.
RESUME_IN_PYTHON = """
import sys
import retap
retap.resume(retap.open_store(sys.argv[1]), sys.argv[2])
"""


def child_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT))),
           "PYTHONPYCACHEPREFIX": str(tmp / "pycache"), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def wall(args: list[str], tmp: Path) -> float:
    """Seconds from starting ``python ARGS`` to its exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=tmp, env=child_env(tmp), check=True,
                   capture_output=True)
    return time.perf_counter() - start


def import_time(tmp: Path) -> float:
    """Seconds ``python -X importtime`` gives ``import retap`` (its cumulative column)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import retap"],
                          cwd=tmp, env=child_env(tmp), check=True, capture_output=True,
                          text=True)
    for line in done.stderr.splitlines():  # "import time: SELF | CUMULATIVE | NAME" in us
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "retap":
            return int(parts[1]) / 1e6
    raise RuntimeError(f"-X importtime printed no line for retap: {done.stderr[-300:]}")


def commands(tmp: Path) -> dict[str, Stat]:
    """``python -c pass``, ``import retap`` and ``retap runs``, interleaved, best of REPEAT."""
    store = tmp / "runs.db"
    with open_store(store) as s:
        for _ in range(5):
            run_app(chain(10), s)
    cases = {"pass": ["-c", "pass"], "import": ["-c", "import retap"],
             "runs": ["-m", "retap", "--store", str(store), "runs"]}
    found = subprocess.run([sys.executable, "-c", "import retap; print(retap.__file__)"],
                           cwd=tmp, env=child_env(tmp), check=True, capture_output=True,
                           text=True).stdout.strip()
    if not Path(found).is_relative_to(ROOT / "src"):
        raise RuntimeError(f"the children import {found}, not retap from {ROOT / 'src'}")
    times: dict[str, list[float]] = {name: [] for name in (*cases, "importtime")}
    for rep in range(REPEAT + 1):  # the first round warms the bytecode cache
        for name, args in cases.items():
            took = wall(args, tmp)
            if rep:
                times[name].append(took)
        if rep:
            times["importtime"].append(import_time(tmp))
    return {name: Stat(values, higher_is_better=False) for name, values in times.items()}


def killed_run(path: Path, tmp: Path) -> str:
    """A chain run in ``path`` whose process was SIGKILLed as step KILL_AT started; its id."""
    run = new_run_id()
    done = subprocess.run([sys.executable, "-c", KILLED, str(path), str(STEPS), run], cwd=tmp,
                          env=child_env(tmp, **{KILL_AT_ENV: str(KILL_AT)}),
                          capture_output=True, text=True)
    if done.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the chain was not killed: exit {done.returncode}, {done.stderr}")
    return run


def resume_to_first_step(tmp: Path, rep: int, cli: bool = True) -> tuple[float, float]:
    """Resume a freshly killed run in a new process, with ``retap resume`` or from Python:
    (seconds to its first step, to its exit)."""
    path, stamps = tmp / f"killed-{rep}-{cli}.db", tmp / f"stamps-{rep}-{cli}"
    run = killed_run(path, tmp)
    env = child_env(tmp, **{STAMPS_ENV: str(stamps)})
    args = ["-m", "retap", "--store", str(path), "resume", run] if cli else \
        ["-c", RESUME_IN_PYTHON, str(path), run]
    start = time.time()
    done = subprocess.run([sys.executable, *args], cwd=tmp, env=env, capture_output=True,
                          text=True)
    end = time.time()
    if done.returncode != 0 or not stamps.exists():
        raise RuntimeError(f"resume: exit {done.returncode}, {done.stderr}")
    at, x = stamps.read_text().split("\n", 1)[0].split()
    if int(x) != KILL_AT:
        raise RuntimeError(f"the resume began at step {x}, not {KILL_AT}")
    return float(at) - start, end - start


def long_runs(tmp: Path, quick: bool) -> list[Row]:
    """``show`` and ``logs`` of a long failed run and of one a hundred times shorter."""
    from benchmarks.recovery import build

    large = 5_000 if quick else 100_000
    small = large // 100
    cases: dict[tuple[str, int], list[str]] = {}
    for done in (small, large):
        path = tmp / f"long-{done}.db"
        run, _ = build(path, done)
        for command in ("show", "logs"):
            cases[(command, done)] = ["-m", "retap", "--store", str(path), command, run]
    FAIL["at"] = None
    times: dict[tuple[str, int], list[float]] = {key: [] for key in cases}
    for rep in range(REPEAT + 1):  # the first round warms the bytecode cache
        for key, args in cases.items():
            took = wall(args, tmp)
            if rep:
                times[key].append(took)
    rows = []
    for command in ("show", "logs"):
        long, short = (Stat(times[(command, n)], higher_is_better=False) for n in (large, small))
        rows.append(Row(
            "startup", f"retap {command}, {large:,} done + 1 failing", seconds(long.best),
            spread_of(long, seconds), f"{long.best / short.best:.2f}x the {small:,}-done run",
            "", None, f"whole process; on the {small:,}-done run {seconds(short.best)}"))
    return rows


def run(quick: bool = False) -> list[Row]:
    first, whole, in_python = [], [], []
    with temp_dir() as tmp:
        found = commands(tmp)
        long_rows = long_runs(tmp, quick)
        for rep in range(REPEAT + 1):  # the first warms the bytecode cache for resume
            to_step, to_exit = resume_to_first_step(tmp, rep)
            from_python, _ = resume_to_first_step(tmp, rep, cli=False)
            if rep:
                first.append(to_step)
                whole.append(to_exit)
                in_python.append(from_python)
    bare, imported, runs = found["pass"], found["import"], found["runs"]
    retap_only = found["importtime"]
    resumed, resume_exit = Stat(first, higher_is_better=False), Stat(whole, higher_is_better=False)
    scripted = Stat(in_python, higher_is_better=False)
    return [
        Row("startup", "import retap, fresh process", seconds(retap_only.best),
            spread_of(retap_only, seconds), target=f"<= {seconds(IMPORT_TARGET)}",
            met=retap_only.best <= IMPORT_TARGET,
            note='`python -X importtime -c "import retap"`, the cumulative time of retap; '
                 f'whole processes: `python -c "import retap"` {seconds(imported.best)} '
                 f"({spread_of(imported, seconds)}) against `python -c pass` "
                 f"{seconds(bare.best)} ({spread_of(bare, seconds)})"),
        Row("startup", "retap runs, 5 runs in sqlite", seconds(runs.best),
            spread_of(runs, seconds), f"{runs.best / bare.best:.1f}x python -c pass",
            f"<= {seconds(RUNS_TARGET)}", runs.best <= RUNS_TARGET,
            f"whole process; the interpreter alone (`python -c pass`) {seconds(bare.best)}"),
        Row("startup", f"SIGKILLed at step {KILL_AT}: retap resume -> first step",
            seconds(resumed.best), spread_of(resumed, seconds), "",
            f"<= {seconds(RESUME_TARGET)}", resumed.best <= RESUME_TARGET,
            f"a {STEPS}-step chain in sqlite; from starting `python -m retap resume RUN` to "
            f"step {KILL_AT} starting again; the whole process, {STEPS - KILL_AT + 1} steps and "
            f"End: {seconds(resume_exit.best)}"),
        Row("startup", f"SIGKILLed at step {KILL_AT}: retap.resume() -> first step",
            seconds(scripted.best), spread_of(scripted, seconds),
            f"{scripted.best / resumed.best:.2f}x retap resume", "", None,
            "the same, from `python -c` calling `retap.resume(open_store(S), RUN)`: no "
            "command line, so no click"),
        *long_rows,
    ]
