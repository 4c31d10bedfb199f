"""Who owns a run: a run from another host is taken over only when asked (case 10);
readers work where the store's directory cannot be written (case 11); liveness comes from
/proc on Linux and psutil elsewhere, and agrees with psutil, so a start time recorded one
way is recognized the other (case 14)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import Project, assert_one_line_error
from retap import procstat
from retap.owner import HOST_ENV, Owner, process_start

# Case 10 -----------------------------------------------------------------------------------------


@pytest.fixture
def foreign_run(project: Project) -> Project:
    """A run whose owner recorded another host name, killed part way (still `running`)."""
    result = project.run("run", "--run-id", "f", "--", "load", "a", "--:", "dump", "--:",
                         "dump", env={HOST_ENV: "old-container", "RETAP_FAULT": "after_commit:1"})
    assert result.code == -9, result.err
    return project


def test_case_10_a_run_of_another_host_is_refused_without_take_over(
        foreign_run: Project) -> None:
    line = assert_one_line_error(foreign_run.run("resume", "f"))
    assert "old-container" in line and "--take-over" in line
    assert foreign_run.runs()[0]["status"] == "running"  # its owner cannot be seen from here


@pytest.mark.parametrize("verb", ["resume", "replay"])
def test_case_10_take_over_continues_a_run_of_another_host(foreign_run: Project,
                                                          verb: str) -> None:
    result = foreign_run.run(verb, "f", "--take-over", check=0)
    assert result.out == "a\na\n" if verb == "resume" else result.out.endswith("a\n")
    assert foreign_run.runs()[0]["status"] == "done"


def test_case_10_take_over_never_takes_a_run_from_a_live_local_owner(project: Project) -> None:
    proc = project.start("run", "--run-id", "live", "--", "sleep", "60")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (project.path / ".retap").exists():
            time.sleep(0.05)
        time.sleep(0.5)
        line = assert_one_line_error(project.run("resume", "live", "--take-over"))
        assert "being run by" in line
    finally:
        proc.kill()
        proc.communicate(timeout=10)


# Case 11 -----------------------------------------------------------------------------------------

DROP_WRITE_OVERRIDE = ["--inh-caps=-dac_override,-dac_read_search",
                       "--bounding-set=-dac_override,-dac_read_search"]


def as_reader(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """`retap ARGS` as a user who may not write the store's directory (root gives up the
    capability that lets it write anywhere)."""
    command = project.command(*args)
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root's write override"
        command = [setpriv, *DROP_WRITE_OVERRIDE, *command]
    return subprocess.run(command, cwd=project.path, capture_output=True, text=True,
                          env=project.env, timeout=60)


@pytest.mark.parametrize("args", [("runs",), ("runs", "--json"), ("show", "r"),
                                  ("audit", "r", "--json"), ("check",)], ids=" ".join)
def test_case_11_readers_work_on_a_store_in_a_directory_they_cannot_write(
        project: Project, args: tuple[str, ...]) -> None:
    project.run("run", "--run-id", "r", "--", "load", "a", "--:", "dump", check=0)
    folder = project.path / ".retap"
    os.chmod(folder / "retap.db", 0o444)
    os.chmod(folder, 0o555)
    try:
        done = as_reader(project, *args)
        assert done.returncode == 0, done.stderr
        assert "r" in done.stdout
        assert sorted(p.name for p in folder.iterdir()) == ["retap.db"]
    finally:
        os.chmod(folder, 0o755)


# Case 14 -----------------------------------------------------------------------------------------


def test_case_14_this_process_is_alive_and_has_a_start_time() -> None:
    me = Owner.current()
    assert me.alive()
    assert abs(me.started - time.time()) < 24 * 3600


def test_case_14_a_finished_process_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner(Owner.current().host, child.pid, process_start(child.pid))
    child.wait()
    assert not owner.alive()


def test_case_14_a_recycled_pid_is_not_the_owner() -> None:
    me = Owner.current()
    assert not Owner(me.host, me.pid, me.started - 3600).alive()


def test_case_14_an_owner_on_another_host_counts_as_alive() -> None:
    assert Owner("elsewhere", 1, 1.0).alive()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_case_14_the_start_time_from_proc_is_the_one_psutil_reads(tmp_path) -> None:
    """Even for a process whose name holds a space and parentheses (the command name in
    /proc/PID/stat is in parentheses), and with the host name gethostname gives."""
    import socket

    import psutil

    odd = tmp_path / "a) (b c"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen([str(odd), "-c", "import time; time.sleep(30)"])
    try:
        for pid in (os.getpid(), child.pid):
            assert abs(process_start(pid) - psutil.Process(pid).create_time()) < 1e-6
            assert procstat.state(pid)[0] == "running"
        assert Owner(Owner.current().host, child.pid, process_start(child.pid)).alive()
    finally:
        child.kill()
        child.wait()
    assert Owner.current().host == os.environ.get(HOST_ENV, socket.gethostname())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_case_14_a_zombie_is_dead() -> None:
    """A process that exited but was not yet reaped never writes again."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner(Owner.current().host, child.pid, process_start(child.pid))
    deadline = time.monotonic() + 10
    while procstat.state(child.pid)[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert procstat.state(child.pid)[0] == procstat.ENDED
        assert not owner.alive()
    finally:
        child.wait()
