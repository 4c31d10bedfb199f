"""Captured output through the real `retap` command: what each attempt printed and logged is
kept with it (retries, resumed failures, worker processes), still shown live, capped with a
note, and `retap logs` prints it, by node or dispatch, or follows a running run."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from conftest import Project, assert_one_line_error, wait_for

TASKS = '''
import logging
import os
import sys
import time
from pathlib import Path

import retap

log = logging.getLogger("tasks")


class Chatty(retap.Task, name="chatty"):
    """Prints, writes to stderr and logs a warning; fails on the input named by $FAIL."""

    def process(self, x):
        print(f"out {x}")
        print(f"err {x}", file=sys.stderr)
        log.warning("warned about %s", x)
        if os.environ.get("FAIL") == x:
            raise ValueError(f"bad {x}")
        return x


class Flaky(retap.Task, name="flaky"):
    """Fails the first two times it runs (counted in a file), printing which try it is."""

    retries = 2

    def process(self, x):
        tries = Path("tries")
        n = int(tries.read_text()) if tries.exists() else 0
        tries.write_text(str(n + 1))
        print(f"try {n + 1}")
        if n < 2:
            raise RuntimeError(f"flaky failure {n + 1}")
        return x


class Loud(retap.Task, name="loud"):
    """Prints N numbered lines."""

    def process(self, n):
        for i in range(int(n)):
            print(f"line {i:05d}")
        return n


class Slow(retap.Task, name="slow"):
    """Prints its input, then waits for a file named after it before returning."""

    def process(self, x):
        print(f"begun {x}", flush=True)
        while not Path(f"go-{x}").exists():
            time.sleep(0.05)
        return x
'''


@pytest.fixture
def proj(project: Project) -> Project:
    project.retapfile(TASKS)
    return project


def logs_json(proj: Project, *args: str) -> list[dict[str, Any]]:
    return proj.run("logs", *args, "--json", check=0).json()


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_each_attempts_output_is_kept_and_still_shown_live(proj: Project, executor: str
                                                           ) -> None:
    jobs = "1" if executor == "inline" else "2"
    ran = proj.run("run", "--run-id", "c", "-j", jobs, "--executor", executor, "--", "load",
                   "--yaml", "[a, b, c, d]", "--:i", "chatty", check=0)
    assert "out a" in ran.out and "err a" in ran.err  # shown as it was written
    assert "warned about a" in ran.err  # a warning with no handler set still reaches stderr
    entries = logs_json(proj, "c")
    assert sorted(e["text"] for e in entries) == [  # each thread's its own, whole
        f"out {x}\nerr {x}\nWARNING tasks: warned about {x}\n" for x in "abcd"]
    assert {(e["node"], e["task"], e["attempt"], e["dropped"]) for e in entries} == {
        (1, "chatty", 1, 0)}

    shown = proj.run("logs", "c", check=0)
    headers = [line for line in shown.lines if line.startswith("==> ")]
    assert len(headers) == 4 and all("node 1 (chatty) attempt 1 <==" in h for h in headers)
    assert proj.run("logs", "c", "0", check=0).out == ""  # load printed nothing
    assert "nothing printed or logged" in proj.run("logs", "c", "0", check=0).err


def test_retries_keep_each_tries_output_under_its_attempt(proj: Project) -> None:
    proj.run("run", "--run-id", "f", "--", "flaky", "x", check=0)
    assert [(e["attempt"], e["text"]) for e in logs_json(proj, "f")] == [
        (1, "try 1\n"), (2, "try 2\n"), (3, "try 3\n")]


def test_retries_on_worker_processes_keep_each_tries_output(proj: Project) -> None:
    proj.run("run", "--run-id", "p", "-j", "2", "--", "flaky", "x", check=0)
    assert [(e["attempt"], e["text"]) for e in logs_json(proj, "p")] == [
        (1, "try 1\n"), (2, "try 2\n"), (3, "try 3\n")]


def test_a_failure_and_its_resume_each_keep_their_output(proj: Project) -> None:
    proj.run("run", "--run-id", "r", "--", "load", "--yaml", "[a, b]", "--:i", "chatty",
             env={"FAIL": "b"}, check=1)
    proj.run("resume", "r", check=0)
    [first, second] = [e for e in logs_json(proj, "r") if e["text"].startswith("out b")]
    assert (first["attempt"], second["attempt"]) == (1, 2)
    dispatch = first["dispatch"]
    only = proj.run("logs", "r", dispatch[:10], check=0)  # a unique prefix of its id
    assert only.lines == [f"==> {dispatch[:12]} node 1 (chatty) attempt 1 <==", "out b",
                          "err b", "WARNING tasks: warned about b",
                          f"==> {dispatch[:12]} node 1 (chatty) attempt 2 <==", "out b",
                          "err b", "WARNING tasks: warned about b"]
    assert proj.run("logs", "r", "-q", dispatch, check=0).out == (
        "out b\nerr b\nWARNING tasks: warned about b\n" * 2)


def test_output_over_the_limit_keeps_its_start_and_end_and_says_what_was_cut(
        proj: Project) -> None:
    ran = proj.run("run", "--run-id", "l", "--", "loud", "1000", env={
        "RETAP_OUTPUT_LIMIT": "1k"}, check=0)
    assert ran.out.count("line ") == 1000  # the terminal still gets all of it
    [entry] = logs_json(proj, "l")
    whole = "".join(f"line {i:05d}\n" for i in range(1000))
    assert entry["dropped"] == len(whole) - 1024
    note = f"\n[retap: {entry['dropped']} characters left out]\n"
    assert entry["text"] == whole[:512] + note + whole[-512:]
    assert f"{entry['dropped']} characters left out <==" in proj.run("logs", "l",
                                                                     check=0).lines[0]


def test_logging_configured_by_the_tasks_is_kept_once(proj: Project) -> None:
    proj.retapfile("import logging\nlogging.basicConfig(level=logging.INFO, "
                   "format='%(levelname)s:%(message)s')\n" + TASKS.replace(
                       'log.warning("warned about %s", x)', 'log.info("informed of %s", x)'))
    ran = proj.run("run", "--run-id", "g", "--", "chatty", "a", check=0)
    assert "INFO:informed of a" in ran.err
    [entry] = logs_json(proj, "g")
    assert entry["text"] == "out a\nerr a\nINFO tasks: informed of a\n"


def test_logging_first_imported_by_a_running_task_is_kept(project: Project) -> None:
    """No module of the run imports logging until a task does, inside its process: retap
    starts without it (a faster recovery), and still keeps every record, the first attempt's
    as Python's last-resort handler prints it, the later ones in retap's format."""
    project.retapfile('''
import retap


class Late(retap.Task, name="late"):
    def process(self, x):
        import logging

        logging.getLogger("late").warning("late %s", x)
        return x
''')
    ran = project.run("run", "--run-id", "lt", "--", "load", "--yaml", "[a, b]", "--:i", "late",
                      check=0)
    assert "late a" in ran.err and "late b" in ran.err
    texts = sorted(e["text"] for e in logs_json(project, "lt"))
    assert texts == ["WARNING late: late b\n", "late a\n"]


def test_no_output_is_kept_with_a_limit_of_zero(proj: Project) -> None:
    ran = proj.run("run", "--run-id", "z", "--", "chatty", "a",
                   env={"RETAP_OUTPUT_LIMIT": "0"}, check=0)
    assert "out a" in ran.out
    assert logs_json(proj, "z") == []


def test_follow_prints_each_attempt_as_it_is_recorded_until_the_run_ends(
        proj: Project, procs: list[subprocess.Popen[str]]) -> None:
    run = proj.start("run", "--run-id", "w", "--", "load", "--yaml", "[a, b]", "--:i", "slow")
    procs.append(run)
    wait_for(lambda: proj.run("runs", "--json").code == 0 and any(
        r["run"] == "w" for r in proj.runs()))
    follow = proj.start("logs", "w", "--follow", "-q")
    procs.append(follow)
    (proj.path / "go-a").touch()
    wait_for(lambda: any(e["text"] == "begun a\n" for e in logs_json(proj, "w")))
    time.sleep(1.5)
    assert follow.poll() is None  # the run goes on: so does --follow
    (proj.path / "go-b").touch()
    out, err = follow.communicate(timeout=30)
    assert follow.returncode == 0, err
    assert out == "begun a\nbegun b\n"
    assert run.wait(timeout=30) == 0


def test_bad_uses_of_logs_are_one_line_errors(proj: Project) -> None:
    proj.run("run", "--run-id", "b", "--", "chatty", "a", check=0)
    assert_one_line_error(proj.run("logs", "nope"), "nope")
    assert_one_line_error(proj.run("logs", "b", "zz"), "'zz' is neither a node nor a "
                                                         "dispatch of run b")
    assert_one_line_error(proj.run("logs", "b", "--follow", "--json"),
                          "--follow and --json")
