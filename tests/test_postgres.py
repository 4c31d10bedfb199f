"""The PostgreSQL store through the real `retap` command: reading commands, a server that is
not there, and a connection lost mid-run (the server named by ``RETAP_TEST_POSTGRES``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from conftest import LOGGING_TASKS, Project, wait_for
from pgserver import fresh_schema, server_url


@pytest.fixture
def pg(logging_project: Project) -> Iterator[tuple[Project, str]]:
    with fresh_schema("cli") as url:
        yield logging_project, url


def test_every_command_works_on_a_postgres_store(pg: tuple[Project, str]) -> None:
    proj, url = pg
    proj.run("run", "--store", url, "--run-id", "r1", "--", "a", "1", "--:", "b", check=1,
             env={"FAIL_ONCE": "b"})
    runs = proj.run("runs", "--store", url, "--json", check=0).json()
    assert [(r["run"], r["status"]) for r in runs] == [("r1", "failed")]
    assert "b fails once" in proj.run("show", "r1", "--store", url, check=0).out
    proj.run("resume", "r1", "--store", url, check=0)
    assert proj.counts() == {"a": 1, "b": 2}
    audit = proj.run("audit", "r1", "--store", url, "--json", check=0).json()
    assert "b(a(1))" in str(audit)
    assert proj.run("check", "--store", url, check=0).out.strip().endswith(": ok")
    proj.run("replay", "r1", "--store", url, check=0)
    assert proj.counts() == {"a": 1, "b": 2}  # a replay of a done run runs nothing


def test_retap_store_names_the_server_when_store_is_not_given(pg: tuple[Project, str]
                                                               ) -> None:
    proj, url = pg
    env = {"RETAP_STORE": url}
    proj.run("run", "--run-id", "e1", "--", "a", "x", check=0, env=env)
    assert [r["run"] for r in proj.run("runs", "--json", check=0, env=env).json()] == ["e1"]
    assert not (proj.path / ".retap" / "retap.db").exists()


def test_a_server_that_does_not_answer_is_one_line(project: Project) -> None:
    project.retapfile(LOGGING_TASKS)
    result = project.run("run", "--store", "postgresql://postgres@127.0.0.1:1/test", "--",
                         "a", "x")
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    [line] = result.err.strip().splitlines()
    assert "127.0.0.1:1" in line and "cannot connect" in line
    assert project.log() == []


def test_a_connection_lost_mid_run_stops_the_run_and_resume_finishes_it(
        pg: tuple[Project, str]) -> None:
    import psycopg

    proj, url = pg
    proc = proj.start("run", "--store", url, "--run-id", "lost", "--", "a", "1", "--:", "b",
                      "--:", "c", env={"DELAY_B": "2"})
    wait_for(lambda: "b" in proj.counts())
    with psycopg.connect(server_url(), autocommit=True) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE application_name = %s", (f"retap {proc.pid}",)).fetchall()
    assert killed == [(True,)]
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert "lost the connection" in lines[-1] and "resume" in lines[-1], err
    time.sleep(0.1)
    proj.run("resume", "lost", "--store", url, check=0)
    counts = proj.counts()
    assert counts["a"] == 1 and counts["c"] == 1, counts  # done work never ran again
    assert counts["b"] == 2  # b had run, but its commit was lost with the connection
    shown = proj.run("runs", "--store", url, "--json", check=0).json()
    assert shown[0]["status"] == "done"
