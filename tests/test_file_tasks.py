"""File tasks through the real `retap` command: what is up to date is decided by content
digests, configs and code version; outputs are never half-written; files changed in place
come back byte for byte when the task fails or the process dies.

Each task logs its executions to exec.log, so what ran is counted, not guessed."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import retap
from conftest import Project, wait_for
from retap.files import digest_file

FILE_TASKS = '''
import os
import time
from pathlib import Path

import retap


def _log(*words):
    with open("exec.log", "a") as fh:
        fh.write(" ".join(map(str, words)) + "\\n")


def _pause(task):
    """Sleep $SLOW seconds (a window to kill the process in), and while hold-TASK exists."""
    delay = float(os.environ.get("SLOW", "0"))
    if delay:
        time.sleep(delay)
    while os.path.exists(f"hold-{task}"):
        time.sleep(0.02)


class Upper(retap.FileTask):
    """Upper-cases --src into --dst (and appends --suffix)."""

    src: retap.Input = retap.config(Path("in.txt"), help="the file read")
    dst: retap.Output = retap.config(Path("out.txt"), help="the file written")
    suffix: str = retap.config("", help="appended to the output")

    def process(self):
        _log("upper", self.src)
        data = self.src.read_bytes().upper() + self.suffix.encode()
        fail = os.environ.get("UPPER_FAIL")
        with self.output(self.dst) as tmp, open(tmp, "wb") as fh:
            fh.write(data[:3])
            fh.flush()
            _pause("upper")
            if fail == "inside":
                raise RuntimeError("upper failed while writing")
            fh.write(data[3:])
        if fail == "after":
            raise RuntimeError("upper failed after writing")
        return str(self.dst)


class Versioned(retap.FileTask):
    """Copies --src to --dst; its code version is a string."""

    version = "1"
    src: retap.Input = retap.config(Path("in.txt"), help="the file read")
    dst: retap.Output = retap.config(Path("copy.txt"), help="the file written")

    def process(self):
        _log("versioned", self.src)
        with self.output(self.dst) as tmp:
            tmp.write_bytes(self.src.read_bytes())
        return str(self.dst)


class Stamp(retap.FileTask):
    """Appends --text to --target, in place."""

    target: retap.Output = retap.config(Path("data.bin"), help="the file changed")
    text: str = retap.config("+stamp", help="what is appended")

    def process(self):
        _log("stamp", self.target.read_bytes().hex())
        path = self.modify(self.target)
        with open(path, "ab") as fh:
            fh.write(self.text.encode()[:2])
            fh.flush()
            _pause("stamp")
            fh.write(self.text.encode()[2:])
        if os.environ.get("FAIL"):
            raise RuntimeError("stamp failed after changing its file")
        if os.environ.get("BAD_VALUE"):
            return object()  # a result the store cannot encode
        return str(self.target)
'''

ORIGINAL = b"\xff\xfe\x00ab\x80c\n\x00\xc3("  # not UTF-8
STAMPED = ORIGINAL + b"+stamp"
LONG_AGO = 1_000_000_000  # an mtime far in the past: the file's digest is remembered


@pytest.fixture
def files(project: Project) -> Project:
    """A project with the file tasks and an input file that has not changed for years."""
    project.retapfile(FILE_TASKS)
    (project.path / "in.txt").write_bytes(b"hello\n")
    os.utime(project.path / "in.txt", (LONG_AGO, LONG_AGO))
    (project.path / "data.bin").write_bytes(ORIGINAL)
    return project


@pytest.fixture
def built(files: Project) -> Project:
    """The file tasks' project after one run of `upper`."""
    files.run("run", "--", "upper", check=0)
    assert files.counts() == {"upper": 1}
    assert (files.path / "out.txt").read_bytes() == b"HELLO\n"
    return files


def upper_again(project: Project, *words: str) -> tuple[str, str]:
    """Run `upper` again with --explain: (run|skip, the reason given)."""
    err = project.run("run", "--explain", "--", "upper", *words, check=0).err
    return explained(err, "upper")


def explained(err: str, task: str) -> tuple[str, str]:
    found = re.findall(rf"^retap: (run|skip) +node 0 \({task}\)[^:]*: (.*)$", err, re.M)
    assert len(found) == 1, err
    return found[0]


