"""One torture case: a reference run of its scenario, then the same scenario in subprocesses
killed at random fault points and resumed, replayed or run afresh until each phase's run
is done, checked after every attempt (``retap.torture.checks``)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retap.faults import IN_WORKER, JOURNAL_WRITE, POINTS
from retap.history import history_problems
from retap.store import open_store
from retap.store.check import check_store
from retap.store.postgres import drop_schema, with_schema
from retap.store.sql import SQLStore
from retap.store.sqlite import DURABILITY
from retap.torture import checks
from retap.torture import project as disk
from retap.torture.execlog import ExecLog, Execution
from retap.torture.features import Features, draw, feature_rng
from retap.torture.neighbours import run_beside
from retap.torture.older import as_older_retap
from retap.torture.pause import pausable, paused_attempt
from retap.torture.plans import (
    decorate,
    downstream,
    draw_retries,
    from_nodes,
    memoized_labels,
    node_features,
    plan,
)
from retap.torture.procs import TIMEOUT
from retap.torture.project import set_up
from retap.torture.reference import Expected, done_audit, reference
from retap.torture.replaycheck import replay_problems
from retap.torture.scenario import Phase, phases

__all__ = ["Case", "CaseResult", "Parallel", "draw_fault", "groups_by_arrival", "run_case"]

MAX_ATTEMPTS = 40  # besides the resumes the reference needed
ACTIONS = ("kill", "kill", "kill", "kill", "exit", "sigint", "sigterm")
FAULT_CODES = (-9, 137, 130, 143)
MAX_FRESH = 2  # fresh runs a phase may start besides its first


@dataclass
class CaseResult:
    """What one case did and every way it broke a promise (empty: it held)."""

    index: int
    seed: int
    durability: str = ""
    scenario: str = "single"
    features: list[str] = field(default_factory=list)
    attempts: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    dispatches: int = 0
    fresh_runs: int = 0
    reused: int = 0
    killed_journals: int = 0  # journals a killed attempt left for the next one to settle
    journal_writes: int = 0  # faults that struck inside a journal write
    worker_faults: int = 0  # attempts that ended failed with a worker's loss armed
    parallel_attempts: int = 0  # attempts run with -j above 1
    executors: Counter[str] = field(default_factory=Counter)  # those attempts by executor
    from_replays: int = 0  # done runs replayed --from a node
    prunes: int = 0  # stores pruned of all runs but the newest
    older_stores: int = 0  # recoveries of a store as an older retap left it (torture.older)
    code_changes: int = 0  # runs started after the project code memoized tasks read changed
    retried_nodes: int = 0  # flaky nodes whose task retries within its session
    pauses: int = 0  # coordinators paused, their runs taken over, then let go on
    neighboured: int = 0  # attempts beside which other processes opened the store
    unordered: bool = False  # parallel, with joins that group by arrival: no reference check
    problems: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.problems


def case_seed(seed: int, index: int) -> int:
    return seed * 100_003 + index


@dataclass(frozen=True)
class Parallel:
    """How attempts may run dispatches: each draws ``-j 1`` or ``-j jobs`` on one of
    ``executor``'s comma-separated executors."""

    jobs: int = 1
    executor: str = "processes"
    server: str | None = None  # a PostgreSQL URL: each case's store is a schema there

    def server_store(self) -> str | None:
        """A store of its own on the server (a fresh schema), when there is a server."""
        if self.server is None:
            return None
        return with_schema(self.server, f"torture_{uuid.uuid4().hex[:12]}")

    def draw(self, rng: random.Random) -> list[str]:
        """The running options of one attempt."""
        if self.jobs == 1 or rng.random() < 0.3:
            return []
        executors = self.executor.split(",")
        # one executor draws nothing more: the cases of a series drawn before a list of
        # them was possible stay as they were
        chosen = executors[0] if len(executors) == 1 else rng.choice(executors)
        return ["-j", str(self.jobs), "--executor", chosen]


