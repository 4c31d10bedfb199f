"""Processes sharing one SQLite store keep each other's commits, whatever each opens and
closes beside the others (through the real `retap` command; coordinators killed with
SIGKILL)."""

from __future__ import annotations

import subprocess

from conftest import Project, wait_for


def test_a_run_finishing_beside_a_replay_leaves_the_replays_later_commits_in_the_store(
        logging_project: Project, procs: list[subprocess.Popen[str]]) -> None:
    # A replay opens a reader beside its writing connection. Reading the store file's
    # header with Python's own open() and close() there once dropped every lock SQLite held
    # on the file for the process (a POSIX rule): the next process to close the store took
    # itself for the last user, checkpointed and deleted the WAL, and every later commit of
    # the replay went to a deleted file, lost when the replay was killed.
    proj = logging_project
    proj.run("run", "--run-id", "long", "--", "a", "1", "--:", "b", "--:", "c", "--:", "d",
             env={"FAIL_ONCE": "b"}, check=1)
    replay = proj.start("replay", "long", env={"DELAY_C": "2", "DELAY_D": "60"})
    procs.append(replay)
    wait_for(lambda: "c" in proj.counts())  # b is committed; c runs
    proj.run("run", "--run-id", "other", "--", "e", "1", check=0)  # opens, writes, closes
    wait_for(lambda: "d" in proj.counts())  # c is committed; d runs
    replay.kill()
    replay.wait(timeout=10)

    shown = proj.run("show", "long", "--json", check=0).json()
    assert shown["counts"] == {"done": 3, "running": 1} or \
        shown["counts"] == {"done": 3}, shown["counts"]  # a, b, c: c was not lost
    assert proj.run("resume", "long", env={"DELAY_D": "0"}).code == 0
    assert proj.counts() == {"a": 1, "b": 2, "c": 1, "d": 2, "e": 1}
    assert {r["run"]: r["status"] for r in proj.runs()} == {"long": "done", "other": "done"}
