"""Faults, as the torture runner injects them, one at a time and by name: the process killed
at every fault point, a full disk, a signal inside a commit, two resumers at once, readers
during a run, and a damaged store file. Nothing recorded is lost, nothing done runs again."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from conftest import Project, assert_one_line_error, wait_for
from retap.faults import POINTS

RETAPFILE = '''
import os
import time

import retap


class Logged(retap.Task, abstract=True):
    def log(self):
        with open("exec.log", "a") as fh:
            fh.write(f"{self.dispatch_id} {type(self).__retap__.name}\\n")


class Items(Logged):
    """The numbers 1..count."""

    count: int = 6

    def process(self):
        self.log()
        return list(range(1, self.count + 1))


class Work(Logged):
    """Its item times ten, as a padded string (values big enough to fill pages)."""

    def process(self, item):
        self.log()
        if os.environ.get("FAIL_ONCE") == str(item) and not os.path.exists(f"failed-{item}"):
            open(f"failed-{item}", "w").close()
            raise RuntimeError(f"work fails once on {item}")
        time.sleep(float(os.environ.get("DELAY", "0")))
        return f"{item * 10:>{int(os.environ.get('PAD', '1'))}}"


class Total(Logged):
    """Its inputs (lists flattened) joined with '+'."""

    def process(self, *values):
        self.log()
        return "+".join(flat(values))


def flat(values):
    for value in values:
        if isinstance(value, list):
            yield from flat(value)
        else:
            yield value.strip()
'''

FLOW = ["--", "items", "--:i", "work", "--:.gate:2", "total", "--", "total", "--[1][3].gate"]


@pytest.fixture
def proj(project: Project) -> Project:
    project.retapfile(RETAPFILE)
    return project


def executions(project: Project) -> list[str]:
    return [line.split()[0] for line in project.log()]


def done_ids(project: Project, run: str) -> set[str]:
    audit = project.run("audit", run, "--json", check=0).json()
    return {a["id"] for a in audit if a["status"] == "done"}


def reference(project: Project, env: dict[str, str] | None = None
              ) -> tuple[str, list[tuple[str, object]]]:
    """The output and the done audit of the flow, uninterrupted, in a store of its own."""
    result = project.run("run", "--store", "ref.db", "--run-id", "ref", *FLOW, "--:", "dump",
                         env=env, check=0)
    audit = project.run("audit", "ref", "--json", "--store", "ref.db", check=0).json()
    (project.path / "exec.log").unlink()
    return result.out, sorted((a["id"], a["value"]) for a in audit if a["status"] == "done")


def done_audit(project: Project, run: str) -> list[tuple[str, object]]:
    audit = project.run("audit", run, "--json", check=0).json()
    return sorted((a["id"], a["value"]) for a in audit if a["status"] == "done")


@pytest.mark.parametrize("point", [p for p in POINTS if p != "in_save_state"])
def test_a_kill_at_any_fault_point_loses_nothing_and_repeats_nothing_done(
        proj: Project, point: str) -> None:
    out, expected = reference(proj)

    killed = proj.run("run", "--run-id", "k", *FLOW, "--:", "dump",
                      env={"RETAP_FAULT": f"{point}:2"})
    assert killed.code == -signal.SIGKILL, killed.err
    before = done_ids(proj, "k")
    ran_before = len(executions(proj))

    again = proj.run("resume", "k", check=0)

    assert killed.out + again.out == out
    assert done_audit(proj, "k") == expected
    assert not set(executions(proj)[ran_before:]) & before, "a done dispatch ran again"


def test_a_worker_lost_at_its_second_job_fails_that_dispatch_and_a_resume_loses_nothing(
        proj: Project) -> None:
    # (run at once, the gates group by finishing order: no sequential reference to match)
    lost = proj.run("run", "--run-id", "w", "-j", "2", "--executor", "processes", *FLOW,
                    env={"RETAP_FAULT": "in_worker:2"})
    assert lost.code == 1 and "its worker process died" in lost.err, lost.err
    before = done_ids(proj, "w")
    ran_before = len(executions(proj))

    proj.run("resume", "w", check=0)

    assert not set(executions(proj)[ran_before:]) & before, "a done dispatch ran again"
    audit = proj.run("audit", "w", "--json", check=0).json()
    assert all(a["status"] == "done" for a in audit)
    assert sorted(a["value"].strip() for a in audit if a["task"] == "work") == [
        "10", "20", "30", "40", "50", "60"]


def test_a_kill_while_replay_saves_the_rebuilt_state_loses_nothing(proj: Project) -> None:
    out, expected = reference(proj)
    failed = proj.run("run", "--run-id", "s", *FLOW, "--:", "dump", env={"FAIL_ONCE": "4"})
    assert failed.code == 1
    before = done_ids(proj, "s")
    ran_before = len(executions(proj))

    killed = proj.run("replay", "s", env={"RETAP_FAULT": "in_save_state:1"})
    assert killed.code == -signal.SIGKILL
    again = proj.run("replay", "s", check=0)

    assert failed.out + again.out == out
    assert done_audit(proj, "s") == expected
    assert not set(executions(proj)[ran_before:]) & before


@pytest.mark.parametrize(("action", "code"), [("sigint", 130), ("sigterm", 143)])
def test_a_signal_during_a_commit_finishes_the_commit_then_stops(
        proj: Project, action: str, code: int) -> None:
    out, expected = reference(proj)

    stopped = proj.run("run", "--run-id", "i", *FLOW, "--:", "dump",
                       env={"RETAP_FAULT": f"in_commit:3:{action}"})

    assert stopped.code == code, stopped.err
    assert proj.runs()[0]["status"] == "interrupted"
    assert len(done_ids(proj, "i")) == 3  # the commit it arrived in was completed
    again = proj.run("resume", "i", check=0)
    assert stopped.out + again.out == out
    assert done_audit(proj, "i") == expected
    ran = executions(proj)
    assert len(ran) == len(set(ran))  # nothing ran twice


def test_a_full_disk_fails_the_run_without_losing_what_was_committed(proj: Project) -> None:
    env = {"PAD": "3000"}  # each result takes a page of its own
    out, expected = reference(proj, env)

    full = proj.run("run", "--run-id", "f", *FLOW, "--:", "dump",
                    env={**env, "RETAP_FAULT": "disk_full:12"})

    assert full.code == 1, full.err
    assert "full" in full.err and "Traceback" not in full.err
    assert len(full.err.strip().splitlines()) == 1
    committed = done_ids(proj, "f")
    assert committed, "some dispatches were committed before the disk filled"
    assert proj.run("check").code == 0
    again = proj.run("resume", "f", env=env, check=0)
    assert full.out + again.out == out
    assert done_audit(proj, "f") == expected
    assert len(executions(proj)) <= len(expected) + 1  # only the one whose commit failed


def test_two_resumes_at_once_exactly_one_proceeds(proj: Project) -> None:
    failed = proj.run("run", "--run-id", "two", *FLOW, env={"FAIL_ONCE": "2"})
    assert failed.code == 1
    before = len(executions(proj))

    first = proj.start("resume", "two", env={"DELAY": "0.3"})
    second = proj.start("resume", "two", env={"DELAY": "0.3"})
    errors = first.communicate(timeout=60)[1] + second.communicate(timeout=60)[1]
    codes = sorted([first.returncode, second.returncode])

    assert codes == [0, 2], errors
    assert "is being run by pid" in errors
    after = executions(proj)[before:]
    assert len(after) == len(set(after)), "a dispatch ran in both resumes"
    assert proj.runs()[0]["status"] == "done"


def test_readers_during_a_run_never_block_it_and_see_a_consistent_state(
        proj: Project) -> None:
    runner = proj.start("run", "--run-id", "busy", "--", "items", "--count", "40", "--:i",
                        "work", env={"DELAY": "0.15"})
    wait_for(lambda: len(executions(proj)) > 3)
    seen = []
    while runner.poll() is None:
        started = time.monotonic()
        shown = proj.run("show", "busy", "--json", check=0).json()
        audit = proj.run("audit", "busy", "--json", check=0).json()
        assert time.monotonic() - started < 10
        ids = {a["id"] for a in audit}
        assert all(s in ids for a in audit for s in a["sources"]), "a source is missing"
        queued = [q["dispatch"] for q in shown["queue"]]
        assert len(queued) == len(set(queued))
        assert shown["counts"].get("done", 0) + len(queued) <= 41
        seen.append(shown["counts"].get("done", 0))
    runner.communicate(timeout=60)
    assert runner.returncode == 0
    assert seen == sorted(seen) and len(seen) >= 2
    assert proj.runs()[0]["status"] == "done"


def corrupt(path: Path, page: int, start: int, length: int) -> None:
    """Overwrite ``length`` bytes of a page, from ``start``, with noise."""
    noise = bytes((page * 131 + i * 17) % 256 for i in range(length))
    with open(path, "r+b") as fh:
        fh.seek(page * 4096 + start)
        fh.write(noise)


def checkpointed(store: Path) -> None:
    """Move everything from the write-ahead log into the store file itself."""
    conn = sqlite3.connect(store)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


@pytest.mark.slow
def test_a_damaged_page_is_detected_never_read_as_data(proj: Project) -> None:
    assert proj.run("run", "--run-id", "d", *FLOW, env={"PAD": "200"}).code == 0
    store = proj.path / ".retap" / "retap.db"
    good = proj.run("audit", "d", "--json", check=0).out
    checkpointed(store)
    pages = store.stat().st_size // 4096
    shutil.copy(store, proj.path / "good.db")
    outcomes = {"refused": 0, "unchanged": 0}
    for page, (start, length) in itertools.product(range(1, pages), [(8, 40), (300, 3700)]):
        for extra in ("-wal", "-shm"):
            Path(f"{store}{extra}").unlink(missing_ok=True)
        shutil.copy(proj.path / "good.db", store)
        corrupt(store, page, start, length)
        result = proj.run("audit", "d", "--json")
        if result.code == 0:
            assert result.out == good, f"page {page}: damaged data was read as data"
            outcomes["unchanged"] += 1
        else:
            assert result.code == 2 and "Traceback" not in result.err, result.err
            assert "damaged" in result.err or "malformed" in result.err
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0


@pytest.mark.slow
def test_resume_refuses_a_damaged_store_before_it_commits_anything(proj: Project) -> None:
    # the quick check reads the whole file beside the resume's first dispatch: a damaged
    # page that nothing the resume reads lies on is still refused, and what the dispatch
    # did is not recorded
    failed = proj.run("run", "--run-id", "d", "--", "items", "--count", "40", "--:i", "work",
                      env={"PAD": "300", "FAIL_ONCE": "40"})
    assert failed.code == 1
    store = proj.path / ".retap" / "retap.db"
    checkpointed(store)
    shutil.copy(store, proj.path / "good.db")
    refused_after_running = 0
    for page in range(1, store.stat().st_size // 4096):
        for extra in ("-wal", "-shm"):
            Path(f"{store}{extra}").unlink(missing_ok=True)
        shutil.copy(proj.path / "good.db", store)
        corrupt(store, page, 300, 3700)
        (proj.path / "exec.log").unlink(missing_ok=True)
        result = proj.run("resume", "d")
        if result.code == 0:
            continue  # the damage fell where nothing lives (free space in a page)
        assert result.code == 2 and "Traceback" not in result.err, result.err
        assert "damaged" in result.err or "malformed" in result.err, result.err
        if (proj.path / "exec.log").exists():  # the re-run dispatch ran beside the check
            refused_after_running += 1
            conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
            with contextlib.suppress(sqlite3.DatabaseError):
                assert conn.execute("SELECT count(*) FROM dispatches WHERE status='done'"
                                    ).fetchone()[0] == 40  # items and works 1-39: no more
            conn.close()
    assert refused_after_running > 0


def test_a_truncated_store_is_refused_with_a_message(proj: Project) -> None:
    assert proj.run("run", "--run-id", "t", *FLOW, env={"PAD": "200"}).code == 0
    store = proj.path / ".retap" / "retap.db"
    checkpointed(store)
    size = store.stat().st_size
    with open(store, "r+b") as fh:
        fh.truncate(size // 2)

    for command in (["show", "t"], ["audit", "t"], ["resume", "t"], ["check"]):
        result = proj.run(*command)
        assert result.code != 0, command
        assert "Traceback" not in result.err


@pytest.mark.parametrize("change", ["task = task || 'x'", "started = started + 0.5",
                                    "outputs = '[]'"])
def test_replay_refuses_a_done_dispatch_whose_row_fails_its_checksum(proj: Project,
                                                                    change: str) -> None:
    # a replay reads each done dispatch as it answers it, by position: the check covers an
    # early column of the row, a middle one and its last
    assert proj.run("run", "--run-id", "r", *FLOW, env={"FAIL_ONCE": "6"}).code == 1
    (proj.path / "exec.log").unlink()
    conn = sqlite3.connect(proj.path / ".retap" / "retap.db")
    changed = conn.execute(f"UPDATE dispatches SET {change} WHERE (run, id) IN (SELECT run, "
                           "id FROM dispatches WHERE node = 1 AND status = 'done' "
                           "ORDER BY seq LIMIT 1 OFFSET 2)")
    assert changed.rowcount == 1
    conn.commit()
    conn.close()

    result = proj.run("replay", "r")

    assert result.code == 2, (result.out, result.err)
    assert_one_line_error(result, "fails its checksum")
    assert not (proj.path / "exec.log").exists()  # nothing ran again


def test_check_reports_a_sound_store_and_a_damaged_one(proj: Project) -> None:
    assert proj.run("run", "--run-id", "c", *FLOW).code == 0
    assert proj.run("check").out.endswith(": ok\n")
    store = proj.path / ".retap" / "retap.db"
    conn = sqlite3.connect(store)
    conn.execute("UPDATE dispatches SET task='changed'")
    conn.commit()
    conn.close()

    result = proj.run("check")
    assert result.code == 1
    assert "fails its checksum" in result.out


def test_fault_specs_are_checked(proj: Project) -> None:
    result = proj.run("run", "--store", ":memory:", "--", "items",
                      env={"RETAP_FAULT": "nowhere:1"})
    assert result.code != 0
    assert "RETAP_FAULT" in result.err
    assert os.environ.get("RETAP_FAULT") is None
