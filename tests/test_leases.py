"""Leases and fencing between hosts, simulated on one machine: each coordinator gets a host
name of its own through ``RETAP_HOST`` (the override for containers whose host name
changes), so neither can look at the other's process and only the lease tells whether the
run is still held. On SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from conftest import Project, wait_for
from pgserver import on_store

LEASE = "1.5"


@pytest.fixture(params=["sqlite", "postgres"])
def proj(request: pytest.FixtureRequest, logging_project: Project) -> Iterator[Project]:
    with on_store(logging_project, request.param, "lease") as project:
        yield project


def host(name: str, **extra: str) -> dict[str, str]:
    return {"RETAP_HOST": name, "RETAP_LEASE_SECONDS": LEASE, **extra}


def test_a_paused_coordinator_loses_its_run_to_another_host_and_stops_without_writing(
        proj: Project, procs: list) -> None:
    first = proj.start("run", "--run-id", "shared", "--", "a", "1", "--:", "b", "--:", "c",
                       env=host("host-a", DELAY_B="12"))
    procs.append(first)
    wait_for(lambda: "b" in proj.counts())

    held = proj.run("resume", "shared", env=host("host-b"))
    assert held.code == 2, (held.out, held.err)
    assert "another host" in held.err and "host-a" in held.err
    time.sleep(float(LEASE) + 0.5)
    assert proj.run("resume", "shared", env=host("host-b")).code == 2  # renewed meanwhile

    os.kill(first.pid, signal.SIGSTOP)  # a paused VM: no heartbeat, the lease runs out
    try:
        time.sleep(float(LEASE) + 1.0)
        proj.run("resume", "shared", env=host("host-b"), check=0)
        assert proj.counts() == {"a": 1, "b": 2, "c": 1}
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=30)

    assert first.returncode == 1, (out, err)
    assert "Traceback" not in err
    assert "taken over by another coordinator" in err.strip().splitlines()[-1], err
    assert proj.counts() == {"a": 1, "b": 2, "c": 1}  # the first wrote nothing more
    [run] = proj.runs()
    assert run["status"] == "done"
    shown = proj.run("show", "shared", "--json", check=0).json()
    assert (shown["counts"], shown["queue"]) == ({"done": 3}, [])


def test_take_over_needs_no_waiting_for_the_lease(proj: Project, procs: list) -> None:
    first = proj.start("run", "--run-id", "shared", "--", "a", "1", "--:", "b",
                       env=host("host-a", DELAY_B="30"))
    procs.append(first)
    wait_for(lambda: "b" in proj.counts())
    first.kill()
    first.wait(timeout=10)
    proj.run("resume", "shared", "--take-over", env=host("host-b"), check=0)
    assert proj.counts() == {"a": 1, "b": 2}


def test_a_coordinator_paused_between_dispatches_runs_nothing_once_it_wakes_taken_over(
        proj: Project, procs: list) -> None:
    # paused right after a's commit (a stopped VM): when it wakes, its lease has not been
    # renewed for longer than it lasts, so before running b it asks, learns that another
    # host took the run over, and stops without running b a second time
    first = proj.start("run", "--run-id", "shared", "--", "a", "1", "--:", "b", "--:", "c",
                       env=host("host-a", RETAP_FAULT="after_commit:1:stop"))
    procs.append(first)
    wait_for(lambda: _stopped(first.pid))
    time.sleep(float(LEASE) + 0.5)
    proj.run("resume", "shared", env=host("host-b"), check=0)
    assert proj.counts() == {"a": 1, "b": 1, "c": 1}
    os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=30)
    assert first.returncode == 1, (out, err)
    assert "taken over by another coordinator" in err.strip().splitlines()[-1], err
    assert proj.counts() == {"a": 1, "b": 1, "c": 1}  # b did not run again
    assert proj.run("show", "shared", "--json", check=0).json()["counts"] == {"done": 3}


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"