def run_case(seed: int, index: int, keep: Path | None = None,
             features: Features | None = None, parallel: Parallel = Parallel()) -> CaseResult:
    """Run case ``index`` of ``seed`` in a fresh directory (kept under ``keep`` if given);
    ``features`` overrides the drawn ones (``CLASSIC`` replays a case from before them);
    ``parallel``: how attempts may run dispatches at once (drawn from a stream of its own)."""
    rng = random.Random(case_seed(seed, index))
    workplan = plan(rng)
    durability = rng.choice(DURABILITY)
    frng = feature_rng(case_seed(seed, index))
    chosen = features if features is not None else draw(frng)
    # a stream of its own: cases drawn before this feature replay as they were
    from_rng = random.Random(f"from-{case_seed(seed, index)}")
    if features is None and from_rng.random() < 0.3:
        chosen = replace(chosen, replay_from=True)
    decorate(workplan, frng, chosen)
    draw_retries(workplan, random.Random(f"retries-{case_seed(seed, index)}"))
    steps = phases(workplan, chosen, frng)
    present = set(node_features(workplan))  # a drawn node kind may have drawn no node
    result = CaseResult(index, case_seed(seed, index), durability, chosen.scenario,
                        [n for n in chosen.names if n not in ("files", "memo") or n in present])
    result.retried_nodes = sum(workplan["retried"])
    prng = random.Random(f"parallel-{case_seed(seed, index)}")
    if keep is not None:
        folder = keep.resolve() / f"case-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        _play(Case(folder, (rng, frng, from_rng), chosen, result, memoized_labels(workplan),
                   (parallel, prng)), steps, keep=True)
    else:
        with tempfile.TemporaryDirectory(prefix="retap-torture-") as tmp:
            _play(Case(Path(tmp), (rng, frng, from_rng), chosen, result,
                       memoized_labels(workplan), (parallel, prng)), steps, keep=False)
    return result


def _play(case: Case, steps: list[Phase], keep: bool) -> None:
    """Play the case; a store on a server is dropped afterwards unless it is to be kept."""
    try:
        case.play(steps)
    finally:
        if not keep and "://" in case.store:
            drop_schema(case.store)


