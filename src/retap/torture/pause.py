"""A coordinator paused and taken over: the attempt stops itself at a fault point (SIGSTOP,
as a stopped VM would), recorded as the owner on a host of its own; another coordinator
takes the run over (``--take-over`` at once, or a plain resume or replay once the paused
one's lease has run out), then the paused one is let go on. Once its run was taken over it
must exit 1 saying so, write nothing more, and execute at most the one dispatch it was
about to run or running when it stopped (in ``batch`` durability, what it runs before its
group commits).

Drawn only for sequential attempts of cases without file tasks (a paused coordinator's
journals are waited for, not taken over). On SQLite only where the paused coordinator holds
no write transaction (it would hold the whole file: SQLite serves one host), so neither
inside a commit nor in ``batch`` durability (a group stays open between dispatches); on
PostgreSQL at every point, a transaction left open included (the server ends it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from retap.faults import IN_WORKER, JOURNAL_WRITE
from retap.history import history_problems
from retap.store.check import check_store
from retap.torture.procs import TIMEOUT, start, wait

if TYPE_CHECKING:
    import random

    from retap.store.sql import SQLStore
    from retap.torture.cases import Case
    from retap.torture.reference import Expected
    from retap.torture.scenario import Phase

__all__ = ["LEASE", "PAUSED_HOST", "pausable", "paused_attempt"]

PAUSED_HOST = "torture-paused"  # the host the paused coordinator is recorded under
LEASE = 2.0  # the paused coordinator's and its taker's lease, in seconds
OUTSIDE_A_TRANSACTION = ("before_dispatch", "after_execute", "after_commit")
TAKEN = "taken over by another coordinator"


def pausable(case: Case, args: list[str], fault: str | None, rng: random.Random) -> bool:
    """Whether this attempt's fault becomes a pause (drawn from ``rng``, a stream of its
    own, for the attempts it may be drawn for)."""
    if not fault or case.features.files or "-j" in args or \
            fault.startswith((IN_WORKER, JOURNAL_WRITE)):
        return False
    if "://" not in case.store and (case.result.durability == "batch" or
                                    fault.partition(":")[0] not in OUTSIDE_A_TRANSACTION):
        return False  # it would hold SQLite's write lock (a batch keeps its group open)
    return rng.random() < 0.15


def paused_attempt(case: Case, args: list[str], fault: str, wanted: Expected, phase: Phase,
                   rng: random.Random) -> tuple[bool, int]:
    """Run ``args`` paused at ``fault`` (``POINT:N:ACTION``, its action made ``stop``), take
    the run over, let the paused one go on, and judge all of it: (the case can go on, the
    exit code of the attempt that decides whether the run is done)."""
    from retap.torture.cases import draw_fault

    stop = f"{fault.rsplit(':', 1)[0]}:stop"
    if args[0] != "run":  # its host sees the last attempt's (dead) process as another host's
        args = [*args, "--take-over"]
    env = {**case.env, "RETAP_FAULT": stop, "RETAP_HOST": PAUSED_HOST,
           "RETAP_LEASE_SECONDS": str(LEASE)}
    case.result.attempts += 1
    case.log.mark(case.result.attempts)
    err_path = case.folder / "paused.err"
    proc = start([sys.executable, "-m", "retap", "--store", case.store, *args], case.project,
                 env, err_path)
    code = _until_stopped(proc)
    run = case.runs[-1]
    with case.open() as store:
        recorded = any(r.run == run for r in store.runs())
        owner = store.run_info(run).owner if recorded else None
    # a replay may stop before it claims the run: let go on, it claims it as any attempt
    claimed = owner is not None and (owner.host, owner.pid) == (PAUSED_HOST, proc.pid)
    if code is not None or not recorded:  # it ended before its stop, or stopped before its
        if code is None:                   # run was recorded: let it go on, judged as usual
            os.kill(proc.pid, signal.SIGCONT)
            code = wait(proc)
        case.note_attempt(args, stop, code, err_path.read_text())
        return case.judge(args, stop, code, wanted, phase), code
    case.result.faults["stop"] += 1
    case.note_attempt(args, f"{stop} (stopped)", None, "")
    with case.open() as store:  # what it ran before its stop is judged as any attempt's
        problems = case.problems_after(store, case.log.since_mark(), -signal.SIGSTOP)
        case.ledger.refresh(store, case.project, case.log)
    case.result.problems += [f"attempt {case.result.attempts} ({args[0]} {run}, paused "
                             f"at {stop}): {p}" for p in problems]

    take_over = rng.random() < 0.5
    if not take_over:
        time.sleep(LEASE + 0.5)  # its lease runs out: a plain resume or replay takes the run
    taker = [rng.choice(["resume", "replay"]), run, "--on-error", case.features.on_error,
             "--quiet", *(["--take-over"] if take_over else [])]
    taker_fault = draw_fault(rng, len(wanted.audit))  # it may die too
    saved, case.env = case.env, {**case.env, "RETAP_LEASE_SECONDS": str(LEASE)}
    try:
        taker_code = case.attempt(taker, taker_fault)
    finally:
        case.env = saved
    if not case.judge(taker, taker_fault, taker_code, wanted, phase):
        _let_go(proc)
        return False, taker_code
    with case.open() as store:
        taken = claimed and store.run_info(run).owner != owner
        before = _state(store, run)
    case.result.attempts += 1
    case.log.mark(case.result.attempts)
    os.kill(proc.pid, signal.SIGCONT)
    code = wait(proc)
    stderr = err_path.read_text()
    case.note_attempt(args, f"{stop} (let go on)", code, stderr)
    if not taken:  # no take-over (the taker died first, or there was no claim to take)
        return case.judge(args, stop, code, wanted, phase), code
    late = case.log.since_mark()
    last = (stderr.strip().splitlines() or [""])[-1]
    what = f"attempt {case.result.attempts} ({args[0]} {run} let go on after a take-over)"
    problems = [] if code == 1 and TAKEN in last else \
        [f"exited {code}, not 1 saying its run was {TAKEN}: {last}"]
    # in batch durability it learns at its group's commit, up to batch_ms after it woke
    if len({e.dispatch for e in late}) > 1 and case.result.durability != "batch":
        problems.append(f"executed {len(late)} dispatches after its run was taken over: "
                        + ", ".join(sorted({e.dispatch[:12] for e in late})))
    with case.open() as store:
        after = _state(store, run)
        if after != before:
            problems.append("wrote to the run after it was taken over")
        problems += check_store(store) or history_problems(store, run)
        case.ledger.refresh(store, case.project, case.log)
    case.result.pauses += 1
    case.result.problems += [f"{what}: {p}" for p in problems]
    return True, taker_code


def _until_stopped(proc: subprocess.Popen[Any]) -> int | None:
    """Wait until the process stops itself (None) or exits (its exit code)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        pid, status = os.waitpid(proc.pid, os.WUNTRACED | os.WNOHANG)
        if pid and os.WIFSTOPPED(status):
            return None
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    return -1


def _let_go(proc: subprocess.Popen[Any]) -> None:
    """The case stops here: the paused process is not left behind (SIGKILL ends a stopped
    process too)."""
    proc.kill()
    proc.wait()


def _state(store: SQLStore, run: str) -> tuple[Any, ...]:
    """What the paused coordinator must not change once its run is taken over."""
    info = store.run_info(run)
    return (info.status, info.owner, [(a.id, a.status, a.attempts) for a in store.audits(run)],
            len(store.events(run)), [d.id for d in store.queue(run)])
