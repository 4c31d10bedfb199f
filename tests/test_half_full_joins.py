"""Sync and gate joins killed (kill -9) while half full come back exactly: resumed or
replayed, the run prints what an uninterrupted run prints, and nothing done runs again."""

from __future__ import annotations

import signal

import pytest

from conftest import Project, wait_for

RETAPFILE = '''
import os
import time

import retap


def log(name, value):
    with open("exec.log", "a") as fh:
        fh.write(f"{name} {value!r}\\n")


@retap.task
def items(*, count: int = 5) -> list[int]:
    """The numbers 1..count."""
    log("items", count)
    return list(range(1, count + 1))


@retap.task
def work(item):
    """Passes its item on; sleeps on the item named by $SLOW."""
    log("work", item)
    if str(item) == os.environ.get("SLOW"):
        time.sleep(60)
    return item * 10


@retap.task
def fast(text):
    """Returns its input at once."""
    log("fast", text)
    return f"fast {text}"


@retap.task
def slow(text):
    """Returns its input, sleeping first when $SLOW says so."""
    log("slow", text)
    if os.environ.get("SLOW") == "slow":
        time.sleep(60)
    return f"slow {text}"
'''

GATE = ["--", "items", "--:i", "work", "--:.gate:3", "dump"]
SYNC = ["--", "fast", "x", "--", "slow", "y", "--", "dump", "--[0,1][2].sync"]


@pytest.fixture
def proj(project: Project) -> Project:
    project.retapfile(RETAPFILE)
    return project


def executions(project: Project) -> list[str]:
    return project.log()


@pytest.mark.parametrize("verb", ["resume", "replay"])
@pytest.mark.parametrize(("words", "slow", "killed_in"), [
    (GATE, "5", "work 5"),      # the gate holds [40] (after releasing [10, 20, 30])
    (SYNC, "slow", "slow 'y'"),  # the sync holds fast's result, waiting for slow's
])
def test_a_half_full_join_killed_comes_back_exactly(
        proj: Project, verb: str, words: list[str], slow: str, killed_in: str) -> None:
    reference = proj.run("run", "--store", ":memory:", *words, check=0)
    (proj.path / "exec.log").unlink()

    proc = proj.start("run", "--run-id", "half", *words, env={"SLOW": slow})
    wait_for(lambda: killed_in in "\n".join(executions(proj)))
    proc.send_signal(signal.SIGKILL)
    before, _ = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    done_before = executions(proj)[:-1]

    after = proj.run(verb, "half", check=0)

    assert before + after.out == reference.out
    again = executions(proj)[len(done_before) + 1:]
    assert not set(again) & set(done_before), "a done dispatch ran again"
    assert again[0] == killed_in  # only the dispatch that was in flight ran twice
