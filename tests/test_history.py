"""A run's history through the real `retap` command: every attempt of every dispatch is kept
(retries, failures a resume ran again, attempts lost with a killed coordinator), and the
run keeps a timeline of its sessions, `--set` changes, signals and ends."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, assert_one_line_error, wait_for

TASKS = '''
import os
import time
from pathlib import Path

import retap


class Recip(retap.Task, name="recip"):
    """1 / (x + offset)."""

    offset: float = 0.0

    def process(self, x):
        return 1 / (x + self.offset)


class Flaky(retap.Task, name="flaky"):
    """Fails the first FAILS times it runs (counted in a file), then returns its input."""

    retries = 2
    fails: int = 2

    def process(self, x):
        tries = Path("tries")
        n = int(tries.read_text()) if tries.exists() else 0
        tries.write_text(str(n + 1))
        if n < self.fails:
            raise RuntimeError(f"flaky failure {n + 1}")
        return x


class Twice(retap.Task, name="twice", cache="inputs"):
    """Doubles; its results are remembered across runs."""

    def process(self, x):
        with open("twice.log", "a") as fh:
            fh.write(f"{x}\\n")
        return x * 2


class Once(retap.Task, name="once"):
    """Not idempotent; waits for a file the first time it runs."""

    idempotent = False

    def process(self, x):
        Path("started").touch()
        while not Path("go").exists():
            time.sleep(0.05)
        return x
'''


@pytest.fixture
def proj(project: Project) -> Project:
    project.retapfile(TASKS)
    return project


def history_of(proj: Project, run: str, node: int) -> list[dict[str, Any]]:
    [entry] = [a for a in proj.run("audit", run, "--json", check=0).json()
               if a["node"] == node and a["history"][0]["status"] != "done"]
    return entry["history"]


def test_a_failed_then_resumed_run_shows_both_attempts_the_set_and_the_traceback(
        proj: Project) -> None:
    proj.run("run", "--run-id", "h", "--", "load", "--yaml", "[1, 0]", "--:i", "recip",
             "--:", "dump", check=1)
    proj.run("resume", "h", "--set", "1.offset=1", check=0)

    shown = proj.run("show", "h", check=0).out
    assert "--set 1.offset: 0.0 -> 1.0" in shown
    assert "resumed by" in shown and "retap resume h --set 1.offset=1" in shown
    assert "dispatches attempted more than once:" in shown
    assert "attempt 1 (session 1): failed" in shown
    assert "ZeroDivisionError: float division by zero" in shown
    assert "return 1 / (x + self.offset)" in shown  # the failed attempt's traceback
    assert "attempt 2 (session 3): done" in shown

    report = proj.run("show", "h", "--json", check=0).json()
    kinds = [e["kind"] for e in report["events"]]
    assert kinds == ["created", "finished", "resumed", "set", "finished"]
    assert report["events"][3]["data"] == {"node": 1, "key": "offset", "old": 0.0, "new": 1.0}
    assert [e["data"].get("status") for e in report["events"] if e["kind"] == "finished"] == [
        "failed", "done"]
    [again] = report["attempted_again"]
    assert [a["status"] for a in again["history"]] == ["failed", "done"]

    first, second = history_of(proj, "h", 1)
    assert (first["n"], first["session"], first["error_type"]) == (1, 1, "ZeroDivisionError")
    assert "self.offset" in first["traceback"]
    assert (second["n"], second["session"], second["status"]) == (2, 3, "done")


def test_retries_within_a_run_are_each_kept(proj: Project) -> None:
    proj.run("run", "--run-id", "f", "--", "flaky", "x", "--:", "dump", check=0)
    [entry] = [a for a in proj.run("audit", "f", "--json", check=0).json() if a["node"] == 0]
    assert entry["attempts"] == 3
    assert [(a["n"], a["session"], a["status"]) for a in entry["history"]] == [
        (1, 1, "failed"), (2, 1, "failed"), (3, 1, "done")]
    assert [a["error"] for a in entry["history"]] == [
        "flaky failure 1", "flaky failure 2", None]


def test_retries_on_worker_processes_are_each_kept(proj: Project) -> None:
    proj.run("run", "--run-id", "p", "-j", "2", "--", "flaky", "x", "--:", "dump", check=0)
    [entry] = [a for a in proj.run("audit", "p", "--json", check=0).json() if a["node"] == 0]
    assert [a["status"] for a in entry["history"]] == ["failed", "failed", "done"]
    created = proj.run("show", "p", "--json", check=0).json()["events"][0]["data"]
    workers = {(a["host"], a["pid"]) for a in entry["history"]}
    assert {host for host, _ in workers} == {created["host"]}
    assert created["pid"] not in {pid for _, pid in workers}  # each ran in a worker process


def test_an_attempt_in_the_coordinator_names_its_sessions_process(proj: Project) -> None:
    proj.run("run", "--run-id", "i", "--", "flaky", "x", "--:", "dump", check=0)
    created = proj.run("show", "i", "--json", check=0).json()["events"][0]["data"]
    [entry] = [a for a in proj.run("audit", "i", "--json", check=0).json() if a["node"] == 0]
    assert {(a["host"], a["pid"]) for a in entry["history"]} == {(created["host"],
                                                                   created["pid"])}
    assert f"on {created['host']} (pid {created['pid']})" in proj.run("show", "i",
                                                                        check=0).out


def test_an_attempt_lost_with_its_coordinator_is_kept_as_lost(proj: Project,
                                                              procs: list[Any]) -> None:
    proc = proj.start("run", "--run-id", "k", "--", "once", "x", "--:", "dump")
    procs.append(proc)
    wait_for(lambda: (proj.path / "started").exists())
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=20)
    # nothing runs it any more: shown lost (not running) by show, audit and the web view's
    # report, while the store still asks a resume to confirm it runs again
    report = proj.run("show", "k", "--json", check=0).json()
    assert (report["status"], report["counts"]) == ("interrupted", {"lost": 1})
    [entry] = [a for a in proj.run("audit", "k", "--json", check=0).json() if a["node"] == 0]
    assert (entry["status"], [a["status"] for a in entry["history"]]) == ("lost", ["lost"])
    assert "[0 once] LOST" in proj.run("audit", "k", check=0).out
    assert "lost 1" in proj.run("show", "k", check=0).out
    assert "--rerun-inflight" in proj.run("resume", "k", check=2).err
    (proj.path / "go").touch()
    proj.run("resume", "k", "--rerun-inflight", check=0)

    [entry] = [a for a in proj.run("audit", "k", "--json", check=0).json() if a["node"] == 0]
    assert [(a["n"], a["status"]) for a in entry["history"]] == [(1, "lost"), (2, "done")]
    assert entry["attempts"] == 2
    report = proj.run("show", "k", "--json", check=0).json()
    assert [e["kind"] for e in report["events"]] == ["created", "resumed", "finished"]
    resumed = report["events"][1]["data"]
    assert resumed["took_over"] and resumed["options"]["rerun_inflight"] is True


def test_a_signal_and_the_end_are_on_the_timeline(proj: Project, procs: list[Any]) -> None:
    proc = proj.start("run", "--run-id", "s", "--", "once", "x")
    procs.append(proc)
    wait_for(lambda: (proj.path / "started").exists())
    proc.send_signal(signal.SIGTERM)
    (proj.path / "go").touch()
    assert proc.wait(timeout=20) == 143
    report = proj.run("show", "s", "--json", check=0).json()
    assert [e["kind"] for e in report["events"]] == ["created", "signal", "finished"]
    assert report["events"][1]["data"] == {"signal": "SIGTERM"}
    assert report["events"][2]["data"] == {"status": "interrupted"}


def test_history_survives_a_store_copy(proj: Project, tmp_path: Path) -> None:
    proj.run("run", "--run-id", "c", "--", "flaky", "x", check=0)
    proj.run("store", "copy", ".retap/retap.db", str(tmp_path / "copy.db"), check=0)
    copied = proj.run("audit", "c", "--json", "--store", str(tmp_path / "copy.db"), check=0)
    assert [a["status"] for a in copied.json()[0]["history"]] == ["failed", "failed", "done"]
    assert [e["kind"] for e in proj.run("show", "c", "--json", "--store",
                                        str(tmp_path / "copy.db"), check=0).json()["events"]
            ] == ["created", "finished"]


def test_a_done_dispatch_run_again_for_changed_code_keeps_its_done_attempt(
        proj: Project) -> None:
    proj.run("run", "--run-id", "r", "--", "load", "--yaml", "1", "--:", "recip", check=0)
    source = (proj.path / "retapfile.py").read_text()
    (proj.path / "retapfile.py").write_text(source.replace("return 1 / (x + self.offset)",
                                                           "return 1.0 / (x + self.offset)"))
    proj.run("replay", "r", "--rerun-changed", check=0)
    [entry] = [a for a in proj.run("audit", "r", "--json", check=0).json() if a["node"] == 1]
    assert [(a["n"], a["session"], a["status"]) for a in entry["history"]] == [
        (1, 1, "done"), (2, 3, "done")]
    events = proj.run("show", "r", "--json", check=0).json()["events"]
    [code] = [e["data"] for e in events if e["kind"] == "code"]
    assert (code["node"], code["task"], code["decision"]) == (1, "recip", "re-run")


def test_runs_shows_duration_and_command_and_filters(proj: Project) -> None:
    proj.run("run", "--run-id", "ok", "--", "load", "1", check=0)
    proj.run("run", "--run-id", "bad", "--", "load", "--yaml", "0", "--:", "recip", check=1)
    runs = proj.run("runs", "--json", check=0).json()
    assert [r["run"] for r in runs] == ["bad", "ok"]
    assert runs[1]["command"] == "retap run --run-id ok -- load 1"
    assert all(isinstance(r["duration"], float) and 0 <= r["duration"] < 30 for r in runs)
    table = proj.run("runs", check=0).out
    assert "COMMAND" in table and "retap run --run-id ok -- load 1" in table

    def listed(*args: str) -> list[str]:
        return [r["run"] for r in proj.run("runs", "--json", *args, check=0).json()]

    assert listed("--status", "failed") == ["bad"]
    assert listed("--status", "done", "--status", "failed") == ["bad", "ok"]
    assert listed("--limit", "1") == ["bad"]
    assert listed("--since", "1h") == ["bad", "ok"]
    assert listed("--since", "2999-01-01") == []
    assert proj.run("runs", "--since", "soon").code == 2


def test_audit_trail_shows_where_one_value_came_from(proj: Project) -> None:
    proj.run("run", "--run-id", "t", "--", "load", "--yaml", "[1, 4]", "--:i", "recip",
             "--:", "dump", check=0)
    audits = proj.run("audit", "t", "--json", check=0).json()
    [last] = [a for a in audits if a["node"] == 2 and a["value"] == 0.25]
    trail = proj.run("audit", "t", "--trail", last["id"][:8], check=0).lines
    assert trail[0].startswith("o-[2 dump] 0.25")
    assert trail[1].startswith("`-o-[1 recip] 0.25")
    assert trail[2].startswith("  `-o-[0 load] [1, 4]")
    assert len(trail) == 3  # the other branch (1 -> 1.0) is not part of this value's trail
    result = proj.run("audit", "t", "--trail", "nope")
    assert result.code == 2 and "no dispatch 'nope'" in result.err


def test_prune_deletes_old_runs_and_only_the_values_no_other_run_uses(
        proj: Project, procs: list[Any]) -> None:
    import sqlite3
    import time
    from datetime import UTC, datetime

    shared, own = "s" * 100, "o" * 100  # values too large to live inline in their rows
    proj.run("run", "--run-id", "old", "--", "load", shared, "--:", "load", own, check=0)
    proj.run("run", "--run-id", "bad", "--", "load", "--yaml", "0", "--:", "recip", check=1)
    time.sleep(1.1)
    cut = datetime.now(UTC).isoformat()
    time.sleep(1.1)
    proj.run("run", "--run-id", "new", "--", "load", shared, check=0)
    busy = proj.start("run", "--run-id", "busy", "--", "once", "x")
    procs.append(busy)
    wait_for(lambda: (proj.path / "started").exists())

    assert sorted(proj.run("prune", "--older-than", cut, "-n", check=0).lines) == ["bad", "old"]
    assert sorted(proj.run("prune", "--older-than", cut, "--status", "failed",
                           check=0).lines) == ["bad"]
    assert proj.run("prune", "--older-than", "0s", check=0).lines == ["new", "old"]
    assert [r["run"] for r in proj.runs()] == ["busy"]  # its owner lives: never deleted

    (proj.path / "go").touch()
    assert busy.wait(timeout=20) == 0
    with sqlite3.connect(proj.path / ".retap" / "retap.db") as conn:
        for table in ("dispatches", "events", "attempts", "queue"):
            assert {r for (r,) in conn.execute(f"SELECT DISTINCT run FROM {table}")} <= {"busy"}
        assert conn.execute('SELECT count(*) FROM "values"').fetchone() == (0,)
    conn.close()
    assert proj.run("check", check=0).code == 0


def test_prune_keeps_a_value_a_remaining_run_still_uses(proj: Project) -> None:
    import time
    from datetime import UTC, datetime

    shared = "s" * 100
    proj.run("run", "--run-id", "old", "--", "load", shared, check=0)
    time.sleep(1.1)
    cut = datetime.now(UTC).isoformat()
    proj.run("run", "--run-id", "new", "--", "load", shared, "--:", "dump", check=0)
    assert proj.run("prune", "--older-than", cut, check=0).lines == ["old"]
    assert proj.run("check", check=0).code == 0
    assert proj.run("replay", "new", check=0).code == 0
    assert proj.run("audit", "new", "--json", check=0).json()[0]["value"] == shared


def test_replay_from_a_node_runs_it_and_its_downstream_again_and_reuses_the_rest(
        proj: Project) -> None:
    proj.run("run", "--run-id", "p", "--", "load", "--yaml", "[1, 4]", "--:i", "recip",
             "--:", "dump", check=0)
    again = proj.run("replay", "p", "--from", "1", check=0)
    assert sorted(again.lines) == ["0.25", "1.0"]  # dump ran again
    assert "4 executed, 1 cached" in again.err  # load was answered from the store
    audits = proj.run("audit", "p", "--json", check=0).json()
    assert {a["node"]: [(h["n"], h["session"]) for h in a["history"]] for a in audits} == {
        0: [(1, 1)], 1: [(1, 1), (2, 3)], 2: [(1, 1), (2, 3)]}
    [replayed] = [e for e in proj.run("show", "p", "--json", check=0).json()["events"]
                  if e["kind"] == "replayed"]
    assert replayed["data"]["options"]["from"] == [1]
    result = proj.run("replay", "p", "--from", "9")
    assert result.code == 2 and "no node 9 in the run (nodes: 0 (load), 1 (recip), 2 (dump))" \
        in result.err
    proj.run("replay", "p", "--from", "recip", check=0)  # a node by its task's name


def test_replay_from_runs_a_remembered_node_again(proj: Project) -> None:
    proj.run("run", "--run-id", "m1", "--", "load", "--yaml", "3", "--:", "twice", check=0)
    proj.run("run", "--run-id", "m2", "--", "load", "--yaml", "3", "--:", "twice", check=0)
    assert proj.log("twice.log") == ["3"]  # m2 took m1's result
    proj.run("replay", "m2", "--from", "1", check=0)
    assert proj.log("twice.log") == ["3", "3"]
    [entry] = [a for a in proj.run("audit", "m2", "--json", check=0).json() if a["node"] == 1]
    assert [h["status"] for h in entry["history"]] == ["done"]  # the reuse was no attempt
    assert entry["reused_from"] is None and entry["attempts"] == 1


def test_a_done_dispatch_the_memo_answers_in_a_replay_from_keeps_its_attempt(
        proj: Project) -> None:
    # Found by the torture runner's replay --from (seed 7 case 27): a memoized dispatch
    # below the node, its inputs unchanged, is answered from the memo; the row written over
    # lost the attempt that had made the result (and its output pointed at nothing).
    proj.run("run", "--run-id", "d", "--", "load", "--yaml", "3", "--:", "recip",
             "--offset", "1", "--:", "twice", check=0)
    proj.run("replay", "d", "--from", "1", check=0)
    assert proj.log("twice.log") == ["0.25"]  # the memo answered it
    [entry] = [a for a in proj.run("audit", "d", "--json", check=0).json() if a["node"] == 2]
    assert [(h["n"], h["session"], h["status"]) for h in entry["history"]] == [
        (1, 1, "done"), (0, 3, "reused")]
    assert entry["attempts"] == 1
    assert proj.run("check", check=0)


def test_run_force_runs_a_remembered_node_and_its_downstream_again(proj: Project) -> None:
    proj.run("run", "--run-id", "f1", "--", "load", "--yaml", "5", "--:", "twice", "--:",
             "twice", check=0)
    assert proj.log("twice.log") == ["5", "10"]
    proj.run("run", "--run-id", "f2", "--", "load", "--yaml", "5", "--:", "twice", "--:",
             "twice", check=0)
    assert proj.log("twice.log") == ["5", "10"]  # remembered: nothing ran
    assert_one_line_error(proj.run("run", "--force", "twice", "--", "load", "--yaml", "5",
                                   "--:", "twice", "--:", "twice"), "'twice' names 2 nodes")
    proj.run("run", "--run-id", "f3", "--force", "1", "--", "load", "--yaml", "5", "--:",
             "twice", "--:", "twice", check=0)
    assert proj.log("twice.log") == ["5", "10", "5", "10"]  # node 1 and below ran again
    assert_one_line_error(proj.run("run", "-R", "nope", "--", "load", "1"),
                          "--force: no node 'nope'")


def test_replay_from_a_node_above_a_gate_or_sync_is_refused(proj: Project) -> None:
    # Found by the torture runner (seed 4040 case 18): node 1 run again feeds the gate in
    # another order than the recorded run did, so the gate released a second, differently
    # grouped batch beside the first, and a later replay could rebuild neither.
    proj.run("run", "--run-id", "g", "--", "load", "--yaml", "[1, 2, 3]", "--:i", "dump",
             "--", "load", "b", "--", "dump", "--[1,2][3].gate", check=0)
    for node in ("1", "2", "0"):
        assert_one_line_error(proj.run("replay", "g", "--from", node),
                              "which groups results by when they arrive")
    proj.run("replay", "g", "--from", "3", check=0)  # below the gate: allowed
    audits = proj.run("audit", "g", "--json", check=0).json()
    assert [a["node"] for a in audits].count(3) == 1


def test_the_runs_table_is_plain_in_a_pipe_and_coloured_on_a_terminal(proj: Project) -> None:
    from conftest import on_terminal

    proj.run("run", "--run-id", "ok", "--", "load", "1", check=0)
    proj.run("run", "--run-id", "bad", "--", "load", "--yaml", "0", "--:", "recip", check=1)
    piped = proj.run("runs", check=0).out
    assert "\x1b[" not in piped
    head, bad, ok = piped.splitlines()
    assert head.split() == ["RUN", "STATUS", "CREATED", "DURATION", "DISPATCHES", "COMMAND"]
    assert bad.split()[:2] == ["bad", "failed"] and ok.split()[:2] == ["ok", "done"]
    assert ok.endswith("retap run --run-id ok -- load 1")  # whole, on one line
    assert head.index("STATUS") == bad.index("failed") == ok.index("done")  # aligned
    code, shown = on_terminal(proj, "runs", escapes=True)
    assert code == 0 and "\x1b[31mfailed" in shown and "\x1b[32mdone" in shown


def test_a_done_dispatch_a_replay_runs_again_may_fail_and_keeps_its_done_attempt(
        proj: Project) -> None:
    # Torture seed 9494 cases 54 and 56: a worker lost while a replay ran a done dispatch
    # again left done then failed, which the history check took for a lost done result.
    from retap import open_store
    from retap.history import history_problems

    proj.run("run", "--run-id", "f", "--", "load", "--yaml", "1", "--:", "recip", check=0)
    proj.run("replay", "f", "--from", "1", "--set", "1.offset=-1", check=1)
    [entry] = [a for a in proj.run("audit", "f", "--json", check=0).json() if a["node"] == 1]
    assert [(a["n"], a["session"], a["status"]) for a in entry["history"]] == [
        (1, 1, "done"), (2, 3, "failed")]
    store = open_store(str(proj.path / ".retap" / "retap.db"), readonly=True)
    try:
        assert history_problems(store, "f") == []
    finally:
        store.close()


def test_a_resume_goes_on_with_a_done_dispatch_a_replay_failed_again(proj: Project) -> None:
    # Torture seed 10606 case 16: a replay --from ran a done dispatch again and lost its
    # worker; the resume after it ran the dispatch once more, which the history check
    # took for a done dispatch run again outside a replay.
    from retap import open_store
    from retap.history import history_problems

    proj.run("run", "--run-id", "f", "--", "load", "--yaml", "1", "--:", "recip", check=0)
    proj.run("replay", "f", "--from", "1", "--set", "1.offset=-1", check=1)
    proj.run("resume", "f", check=1)
    [entry] = [a for a in proj.run("audit", "f", "--json", check=0).json() if a["node"] == 1]
    assert [(a["n"], a["status"]) for a in entry["history"]] == [
        (1, "done"), (2, "failed"), (3, "failed")]
    store = open_store(str(proj.path / ".retap" / "retap.db"), readonly=True)
    try:
        assert history_problems(store, "f") == []
    finally:
        store.close()
