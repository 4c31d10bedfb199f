"""Recovery through the real `retap` command: resume, replay, --set, --on-error, retries,
signals, kill -9, live owners, in-flight non-idempotent work and code changes (DESIGN
§2-§6), on the default SQLite store and on PostgreSQL (``RETAP_STORE``; see pgserver)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from conftest import LOGGING_TASKS, Project, Result, wait_for
from pgserver import on_store

# Tasks added to the logging retapfile; they log to exec.log like a..e do.
EXTRA_TASKS = '''

@retap.task(name="twelve")
def twelve():
    _log("twelve")
    return 12


class Divide(retap.Task):
    """Integer division of its input by --divisor."""

    divisor: int = retap.config(0, help="what to divide by")

    def process(self, x):
        _log("divide", x)
        return int(x) // self.divisor


class Flaky(retap.Task):
    """Fails twice (counted in flaky.count), then succeeds."""

    retries = 2
    retry_delay = 0.01

    def process(self, *inputs):
        count_file = Path("flaky.count")
        n = int(count_file.read_text()) if count_file.exists() else 0
        count_file.write_text(str(n + 1))
        _log("flaky", *inputs)
        if n < 2:
            raise RuntimeError(f"flaky attempt {n + 1}")
        return "flaky ok"


class Charge(retap.Task):
    """Not idempotent: sleeps while SLOW_CHARGE is set."""

    idempotent = False

    def process(self, *inputs):
        _log("charge", *inputs)
        deadline = time.monotonic() + float(os.environ.get("SLOW_CHARGE", "0"))
        while time.monotonic() < deadline:
            time.sleep(0.02)
        _maybe_fail("charge")
        return "charged"


@retap.task(name="twin", cache="inputs")
def twin(x):
    """Memoized: a second dispatch with the same input takes the first one's result."""
    _log("twin", x)
    _maybe_fail("twin")
    return f"twin({x})"


class First(retap.Task):
    """A task with an explicit code version."""

    version = "v1-alpha"

    def process(self, *inputs):
        _log("first", *inputs)
        return "first"