class Case:
    """The faulted side of a case: its project, store, execution log and runs so far."""

    def __init__(self, folder: Path, rngs: tuple[random.Random, random.Random, random.Random],
                 features: Features, result: CaseResult, memoized: set[str],
                 parallel: tuple[Parallel, random.Random]) -> None:
        self.folder = folder
        self.rng, self.frng, self.from_rng = rngs  # faults and verbs; features; --from
        self.exempt: set[str] = set()  # labels the attempt being judged may run again
        self.parallel, self.prng = parallel
        self.ordered = True  # no attempt of this phase ran dispatches at once
        self.features, self.result = features, result
        self.project = folder / "project"
        self.store = parallel[0].server_store() or str(folder / "run.db")
        self.log = ExecLog(folder / "exec.log")
        self.ledger = checks.Ledger(memoized)
        self.env = {**os.environ, "TORTURE_LOG": str(self.log.path),
                    "TORTURE_MARKERS": str(folder / "markers"),  # the project's own code:
                    "PYTHONPATH": os.pathsep.join(filter(None, [  # its module is importable
                        str(self.project), os.environ.get("PYTHONPATH")]))}
        self.env.pop("RETAP_FAULT", None)
        # a replay reads its answers a few at a time, not all of a small run at once
        ahead = random.Random(f"ahead-{result.seed}").choice([1, 2, 3, 5, 8, 512])
        self.env["RETAP_REPLAY_AHEAD"] = str(ahead)
        # and, on PostgreSQL, fetches them a few rows a round trip
        rows = random.Random(f"stream-{result.seed}").choice([1, 2, 7, 1000])
        self.env["RETAP_STREAM_ROWS"] = str(rows)
        self.runs: list[str] = []
        self.fresh_in_phase = 0
        self.seen: set[str] = set()  # problems reported so far
        self.last_error = ""  # the last line the last attempt wrote on stderr
        self.orng = random.Random(f"older-{result.seed}")  # a stream of its own, as from_rng
        self.jrng = random.Random(f"journal-{result.seed}")  # so is a kill inside a journal
        self.wrng = random.Random(f"worker-{result.seed}")  # and the loss of a worker
        self.srng = random.Random(f"stop-{result.seed}")  # and a pause (torture.pause)
        self.nrng = random.Random(f"beside-{result.seed}")  # and neighbours (.neighbours)

    def play(self, steps: list[Phase]) -> None:
        """Bring each phase's run to done, comparing it with the reference's."""
        try:
            expected = reference(self.folder, steps, self.features.on_error)
        except Exception as exc:  # a bug on the path without faults: say so, go on
            self.result.problems.append(f"the reference run failed: {type(exc).__name__}: "
                                        f"{exc}")
            return
        self.result.dispatches = sum(len(e.audit) for e in expected)
        set_up(self.project)
        self.log.path.touch()
        older: set[str] = set()  # runs made before the project code last changed
        for k, (phase, wanted) in enumerate(zip(steps, expected, strict=True), start=1):
            if k > 1 and phase.variant != steps[k - 2].variant:
                self.result.code_changes += 1
                older = set(self.runs)
            phase.prepare(self.project)
            with open(self.folder / "attempts.log", "a") as fh:
                fh.write(f"# phase {k}: {phase.describe()}\n")
            if not self._to_done(phase, wanted):
                return
            self.result.problems += self._stale_reuses(older, phase)
            if self.features.replay_from and not self._again_from(phase, wanted):
                return
        with self.open() as store:
            self.result.reused = sum(a.reused is not None for r in store.runs()
                                     for a in store.audits(r.run))
        if len(self.runs) > 1 and self.from_rng.random() < 0.5:
            self._prune_older()
        self.result.problems += checks.leftover_problems(self.project)

    def _stale_reuses(self, older: set[str], phase: Phase) -> list[str]:
        """Results of memoized tasks that read the project code, reused from a run made
        before that code changed: each should have been made again."""
        reading = {f"n{i}" for i, kind in enumerate(phase.workplan.get("kinds", ()))
                   if kind == "memo"}
        with self.open() as store:
            return [f"{run}/{a.id[:12]} (n{a.node}) reused {a.reused}, made by older code"
                    for run in self.runs if run not in older
                    for a in store.audits(run)
                    if a.reused and a.reused.split("/")[0] in older and f"n{a.node}" in reading]

    def _prune_older(self) -> None:
        """``retap prune`` every run but the newest: the newest stays whole (the store
        checks, its history holds, the values it reused from a deleted run are kept, and
        a replay of it runs nothing)."""
        with self.open() as store:
            newest = store.run_info(self.runs[-1]).created
        before = datetime.fromtimestamp(newest - 0.01, UTC).isoformat()
        code = self.attempt(["prune", "--older-than", before], None)
        self.result.prunes += 1
        if code != 0:
            self.result.problems.append(f"prune of the runs before {self.runs[-1]} exited "
                                        f"{code}: {self.last_error}")
            return
        with self.open() as store:
            left = [r.run for r in store.runs()]
            problems = [f"prune left runs {left}, not only {self.runs[-1]}"] \
                if left != [self.runs[-1]] else []
            problems += check_store(store) or history_problems(store, self.runs[-1])
        self.result.problems += [f"after prune: {p}" for p in problems]
        self._check_replay()

    def _as_older_retap(self) -> None:
        """Leave the store as an older retap would have (see ``older``)."""
        self.result.older_stores += 1
        with self.open() as store:
            as_older_retap(store, self.runs)

    def _again_from(self, phase: Phase, wanted: Expected) -> bool:
        """Replay the done run ``--from`` a node drawn for it (faulted like any attempt) and
        bring it to done again: the node's dispatches and all below it run again, once
        each, and the run ends with the very audit it had (which is the reference's unless
        dispatches ran at once before: then finishing order chose what grouping joins
        got), whatever runs at once now (False: the case cannot go on)."""
        nodes = from_nodes(phase.workplan)
        if not nodes:
            return True
        node = self.from_rng.choice(nodes)
        self.result.from_replays += 1
        again = {f"n{n}" for n in downstream(phase.workplan, node)}
        first = ["replay", self.runs[-1], "--from", str(node), "--on-error",
                 self.features.on_error, "--quiet", *self.parallel.draw(self.prng)]
        with self.open() as store:
            had = replace(wanted, audit=done_audit(store, self.runs[-1]))
        return self._to_done(phase, had, (self.from_rng, first, again))

    def _to_done(self, phase: Phase, wanted: Expected,
                 again: tuple[random.Random, list[str], set[str]] | None = None) -> bool:
        """Attempts until the phase's newest run is done (False: the case cannot go on);
        ``again``: the run is done already, and is taken through a first command (with the
        labels it runs again) on a stream of its own before resumes and replays."""
        self.fresh_in_phase = 0
        self.ordered = True
        rng = again[0] if again else self.rng
        for local in range(MAX_ATTEMPTS + wanted.resumes):
            fault = draw_fault(rng, len(wanted.audit), local)
            if fault and self.features.files and self.jrng.random() < 0.25:
                fault = _moved(fault, JOURNAL_WRITE)
            if again and local == 0:
                args, self.exempt = again[1], again[2]
            else:
                args, self.exempt = self._next(phase, local + bool(again), rng), set()
            if again:
                self.ordered = True  # held to the audit it had, whatever runs at once
            if fault and ("processes" in args or "dask" in args) and self.wrng.random() < 0.2:
                fault = _moved(fault, IN_WORKER)  # a task's worker is lost
            if args[0] != "run" and self.orng.random() < 0.15:
                self._as_older_retap()
            if pausable(self, args, fault, self.srng):
                assert fault is not None
                going_on, code = paused_attempt(self, args, fault, wanted, phase, self.srng)
                if not going_on:
                    return False
            else:
                code = self.attempt(args, fault)
                if not self.judge(args, fault, code, wanted, phase):
                    return False
            if code == 0:
                self._check_replay()
                return True
        self.result.problems.append(f"{self.runs[-1]} not done after "
                                    f"{MAX_ATTEMPTS + wanted.resumes} attempts")
        return False

    def _next(self, phase: Phase, local: int, rng: random.Random) -> list[str]:
        """The next command: a fresh run first (or when drawn), else resume or replay."""
        fresh = local == 0 or (self.features.fresh and rng is self.rng and
                               self.fresh_in_phase < MAX_FRESH and self.frng.random() < 0.25)
        running = self.parallel.draw(self.prng)
        if running:
            self.ordered = False
            self.result.parallel_attempts += 1
            self.result.executors[running[-1]] += 1
        if fresh:
            self.fresh_in_phase += local > 0
            self.result.fresh_runs += local > 0
            self.runs.append(f"r{len(self.runs) + 1}")
            return ["run", "--run-id", self.runs[-1], "--durability", self.result.durability,
                    "--on-error", self.features.on_error, "--quiet", *running, phase.flow]
        verb = rng.choice(["resume", "replay"])
        return [verb, self.runs[-1], "--on-error", self.features.on_error, "--quiet",
                *running]

    def _check_replay(self) -> None:
        """The finished run, replayed from a copy of the store, runs nothing."""
        running = self.parallel.draw(self.prng)
        self.result.problems += replay_problems(self.store, self.project, self.runs[-1],
                                                running, self.env)

    def attempt(self, args: list[str], fault: str | None) -> int:
        """Run one ``retap`` command in the project; its exit code (-1: it hung)."""
        self.result.attempts += 1
        self.log.mark(self.result.attempts)
        command = [sys.executable, "-m", "retap", "--store", self.store, *args]
        env = {**self.env, "RETAP_FAULT": fault} if fault else self.env
        if self.nrng.random() < 0.2:  # other processes open and close the store meanwhile
            self.result.neighboured += 1
            code, stderr, problems = run_beside(command, self.project, env, self.store,
                                                self.nrng, TIMEOUT, self.folder / "attempt.err")
            self.result.problems += [f"attempt {self.result.attempts} ({args[0]} "
                                     f"{self.runs[-1]}): {p}" for p in problems]
        else:
            try:
                done = subprocess.run(command, cwd=self.project, env=env, capture_output=True,
                                      text=True, timeout=TIMEOUT)
                code, stderr = done.returncode, done.stderr
            except subprocess.TimeoutExpired:
                code, stderr = -1, f"timed out after {TIMEOUT} s\n"
        self.note_attempt(args, fault, code, stderr)
        return code

    def note_attempt(self, args: list[str], fault: str | None, code: int | None,
                     stderr: str) -> None:
        """Keep the attempt's command, fault, exit code and stderr in ``attempts.log``."""
        self.last_error = (stderr.strip().splitlines() or [""])[-1]
        with open(self.folder / "attempts.log", "a") as fh:
            fh.write(f"{self.result.attempts} {' '.join(args)} fault={fault} "
                     f"exit={code}\n{stderr}")

    def judge(self, args: list[str], fault: str | None, code: int, wanted: Expected,
               phase: Phase) -> bool:
        """Check the attempt; False when the case cannot go on."""
        what = f"attempt {self.result.attempts} ({args[0]} {self.runs[-1]}, " \
               f"{fault or 'no fault'})"
        ran = self.log.since_mark()
        if not self._tally(fault, code):
            self.result.problems.append(f"{what} exited {code}: {self.last_error}")
            return False
        with self.open() as store:
            if not any(r.run == self.runs[-1] for r in store.runs()):
                self.result.problems.append(f"{what}: the run was not recorded (exit {code})")
                return False
            problems = self.problems_after(store, ran, code)
            if code == 0 and (self.ordered or not groups_by_arrival(phase.workplan)):
                # files an earlier phase left may differ (its order decided their names);
                # this phase's audit must still be the reference's
                problems += checks.final_problems(store, self.project, self.runs[-1], wanted,
                                                  files=not self.result.unordered)
            elif code == 0:
                self.result.unordered = True  # finishing order decided what the joins got
            self.ledger.refresh(store, self.project, self.log)
        fresh = [p for p in problems if p not in self.seen]  # a broken store says so once
        self.seen.update(fresh)
        self.result.problems += [f"{what}: {p}" for p in fresh]
        return True

    def _tally(self, fault: str | None, code: int) -> bool:
        """Count the attempt's fault or task failure; False for an exit nothing explains."""
        if fault and code in FAULT_CODES:
            self.result.faults[fault.rsplit(":", 1)[-1]] += 1
            self.result.journal_writes += fault.startswith(JOURNAL_WRITE)
        elif code == 1:
            self.result.failures += 1
            self.result.worker_faults += bool(fault and fault.startswith(IN_WORKER))
        elif code != 0:
            return False
        if code not in checks.ENDED:
            self.result.killed_journals += len(disk.journals(self.project))
        return True

    def open(self) -> SQLStore:
        store = open_store(self.store)
        assert isinstance(store, SQLStore)
        return store

    def problems_after(self, store: SQLStore, ran: list[Execution], code: int) -> list[str]:
        problems = self.ledger.execution_problems(ran, store, self.project, self.exempt)
        problems += check_store(store)
        if not problems:
            problems += [p for info in store.runs() for p in history_problems(store, info.run)]
            problems += [p for info in store.runs() for p in checks.output_problems(store,
                                                                                   info.run)]
            problems += [p for info in store.runs() for p in checks.read_problems(store,
                                                                                 info.run)]
        if code in checks.ENDED:
            problems += checks.journal_problems(store, self.project)
            problems += checks.status_problems(store, self.runs[-1], code)
        return problems + checks.stamp_problems(self.project)


def groups_by_arrival(workplan: dict[str, Any]) -> bool:
    """True when a join of the plan groups results by when they arrive (sync, gate): run
    in parallel, such a workflow may end with other values than a sequential reference."""
    return any(j["kind"] in ("sync", "gate") for j in workplan["joins"])


def _moved(fault: str, point: str) -> str:
    """``fault`` (``POINT:N:ACTION``) acting at ``point`` instead."""
    return f"{point}:{fault.partition(':')[2]}"


def draw_fault(rng: random.Random, size: int, attempt: int = 0) -> str | None:
    """A fault for this attempt, less likely as attempts pile up (so every case ends)."""
    if rng.random() < attempt / 12:
        return None
    # early hits are likelier to happen before the attempt runs out of work
    count = min(rng.randint(1, max(1, size)), rng.randint(1, max(1, size // 3)))
    return f"{rng.choice(POINTS)}:{count}:{rng.choice(ACTIONS)}"