def strays(folder: Path, name: str) -> list[str]:
    """Names in ``folder`` that mention ``name`` but are not it: each must be a hidden retap
    temporary, never a name a reader could take for the output."""
    names = sorted(p.name for p in folder.iterdir() if name in p.name and p.name != name)
    for n in names:
        assert re.fullmatch(rf"\.{re.escape(name)}\.retap-[0-9a-f]+\.tmp", n), names
    return names


def journals(project: Project) -> list[Path]:
    root = project.path / ".retap" / "backup"
    return list(root.iterdir()) if root.exists() else []


def start_and_kill(project: Project, ready: Callable[[], bool], *args: str) -> None:
    """Start `retap ARGS` with a slow task, wait until ``ready()``, then SIGKILL it."""
    proc = project.start(*args, env={"SLOW": "60"})
    try:
        wait_for(ready)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGKILL


# Up to date: by content digest, configs and code version -----------------------------------------


def test_a_second_run_with_nothing_changed_executes_nothing(built: Project) -> None:
    assert upper_again(built) == ("skip", "up to date")
    assert built.counts() == {"upper": 1}
    err = built.run("run", "--", "upper", check=0).err
    assert "(0 executed, 1 reused)" in err
    assert built.counts() == {"upper": 1}


def test_touching_the_input_or_the_output_without_changing_them_reruns_nothing(
        built: Project) -> None:
    for name in ("in.txt", "out.txt"):
        later = LONG_AGO + 12345
        os.utime(built.path / name, (later, later))
        assert upper_again(built) == ("skip", "up to date")
    future = time.time() + 3600
    os.utime(built.path / "in.txt", (future, future))
    assert upper_again(built) == ("skip", "up to date")
    assert built.counts() == {"upper": 1}


def test_one_byte_changed_in_the_input_reruns_the_task(built: Project) -> None:
    with open(built.path / "in.txt", "r+b") as fh:  # same size, same inode
        fh.seek(4)
        fh.write(b"p")
    assert upper_again(built) == ("run", "input file in.txt changed")
    assert built.counts() == {"upper": 2}
    assert (built.path / "out.txt").read_bytes() == b"HELLP\n"
    assert upper_again(built) == ("skip", "up to date")
    assert built.counts() == {"upper": 2}


def test_a_deleted_output_is_built_again(built: Project) -> None:
    (built.path / "out.txt").unlink()
    assert upper_again(built) == ("run", "output out.txt is missing")
    assert built.counts() == {"upper": 2}
    assert (built.path / "out.txt").read_bytes() == b"HELLO\n"


def test_an_output_changed_by_hand_is_built_again(built: Project) -> None:
    (built.path / "out.txt").write_bytes(b"HELLO!")
    assert upper_again(built) == ("run", "output out.txt changed since it was written")
    assert built.counts() == {"upper": 2}
    assert (built.path / "out.txt").read_bytes() == b"HELLO\n"


def test_a_changed_config_reruns_the_task(built: Project) -> None:
    assert upper_again(built, "--suffix", "!") == ("run", "config suffix changed ('' -> '!')")
    assert built.counts() == {"upper": 2}
    assert (built.path / "out.txt").read_bytes() == b"HELLO\n!"
    assert upper_again(built, "--suffix", "!") == ("skip", "up to date")
    assert built.counts() == {"upper": 2}


def test_a_changed_version_string_reruns_the_task_and_an_edit_without_one_does_not(
        files: Project) -> None:
    files.run("run", "--", "versioned", check=0)
    source = files.path / "retapfile.py"
    text = source.read_text()
    source.write_text(text.replace('_log("versioned", self.src)',
                                   '_log("versioned", self.src)  # edited'))
    assert explained(files.run("run", "--explain", "--", "versioned", check=0).err,
                     "versioned") == ("skip", "up to date")
    source.write_text(source.read_text().replace('version = "1"', 'version = "2"'))
    assert explained(files.run("run", "--explain", "--", "versioned", check=0).err,
                     "versioned") == ("run", "code changed (1 -> 2)")
    assert files.counts() == {"versioned": 2}


