"""Resume and replay after `--on-error continue`: a failed dispatch stays pending until it is
done (case 2), and no path executes a dispatch the store has as done, whatever a saved
queue says (case 3). A run is `done` only when no dispatch is failed, queued or in flight.
"""

from __future__ import annotations

import pytest

from conftest import Project

RECIPROCALS = '''
import os

import retap


def _log(*words):
    with open("exec.log", "a") as fh:
        fh.write(" ".join(map(str, words)) + "\\n")


@retap.task
def recip(x: float) -> float:
    """1/x, failing on 0 until a file named `fixed` exists."""
    _log("recip", x)
    if x == 0 and not os.path.exists("fixed"):
        raise ZeroDivisionError("division by zero")
    return 1 / x if x else 0.0


@retap.task
def tag(x: float) -> str:
    _log("tag", x)
    return f"v={x}"
'''

WORKFLOW = ["--", "load", "--yaml", "[1, 0, 2]", "--:i", "recip", "--:", "tag", "--:", "dump"]


@pytest.fixture
def calc(project: Project) -> Project:
    project.retapfile(RECIPROCALS)
    first = project.run("run", "--on-error", "continue", "--run-id", "oe", *WORKFLOW)
    assert first.code == 1, first.err
    assert sorted(first.lines) == ["v=0.5", "v=1.0"]
    return project


def status(project: Project) -> str:
    return project.runs()[0]["status"]


def test_case_2_a_replay_with_on_error_continue_keeps_the_failed_dispatch_pending(
        calc: Project) -> None:
    again = calc.run("replay", "oe", "--on-error", "continue")
    assert again.code == 1, again.err
    show = calc.run("show", "oe", "--json", check=0).json()
    assert show["status"] == "failed"
    assert [q["inputs"] for q in show["queue"]] == [[0]]

    still = calc.run("resume", "oe")
    assert still.code == 1, still.err
    assert "already done" not in still.err
    assert status(calc) == "failed"

    (calc.path / "fixed").touch()
    calc.run("resume", "oe", check=0)
    assert status(calc) == "done"


def test_case_3_a_replay_stopping_at_a_failure_never_makes_resume_rerun_done_work(
        calc: Project) -> None:
    stopped = calc.run("replay", "oe")
    assert stopped.code == 1, stopped.err
    (calc.path / "fixed").touch()
    before = calc.counts()

    done = calc.run("resume", "oe", check=0)
    assert done.lines == ["v=0.0"]
    ran = calc.counts() - before
    assert ran == {"recip": 1, "tag": 1}  # recip(0) and its tag; nothing done again
    assert status(calc) == "done"


def test_case_3_a_replay_with_on_error_continue_then_a_replay_runs_each_dispatch_once(
        calc: Project) -> None:
    calc.run("replay", "oe", "--on-error", "continue", check=1)
    (calc.path / "fixed").touch()
    before = calc.counts()
    calc.run("replay", "oe", check=0)
    assert calc.counts() - before == {"recip": 1, "tag": 1}
    assert calc.run("resume", "oe", check=0).err.strip().endswith("nothing to resume")


def test_case_13_a_resume_finished_from_memo_results_says_so(project: Project) -> None:
    project.retapfile('''
        import retap

        @retap.task(cache="inputs")
        def twice(x: str) -> str:
            with open("exec.log", "a") as fh:
                fh.write(f"twice {x}\\n")
            return x * 2
        ''')
    project.run("run", "--", "load", "a", "--:", "twice", "--:", "twice", check=0)
    killed = project.run("run", "--run-id", "m", "--", "load", "a", "--:", "twice", "--:",
                         "twice", env={"RETAP_FAULT": "after_commit:2"})
    assert killed.code == -9, killed.err

    result = project.run("resume", "m", check=0)
    assert "already done" not in result.err
    assert "(0 executed, 1 reused)" in result.err
    assert project.counts() == {"twice": 2}
