"""File journals keep their promise on the paths hostile testing found broken.

Case 1: a journal never outlives the decision about its dispatch, and a roll-back never
touches a file that holds the recorded output of a committed dispatch. Case 4: in batch
durability a journal goes only once the commit holding its record is durable. Case 6:
a journal is data; one naming a path outside the project, or owned by another run, is
never acted on, and journals are owner-only whatever the umask.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import Project, wait_for
from test_file_tasks import FILE_TASKS, LONG_AGO, ORIGINAL

APPEND = '''

class Append(retap.FileTask):
    """Appends its input and a newline to --log, in place."""

    log: retap.Output = retap.config(Path("log.txt"), help="the file changed")

    def process(self, word):
        _log("append", word)
        with open(self.modify(self.log), "a") as fh:
            fh.write(word + " ")
        return word
'''


@pytest.fixture
def files(project: Project) -> Project:
    project.retapfile(FILE_TASKS + APPEND)
    write_input(project, b"hello\n")
    (project.path / "data.bin").write_bytes(ORIGINAL)
    return project


def write_input(project: Project, data: bytes) -> None:
    (project.path / "in.txt").write_bytes(data)
    os.utime(project.path / "in.txt", (LONG_AGO, LONG_AGO))


def backups(project: Project) -> list[str]:
    root = project.path / ".retap" / "backup"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def killed(result: object) -> bool:
    return getattr(result, "code", None) == -signal.SIGKILL


# Case 1 ------------------------------------------------------------------------------------------


def test_case_1_a_journal_left_by_a_kill_before_the_record_never_undoes_a_memo_answer(
        files: Project) -> None:
    # "bye" is built once and remembered; then "hello"; then "bye" again is killed after
    # its output was renamed into place but before its record was committed.
    write_input(files, b"bye\n")
    files.run("run", "--", "upper", check=0)
    write_input(files, b"hello\n")
    files.run("run", "--", "upper", check=0)
    write_input(files, b"bye\n")
    assert killed(files.run("run", "--run-id", "k", "--", "upper",
                            env={"RETAP_FAULT": "after_execute:1"}))
    assert (files.path / "out.txt").read_bytes() == b"BYE\n"
    assert backups(files)  # the killed dispatch's journal

    # the next run answers the dispatch from the memo (BYE is the remembered output) ...
    reuse = files.run("run", "--", "upper", check=0)
    assert "(0 executed, 1 reused)" in reuse.err
    # ... and a later run that executes a file task must not undo anything
    files.run("run", "--", "stamp", check=0)
    assert (files.path / "out.txt").read_bytes() == b"BYE\n"
    assert backups(files) == []
    assert files.counts() == {"upper": 3, "stamp": 1}


def test_case_1_a_resume_answering_the_killed_dispatch_from_the_memo_drops_its_journal(
        files: Project) -> None:
    files.run("run", "--", "upper", check=0)
    (files.path / "out.txt").unlink()
    assert killed(files.run("run", "--run-id", "k", "--", "upper",
                            env={"RETAP_FAULT": "after_execute:1"}))
    assert backups(files)

    files.run("resume", "k", check=0)
    files.run("run", "--", "stamp", check=0)  # a later run executing a file task
    assert (files.path / "out.txt").read_bytes() == b"HELLO\n"
    assert backups(files) == []


def test_case_1_a_kill_right_after_the_commit_never_undoes_the_committed_output(
        files: Project) -> None:
    assert killed(files.run("run", "--run-id", "c", "--", "upper", "--:", "dump",
                            env={"RETAP_FAULT": "after_commit:1"}))
    assert (files.path / "out.txt").read_bytes() == b"HELLO\n"

    files.run("run", "--", "stamp", check=0)  # another run executes a file task first
    assert (files.path / "out.txt").read_bytes() == b"HELLO\n"
    result = files.run("resume", "c", check=0)
    assert result.out == "out.txt\n"  # dump ran; upper did not run again
    assert (files.path / "out.txt").read_bytes() == b"HELLO\n"
    assert files.counts() == {"upper": 1, "stamp": 1}
    assert backups(files) == []


# Case 4 ------------------------------------------------------------------------------------------

BATCH_SCRIPT = '''
import sys
from retap import App, open_store
from retap.discovery import Registry
from retap.workflow import Workflow

registry = Registry()
wf = Workflow()
words = wf.add(registry.find("load")(yaml=True), "[a, b, c]")
each = wf.add(registry.find("append")())
wf.join(words, each, iterate=True)
store = open_store(".retap/retap.db", durability="batch", batch_size=1000, batch_ms=600000)
sys.exit(App(wf, store, run_id="b").run().exit_code)
'''


def test_case_4_a_batch_crash_never_applies_a_change_in_place_twice(files: Project) -> None:
    # A group commit that never happens: the kill comes before the third append, with the
    # first two recorded only in the uncommitted group.
    script = files.write("batch.py", BATCH_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], cwd=files.path, capture_output=True,
                          text=True, env={**files.env, "RETAP_FAULT": "before_dispatch:4"})
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert (files.path / "log.txt").read_text() == "a b "

    files.run("resume", "b", check=0)
    assert (files.path / "log.txt").read_text() == "a b c "
    assert files.counts()["append"] == 5  # a and b ran again: their records were lost
    assert backups(files) == []


def test_case_4_batch_journals_go_once_their_group_is_committed(files: Project) -> None:
    files.run("run", "--durability", "batch", "--", "load", "--yaml", "[x, y]", "--:i",
              "append", check=0)
    assert (files.path / "log.txt").read_text() == "x y "
    assert backups(files) == []


# Case 6: journals are data -----------------------------------------------------------------------


def plant_journal(project: Project, run: str, entries: list[list[str]],
                  owner_run: str | None = None) -> Path:
    """A journal of a dead process, as a crafted one would look."""
    folder = project.path / ".retap" / "backup" / run
    (folder / "d").mkdir(parents=True)
    owner = {"run": owner_run or run, "host": os.uname().nodename, "pid": 2 ** 22 + 7,
             "started": 1.0, "store": ":memory:"}
    (folder / "owner.json").write_text(json.dumps(owner))
    journal = {"run": run, "dispatch": "d", "opened": 1, "entries": entries}
    (folder / "d" / "journal.json").write_text(json.dumps(journal))
    return folder


@pytest.mark.parametrize("where", ["absolute", "dotdot", "store"])
def test_case_6_a_journal_naming_a_path_outside_the_project_is_never_acted_on(
        files: Project, tmp_path_factory: pytest.TempPathFactory, where: str) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "victim.txt"
    outside.write_text("keep me")
    files.run("run", "--", "upper", check=0)  # makes the store
    target = {"absolute": str(outside),
              "dotdot": str(files.path / ".." / outside.parent.name / outside.name),
              "store": str(files.path / ".retap" / "retap.db")}[where]
    plant_journal(files, "x1", [["made", target, "", "output", ""]])

    files.run("run", "--", "stamp", check=0)
    assert outside.read_text() == "keep me"
    assert (files.path / ".retap" / "retap.db").exists()
    assert files.run("runs").code == 0


def test_case_6_a_journal_with_a_backup_outside_its_folder_is_never_acted_on(
        files: Project, tmp_path_factory: pytest.TempPathFactory) -> None:
    secret = tmp_path_factory.mktemp("elsewhere") / "secret.txt"
    secret.write_text("private")
    entry = ["backup", str(files.path / "in.txt"), str(secret), "modify", "0o644"]
    plant_journal(files, "x2", [entry])
    files.run("run", "--", "stamp", check=0)
    assert secret.read_text() == "private"
    assert (files.path / "in.txt").read_bytes() == b"hello\n"


def test_case_6_a_journal_whose_owner_names_another_run_is_never_acted_on(
        files: Project) -> None:
    (files.path / "keep.txt").write_text("mine")
    plant_journal(files, "x3", [["made", str(files.path / "keep.txt"), "", "output", ""]],
                  owner_run="someone-else")
    files.run("run", "--", "stamp", check=0)
    assert (files.path / "keep.txt").read_text() == "mine"


def test_case_6_a_journal_of_a_dead_run_inside_the_project_is_undone(files: Project) -> None:
    (files.path / "half.txt").write_text("half-written")
    plant_journal(files, "x4", [["made", str(files.path / "half.txt"), "", "output", ""]])
    files.run("run", "--", "stamp", check=0)
    assert not (files.path / "half.txt").exists()
    assert backups(files) == []


def test_case_6_journals_are_owner_only_whatever_the_umask(files: Project) -> None:
    script = files.write("umask.py", """
        import os, sys
        os.umask(0)
        sys.argv = ["retap", "run", "--run-id", "u", "--", "stamp"]
        from retap.__main__ import main
        main()
        """)
    done = subprocess.run([sys.executable, str(script)], cwd=files.path, capture_output=True,
                          text=True, env={**files.env, "SLOW": "0",
                                          "RETAP_FAULT": "after_execute:1"})
    assert done.returncode == -signal.SIGKILL, done.stderr
    root = files.path / ".retap" / "backup"
    found = list(root.rglob("*"))
    assert found
    for path in [root, *found]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_case_6_a_file_task_writing_outside_the_project_fails_without_writing(
        files: Project, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("out") / "copy.txt"
    result = files.run("run", "--", "upper", "--dst", str(elsewhere), check=1)
    assert "outside the project" in result.err
    assert not elsewhere.exists()
    assert textwrap.dedent(result.err).count("Traceback") == 0


# Found by torture seed 2026 case 304 (-j 3, worker processes): a worker of a killed
# coordinator may still be running for a moment. A resume that rolled its journal back
# before it was gone let it make its change afterwards, on top of the re-executed one.
STALLED_WORKER = '''
import os
import time
from pathlib import Path

import retap


class Stamp(retap.FileTask):
    """Appends its input to stamp.txt in place, once a go file exists."""

    def process(self, x):
        path = self.modify(Path("stamp.txt"))
        Path(f"worker-{os.getpid()}.pid").touch()
        while not Path("go").exists():
            time.sleep(0.01)
        with open(path, "a") as fh:
            fh.write(f"{x}\\n")
        return x
'''


def test_seed_2026_case_304_a_resume_waits_for_a_dead_runs_worker_before_undoing_it(
        project: Project) -> None:
    project.retapfile(STALLED_WORKER)
    (project.path / "stamp.txt").write_text("start\n")
    first = project.start("run", "--run-id", "w", "-j", "2", "--", "stamp", "1")
    wait_for(lambda: any(project.path.glob("worker-*.pid")))
    worker = int(next(project.path.glob("worker-*.pid")).name.split("-")[1].split(".")[0])
    os.kill(worker, signal.SIGSTOP)  # a worker starved of CPU, about to make its change
    first.kill()
    first.wait(timeout=10)  # (its pipes stay open while the stopped worker holds them)
    for pipe in (first.stdout, first.stderr):
        assert pipe is not None
        pipe.close()
    (project.path / "go").touch()
    resume = project.start("resume", "w", "-j", "2")
    time.sleep(1.0)  # the resume is up and waits for the worker; without the wait it would
    os.kill(worker, signal.SIGCONT)  # have undone the journal and run the task again by now
    out, err = resume.communicate(timeout=60)

    assert resume.returncode == 0, (out, err)
    assert (project.path / "stamp.txt").read_text() == "start\n1\n"
    assert not list((project.path / ".retap" / "backup").glob("*/*"))


def test_workers_claiming_one_run_folder_at_once_all_get_their_journals(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by the test of file tasks in worker processes: each worker of a new run writes
    # the folder's owner.json, and two writing the same temporary file at once lost it.
    import threading

    from retap import journal
    from retap.owner import Owner

    monkeypatch.chdir(tmp_path)
    coordinator = Owner.current()
    errors: list[BaseException] = []

    def claim(k: int) -> None:
        try:
            for n in range(30):
                journal.RunFolder(f"run-{n}", "store.db").journal(f"d{k}", coordinator)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_journal_begun_while_another_goes_keeps_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CI found it (test_file_tasks_killed_in_workers_are_undone_and_redone_on_resume): a
    # dispatch's journal dropped while a worker claimed the folder for the next removed the
    # folder under it, taking the worker's half-written owner.json (or its new journal).
    import threading

    from retap import journal
    from retap.owner import Owner

    monkeypatch.chdir(tmp_path)
    coordinator = Owner.current()
    problems: list[object] = []

    def work(k: int) -> None:
        try:
            for n in range(200):
                folder = journal.RunFolder("r", "store.db")
                begun = folder.journal(f"d{k}-{n}", Owner(coordinator.host, coordinator.pid,
                                                          coordinator.started + n % 2))
                if not (begun.dir / journal.JOURNAL_FILE).exists() or folder.owner() is None:
                    problems.append(f"d{k}-{n} lost its journal or its folder's owner")
                begun.discard()
        except BaseException as exc:  # collected for the assertion
            problems.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert not (tmp_path / ".retap" / "backup" / "r").exists()


def test_a_worker_whose_coordinator_is_gone_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The other half of torture seed 2026 case 304: a job handed to a worker just before its
    # coordinator died must not start changing files after the next coordinator settled the
    # run's journals.
    import retap
    from retap.context import TaskContext
    from retap.errors import Interrupted
    from retap.owner import Owner, process_start

    class Touch(retap.FileTask):
        def process(self, name: str) -> str:
            with self.output(Path(name)) as tmp:
                tmp.write_text("changed")
            return name

    monkeypatch.chdir(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = Owner(Owner.current().host, child.pid, process_start(child.pid) or 1.0)
    child.wait()
    task = Touch()
    task._context = TaskContext("r1", "d1", str(tmp_path / "store.db"), gone)
    with pytest.raises(Interrupted):
        task.execute("out.txt")
    assert not (tmp_path / "out.txt").exists()
    assert not (tmp_path / ".retap").exists()


def test_a_leftover_journal_of_the_same_dispatch_is_undone_not_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Seed 7 case 30 (-j 3, batch): if a late worker's journal appears after the run
    # settled the journals, the dispatch running again must not take the late change for
    # the original content (dropping the leftover would keep its change: applied twice).
    from retap import journal
    from retap.owner import Owner

    monkeypatch.chdir(tmp_path)
    stamp = tmp_path / "stamp.txt"
    stamp.write_text("start\n")
    late = journal.RunFolder("r1", "store.db").journal("d1", Owner.current())
    late.save_copy(stamp, "modify")
    stamp.write_text("start\nlate\n")

    journal.RunFolder("r1", "store.db").journal("d1", Owner.current())
    assert stamp.read_text() == "start\n"
    assert (tmp_path / ".retap" / "backup" / "r1" / journal.OWNER_FILE).exists()


def test_seed_2026_case_1165_a_half_written_owner_file_of_a_killed_run_goes_with_its_folder(
        files: Project) -> None:
    # A kill between writing owner.json's temporary file and renaming it left the file
    # behind: the folder (no journal in it) was then never removed.
    folder = plant_journal(files, "x5", [])
    shutil.rmtree(folder / "d")
    (folder / "owner.json.4242-139755530410880.tmp").write_text('{"run": "x5", "ho')
    files.run("run", "--", "stamp", check=0)
    assert not folder.exists()
    assert backups(files) == []


@pytest.mark.parametrize("left", [[], ["journal.json.4242-139755530410880.tmp"],
                                  ["journal.json.4242-1.tmp", "journal.json.4242-2.tmp"]])
def test_seed_9393_case_71_a_journal_killed_in_its_first_save_goes_with_its_folder(
        files: Project, left: list[str]) -> None:
    # A kill inside Journal.begin, before journal.json was first renamed into place, left
    # a dispatch folder holding nothing or only that write's temporary file: no journal
    # loaded from it, so its run's folder stayed under .retap/backup for good.
    folder = plant_journal(files, "x6", [])
    (folder / "d" / "journal.json").unlink()
    for name in left:
        (folder / "d" / name).write_text('{"run": "x6", "dispa')
    files.run("run", "--", "stamp", check=0)
    assert not folder.exists()
    assert backups(files) == []


def test_a_dispatch_folder_holding_more_than_a_half_saved_journal_is_left_alone(
        files: Project) -> None:
    # A backup with no journal naming it is no leftover retap makes (a change is written
    # down before it is made): it is kept, as any journal that does not hold up is.
    folder = plant_journal(files, "x7", [])
    (folder / "d" / "journal.json").unlink()
    (folder / "d" / "journal.json.4242-1.tmp").write_text("{")
    (folder / "d" / "backup-0").write_text("someone's data")
    files.run("run", "--", "stamp", check=0)
    assert (folder / "d" / "backup-0").read_text() == "someone's data"


@pytest.mark.parametrize("nth", [1, 2, 3, 4])
def test_a_kill_inside_any_journal_write_leaves_nothing_behind_once_settled(
        files: Project, nth: int) -> None:
    # append's writes: the run folder's owner.json (1), its journal as begun (2), with the
    # backup entry (3); once append commits its folder goes, and upper claims it anew (4).
    assert killed(files.run("run", "--run-id", "k", "--", "append", "a", "--", "upper",
                            env={"RETAP_FAULT": f"in_journal_write:{nth}"}))
    assert backups(files)
    files.run("run", "--", "stamp", check=0)  # another run settles what the kill left
    assert backups(files) == []
    files.run("resume", "k", check=0)
    assert (files.path / "log.txt").read_text() == "a "
    assert (files.path / "out.txt").read_bytes() == b"HELLO\n"
    assert backups(files) == []


@pytest.mark.parametrize("nth", [1, 2])
def test_a_worker_killed_inside_its_first_journal_write_leaves_no_journal(
        files: Project, nth: int) -> None:
    # Torture seed 9494 case 3: the worker died (its dispatch failed: WorkerLost) before
    # its journal was first saved; the coordinator, undoing the failed dispatch, found no
    # journal to load and left the folder for good.
    failed = files.run("run", "--run-id", "w", "-j", "2", "--executor", "processes", "--",
                       "append", "a", env={"RETAP_FAULT": f"in_journal_write:{nth}"})
    assert failed.code == 1 and "its worker process died" in failed.err, failed.err
    assert backups(files) == []
    files.run("resume", "w", check=0)
    assert (files.path / "log.txt").read_text() == "a "
    assert backups(files) == []


def test_a_journal_file_goes_after_every_backup_it_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Torture seed 10808 case 266: a process killed while it dropped a committed dispatch's
    # journal (another thread's fault) had removed journal.json but not yet backup-0; with
    # no journal left to name it, no later run removed that backup. Removed last, the
    # journal file stays until its backups are gone, and the next run drops it again.
    from retap.journal import BACKUP_ROOT, Journal

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / BACKUP_ROOT / "r" / "d"
    folder.mkdir(parents=True)
    names = ["backup-0", "backup-1", "backup-2", "journal.json", "zz-backup-3"]
    for name in names:
        (folder / name).write_text("x")
    removed: list[str] = []
    unlink = os.unlink

    def spying(path: object, *args: object, **kwargs: object) -> None:
        removed.append(os.path.basename(str(path)))
        unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", spying)
    Journal(BACKUP_ROOT / "r", "r", "d").discard()
    assert sorted(removed) == names and removed[-1] == "journal.json"
    assert not folder.exists()
