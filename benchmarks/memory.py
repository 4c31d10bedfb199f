"""Peak memory of a long run with the SQLite store: history must live on disk, not in RAM.

Each size runs the ``chain`` workflow in a fresh Python process (so nothing measured
before counts) with the SQLite store at its default durability. The child reports its
peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss`` at the end), its RSS just before the run
(interpreter + imports), the store's size on disk (file + -wal + -shm) and a few RSS
samples taken during the run by a background thread (every 0.5 s; negligible cost), so a
slow leak shows as a rising curve. Running 100,000 and 1,000,000 dispatches side by
side shows whether memory grows with history. Measured once per size: peak RSS is not
timing-noisy the way throughput is.

On Linux ``ru_maxrss`` survives ``exec``: a process spawned straight from this (by then
large) benchmark process would report the parent's RSS at spawn as its own peak. So the
child is started by ``/bin/sh``, which forks it afresh, and it also reports ``VmHWM``
(the high-water mark of its own address space) as a cross-check.

Child mode (used by the parent): ``python -m benchmarks.memory --child N STORE_PATH``.
"""

from __future__ import annotations

import json
import resource
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import retap
from benchmarks.common import Row, chain, mb, rss_now_mb, store_bytes, temp_dir
from retap import App, open_store
from retap.store.postgres import is_postgres_url

ROOT = Path(__file__).resolve().parent.parent

TARGET_MB = 250.0
FLAT_TOLERANCE = 0.10  # "does not grow": peak at the large size within 10% of the small one


def sizes(quick: bool) -> tuple[int, int]:
    return (5_000, 50_000) if quick else (100_000, 1_000_000)


# -- the child --------------------------------------------------------------------------------

def child(n: int, path: str) -> dict[str, Any]:
    # PostgreSQL (the postgres benchmark's replay rows) builds its history in groups
    store = open_store(path, durability="batch") if is_postgres_url(path) else open_store(path)
    workflow = chain(n)
    app = App(workflow, store)
    before = rss_now_mb()
    samples: list[tuple[int, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append((app.executed, rss_now_mb()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = app.run()
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux
    hwm = _status_kb("VmHWM") * 1024 / 1e6
    store.close()
    return {"n": n, "status": result.status, "executed": result.executed,
            "elapsed": elapsed, "peak_mb": peak, "hwm_mb": hwm, "before_mb": before,
            "end_mb": rss_now_mb(), "store_bytes": store_bytes(Path(path)), "samples": samples}


def replay_child(n: int, path: str) -> dict[str, Any]:
    """Replay the run the run child left (every dispatch answered from the store, End run
    again with ``--from``): issue 13 asks a long replay to keep memory flat as well."""
    store = open_store(path)
    run = store.runs()[0].run
    before = rss_now_mb()
    start = time.perf_counter()
    result = retap.replay(store, run, from_nodes=[2])
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    store.close()
    return {"n": n, "status": result.status, "executed": result.cached, "elapsed": elapsed,
            "peak_mb": peak, "hwm_mb": _status_kb("VmHWM") * 1024 / 1e6, "before_mb": before}


def _status_kb(key: str) -> int:
    """A ``kB`` field of /proc/self/status (0 where missing)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


# -- the parent -------------------------------------------------------------------------------

def measure(n: int, path: Path, mode: str = "--child") -> dict[str, Any]:
    command = shlex.join([sys.executable, "-m", "benchmarks.memory", mode, str(n),
                          str(path)])
    # "; exit $?" keeps sh from exec'ing python in place: python is forked from the small
    # sh process, so its ru_maxrss does not start at this process's RSS.
    proc = subprocess.run(["/bin/sh", "-c", f"{command}; exit $?"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child ({n:,}) failed:\n{proc.stderr}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if data["status"] != "done":
        raise RuntimeError(f"memory child ({n:,}) ended {data['status']}")
    return data


def _curve(data: dict[str, Any]) -> str:
    """RSS at about a quarter, half and three quarters of the run."""
    samples = data["samples"]
    if len(samples) < 4:
        return ""
    picks = [samples[len(samples) * k // 4] for k in (1, 2, 3)]
    return "RSS during the run: " + ", ".join(f"{mb:.0f} MB at {done:,}" for done, mb in picks)


def run(quick: bool = False) -> list[Row]:
    small_n, large_n = sizes(quick)
    results = {}
    replays = {}
    with temp_dir() as tmp:
        for n in (small_n, large_n):
            results[n] = measure(n, tmp / f"memory-{n}.db")
            replays[n] = measure(n, tmp / f"memory-{n}.db", "--replay-child")
            (tmp / f"memory-{n}.db").unlink(missing_ok=True)
    rows = []
    for n in (large_n, small_n):
        data = results[n]
        target = TARGET_MB if n == large_n else None
        notes = [f"RSS before the run {data['before_mb']:.0f} MB",
                 f"VmHWM {data['hwm_mb']:.1f} MB",
                 f"store {data['store_bytes'] / 1e6:,.0f} MB on disk "
                 f"({data['store_bytes'] / data['executed']:.0f} B/dispatch)",
                 f"{data['executed']:,} dispatches in {data['elapsed']:.1f} s "
                 f"({data['executed'] / data['elapsed']:,.0f}/s)"]
        if _curve(data):
            notes.append(_curve(data))
        rows.append(Row(
            "memory", f"chain {n:,}, sqlite: peak RSS", mb(data["peak_mb"]), "(1 run)",
            f"+{data['peak_mb'] - data['before_mb']:.0f} MB over the bare process",
            "" if target is None else f"< {target:g} MB",
            None if target is None else data["peak_mb"] < target, "; ".join(notes)))
    small, large = results[small_n]["peak_mb"], results[large_n]["peak_mb"]
    growth = large / small - 1
    rows.append(Row(
        "memory", f"peak RSS {large_n:,} vs {small_n:,}", f"{large - small:+.1f} MB",
        "(1 run each)", f"{large / small:.2f}x", f"flat (within {FLAT_TOLERANCE:.0%})",
        growth <= FLAT_TOLERANCE, f"{large_n // small_n}x the history"))
    small, large = replays[small_n]["peak_mb"], replays[large_n]["peak_mb"]
    growth = large / small - 1
    rows.append(Row(
        "memory", f"replay peak RSS {large_n:,} vs {small_n:,}", f"{large - small:+.1f} MB",
        "(1 run each)", f"{large / small:.2f}x", f"flat (within {FLAT_TOLERANCE:.0%})",
        growth <= FLAT_TOLERANCE,
        f"replay of the run above, every dispatch answered from the store: peak "
        f"{mb(small)} at {small_n:,}, {mb(large)} at {large_n:,} "
        f"({replays[large_n]['executed'] / replays[large_n]['elapsed']:,.0f} cached/s)"))
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), sys.argv[3])))
    elif len(sys.argv) == 4 and sys.argv[1] == "--replay-child":
        print(json.dumps(replay_child(int(sys.argv[2]), sys.argv[3])))
    else:
        sys.exit("usage: python -m benchmarks.memory --child|--replay-child N STORE_PATH "
                 "(run the suite with: python benchmarks/run.py)")
