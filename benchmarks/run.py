"""Run retap's benchmarks, print a table, and record it in benchmarks/README.md.

    python benchmarks/run.py               # the full suite (several minutes)
    python benchmarks/run.py --quick       # a fast smoke run with small sizes
    python benchmarks/run.py --only NAME   # one benchmark: throughput, resume, replay, memory,
                                           # parallel, baseline, postgres, codeversions,
                                           # startup

A full run rewrites the results section of README.md (between ``<!-- results -->`` and
``<!-- /results -->``); ``--quick`` and ``--only`` print only, unless ``--write`` is given.
These are measurements, not tests: the exit code is 0 even when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Import the suite as the package ``benchmarks`` (the tasks' recorded import paths say
# ``benchmarks.common:...``), not as loose modules from this directory.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    baseline,
    codeversions,
    memory,
    parallel,
    postgres,
    recovery,
    startup,
    throughput,
)
from benchmarks.common import REPEAT, Row  # noqa: E402

README = ROOT / "benchmarks" / "README.md"
START, END = "<!-- results -->", "<!-- /results -->"

BENCHMARKS: dict[str, Callable[[bool], list[Row]]] = {
    "throughput": throughput.run,
    "resume": recovery.run_resume,
    "replay": recovery.run_replay,
    "memory": memory.run,
    "parallel": parallel.run,
    "baseline": baseline.run,
    "postgres": postgres.run,
    "codeversions": codeversions.run,
    "startup": startup.run,
}


# -- the machine ------------------------------------------------------------------------------

def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _field(text: str, key: str) -> str:
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return ""


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _filesystem(path: str) -> str:
    """Type of the filesystem holding ``path`` (fsync costs depend on it)."""
    best, kind = "", "?"
    for line in _read("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) >= 3 and path.startswith(parts[1]) and len(parts[1]) >= len(best):
            best, kind = parts[1], parts[2]
    return kind


def retap_commit() -> str:
    commit = _git("rev-parse", "--short=10", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--", "src"):
        commit += " + uncommitted changes in src/"
    return commit


def machine() -> dict[str, str]:
    cpuinfo, meminfo = _read("/proc/cpuinfo"), _read("/proc/meminfo")
    ram_kb = _field(meminfo, "MemTotal").split()
    commit = retap_commit()
    tmp = os.path.realpath(tempfile.gettempdir())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()}" + (f" ({usable} usable)" if usable != os.cpu_count() else "")
    return {
        "CPU": _field(cpuinfo, "model name") or platform.processor() or "unknown",
        "cores": cores,
        "RAM": f"{int(ram_kb[0]) / 2**20:.1f} GiB" if ram_kb else "unknown",
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "SQLite": sqlite3.sqlite_version,
        "retap commit": commit,
        "temp dir": f"{tmp} ({_filesystem(tmp)})",
    }


def loadavg() -> str:
    return " ".join(_read("/proc/loadavg").split()[:3]) or "?"


# -- the table --------------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    """Markdown: the figures, then each row's notes by number."""
    head = ["#", "benchmark", "case", "best", f"worst .. best of {REPEAT} (spread)", "ratio",
            "target", "met"]
    body = [[str(i), r.bench, r.case, r.figure, r.spread, r.ratio, r.target, r.verdict]
            for i, r in enumerate(rows, 1)]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(cells) for cells in body]
    notes = [f"{i}. {r.note}" for i, r in enumerate(rows, 1) if r.note]
    if notes:
        out += ["", "Notes:", "", *notes]
    return "\n".join(out)


def missed(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.met is False]


def results_section(rows: list[Row], info: dict[str, str], started: datetime, took: float,
                    loads: tuple[str, str], command: str) -> str:
    duration = f"{took / 60:.1f} min" if took >= 60 else f"{took:.0f} s"
    lines = [f"Run on {started:%Y-%m-%d %H:%M %Z} with `{command}`; it took {duration}.", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [f"- load average (1/5/15 min) at start: {loads[0]}; at end: {loads[1]}", ""]
    lines += [table(rows), ""]
    bad = missed(rows)
    lines.append("Targets missed: " + (", ".join(f"#{rows.index(r) + 1} ({r.case})"
                                                  for r in bad) if bad else "none") + ".")
    return "\n".join(lines)


def write_readme(section: str) -> None:
    """Replace what lies between the marker lines (each alone on its line) with ``section``."""
    text = README.read_text() if README.exists() else "# retap benchmarks\n"
    lines = text.splitlines()
    try:
        start = lines.index(START)
        end = lines.index(END, start + 1)
    except ValueError:
        lines += ["", "## Results", "", START, END]
        start, end = len(lines) - 2, len(lines) - 1
    lines[start + 1:end] = section.splitlines()
    README.write_text("\n".join(lines) + "\n")


# -- main -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", choices=list(BENCHMARKS), help="run one benchmark")
    parser.add_argument("--write", action="store_true",
                        help="rewrite README.md's results even with --quick or --only")
    parser.add_argument("--no-write", action="store_true", help="never touch README.md")
    parser.add_argument("--baseline", default=baseline.BASELINE, metavar="REV",
                        help="the revision -j 1 is compared with (default: %(default)s)")
    args = parser.parse_args(argv)

    info = machine()
    started, clock = datetime.now().astimezone(), time.perf_counter()
    load_start = loadavg()
    print(f"retap benchmarks{' (quick)' if args.quick else ''}, {started:%Y-%m-%d %H:%M}")
    for key, value in info.items():
        print(f"  {key}: {value}")
    print(f"  load average: {load_start}", flush=True)

    rows: list[Row] = []
    names = [args.only] if args.only else list(BENCHMARKS)
    for name in names:
        print(f"\n== {name} ...", flush=True)
        begun = time.perf_counter()
        found = (baseline.run(args.quick, args.baseline) if name == "baseline"
                 else BENCHMARKS[name](args.quick))
        print(table(found))
        print(f"({name}: {time.perf_counter() - begun:.0f} s)", flush=True)
        rows += found

    took = time.perf_counter() - clock
    commit = retap_commit()
    if commit != info["retap commit"]:  # src/ changed under the suite (memory's children
        # import it afresh): say so rather than attribute the figures to one commit
        info["retap commit"] += f" at the start; {commit} at the end"
    loads = (load_start, loadavg())
    print(f"\n== all results ({took / 60:.1f} min)\n")
    print(table(rows))
    bad = missed(rows)
    print("\nTargets missed: " + (", ".join(r.case for r in bad) if bad else "none"))

    write = not args.no_write and (args.write or not (args.quick or args.only))
    if write:
        command = " ".join(["python benchmarks/run.py",
                            *(argv if argv is not None else sys.argv[1:])])
        write_readme(results_section(rows, info, started, took, loads, command))
        print(f"\nresults written to {README.relative_to(ROOT)}")
    else:
        print("\nREADME.md not changed (--quick/--only; add --write to record these)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