def test_an_edited_task_source_reruns_that_task_only(built: Project) -> None:
    source = built.path / "retapfile.py"
    source.write_text(source.read_text().replace(
        '_log("stamp", self.target.read_bytes().hex())',
        '_log("stamp", self.target.read_bytes().hex())  # another task edited'))
    assert upper_again(built) == ("skip", "up to date")
    source.write_text(source.read_text().replace(
        "data = self.src.read_bytes().upper()", "data = bytes(self.src.read_bytes()).upper()"))
    verb, reason = upper_again(built)
    assert (verb, re.sub(r"[0-9a-f]{16}", "H", reason)) == ("run", "code changed (H -> H) in "
                                                                   "retapfile:Upper")
    assert built.counts() == {"upper": 2}


def test_forget_makes_an_up_to_date_file_task_run_again(built: Project) -> None:
    assert "forgot 1 remembered result(s) of upper" in built.run("forget", "upper",
                                                                 check=0).err
    assert upper_again(built) == ("run", "no earlier result")
    assert built.counts() == {"upper": 2}


# Outputs are written whole or not at all ---------------------------------------------------------


def test_a_kill_while_writing_leaves_no_output_and_resume_builds_it(files: Project) -> None:
    def half_written() -> bool:
        return any(p.read_bytes() == b"HEL" for p in files.path.glob(".out.txt.retap-*.tmp"))

    start_and_kill(files, half_written, "run", "--run-id", "k1", "--", "upper")
    assert not (files.path / "out.txt").exists()
    assert len(strays(files.path, "out.txt")) == 1
    assert files.run("show", "k1").out.startswith("run k1: interrupted")

    err = files.run("resume", "k1", "--explain", check=0).err
    assert explained(err, "upper") == ("run", "no earlier result")
    assert (files.path / "out.txt").read_bytes() == b"HELLO\n"
    assert strays(files.path, "out.txt") == []
    assert journals(files) == []
    assert files.counts() == {"upper": 2}


def test_a_kill_while_rewriting_keeps_the_old_output_and_a_new_run_rebuilds_it(
        built: Project) -> None:
    (built.path / "in.txt").write_bytes(b"world\n")
    start_and_kill(built, lambda: any(p.read_bytes() == b"WOR" for p in
                                      built.path.glob(".out.txt.retap-*.tmp")),
                   "run", "--", "upper")
    assert (built.path / "out.txt").read_bytes() == b"HELLO\n"  # the old one, whole
    assert len(strays(built.path, "out.txt")) == 1

    assert upper_again(built) == ("run", "input file in.txt changed")
    assert (built.path / "out.txt").read_bytes() == b"WORLD\n"
    assert strays(built.path, "out.txt") == []
    assert journals(built) == []
    assert built.counts() == {"upper": 3}


@pytest.mark.parametrize("where", ["inside", "after"])
def test_a_task_failing_while_or_after_writing_leaves_no_new_output(
        files: Project, where: str) -> None:
    result = files.run("run", "--", "upper", env={"UPPER_FAIL": where}, check=1)
    assert f"upper failed {'while' if where == 'inside' else 'after'} writing" in result.err
    assert not (files.path / "out.txt").exists()
    assert strays(files.path, "out.txt") == [] and journals(files) == []


@pytest.mark.parametrize("where", ["inside", "after"])
def test_a_task_failing_while_or_after_rewriting_leaves_the_old_output(
        built: Project, where: str) -> None:
    (built.path / "in.txt").write_bytes(b"world\n")
    built.run("run", "--", "upper", env={"UPPER_FAIL": where}, check=1)
    assert (built.path / "out.txt").read_bytes() == b"HELLO\n"
    assert strays(built.path, "out.txt") == [] and journals(built) == []


def test_two_interrupts_while_writing_leave_no_output_and_resume_builds_it(
        files: Project) -> None:
    proc = files.start("run", "--run-id", "i1", "--", "upper", env={"SLOW": "60"})
    try:
        wait_for(lambda: any(files.path.glob(".out.txt.retap-*.tmp")))
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        assert "SIGINT: stopping after the current dispatch" in proc.stderr.readline()
        proc.send_signal(signal.SIGINT)  # the second one aborts the dispatch
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert not (files.path / "out.txt").exists()
    assert strays(files.path, "out.txt") == [] and journals(files) == []
    files.run("resume", "i1", check=0)
    assert (files.path / "out.txt").read_bytes() == b"HELLO\n"


# Files changed in place come back byte for byte --------------------------------------------------


