"""The PostgreSQL store through the real `retap` command: reading commands, a server that is
not there, and a connection lost mid-run (the server named by ``RETAP_TEST_POSTGRES``)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flows
from conftest import LOGGING_TASKS, Project, wait_for
from pgserver import fresh_schema, server_url
from retap import App, Middleware, Workflow, open_store
from retap.dispatch import Dispatch, Outcome
from retap.errors import LeaseLost, StoreError
from retap.store.postgres import PostgresStore, _split_schema


@pytest.fixture
def pg(logging_project: Project) -> Iterator[tuple[Project, str]]:
    with fresh_schema("cli") as url:
        yield logging_project, url


@pytest.fixture
def pg_store() -> Iterator[PostgresStore]:
    with fresh_schema("lit") as url:
        store = PostgresStore(url)
        store.x("CREATE TABLE lit (s TEXT, i BIGINT, f DOUBLE PRECISION, b BYTEA)")
        try:
            yield store
        finally:
            store.close()


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


# -- the store's own statements (Python API) ------------------------------------------------

@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text().filter(lambda t: "\0" not in t),
       number=st.integers(-2**63, 2**63 - 1), real=st.floats(), data=st.binary())
def test_what_a_write_binds_reads_back_the_same(pg_store: PostgresStore, text: str,
                                                number: int, real: float,
                                                data: bytes) -> None:
    # writes are sent as literal SQL (prepared statements called with quoted values): any
    # text, integer, float and byte string must come back as it was
    with pg_store.round_trip():
        pg_store.begin()
        pg_store.write("INSERT INTO lit (s, i, f, b) VALUES (?, ?, ?, ?)",
                       (text, number, real, data))
        pg_store.commit()
    row = pg_store.x("SELECT s, i, f, b FROM lit").fetchone()
    pg_store.x("DELETE FROM lit")
    assert (row["s"], row["i"], bytes(row["b"])) == (text, number, data)
    assert row["f"] == real or (math.isnan(row["f"]) and math.isnan(real))


def test_a_string_the_server_cannot_hold_is_one_store_error(pg_store: PostgresStore) -> None:
    with pytest.raises(StoreError) as caught, pg_store.errors(), pg_store.round_trip():
        pg_store.begin()
        pg_store.write("INSERT INTO lit (s) VALUES (?)", ("a\0b",))
        pg_store.commit()
    assert "NUL" in str(caught.value) and "\n" not in str(caught.value)
    assert pg_store.x("SELECT count(*) AS n FROM lit").fetchone()["n"] == 0
    assert not pg_store.in_transaction


class _StealAt(Middleware):
    """After the k-th commit, another coordinator takes the run (its lease token changes)
    and counts what the store holds for it then."""

    def __init__(self, url: str, k: int) -> None:
        self.url, self.k, self.seen, self.held = url, k, 0, -1

    def after_commit(self, app: App, dispatch: Dispatch, outcome: Outcome) -> None:
        self.seen += 1
        if self.seen == self.k:
            self.held = _take_run(self.url, app.run_id)


def _take_run(url: str, run: str) -> int:
    """Change ``run``'s lease token from another connection (it waits for a group commit
    that holds the run's row); how many dispatches the store holds once it has."""
    import psycopg

    conninfo, schema = _split_schema(url)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f"SET search_path TO {schema}")
        admin.execute("UPDATE runs SET lease_token = 'thief' WHERE run = %s", (run,))
        return int(admin.execute("SELECT count(*) FROM dispatches WHERE run = %s",
                                 (run,)).fetchone()[0])


@pytest.mark.parametrize("durability", ["normal", "batch"])
def test_a_run_taken_over_between_commits_writes_nothing_more(durability: str) -> None:
    # in batch durability a group commit goes out while the next group is built: the
    # group after the take-over fails its fence, and nothing after it is written either
    wf = Workflow()
    lead = wf.add(flows.Gen(label="lead", mode="list", width=120), "x")
    wf.join(lead, wf.add(flows.Gen(label="t")), iterate=True)
    with fresh_schema("steal") as url:
        store = open_store(url, durability=durability, batch_size=8)
        thief = _StealAt(url, 40)
        try:
            with pytest.raises(LeaseLost):
                App(wf, store, run_id="stolen", middleware=[thief]).run()
            assert thief.held >= 0
            assert store.run_info("stolen").dispatches == thief.held
        finally:
            store.close()


def test_a_coordinator_paused_inside_a_transaction_does_not_keep_its_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a stopped VM whose coordinator had a transaction open holds the run's row: the server
    # ends its session once it has sat idle as long as a lease, so another host takes the
    # run over without waiting for the lock; the first learns it at its next write
    from retap.errors import LeasePausedOut
    from retap.owner import Owner

    monkeypatch.setenv("RETAP_LEASE_SECONDS", "1")
    spec = {"retap": 1, "nodes": [{"id": 0, "task": "x:T"}], "joins": []}
    with fresh_schema("paused") as url:
        first, second = open_store(url), open_store(url)
        try:
            log = first.create_run("r1", spec, Owner("host-a", 4242, 1.0))
            assert isinstance(first, PostgresStore)
            first.begin()  # paused mid-commit, the run's row locked
            first.x("SELECT lease_token FROM runs WHERE run=? FOR UPDATE", ("r1",))
            time.sleep(1.3)
            started = time.monotonic()
            second.claim_run("r1", Owner.current())
            assert time.monotonic() - started < 1.0  # not a lock timeout's 10 s
            for _ in range(2):  # the paused one's writes, now and after, say what happened
                with pytest.raises(LeasePausedOut, match=r"r1.*taken over by another "
                                                         "coordinator"):
                    log.finish("done")
            assert second.run_info("r1").owner == Owner.current()
        finally:
            first.close()
            second.close()
