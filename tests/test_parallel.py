"""Parallel execution (-j N) on threads, worker processes and Dask, through the real
`retap` command. Every task writes `start` and `end` lines with the time to a side
channel (exec.log), so overlap, serialisation and re-execution are counted, not guessed.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Project, assert_one_line_error, wait_for
from crafting import allow_sealing, seal_sql

TASKS = '''
import os
import signal
import time
from pathlib import Path

import retap


def _log(*words):
    with open("exec.log", "a") as fh:
        fh.write(" ".join(map(str, words)) + "\\n")


def _once(name):
    """True the first time ``name`` is asked about in this project (a marker file)."""
    marker = Path(f".once-{name}")
    if marker.exists():
        return False
    marker.touch()
    return True


@retap.task
def nap(x: str, *, secs: float = 1.0) -> str:
    """Sleeps, logging when it starts and ends."""
    _log("start", x, os.getpid(), time.time())
    time.sleep(secs)
    _log("end", x, os.getpid(), time.time())
    return x


class Solo(retap.Task):
    """Like nap, but never two at once."""

    max_parallel = 1
    secs: float = 0.3

    def process(self, x: str) -> str:
        _log("start", x, os.getpid(), time.time())
        time.sleep(self.secs)
        _log("end", x, os.getpid(), time.time())
        return x


class Crash(retap.Task):
    """Kills its own worker process the first time it runs for an input."""

    retries = 1

    def process(self, x: str) -> str:
        _log("start", x, os.getpid(), time.time())
        if x == "boom" and _once(f"crash-{x}"):
            os.kill(os.getpid(), signal.SIGKILL)
        return x


class Hang(retap.Task):
    """Sleeps far longer than its timeout allows, unless told to hurry."""

    timeout = 1.0

    def process(self, x: str) -> str:
        _log("start", x, os.getpid(), time.time())
        time.sleep(0.1 if os.path.exists("hurry") else 30)
        return x


@retap.task
def leave(x: str) -> str:
    """The first time it runs for "a", its Dask worker leaves gracefully while it runs."""
    _log("start", x, os.getpid(), time.time())
    if x == "a" and _once("leave"):
        from distributed import get_worker

        worker = get_worker()
        worker.loop.add_callback(worker.close_gracefully)
        time.sleep(3)
    _log("end", x, os.getpid(), time.time())
    return x


class Copy(retap.FileTask):
    """Writes out/<input>.txt holding the input, slowly."""

    def process(self, x: str) -> str:
        _log("start", x, os.getpid(), time.time())
        target = Path("out") / f"{x}.txt"
        with self.output(target) as tmp:
            tmp.write_text(x * 3)
            time.sleep(float(os.environ.get("SLOW", "0")))
        _log("end", x, os.getpid(), time.time())
        return str(target)
'''

THREE = ["--", "load", "--yaml", "[a, b, c]", "--:i"]


@pytest.fixture
def proj(project: Project) -> Project:
    project.retapfile(TASKS)
    return project


def events(project: Project, kind: str) -> list[tuple[str, float]]:
    """``(input, time)`` of every start or end line."""
    return [(w[1], float(w[3])) for w in (line.split() for line in project.log())
            if w[0] == kind]


def journals(project: Project) -> list[Path]:
    root = project.path / ".retap" / "backup"
    return list(root.rglob("*")) if root.exists() else []


def overlapping(project: Project) -> bool:
    """Some dispatch started before another one ended."""
    starts, ends = events(project, "start"), events(project, "end")
    return max(t for _, t in starts) < min(t for _, t in ends)


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_independent_dispatches_run_at_once(proj: Project, executor: str) -> None:
    result = proj.run("run", "-j", "3", "--executor", executor, *THREE, "nap", "--:.gate",
                      "dump", check=0)
    assert sorted(result.out.strip()[1:-1].split(", ")) == ['"a"', '"b"', '"c"']
    assert overlapping(proj)
    if executor == "processes":
        assert len({line.split()[2] for line in proj.log()}) > 1  # several workers


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_max_parallel_one_never_overlaps(proj: Project, executor: str) -> None:
    proj.run("run", "-j", "3", "--executor", executor, "--", "load", "--yaml",
             "[a, b, c, d]", "--:i", "solo", check=0)
    spans = sorted(zip((t for _, t in events(proj, "start")),
                       (t for _, t in events(proj, "end")), strict=True))
    assert len(spans) == 4
    assert all(end <= nxt for (_, end), (nxt, _) in itertools.pairwise(spans))


def test_a_worker_killed_mid_task_fails_only_its_dispatch_and_is_retried(proj: Project) -> None:
    result = proj.run("run", "-j", "2", "--", "load", "--yaml", "[x, boom, y]", "--:i",
                      "crash", "--:.gate", "dump", check=0)
    assert "WorkerLost" in result.err and "retry 1 of 1" in result.err
    assert sorted(result.out.strip()[1:-1].split(", ")) == ['"boom"', '"x"', '"y"']
    starts = [x for x, _ in events(proj, "start")]
    assert sorted(starts) == ["boom", "boom", "x", "y"]


def test_a_dispatch_past_its_timeout_is_stopped_and_the_run_goes_on(proj: Project) -> None:
    started = time.monotonic()
    result = proj.run("run", "--run-id", "t", "-j", "2", "--on-error", "continue", "--",
                      "load", "--yaml", "[slow, other]", "--:i", "hang", "--:", "dump")
    assert time.monotonic() - started < 20
    assert result.code == 1, result.err
    assert "node 1 (hang) failed: DispatchTimeout: timed out after 1 s" in result.err
    (proj.path / "hurry").touch()
    assert sorted(proj.run("resume", "t", "-j", "2", check=0).lines) == ["other", "slow"]


def test_threads_say_they_cannot_enforce_a_timeout(proj: Project) -> None:
    (proj.path / "hurry").touch()
    result = proj.run("run", "-j", "2", "--executor", "threads", "--", "hang", "x", check=0)
    assert "timeouts of hang are not enforced" in result.err


def test_a_killed_coordinator_reruns_only_the_dispatches_in_flight(proj: Project) -> None:
    args = ("run", "--run-id", "k", "-j", "3", "--", "load", "--yaml", "[a, b, c, d, e, f]",
            "--:i", "nap", "--secs", "3", "--:", "dump")
    proc = proj.start(*args)
    try:
        wait_for(lambda: len(events(proj, "start")) == 3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=20)
    first = {x for x, _ in events(proj, "start")}
    time.sleep(4)  # workers die with their coordinator: nothing more is written
    assert events(proj, "end") == []

    result = proj.run("resume", "k", "-j", "3", check=0)
    starts = [x for x, _ in events(proj, "start")]
    assert sorted(starts) == sorted([*first, "a", "b", "c", "d", "e", "f"])
    assert sorted(result.lines) == ["a", "b", "c", "d", "e", "f"]


@pytest.mark.parametrize(("signals", "code", "ended"), [(1, 130, 3), (2, 130, 0)],
                         ids=["once-lets-them-finish", "twice-stops-them"])
def test_signals_with_dispatches_in_flight(proj: Project, signals: int, code: int,
                                           ended: int) -> None:
    proc = proj.start("run", "--run-id", "s", "-j", "3", "--", "load", "--yaml",
                      "[a, b, c, d, e, f]", "--:i", "nap", "--secs", "2")
    try:
        wait_for(lambda: len(events(proj, "start")) == 3)
        for _ in range(signals):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.2)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert len(events(proj, "end")) == ended
    shown = proj.run("show", "s", "--json", check=0).json()
    assert shown["counts"].get("done", 0) == 1 + ended  # load, and what finished
    proj.run("resume", "s", "-j", "3", check=0)
    assert len(events(proj, "end")) == ended + 6 - ended


def test_file_tasks_in_workers_write_their_outputs_and_leave_no_journal(proj: Project) -> None:
    proj.run("run", "--run-id", "f", "-j", "3", "--", "load", "--yaml", "[a, b, c, d]",
             "--:i", "copy", check=0)
    assert sorted(p.name for p in (proj.path / "out").iterdir()) == [
        "a.txt", "b.txt", "c.txt", "d.txt"]
    assert (proj.path / "out" / "c.txt").read_text() == "ccc"
    assert journals(proj) == []
    again = proj.run("run", "-j", "3", "--", "load", "--yaml", "[a, b, c, d]", "--:i", "copy",
                     check=0)
    assert "(1 executed, 4 reused)" in again.err


def test_file_tasks_killed_in_workers_are_undone_and_redone_on_resume(proj: Project) -> None:
    proc = proj.start("run", "--run-id", "fk", "-j", "2", "--", "load", "--yaml",
                      "[a, b, c]", "--:i", "copy", env={"SLOW": "3"})
    try:
        wait_for(lambda: len(list((proj.path / "out").glob(".*.tmp"))) == 2
                 if (proj.path / "out").exists() else False)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=20)
    time.sleep(1)
    proj.run("resume", "fk", "-j", "2", check=0)
    files = sorted(p.name for p in (proj.path / "out").iterdir())
    assert files == ["a.txt", "b.txt", "c.txt"]
    assert journals(proj) == []


def test_a_task_that_cannot_go_to_a_worker_is_refused_before_the_run(proj: Project) -> None:
    proj.write("unpicklable.py", '''
        import threading
        import retap

        class Locked(retap.Task):
            """Holds a lock in a config: it cannot be pickled."""

            lock: object = None

            def process(self):
                return 1
        ''')
    proj.write("flow.py", '''
        import sys
        import threading
        from retap import App, Workflow
        from unpicklable import Locked

        wf = Workflow()
        wf.add(Locked(lock=threading.Lock()))
        App(wf, jobs=2, executor="processes").run()
        ''')
    import subprocess

    done = subprocess.run([sys.executable, "flow.py"], cwd=proj.path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "node 0 (locked): the task cannot be sent to a worker" in done.stderr


def test_a_task_defined_in_main_is_refused_for_worker_processes(proj: Project) -> None:
    proj.write("script.py", '''
        import retap
        from retap import App, ExecutorError, Workflow

        class Here(retap.Task):
            """Defined in the script that runs."""

            def process(self):
                return 1

        if __name__ == "__main__":
            wf = Workflow()
            wf.add(Here())
            try:
                App(wf, jobs=2, executor="processes")
            except ExecutorError as exc:
                print(exc.message)
        ''')
    import subprocess

    done = subprocess.run([sys.executable, "script.py"], cwd=proj.path, capture_output=True,
                          text=True, timeout=60)
    assert "is defined in __main__" in done.stdout, done.stderr


def test_an_unknown_executor_is_refused_in_one_line(proj: Project) -> None:
    line = assert_one_line_error(proj.run("run", "--executor", "rockets", "-j", "2", "--",
                                          "load", "a"))
    assert "unknown executor" in line


@pytest.mark.timeout(120)
def test_dask_without_room_for_its_claims_is_refused_in_one_line(proj: Project) -> None:
    (proj.path / ".retap").write_text("not a folder")  # the store lives elsewhere
    assert_one_line_error(proj.run("run", "--store", "elsewhere.db", "-j", "2", "--executor",
                                   "dask", "--", "load", "a", timeout=90),
                          "cannot make the jobs' claim folder", "Not a directory")


def test_a_replay_of_a_parallel_run_answers_everything_in_recorded_order(
        proj: Project) -> None:
    # finishing order decides the gate's batches; the replay must rebuild those, not the
    # batches a sequential run would have made, and so run nothing again
    proj.run("run", "--run-id", "g", "-j", "3", "--executor", "threads", "--", "load",
             "--yaml", "[a, b, c, d, e, f]", "--:i", "nap", "--secs", "0.05", "--:.gate:2",
             "dump", check=0)
    before = proj.run("audit", "g", "--json", check=0).json()
    result = proj.run("replay", "g", check=0)
    assert "already done" in result.err or "0 executed" in result.err
    _tamper_status(proj.path / ".retap" / "retap.db", "g")
    replayed = proj.run("replay", "g", check=0)
    assert "(0 executed, 10 cached)" in replayed.err
    assert proj.run("audit", "g", "--json", check=0).json() == before


def _tamper_status(db: Path, run: str) -> None:
    """Mark a done run interrupted, as a kill at its very end would leave it."""
    import sqlite3

    from retap.store import rows

    conn = sqlite3.connect(db)
    allow_sealing(conn)
    conn.execute("UPDATE runs SET status='interrupted' WHERE run=?", (run,))
    conn.execute(f"UPDATE runs SET crc={seal_sql(rows.RUN)} WHERE run=?", (run,))
    conn.commit()
    conn.close()


def test_a_dask_local_cluster_runs_and_resumes(proj: Project) -> None:
    first = proj.run("run", "--run-id", "d", "-j", "2", "--executor", "dask", "--on-error",
                     "continue", "--", "load", "--yaml", "[x, boom, y]", "--:i", "crash",
                     "--:", "dump", timeout=120)
    assert first.code in (0, 1), first.err
    result = proj.run("resume", "d", "-j", "2", "--executor", "dask", timeout=120)
    assert result.code == 0 or "already done" in result.err, result.err
    audit = proj.run("audit", "d", "--json", check=0).json()
    assert sorted(a["value"] for a in audit if a["task"] == "dump") == ["boom", "x", "y"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["in_worker:2:kill", "in_worker:2:exit"])
def test_a_dask_worker_that_dies_as_it_takes_a_job_fails_it_and_a_resume_finishes(
        proj: Project, fault: str) -> None:
    # Torture (dask drawn, seed 21 case 12) hung here: a worker that died as it took its
    # next job could hold the result of the one before, which Dask then held as "lost":
    # the result never came back, and the run waited for good (a SIGTERM only asked it to
    # wait for that job).
    started = time.monotonic()
    first = proj.run("run", "--run-id", "w", "--on-error", "continue", "-j", "2",
                     "--executor", "dask", "--", "load", "--yaml", "[a, b, c, d, e, f]",
                     "--:i", "nap", "--secs", "0.3", "--:", "dump", timeout=120,
                     env={"RETAP_FAULT": fault})
    assert first.code == 1, first.err
    assert "WorkerLost" in first.err
    assert time.monotonic() - started < 60
    # what the user reads is retap's: one line a lost dispatch, not Dask's logs and the
    # dying worker's tracebacks beside it
    assert all(line.startswith("retap: ") for line in first.err.splitlines()), first.err
    result = proj.run("resume", "w", "-j", "2", "--executor", "dask", timeout=120, check=0)
    assert set(result.out.split()) <= set("abcdef")  # the dumps the first run did not do
    audit = proj.run("audit", "w", "--json", check=0).json()
    assert sorted(a["value"] for a in audit if a["task"] == "dump") == list("abcdef")


@pytest.mark.timeout(300)
def test_dask_never_runs_a_job_twice_when_its_worker_leaves_gracefully(proj: Project) -> None:
    # A worker that leaves gracefully hands its running jobs back to the scheduler, which
    # ran them again on another worker while the first run went on: "a" ran twice in one
    # run, and the run ended done. The job's claim file refuses the second run.
    first = proj.run("run", "--run-id", "g", "-j", "2", "--executor", "dask", "--", "load",
                     "--yaml", "[a, b]", "--:i", "leave", "--:", "dump", timeout=120)
    assert first.code == 1, first.err
    assert "the second run was refused" in first.err
    assert [x for x, _ in events(proj, "start")].count("a") == 1
    proj.run("resume", "g", "-j", "2", "--executor", "dask", timeout=120, check=0)
    audit = proj.run("audit", "g", "--json", check=0).json()
    assert sorted(a["value"] for a in audit if a["task"] == "dump") == ["a", "b"]
    assert not (proj.path / ".retap" / "dask").exists()  # the claims went with the cluster


@pytest.mark.timeout(300)
def test_ctrl_c_lets_the_jobs_on_dask_finish_and_commit(proj: Project) -> None:
    # Ctrl-C sends SIGINT to the whole foreground group, the local cluster's workers too:
    # they shut down at once and lost the jobs the first SIGINT lets finish.
    child = subprocess.Popen(proj.command("run", "--run-id", "c", "-j", "2", "--executor",
                                          "dask", *THREE, "nap", "--secs", "1.5", "--:",
                                          "dump"),
                             cwd=proj.path, env=proj.env, text=True, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: len(events(proj, "start")) == 2, timeout=60)
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "WorkerLost" not in err
    assert len(events(proj, "end")) == 2  # both finished where they ran
    shown = proj.run("show", "c", "--json", check=0).json()
    assert shown["status"] == "interrupted" and shown["counts"] == {"done": 3}, shown
    proj.run("resume", "c", "-j", "2", "--executor", "dask", timeout=120, check=0)
    assert sorted(x for x, _ in events(proj, "start")) == ["a", "b", "c"]