def test_a_file_changed_in_place_by_a_failing_task_is_restored_byte_for_byte(
        files: Project) -> None:
    result = files.run("run", "--", "stamp", env={"FAIL": "1"}, check=1)
    assert "stamp failed after changing its file" in result.err
    assert (files.path / "data.bin").read_bytes() == ORIGINAL
    assert journals(files) == []
    files.run("resume", files.last_run(), check=0)
    assert (files.path / "data.bin").read_bytes() == STAMPED
    assert files.log() == [f"stamp {ORIGINAL.hex()}"] * 2


def test_a_kill_during_a_change_in_place_is_undone_before_the_resume_runs_it(
        files: Project) -> None:
    def half_changed() -> bool:
        return (files.path / "data.bin").read_bytes() == ORIGINAL + b"+s"

    start_and_kill(files, half_changed, "run", "--run-id", "m1", "--", "stamp")
    assert (files.path / "data.bin").read_bytes() == ORIGINAL + b"+s"

    files.run("resume", "m1", env={"FAIL": "1"}, check=1)  # restored, then fails again
    assert (files.path / "data.bin").read_bytes() == ORIGINAL
    files.run("resume", "m1", check=0)
    assert (files.path / "data.bin").read_bytes() == STAMPED  # changed once, not twice
    assert files.log() == [f"stamp {ORIGINAL.hex()}"] * 3  # each attempt saw the original
    assert journals(files) == []


def test_a_kill_after_the_change_but_before_the_record_is_undone_by_resume(
        files: Project) -> None:
    result = files.run("run", "--run-id", "f1", "--", "stamp",
                       env={"RETAP_FAULT": "after_execute:1"})
    assert result.code == -signal.SIGKILL
    assert (files.path / "data.bin").read_bytes() == STAMPED
    files.run("resume", "f1", check=0)
    assert (files.path / "data.bin").read_bytes() == STAMPED  # not stamped twice
    assert files.log() == [f"stamp {ORIGINAL.hex()}"] * 2


@pytest.mark.parametrize(("env", "after", "error"), [
    ({"BAD_VALUE": "1"}, [], "CodecError"),  # the store cannot encode the result
    ({}, ["--:i", "dump"], "JoinError"),  # the join it feeds refuses the result
], ids=["codec", "join"])
def test_a_dispatch_failed_after_its_task_returned_leaves_its_file_as_it_was(
        files: Project, env: dict[str, str], after: list[str], error: str) -> None:
    result = files.run("run", "--", "stamp", *after, env=env, check=1)
    assert f"node 0 (stamp) failed: {error}" in result.err
    assert (files.path / "data.bin").read_bytes() == ORIGINAL
    assert journals(files) == []


def test_two_runs_in_one_project_do_not_undo_each_others_files(files: Project) -> None:
    (files.path / "hold-upper").touch()
    first = files.start("run", "--", "upper")
    try:
        wait_for(lambda: any(files.path.glob(".out.txt.retap-*.tmp")))
        files.run("run", "--", "stamp", check=0)  # while the first run is held mid-write
    finally:
        (files.path / "hold-upper").unlink()
        _, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert (files.path / "out.txt").read_bytes() == b"HELLO\n"
    assert (files.path / "data.bin").read_bytes() == STAMPED


# What the audit records --------------------------------------------------------------------------


def test_the_record_names_each_output_with_its_content_digest(built: Project) -> None:
    built.run("run", "--", "stamp", check=0)
    built.run("run", "--", "upper", check=0)  # reused
    upper_run, stamp_run, reuse_run = (r["run"] for r in reversed(built.runs()))
    assert built.run("audit", upper_run, "--json", check=0).json()[0]["value"] == "out.txt"
    with retap.open_store(built.path / ".retap" / "retap.db") as store:
        [upper] = store.audits(upper_run)
        [stamp] = store.audits(stamp_run)
        [reused] = store.audits(reuse_run)
    assert upper.status == "done" and upper.value == "out.txt"
    assert upper.outputs == {"out.txt": digest_file(built.path / "out.txt")}
    assert (built.path / "data.bin").read_bytes() == STAMPED
    assert stamp.outputs == {"data.bin": digest_file(built.path / "data.bin")}
    assert reused.reused == f"{upper_run}/{upper.id}"
    assert reused.outputs == upper.outputs and reused.value == "out.txt"


def test_the_digest_is_of_the_content_blake2b_128(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "f"
    path.write_bytes(ORIGINAL)
    assert digest_file(path) == hashlib.blake2b(ORIGINAL, digest_size=16).hexdigest()
