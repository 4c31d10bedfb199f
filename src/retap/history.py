"""A run's history: its timeline of events (created, each resume and replay, ``--set``
changes, code changes, signals, the end) and every attempt of every dispatch.

A dispatch's row in the store is its latest attempt; the store keeps each earlier one
apart before the row is written over. ``attempt_history`` puts the two together, naming
for the latest attempt the session its commit was made in.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from retap.dispatch import Attempt
from retap.owner import host_name
from retap.store.base import (
    LOST,
    SESSIONS,
    AuditRecord,
    RunEvent,
    Store,
    session_of,
    session_starts,
)

if TYPE_CHECKING:
    from retap.workflow import Workflow

__all__ = ["actor", "as_shown", "attempt_history", "event_line", "history_problems",
           "recorded_code", "run_summary", "session_facts", "shown_status"]


def session_facts(workflow: Workflow) -> dict[str, Any]:
    """Who starts a run, resume or replay, and how: the command line (with the value of
    every secret config of ``workflow`` masked), host, process, user and retap version."""
    program = sys.argv[0] if sys.argv else "python"
    program = "retap" if program.endswith(os.path.join("retap", "__main__.py")) else \
        os.path.basename(program)  # python -m retap: as the user would type it
    argv = [program, *sys.argv[1:]]
    for value in _secrets(workflow):
        argv = [arg.replace(value, "***") for arg in argv]
    return {"argv": argv, **actor(), "code": _code_parts(workflow)}


def _code_parts(workflow: Workflow) -> dict[str, dict[str, str]]:
    """The parts of code each task's version was made of, so that a later resume or replay
    can name the function that changed."""
    found: dict[str, dict[str, str]] = {}
    for node in workflow.nodes.values():
        info = type(node.task).__retap__
        if info.code.parts:
            found[info.import_path] = info.code.parts
    return found


def recorded_code(events: list[RunEvent]) -> dict[str, dict[str, str]]:
    """Code version -> the parts it was made of, as the run's sessions recorded them."""
    from retap.codeversion import digest_of  # only a resume or replay with code changes

    found: dict[str, dict[str, str]] = {}
    for event in events:
        code = event.data.get("code") if event.kind in SESSIONS else None
        for parts in (code.values() if isinstance(code, dict) else ()):
            if isinstance(parts, dict) and all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in parts.items()):
                found[digest_of(parts)] = parts
    return found


def actor() -> dict[str, Any]:
    """Who acts on a run from this process: host, process, user and retap version."""
    return {"host": host_name(), "pid": os.getpid(), "user": _user(), "version": _version()}


def _secrets(workflow: Workflow) -> list[str]:
    """The values of the workflow's secret configs, as they may appear on a command line."""
    from retap.secret import secret_types

    kinds = secret_types()
    found = set()
    for node in workflow.nodes.values():
        for value in node.task._config.values():
            if isinstance(value, kinds):
                clear = value.get_secret_value()
                text = clear.decode(errors="replace") if isinstance(clear, bytes) else clear
                if text:
                    found.add(text)
    return sorted(found, key=len, reverse=True)  # a secret inside another is masked last


def run_summary(events: list[RunEvent], running: bool, now: float
                ) -> tuple[float | None, str | None]:
    """How long a run has run (the sum of its sessions that ended, and of the one
    ``running`` until ``now``; a session killed before it could write its end is not
    known, so not counted) and the command that created it; None for what its events do
    not tell (a run of an older store)."""
    took, began = 0.0, None
    for event in events:
        if event.kind in SESSIONS:
            began = event.at
        elif event.kind == "finished" and began is not None:
            took, began = took + max(0.0, event.at - began), None
    if began is not None and running:
        took += max(0.0, now - began)
    created = next((e for e in events if e.kind == "created"), None)
    command = shlex.join(map(str, created.data.get("argv", []))) if created else None
    return (took if events else None), command


def shown_status(status: str, live: bool) -> str:
    """A dispatch's status as a user is shown it: in a run no process runs any more (not
    ``live``), one still recorded running was in flight when its coordinator died, and
    reads ``lost``, as its attempt is kept once a resume runs it again (the run itself
    reads interrupted, DESIGN §6). The store keeps it running: a resume asks for it."""
    return LOST if status == "running" and not live else status


def as_shown(audits: list[AuditRecord], live: bool) -> list[AuditRecord]:
    """``audits`` with their statuses as shown (see ``shown_status``)."""
    if live:
        return audits
    return [a if (shown := shown_status(a.status, live)) == a.status
            else replace(a, status=shown) for a in audits]


