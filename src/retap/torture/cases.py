"""One torture case: a reference run, then the same workflow killed at random fault points
and resumed or replayed until done, checked after every attempt."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retap.app import App
from retap.faults import POINTS
from retap.recovery import resume
from retap.store.check import check_store
from retap.store.memory import MemoryStore
from retap.store.sqlite import DURABILITY, SQLiteStore
from retap.torture.plans import build, plan

__all__ = ["CaseResult", "run_case"]

MAX_ATTEMPTS = 40
ACTIONS = ("kill", "kill", "kill", "kill", "exit", "sigint", "sigterm")


@dataclass
class CaseResult:
    """What one case did and every way it broke a promise (empty: it held)."""

    index: int
    seed: int
    durability: str = ""
    attempts: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    dispatches: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.problems


def case_seed(seed: int, index: int) -> int:
    return seed * 100_003 + index


def run_case(seed: int, index: int, keep: Path | None = None) -> CaseResult:
    """Run case ``index`` of ``seed`` in a fresh directory (kept under ``keep`` if given)."""
    rng = random.Random(case_seed(seed, index))
    workplan = plan(rng)
    result = CaseResult(index, case_seed(seed, index), durability=rng.choice(DURABILITY))
    if keep is not None:
        folder = keep.resolve() / f"case-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        _run(folder, workplan, rng, result)
    else:
        with tempfile.TemporaryDirectory(prefix="retap-torture-") as tmp:
            _run(Path(tmp), workplan, rng, result)
    return result


def _run(folder: Path, workplan: dict[str, Any], rng: random.Random,
         result: CaseResult) -> None:
    expected = _reference(folder, workplan)
    result.dispatches = len(expected)
    (folder / "flow.json").write_text(json.dumps(build(workplan).spec()))
    env = {**os.environ, "TORTURE_LOG": str(folder / "exec.log"),
           "TORTURE_MARKERS": str(folder / "markers")}
    env.pop("RETAP_FAULT", None)
    store_path = folder / "run.db"
    done_before: set[str] = set()
    for attempt in range(MAX_ATTEMPTS):
        result.attempts += 1
        fault = _fault(rng, len(expected), attempt)
        code = _attempt(folder, store_path, attempt, result.durability, rng, fault, env)
        if fault and code in (-9, 137, 130, 143):
            result.faults[fault.rsplit(":", 1)[-1]] += 1
        elif code == 1:
            result.failures += 1
        elif code not in (0, 1):
            result.problems.append(f"attempt {attempt} ({fault or 'no fault'}) exited {code}")
            return
        ran = _executions(folder / "exec.log", attempt)
        again = sorted(ran & done_before)
        if again:
            result.problems.append(f"attempt {attempt}: done dispatches executed again: "
                                   f"{', '.join(i[:12] for i in again)}")
        with SQLiteStore(store_path) as store:
            if not any(r.run == "r" for r in store.runs()):
                result.problems.append(f"attempt {attempt} ({fault}): the run was not "
                                       f"recorded (exit {code})")
                return
            problems = check_store(store, "r")
            result.problems += [f"attempt {attempt} ({fault}): {p}" for p in problems]
            done_before = {a.id for a in store.audits("r") if a.status == "done"}
            if code == 0:
                actual = _done_audit(store)
                if actual != expected:
                    result.problems.append(_difference(expected, actual))
                return
    result.problems.append(f"not done after {MAX_ATTEMPTS} attempts")


def _reference(folder: Path, workplan: dict[str, Any]) -> list[tuple[str, ...]]:
    """The done audit of an uninterrupted run (flaky tasks fail once, then resume)."""
    saved = {k: os.environ.get(k) for k in ("TORTURE_LOG", "TORTURE_MARKERS")}
    os.environ["TORTURE_MARKERS"] = str(folder / "reference-markers")
    os.environ.pop("TORTURE_LOG", None)
    try:
        store = MemoryStore()
        outcome = App(build(workplan), store, run_id="r").run()
        while outcome.status != "done":
            outcome = resume(store, "r")
        return _done_audit(store)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _fault(rng: random.Random, size: int, attempt: int) -> str | None:
    """A fault for this attempt, less likely as attempts pile up (so every case ends)."""
    if rng.random() < attempt / 12:
        return None
    # early hits are likelier to happen before the attempt runs out of work
    count = min(rng.randint(1, max(1, size)), rng.randint(1, max(1, size // 3)))
    return f"{rng.choice(POINTS)}:{count}:{rng.choice(ACTIONS)}"


def _attempt(folder: Path, store: Path, attempt: int, durability: str, rng: random.Random,
             fault: str | None, env: dict[str, str]) -> int:
    with open(folder / "exec.log", "a") as fh:
        fh.write(f"# attempt {attempt}\n")
    if attempt == 0:
        args = ["run", "--run-id", "r", "--durability", durability, "--quiet", "flow.json"]
    else:
        args = [rng.choice(["resume", "replay"]), "r", "--quiet"]
    command = [sys.executable, "-m", "retap", "--store", str(store), *args]
    attempt_env = {**env, "RETAP_FAULT": fault} if fault else env
    done = subprocess.run(command, cwd=folder, env=attempt_env, capture_output=True, text=True,
                          timeout=300)
    with open(folder / "attempts.log", "a") as fh:
        fh.write(f"{attempt} {' '.join(args)} fault={fault} exit={done.returncode}\n"
                 f"{done.stderr}")
    return done.returncode


def _executions(log: Path, attempt: int) -> set[str]:
    """Dispatch ids the given attempt executed."""
    ids: set[str] = set()
    current = -1
    for line in log.read_text().splitlines() if log.exists() else []:
        if line.startswith("# attempt "):
            current = int(line.split()[-1])
        elif current == attempt:
            ids.add(line.split("\t")[0])
    return ids


def _done_audit(store: Any) -> list[tuple[str, ...]]:
    return sorted((a.id, json.dumps(a.node), json.dumps(a.sources), json.dumps(a.value))
                  for a in store.audits("r") if a.status == "done")


def _difference(expected: list[tuple[str, ...]], actual: list[tuple[str, ...]]) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    return (f"final audit differs from the uninterrupted run: {len(missing)} missing "
            f"(e.g. {missing[:1]}), {len(extra)} unexpected (e.g. {extra[:1]})")
