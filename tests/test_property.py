"""Property tests: on generated workflows with every join kind and modifier, a run that
fails or is killed at a random dispatch, then resumed or replayed, ends exactly as an
uninterrupted run does, and no done dispatch is ever executed again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flows
from retap import App, Middleware, replay, resume
from retap.store.sqlite import SQLiteStore

TESTS = Path(__file__).parent

def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


class CountExecutions(Middleware):
    """Counts real executions by dispatch id (cached replays are not executions)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def before_dispatch(self, app: Any, dispatch: Any) -> None:
        self.counts[dispatch.id] += 1


def done_audit(store: SQLiteStore, run: str) -> list[tuple[Any, ...]]:
    """The done part of the audit DAG, comparable between runs."""
    return sorted((a.id, json.dumps(a.node), a.sources, json.dumps(a.value))
                  for a in store.audits(run) if a.status == "done")


def state_of(store: SQLiteStore, run: str, plan: dict[str, Any]) -> tuple[Any, ...]:
    """What resume would load: queue ids in order and every join's state."""
    joins = flows.build(plan).joins
    queue = [d.id for d in store.queue(run)]
    states = {k: v.to_dict() for k, v in store.join_states(run, joins).items()}
    return queue, states


def reference(plan: dict[str, Any], path: Path) -> tuple[list[tuple[Any, ...]], int, Counter]:
    flows.reset()
    store = SQLiteStore(path)
    result = App(flows.build(plan), store).run()
    assert result.status == "done", result.failures
    log = Counter(flows.CONTROL["log"])
    return done_audit(store, result.run), result.executed, log


@st.composite
def plans(draw: Any) -> dict[str, Any]:
    return flows.plans(draw)


@examples(60)
@given(plan=plans(), data=st.data(), how=st.sampled_from(["resume", "replay"]))
def test_failing_at_any_dispatch_then_recovering_ends_as_an_uninterrupted_run(
        plan: dict[str, Any], data: st.DataObject, how: str, tmp_path_factory: Any) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    expected, executions, _ = reference(plan, tmp / "ref.db")
    fail_at = data.draw(st.integers(1, executions), label="fail at execution")

    flows.reset(fail_at=fail_at)
    store = SQLiteStore(tmp / "run.db")
    counter = CountExecutions()
    first = App(flows.build(plan), store, middleware=[counter]).run()
    assert first.status == "failed"
    failed = [a.id for a in store.audits(first.run) if a.status == "failed"]
    assert len(failed) == 1

    flows.reset()
    again = resume if how == "resume" else replay
    final = again(store, first.run, middleware=[counter])
    assert final.status == "done", final.failures
    assert done_audit(store, first.run) == expected
    assert {i: n for i, n in counter.counts.items() if n != 1} == {failed[0]: 2}


@examples(40)
@given(plan=plans(), data=st.data())
def test_replay_reaches_the_queue_and_join_states_resume_would_load(
        plan: dict[str, Any], data: st.DataObject, tmp_path_factory: Any) -> None:
    tmp = tmp_path_factory.mktemp("inv")
    _, executions, _ = reference(plan, tmp / "ref.db")
    flows.reset(fail_at=data.draw(st.integers(1, executions), label="fail at execution"))
    store = SQLiteStore(tmp / "run.db")
    run = App(flows.build(plan), store).run().run
    resume_state = state_of(store, run, plan)

    flows.reset()
    halted = replay(store, run, halt_before_execute=True)
    assert halted.executed == 0
    assert state_of(store, run, plan) == resume_state


@examples(25)
@given(plan=plans(), data=st.data())
def test_a_run_on_four_threads_replays_to_the_queue_and_join_states_resume_would_load(
        plan: dict[str, Any], data: st.DataObject, tmp_path_factory: Any) -> None:
    # Four at once: joins get results in the order they finish, not in queue order. The
    # replay answers them in recorded order, so it rebuilds the very same state.
    tmp = tmp_path_factory.mktemp("par")
    _, executions, _ = reference(plan, tmp / "ref.db")
    flows.reset(fail_at=data.draw(st.integers(1, executions), label="fail at execution"))
    store = SQLiteStore(tmp / "run.db")
    run = App(flows.build(plan), store, jobs=4, executor="threads").run().run
    resume_state = state_of(store, run, plan)

    flows.reset()
    halted = replay(store, run, halt_before_execute=True, jobs=4, executor="threads")
    assert halted.executed == 0
    assert state_of(store, run, plan) == resume_state


def _retap(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "retap", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@examples(12)
@given(plan=plans(), data=st.data(), how=st.sampled_from(["resume", "replay"]))
def test_killing_the_process_at_any_dispatch_loses_nothing_and_repeats_only_the_one_in_flight(
        plan: dict[str, Any], data: st.DataObject, how: str, tmp_path_factory: Any) -> None:
    tmp = tmp_path_factory.mktemp("kill")
    expected, executions, reference_log = reference(plan, tmp / "ref.db")
    kill_at = data.draw(st.integers(1, executions), label="kill at execution")
    (tmp / "flow.json").write_text(json.dumps(flows.build(plan).spec()))
    log = tmp / "exec.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get(
        "PYTHONPATH", "")]), "FLOWS_LOG": str(log), "FLOWS_KILL_AT": str(kill_at),
           "FLOWS_MARKER": str(tmp / "killed")}

    killed = _retap("run", "--run-id", "r1", "flow.json", cwd=tmp, env=env)
    assert killed.returncode == -9, killed.stderr
    shown = json.loads(_retap("show", "r1", "--json", cwd=tmp, env=env).stdout)
    assert shown["status"] == "interrupted"
    finished = _retap(how, "r1", cwd=tmp, env=env)
    assert finished.returncode == 0, finished.stderr

    store = SQLiteStore(tmp / ".retap" / "retap.db")
    assert done_audit(store, "r1") == expected
    ran = Counter(tuple(line.split("\t")) for line in log.read_text().splitlines())
    extra = ran - Counter({(label, inputs): n for (label, inputs), n in reference_log.items()})
    assert sum(extra.values()) == 1  # only the dispatch that was in flight ran twice
    assert not Counter({(k[0], k[1]): n for k, n in reference_log.items()}) - ran