'''


@pytest.fixture(params=["sqlite", "postgres"])
def proj(request: pytest.FixtureRequest, logging_project: Project) -> Iterator[Project]:
    logging_project.retapfile(LOGGING_TASKS + EXTRA_TASKS)
    with on_store(logging_project, request.param, "recovery") as project:
        yield project


def read_stderr_until(proc: subprocess.Popen[str], text: str, timeout: float = 10) -> str:
    """What a background process wrote on stderr, read until ``text`` shows (or time out)."""
    fd = proc.stderr.fileno()  # type: ignore[union-attr]
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk
    return seen.decode()


def show(project: Project, run: str) -> dict:
    return project.run("show", run, "--json", check=0).json()


def status_of(project: Project, run: str) -> str:
    return next(r["status"] for r in project.runs() if r["run"] == run)


def one_line_error(result: Result) -> str:
    """stderr of a refused command: one line, no traceback."""
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def audit_ids(project: Project, run: str) -> set[str]:
    """The ids of every dispatch recorded for ``run``: a replay must make the same ones."""
    return {a["id"] for a in project.run("audit", run, "--json", check=0).json()}


def replayed_from(project: Project, node: str, recorded: int) -> list[str]:
    """Replay run g ``--from node`` after checking it recorded ``recorded`` dispatches;
    the replay must record the same ids. What it ran (execution log lines)."""
    ids = audit_ids(project, "g")
    assert len(ids) == recorded
    ran = len(project.log())
    project.run("replay", "g", "--from", node, check=0)
    assert audit_ids(project, "g") == ids
    return project.log()[ran:]


def audit_by_node(project: Project, run: str) -> dict:
    return {a["node"]: a for a in project.run("audit", run, "--json", check=0).json()}


# -- 1. the seed ticket's two cases ------------------------------------------------------------


def test_seed_case_one_resume_runs_only_the_failed_c(proj: Project) -> None:
    first = proj.run("run", "--run-id", "r1", "--", "a", "--", "b", "--", "c", "--[0][1,2]q",
                     env={"FAIL_ONCE": "c"})
    assert first.code == 1, first.err
    assert proj.counts() == {"a": 1, "b": 1, "c": 1}

    again = proj.run("resume", "r1", env={"FAIL_ONCE": "c"})

    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "b": 1, "c": 2}
    assert status_of(proj, "r1") == "done"


@pytest.mark.parametrize("verb", ["resume", "replay"])
def test_seed_case_two_runs_d_and_the_queued_c_once_each(proj: Project, verb: str) -> None:
    first = proj.run("run", "--run-id", "r2", "--", "a", "--", "b", "--:q", "c", "--", "d",
                     "--[0][1,3]", env={"FAIL_ONCE": "d"})
    assert first.code == 1, first.err
    assert proj.counts() == {"a": 1, "b": 1, "d": 1}  # c still sits queued
    assert [q["node"] for q in show(proj, "r2")["queue"]] == [3, 2]

    again = proj.run(verb, "r2", env={"FAIL_ONCE": "d"})

    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "b": 1, "c": 1, "d": 2}
    assert proj.log()[-2:] == ["d ('a()',)", "c ('b(a())',)"]
    report = show(proj, "r2")
    assert report["status"] == "done"
    assert report["queue"] == []
    assert report["counts"] == {"done": 4}


# -- 2. done runs and unknown runs --------------------------------------------------------------


@pytest.mark.parametrize("verb", ["resume", "replay"])
def test_resume_or_replay_of_a_done_run_executes_nothing(proj: Project, verb: str) -> None:
    proj.run("run", "--run-id", "ok", "--", "a", "--:", "b", check=0)
    before = proj.log()

    again = proj.run(verb, "ok")

    assert again.code == 0, again.err
    assert proj.log() == before
    assert "already done" in again.err
    assert again.out == ""


@pytest.mark.parametrize("command", ["show", "audit", "resume", "replay"])
def test_an_unknown_run_id_is_exit_2_with_one_line(proj: Project, command: str) -> None:
    proj.run("run", "--run-id", "real", "--", "a", check=0)

    result = proj.run(command, "no-such-run")

    assert result.code == 2, (result.out, result.err)
    assert "no-such-run" in one_line_error(result)
    assert proj.counts() == {"a": 1}


# -- 3. show the failure, fix a config with --set, resume ----------------------------------------


def test_show_names_the_failed_dispatch_and_set_fixes_it(proj: Project) -> None:
    first = proj.run("run", "--run-id", "div", "--", "twelve", "--:", "divide", "--:", "dump")
    assert first.code == 1, first.err
    assert proj.counts() == {"twelve": 1, "divide": 1}

    report = show(proj, "div")
    assert report["status"] == "failed"
    [failed] = report["failed"]
    assert {"dispatch", "node", "task", "inputs", "error", "traceback"} <= set(failed)
    assert failed["node"] == 1
    assert failed["task"] == "divide"
    assert failed["inputs"] == [12]
    assert "ZeroDivisionError" in failed["traceback"]
    assert failed["error"]
    assert failed["dispatch"] in {q["dispatch"] for q in report["queue"]}
    text = proj.run("show", "div", check=0).out
    for part in ("failed", "divide", "divisor", "12", "ZeroDivisionError"):
        assert part in text, (part, text)

    fixed = proj.run("resume", "div", "--set", "1.divisor=4")

    assert fixed.code == 0, fixed.err
    assert fixed.out.splitlines() == ["3"]
    assert proj.counts() == {"twelve": 1, "divide": 2}
    assert show(proj, "div")["status"] == "done"
    assert audit_by_node(proj, "div")[1]["value"] == 3


def test_replay_takes_set_too(proj: Project) -> None:
    proj.run("run", "--run-id", "div", "--", "twelve", "--:", "divide", "--:", "dump", check=1)

    fixed = proj.run("replay", "div", "--set", "1.divisor=6")

    assert fixed.code == 0, fixed.err
    assert fixed.out.splitlines() == ["2"]
    assert proj.counts() == {"twelve": 1, "divide": 2}


@pytest.mark.parametrize("setting", ["9.divisor=4", "1.nope=4", "1.divisor=four", "divisor=4"])
def test_a_bad_set_is_exit_2_and_runs_nothing(proj: Project, setting: str) -> None:
    proj.run("run", "--run-id", "div", "--", "twelve", "--:", "divide", check=1)
    before = proj.log()

    result = proj.run("resume", "div", "--set", setting)

    assert result.code == 2, (result.out, result.err)
    one_line_error(result)
    assert proj.log() == before
    assert show(proj, "div")["status"] == "failed"
    # the run is still resumable with a good setting
    proj.run("resume", "div", "--set", "1.divisor=3", check=0)
    assert proj.counts() == {"twelve": 1, "divide": 2}


# -- 4. --on-error continue ----------------------------------------------------------------------


def test_on_error_continue_runs_independent_branches(proj: Project) -> None:
    result = proj.run("run", "--run-id", "oc", "--on-error", "continue", "--", "a", "--", "b",
                      "--", "c", "--[0][1,2]", env={"FAIL_ALWAYS": "b"})

    assert result.code == 1, result.err
    assert proj.counts() == {"a": 1, "b": 1, "c": 1}
    report = show(proj, "oc")
    assert report["status"] == "failed"
    assert report["counts"] == {"done": 2, "failed": 1}
    assert [f["node"] for f in report["failed"]] == [1]

    again = proj.run("resume", "oc")  # b works now: only b runs

    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "b": 2, "c": 1}
    assert show(proj, "oc")["counts"] == {"done": 3}


def test_on_error_stop_is_the_default(proj: Project) -> None:
    result = proj.run("run", "--run-id", "os", "--", "a", "--", "b", "--", "c", "--[0][1,2]",
                      env={"FAIL_ALWAYS": "b"})

    assert result.code == 1, result.err
    assert proj.counts() == {"a": 1, "b": 1}
    assert show(proj, "os")["counts"] == {"done": 1, "failed": 1}


# -- 5. per-task retries -------------------------------------------------------------------------


def test_retries_run_a_flaky_task_until_it_succeeds(proj: Project) -> None:
    result = proj.run("run", "--run-id", "fl", "--", "a", "--:", "flaky", "--:", "b")

    assert result.code == 0, result.err
    assert proj.counts() == {"a": 1, "flaky": 3, "b": 1}
    audits = audit_by_node(proj, "fl")
    assert audits[1]["attempts"] == 3
    assert audits[1]["status"] == "done"
    assert audits[1]["value"] == "flaky ok"
    assert audits[0]["attempts"] == 1


# -- 6. SIGINT and SIGTERM -----------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_interrupts_the_run_and_resume_finishes_it(
        proj: Project, procs: list, sig: signal.Signals, code: int) -> None:
    proc = proj.start("run", "--run-id", "sig", "--", "a", "--:", "sleep", "--seconds", "30",
                      "--:", "b")
    procs.append(proc)
    wait_for(lambda: "a" in proj.counts())

    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=10)

    assert proc.returncode == code, err
    assert time.monotonic() - sent < 5  # the sleep stops early, it does not run its 30 s
    assert status_of(proj, "sig") == "interrupted"
    assert show(proj, "sig")["status"] == "interrupted"
    assert proj.counts() == {"a": 1}

    # the sleep was interrupted, so it runs again on resume: make it short
    again = proj.run("resume", "sig", "--set", "1.seconds=0.01")

    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "b": 1}
    assert status_of(proj, "sig") == "done"


def test_a_second_sigint_aborts_a_long_dispatch(proj: Project, procs: list) -> None:
    proc = proj.start("run", "--run-id", "twice", "--", "a", "--:", "c", "--:", "b",
                      env={"DELAY_C": "30"})
    procs.append(proc)
    wait_for(lambda: "c" in proj.counts())

    proc.send_signal(signal.SIGINT)
    # the first SIGINT is handled (two pending SIGINTs would merge into one)
    assert "send it again" in read_stderr_until(proc, "send it again")
    proc.send_signal(signal.SIGINT)
    # under 30 s, the dispatch's own length, but with room for recording it interrupted on
    # a loaded PostgreSQL server (10 s ran out once beside the suite's torture runs); c
    # running again on resume is what shows it was aborted, not finished
    _, err = proc.communicate(timeout=25)

    assert proc.returncode == 130, err
    assert status_of(proj, "twice") == "interrupted"
    again = proj.run("resume", "twice")
    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "c": 2, "b": 1}


# -- 7. kill -9 ----------------------------------------------------------------------------------


def test_kill_9_leaves_an_interrupted_run_that_resumes(proj: Project, procs: list) -> None:
    proc = proj.start("run", "--run-id", "k9", "--", "a", "--:", "b", "--:", "c",
                      env={"DELAY_C": "30"})
    procs.append(proc)
    wait_for(lambda: "c" in proj.counts())

    proc.kill()
    # dead but not yet reaped (a zombie): already not the owner
    wait_for(lambda: show(proj, "k9")["status"] == "interrupted", timeout=5)
    proc.wait(timeout=10)

    report = show(proj, "k9")
    assert report["status"] == "interrupted"
    assert status_of(proj, "k9") == "interrupted"
    assert [q["node"] for q in report["queue"]] == [2]

    again = proj.run("resume", "k9")

    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "b": 1, "c": 2}
    assert show(proj, "k9")["status"] == "done"


@pytest.mark.parametrize("verb", ["resume", "replay"])
@pytest.mark.parametrize(("words", "slow", "expected"), [
    # seed case two, killed (not failed) in d while c sits queued
    (["a", "--", "b", "--:q", "c", "--", "d", "--[0][1,3]"], "d",
     {"a": 1, "b": 1, "c": 1, "d": 2}),
    # a depth-first fork killed in its first target: the second is pending, not lost
    (["a", "--", "b", "--", "c", "--[0][1,2]"], "b", {"a": 1, "b": 2, "c": 1}),
], ids=["queued-c", "fork"])
def test_kill_9_between_joined_targets_loses_nothing_and_duplicates_nothing(
        proj: Project, procs: list, verb: str, words: list[str], slow: str,
        expected: dict[str, int]) -> None:
    proc = proj.start("run", "--run-id", "kj", "--", *words,
                      env={f"DELAY_{slow.upper()}": "30"})
    procs.append(proc)
    wait_for(lambda: slow in proj.counts())
    proc.kill()
    proc.wait(timeout=10)

    again = proj.run(verb, "kj")

    assert again.code == 0, again.err
    assert proj.counts() == expected
    assert show(proj, "kj")["counts"] == {"done": len(expected)}


@pytest.mark.parametrize("verb", ["resume", "replay"])
def test_a_sync_join_gets_its_state_back(proj: Project, verb: str) -> None:
    first = proj.run("run", "--run-id", "sy", "--", "a", "--", "b", "--", "c",
                     "--[0,1][2].sync", env={"FAIL_ONCE": "b"})
    assert first.code == 1, first.err
    assert proj.counts() == {"a": 1, "b": 1}

    again = proj.run(verb, "sy", env={"FAIL_ONCE": "b"})

    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "b": 2, "c": 1}
    assert proj.log()[-1] == "c (['a()', 'b()'],)"


# -- 8. a live owner is never taken over ---------------------------------------------------------


@pytest.mark.parametrize("verb", ["resume", "replay"])
def test_a_live_owner_is_not_taken_over(proj: Project, procs: list, verb: str) -> None:
    proc = proj.start("run", "--run-id", "live", "--", "a", "--:", "c", "--:", "b",
                      env={"DELAY_C": "30"})
    procs.append(proc)
    wait_for(lambda: "c" in proj.counts())

    result = proj.run(verb, "live")

    assert result.code == 2, (result.out, result.err)
    line = one_line_error(result)
    assert "being run" in line
    assert f"pid {proc.pid}" in line
    assert show(proj, "live")["status"] == "running"
    assert status_of(proj, "live") == "running"
    assert proj.counts() == {"a": 1, "c": 1}
    assert proc.poll() is None
    for side in ("retap.db-wal", "retap.db-shm"):  # they hold the same data as the store
        path = proj.path / ".retap" / side
        if path.exists():
            assert path.stat().st_mode & 0o077 == 0, side

    proc.kill()
    proc.wait(timeout=10)
    assert show(proj, "live")["status"] == "interrupted"


# -- 9. in-flight work that is not idempotent ----------------------------------------------------


def test_inflight_non_idempotent_work_needs_rerun_inflight(proj: Project, procs: list) -> None:
    proc = proj.start("run", "--run-id", "inf", "--", "a", "--:", "charge", "--:", "b",
                      env={"SLOW_CHARGE": "30"})
    procs.append(proc)
    wait_for(lambda: "charge" in proj.counts())
    proc.kill()
    proc.wait(timeout=10)
    assert show(proj, "inf")["status"] == "interrupted"

    refused = proj.run("resume", "inf")

    assert refused.code == 2, (refused.out, refused.err)
    assert "--rerun-inflight" in one_line_error(refused)
    assert proj.counts() == {"a": 1, "charge": 1}

    replay_refused = proj.run("replay", "inf")
    assert replay_refused.code == 2, (replay_refused.out, replay_refused.err)
    assert "--rerun-inflight" in replay_refused.err
    assert proj.counts() == {"a": 1, "charge": 1}

    again = proj.run("resume", "inf", "--rerun-inflight")

    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "charge": 2, "b": 1}
    assert show(proj, "inf")["status"] == "done"


def test_a_failed_non_idempotent_dispatch_is_not_in_flight(proj: Project) -> None:
    proj.run("run", "--run-id", "nf", "--", "a", "--:", "charge", "--:", "b",
             env={"FAIL_ONCE": "charge"}, check=1)

    again = proj.run("resume", "nf", env={"FAIL_ONCE": "charge"})

    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "charge": 2, "b": 1}


def test_a_non_idempotent_dispatch_aborted_by_a_second_sigint_needs_rerun_inflight(
        proj: Project, procs: list) -> None:
    proc = proj.start("run", "--run-id", "ab", "--", "a", "--:", "charge", "--:", "b",
                      env={"SLOW_CHARGE": "30"})
    procs.append(proc)
    wait_for(lambda: "charge" in proj.counts())
    proc.send_signal(signal.SIGINT)
    assert "send it again" in read_stderr_until(proc, "send it again")
    proc.send_signal(signal.SIGINT)  # abort charge half-way through its side effects
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err

    refused = proj.run("resume", "ab")

    assert refused.code == 2, (refused.out, refused.err)
    assert "--rerun-inflight" in refused.err
    assert proj.counts() == {"a": 1, "charge": 1}


def test_inflight_idempotent_work_reruns_without_asking(proj: Project, procs: list) -> None:
    proc = proj.start("run", "--run-id", "idem", "--", "a", "--:", "c", "--:", "b",
                      env={"DELAY_C": "30"})
    procs.append(proc)
    wait_for(lambda: "c" in proj.counts())
    proc.kill()
    proc.wait(timeout=10)

    again = proj.run("resume", "idem")

    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "c": 2, "b": 1}


# -- 10. code changes ----------------------------------------------------------------------------


def _bump_first_version(project: Project) -> None:
    path = project.path / "retapfile.py"
    source = path.read_text()
    assert 'version = "v1-alpha"' in source
    path.write_text(source.replace('version = "v1-alpha"', 'version = "v2-beta"'))


def _run_with_first(project: Project) -> None:
    first = project.run("run", "--run-id", "ver", "--", "d", "--", "first", "--:", "b", "--:",
                        "c", env={"FAIL_ONCE": "c"})
    assert first.code == 1, first.err
    assert project.counts() == {"d": 1, "first": 1, "b": 1, "c": 1}


def test_resume_warns_about_changed_code_and_keeps_its_results(proj: Project) -> None:
    _run_with_first(proj)
    _bump_first_version(proj)

    again = proj.run("resume", "ver", env={"FAIL_ONCE": "c"})

    assert again.code == 0, again.err
    warned = [line for line in again.err.splitlines() if "v1-alpha" in line]
    assert warned, again.err
    # the line names node 1, its task and both versions
    assert any("v2-beta" in w and "first" in w
               and re.search(r"\b1\b", w.replace("v1-alpha", "").replace("v2-beta", ""))
               for w in warned), again.err
    assert "warning" in again.err.lower()
    assert proj.counts() == {"d": 1, "first": 1, "b": 1, "c": 2}


def test_replay_rerun_changed_reruns_the_changed_task_and_downstream(proj: Project) -> None:
    _run_with_first(proj)
    _bump_first_version(proj)

    again = proj.run("replay", "ver", "--rerun-changed", env={"FAIL_ONCE": "c"})

    assert again.code == 0, again.err
    assert "v1-alpha" in again.err and "v2-beta" in again.err
    # d is not downstream of first: answered from the store; first, b, c run again
    assert proj.counts() == {"d": 1, "first": 2, "b": 2, "c": 2}
    audits = audit_by_node(proj, "ver")
    assert all(a["status"] == "done" for a in audits.values())
    assert audits[3]["value"] == "c(b(first))"


def test_resume_rerun_changed_reruns_the_changed_task_and_downstream(proj: Project) -> None:
    _run_with_first(proj)
    _bump_first_version(proj)

    again = proj.run("resume", "ver", "--rerun-changed", env={"FAIL_ONCE": "c"})

    assert again.code == 0, again.err
    assert proj.counts() == {"d": 1, "first": 2, "b": 2, "c": 2}


def test_batch_durability_commits_an_aging_group_while_a_long_task_runs(
        proj: Project, procs: list) -> None:
    proc = proj.start("run", "--run-id", "ag", "--durability", "batch", "--", "a", "--:", "b",
                      "--:", "c", env={"DELAY_C": "30"})
    procs.append(proc)
    wait_for(lambda: "c" in proj.counts())
    time.sleep(0.5)  # ten times the group's 50 ms limit

    shown = show(proj, "ag")

    assert shown["status"] == "running"
    assert shown["counts"] == {"done": 2}  # a and b committed although c has not finished
    proc.kill()


def test_seed_9494_case_2_a_replay_releases_a_gate_batch_before_a_later_retry_reaches_it(
        proj: Project) -> None:
    # The gate released [a(1), a(2)] while the lead b sat failed (--on-error continue); a
    # resume ran b again, whose result made a batch of its own. A replay --from c answered
    # b before releasing the gate (b is recorded done, so something was still answerable):
    # b joined the first batch, which made other ids than the ones recorded.
    flow = ("--", "b", "9", "--", "load", "--yaml", "[1, 2]", "--", "a", "--", "c",
            "--[1][2]i", "--[0,2][3]i.gate")
    proj.run("run", "--on-error", "continue", "--run-id", "g", *flow, check=1,
             env={"FAIL_ONCE": "b"})
    proj.run("resume", "g", check=0)

    assert sorted(replayed_from(proj, "3", 7)) == ["c ('a(1)',)", "c ('a(2)',)", "c ('b(9)',)"]
    assert show(proj, "g")["counts"] == {"done": 7}


def test_seed_2026_case_32_a_replay_releases_a_gate_batch_where_a_failed_record_says(
        proj: Project) -> None:
    # A gate released [a(1), a(2)] when the queue drained, and c failed on one of them
    # (--on-error continue). The replay met that batch again before the failed lead b ran,
    # but let b run first because not all of the batch was done: b's result joined the
    # batch, which made other ids, and the run ended done with orphaned failed records.
    flow = ("--", "load", "--yaml", "[1, 2]", "--", "b", "9", "--", "a", "--", "c",
            "--[0][2]i", "--[1,2][3]i.gate")
    env = {"FAIL_ONCE": "b,c"}
    proj.run("run", "--on-error", "continue", "--run-id", "g", *flow, check=1, env=env)
    assert show(proj, "g")["counts"] == {"done": 4, "failed": 2}

    proj.run("replay", "g", "--on-error", "continue", check=0, env=env)

    assert show(proj, "g")["counts"] == {"done": 7}
    assert [line for line in proj.log() if line.startswith("c ")] == [
        "c ('a(1)',)", "c ('a(2)',)", "c ('a(1)',)", "c ('b(9)',)"]


def test_seed_9999_case_123_a_result_reused_after_a_failure_counts_as_retried(
        proj: Project) -> None:
    # twin's first dispatch failed (--on-error continue); the gate then gave twin a second
    # dispatch with the same input, whose result the sync join took. A resume took that
    # memoized result for the first dispatch, which counted no attempt for it: a replay
    # did not see a retried dispatch, answered it before the gate released, and the sync
    # join took it instead, which made another c than the one recorded.
    flow = ("--", "b", "9", "--", "twin", "--", "c", "--", "d", "5", "--[0][1]",
            "--[0][1]s.gate", "--[1,3][2].sync")
    proj.run("run", "--on-error", "continue", "--run-id", "g", *flow, check=1,
             env={"FAIL_ONCE": "twin"})
    proj.run("resume", "g", check=0)
    assert proj.log()[-1] == "c (['twin(b(9))', 'd(5)'],)"  # resume reused twin, ran nothing

    assert replayed_from(proj, "2", 5) == ["c (['twin(b(9))', 'd(5)'],)"]
    assert show(proj, "g")["counts"] == {"done": 5}


def test_seed_10101_case_107_a_gate_batch_recorded_after_a_dispatch_waits_for_it(
        proj: Project) -> None:
    # flaky took three attempts within one session, so its record says retried; the gate
    # over b released [b] only later, when the queue ran dry. A replay released that gate
    # before answering flaky, as if it had drained while flaky sat failed: d's result
    # joined flaky's in the other gate's batch, which made a c that was never recorded.
    # Then the replay released that gate while c of flaky, which ran before it drained,
    # was still to run: the two c ran in the other order.
    flow = ("--", "b", "9", "--", "flaky", "--", "c", "--", "d", "--[0][1]",
            "--[1,3][2].gate", "--[0][3].gate")
    proj.run("run", "--run-id", "g", *flow, check=0)

    assert replayed_from(proj, "2", 5) == ["c (['flaky ok'],)", "c ([\"d(['b(9)'])\"],)"]


def test_seed_10202_case_41_a_gate_drained_while_a_sat_failed_releases_before_a(
        proj: Project) -> None:
    # The gate released [b] while a sat failed (--on-error continue); c of that batch
    # failed as well, and was done only after a resume had done a. The replay must still
    # release [b] before answering a: the recorded run first had that batch in the
    # session a failed in, whatever order the two were done in later.
    flow = ("--", "b", "9", "--", "a", "--", "c", "--[0][1]", "--[0,1][2].gate")
    proj.run("run", "--on-error", "continue", "--run-id", "g", *flow, check=1,
             env={"FAIL_ONCE": "a", "FAIL_ALWAYS": "c"})
    proj.run("resume", "g", "--on-error", "continue", check=1, env={"FAIL_ALWAYS": "c"})
    proj.run("resume", "g", check=0)
    assert proj.log()[-2:] == ["c (['a(b(9))'],)", "c (['b(9)'],)"]

    assert replayed_from(proj, "2", 4) == ["c (['a(b(9))'],)", "c (['b(9)'],)"]
    assert show(proj, "g")["counts"] == {"done": 4}
