"""The invariants a torture case holds retap to after every attempt and at the end of each
phase. Each check returns the problems it found, one line each (empty: it held).

``Ledger`` is what the store had before an attempt: per run the dispatches it had as done
(an attempt must not execute them again in that run), and the memo keys of committed
results whose written files are still intact (a later execution with such a key should
have been answered from the memo).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

from retap.files import digest_file
from retap.history import attempt_history
from retap.store.base import SESSIONS
from retap.store.boundary import STATUSES
from retap.store.sql import SQLStore
from retap.torture import project as disk
from retap.torture.execlog import ExecLog, Execution
from retap.torture.reference import Expected, done_audit
from retap.torture.tasks import ran_line

__all__ = ["ENDED", "Ledger", "final_problems", "journal_problems", "leftover_problems",
           "read_problems", "stamp_problems", "status_problems"]

# exit codes of an attempt that ended on its own (not SIGKILL nor os._exit)
ENDED = {0: "done", 1: "failed", 130: "interrupted", 143: "interrupted"}


@dataclass
class Ledger:
    """What the store had before an attempt, to judge what the attempt executed."""

    memoized: set[str]  # labels of memoized nodes
    done: dict[str, set[str]] = field(default_factory=dict)  # run -> done dispatch ids
    intact: dict[str, str] = field(default_factory=dict)  # memo key -> "run/dispatch"

    def refresh(self, store: SQLStore, project: Path, log: ExecLog) -> None:
        """Read the store (and the files) as they are after an attempt."""
        self.done, self.intact = {}, {}
        for info in store.runs():
            audits = [a for a in store.audits(info.run) if a.status == "done"]
            self.done[info.run] = {a.id for a in audits}
            for a in audits:
                key = log.last_key.get((info.run, a.id), "")
                if a.reused is None and f"n{a.node}" in self.memoized and key and \
                        _intact(project, a.outputs or {}):
                    self.intact.setdefault(key, f"{info.run}/{a.id[:12]}")

    def execution_problems(self, ran: list[Execution], store: SQLStore, project: Path,
                           again: AbstractSet[str] = frozenset()) -> list[str]:
        """Done dispatches executed again in their run; memoized results not reused. The
        nodes labelled ``again`` were asked to run again (``replay --from``): each of their
        dispatches may run once, whatever the store or the memo had, and once more after
        each attempt of this session that did not end done (a task that retries within its
        session)."""
        times = Counter((e.run, e.dispatch, e.label) for e in ran if e.label in again)
        undone = {run: _undone_here(store, run) for run, _, _ in times}
        problems = [f"{run}/{dispatch[:12]} ({label}) executed again within one replay --from"
                    for (run, dispatch, label), n in times.items()
                    if n > 1 + undone[run][dispatch]]
        ran = [e for e in ran if e.label not in again]
        problems += [f"{e.run}/{e.dispatch[:12]} ({e.label}) was done in run {e.run} and "
                    f"executed again" for e in ran if e.dispatch in self.done.get(e.run, ())]
        problems += [f"{e.run}/{e.dispatch[:12]} ({e.label}) executed although "
                     f"{self.intact[e.key]} had committed its result (key {e.key}) with "
                     f"its files intact: the memo should have answered it"
                     for e in ran if e.key and e.key in self.intact]
        return problems + _reexecuted_within(ran, store, project, self.memoized)


def _undone_here(store: SQLStore, run: str) -> Counter[str]:
    """Attempts of each dispatch kept from the run's latest session that did not end done."""
    sessions = [e.seq for e in store.events(run) if e.kind in SESSIONS]
    latest = sessions[-1] if sessions else None
    return Counter(dispatch for dispatch, tried in store.earlier_attempts(run).items()
                   for a in tried if a.session == latest and a.status != "done")


def _intact(project: Path, outputs: dict[str, str]) -> bool:
    for path, digest in outputs.items():
        target = project / path
        if not target.is_file() or digest_file(target) != digest:
            return False
    return True


def _reexecuted_within(ran: list[Execution], store: SQLStore, project: Path,
                       memoized: set[str]) -> list[str]:
    """An execution whose key an earlier execution in the same attempt had committed."""
    last = {(e.run, e.dispatch): i for i, e in enumerate(ran)}
    own = _done_by_execution(store, project, {e.run for e in ran})
    committed: dict[str, int] = {}  # key -> index of the committing execution
    for (run, dispatch), i in sorted(last.items(), key=lambda item: item[1]):
        e = ran[i]
        if e.key and e.label in memoized and (run, dispatch) in own:
            committed.setdefault(e.key, i)
    return [f"{e.run}/{e.dispatch[:12]} ({e.label}) executed although "
            f"{ran[committed[e.key]].dispatch[:12]} had committed its result (key {e.key}) "
            f"earlier in the same attempt" for i, e in enumerate(ran)
            if e.key in committed and committed[e.key] < i]