def attempt_history(store: Store, run: str, audits: list[AuditRecord]
                    ) -> dict[str, list[Attempt]]:
    """Every attempt of each dispatch in ``audits``, in order, the latest last; a result
    answered from the memo comes last as ``reused`` (numbered 0: no attempt was made).
    Each names the process that ran it (``worker``): a worker's, else its session's
    coordinator's (unknown for a session of an older store). An attempt in flight in a
    run no process runs any more is ``lost`` (see ``shown_status``)."""
    live = store.run_info(run, count=False).effective_status == "running"
    earlier = store.earlier_attempts(run)
    events = store.events(run)
    sessions = session_starts(events)
    coordinators = {e.seq: (str(e.data.get("host", "?")), e.data.get("pid", 0))
                    for e in events if e.kind in SESSIONS}
    workers = store.workers(run)
    history = {}
    for a in audits:
        running = a.status == "running"  # in flight (or lost): the attempt after those counted
        latest = Attempt(a.attempts + running, session_of(sessions, a.seq),
                         shown_status(a.status, live), a.started or None,
                         a.finished or None, a.error)
        if a.reused is not None:  # answered from the memo: no attempt of its own
            latest.n, latest.status = 0, "reused"
        history[a.id] = [
            replace(t, worker=workers.get((a.id, t.n)) or coordinators.get(t.session))
            if t.status != "reused" else t for t in [*earlier.get(a.id, []), latest]]
    return history


def history_problems(store: Store, run: str) -> list[str]:
    """What is wrong with ``run``'s history, one line each: a dispatch whose attempts are
    not all kept (numbered 1 to its count, the latest last), one with a done attempt
    before its latest whose next attempt no replay made (only a replay, or a resume with
    ``--rerun-changed``, runs a done dispatch again; a later resume may go on with it),
    attempts out of session order, a timeline out
    of order, output kept for an attempt that was never made (lost, reused or unknown)."""
    audits = store.audits(run)
    problems = []
    history = attempt_history(store, run, audits)
    events = store.events(run)
    reruns = {e.seq for e in events if _reruns_done(e)}  # those sessions, by number
    for a in audits:
        h = history[a.id]
        numbers = [t.n for t in h if t.status != "reused"]
        where = f"{run}/{a.id[:12]}"
        if numbers != list(range(1, len(numbers) + 1)) or len(numbers) != a.attempts + \
                (a.status == "running") or any(t.status == "reused" for t in h[:-1]):
            problems.append(f"{where} history of attempts {numbers} for {a.attempts} "
                            f"counted ({a.status})")
        # each done attempt is followed by one a rerunning session made; what comes after
        # that one may be a resume going on with it (it failed again, say)
        if a.status != "done" and any(t.status == "done" and h[k + 1].session not in reruns
                                      for k, t in enumerate(h[:-1])):
            problems.append(f"{where} history of attempts has a done attempt before its "
                            f"latest ({a.status})")
        sessions = [t.session for t in h]
        if sessions != sorted(sessions):
            problems.append(f"{where} history of attempts in sessions {sessions}")
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"{run} history of events numbered {seqs}")
    made = {(d, t.n) for d, h in history.items() for t in h
            if t.status in ("done", "failed", "interrupted")}
    problems += [f"{run}/{e.dispatch[:12]} history of output names attempt {e.attempt}, "
                 f"which was not made" for e in store.logs(run)
                 if (e.dispatch, e.attempt) not in made]
    return problems


def _reruns_done(event: RunEvent) -> bool:
    """The session ``event`` starts runs done dispatches again: a replay, or a resume with
    ``--rerun-changed``."""
    options = event.data.get("options")
    return event.kind == "replayed" or (event.kind == "resumed" and isinstance(options, dict)
                                        and bool(options.get("rerun_changed")))


def event_line(event: RunEvent) -> str:
    """One event as a line of ``retap show``."""
    d = event.data
    if event.kind in SESSIONS:
        line = f"{event.kind} by {d.get('user', '?')} on {d.get('host', '?')} (pid " \
               f"{d.get('pid', '?')}, retap {d.get('version', '?')}): " \
               f"{shlex.join(map(str, d.get('argv', [])))}"
        if d.get("took_over"):
            line += f"; took the run over from {d['took_over']}"
        return line
    if event.kind == "set":
        return f"--set {d.get('node')}.{d.get('key')}: {d.get('old')!r} -> {d.get('new')!r}"
    if event.kind == "code":
        from retap.codeversion import where_changed

        return (f"code of node {d.get('node')} ({d.get('task')}) changed {d.get('old')} -> "
                f"{d.get('new')}{where_changed(d.get('changed'))}: {d.get('decision')}")
    if event.kind == "signal":
        return f"stopped by {d.get('signal')}"
    if event.kind == "finished":
        return f"ended {d.get('status')}"
    if event.kind == "imported":
        return (f"imported from {d.get('file', '?')} by {d.get('user', '?')} on "
                f"{d.get('host', '?')} (retap {d.get('version', '?')})")
    return f"{event.kind} {d}"


def _user() -> str:
    import getpass  # here: only an export or import names its user

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return str(os.getuid())


def _version() -> str:
    from retap import __version__  # not importlib.metadata: it costs a resume ~10 ms

    return __version__