def _done_by_execution(store: SQLStore, project: Path,
                       runs: set[str]) -> set[tuple[str, str]]:
    """(run, dispatch) done by its own execution (not reused), its files still intact."""
    return {(run, a.id) for run in runs for a in store.dispatches(run, ["done"])
            if a.reused is None and _intact(project, a.outputs or {})}


def journal_problems(store: SQLStore, project: Path) -> list[str]:
    """After an attempt that ended on its own: no journal is left at all; one whose
    dispatch is done would be undone by nobody and is worse."""
    problems = []
    for run, dispatch in disk.journals(project):
        status = store.dispatch_status(run, dispatch)
        what = "a committed (done) dispatch" if status == "done" else f"a {status} dispatch"
        problems.append(f"journal {run}/{dispatch[:12]} left for {what} after the process "
                        "ended on its own")
    return problems


def status_problems(store: SQLStore, run: str, code: int) -> list[str]:
    """The run's status agrees with the exit code; a done run has nothing pending."""
    status = store.run_info(run).status
    if status != ENDED[code]:
        return [f"run {run} is {status} after exit {code} (expected {ENDED[code]})"]
    counts = store.counts(run)
    if status == "failed" and not counts.get("failed"):
        return [f"run {run} is failed with no failed dispatch ({counts})"]
    if status != "done":
        return []
    pending = {k: v for k, v in counts.items() if k in ("failed", "running", "interrupted")}
    queue = store.queue(run)
    problems = [f"run {run} is done with {v} {k} dispatch(es)" for k, v in pending.items()]
    return problems + ([f"run {run} is done with {len(queue)} queued dispatch(es)"]
                       if queue else [])


def output_problems(store: SQLStore, run: str) -> list[str]:
    """Every done attempt at a dispatch of ``run`` (torture tasks print a line as they run)
    has what it printed kept in the store."""
    kept = {(e.dispatch, e.attempt): e.text for e in store.logs(run)}
    history = attempt_history(store, run, store.audits(run))
    return [f"{run}/{d[:12]} output of done attempt {t.n} was not kept"
            for d, attempts in history.items() for t in attempts
            if t.status == "done" and ran_line(d) not in kept.get((d, t.n), "")]


def read_problems(store: SQLStore, run: str) -> list[str]:
    """What ``show``, ``logs`` and the web view read of a part of ``run`` (its counts, its
    first dispatches, chosen ones, ids by prefix) agrees with a read of all of it."""
    everything = store.dispatches(run, STATUSES)
    audits = store.audits(run)
    problems = []
    counts = dict(sorted(Counter(a.status for a in audits).items()))
    if store.counts(run) != counts:
        problems.append(f"run {run} counts {store.counts(run)}; its dispatches say {counts}")
    half = len(audits) // 2
    if store.audits(run, half) != audits[:half]:
        problems.append(f"run {run}: its first {half} audits differ from those of all")
    chosen = {a.id for a in everything[::3]}
    picked = store.dispatches(run, STATUSES, [*sorted(chosen), "not-a-dispatch"])
    if picked != [a for a in everything if a.id in chosen]:
        problems.append(f"run {run}: {len(chosen)} chosen dispatches read differently "
                        "from a read of all")
    for a in everything[:3]:
        found = sorted(store.dispatch_ids(run, a.id[:2]))
        if found != sorted(b.id for b in everything if b.id.startswith(a.id[:2])):
            problems.append(f"run {run}: the dispatches whose ids begin {a.id[:2]!r} are "
                            f"{len(found)} by prefix, not those of a read of all")
    return problems


def final_problems(store: SQLStore, project: Path, run: str, expected: Expected,
                   files: bool = True) -> list[str]:
    """At the end of a phase: its run's audit (and, with ``files``, the files on disk)
    equal the reference's."""
    problems = []
    actual = done_audit(store, run)
    if actual != expected.audit:
        problems.append(_difference(expected.audit, actual))
    if files:
        problems += _file_differences(expected.files, disk.files(project))
    return problems


def _difference(expected: list[tuple[str, ...]], actual: list[tuple[str, ...]]) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    return (f"final audit differs from the uninterrupted run: {len(missing)} missing "
            f"(e.g. {missing[:1]}), {len(extra)} unexpected (e.g. {extra[:1]})")


def _file_differences(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    problems = []
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            problems.append(f"file {path} differs from the reference: missing")
        elif path not in expected:
            problems.append(f"file {path} differs from the reference: not in the reference")
        elif actual[path] != expected[path]:
            problems.append(f"file {path} differs from the reference: {_clip(actual[path])} "
                            f"instead of {_clip(expected[path])}")
    return problems


def _clip(data: bytes, limit: int = 80) -> str:
    text = repr(data)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def leftover_problems(project: Path) -> list[str]:
    """At the end: nothing is left under ``.retap/backup``."""
    left = disk.backup_leftovers(project)
    return [f".retap/backup is not empty at the end: {', '.join(left[:4])}"] if left else []


def stamp_problems(project: Path) -> list[str]:
    return [f"in-place change applied twice: {d}" for d in disk.duplicate_stamps(project)]
