"""The store through the real `retap` command: where it lives (--store, RETAP_STORE), its
permissions, refusing stores it cannot trust or read, `runs --json`, value codecs (JSON
extensions, signed pickle) and the audit renderings (DESIGN §5, §6)."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import pickle
import re
import sqlite3
import stat
from pathlib import Path

import pytest

from conftest import LOGGING_TASKS, Project, Result, assert_one_line_error, wait_for
from crafting import allow_sealing, seal_sql
from retap.store import rows
from retap.store.codec import digest
from retap.store.schema import SCHEMA_VERSION

EXTRA_TASKS = '''

import datetime as dt
import decimal

VALUES = {
    "large": (("t", 1), b"raw bytes", {1, 2}, dt.datetime(2024, 1, 2, 3, 4, 5),
              Path("some/file.txt"), frozenset({"x"}), dt.date(2024, 5, 6),
              decimal.Decimal("1.10"), {(1, 2): "tuple key"}, [("in", "list")],
              {"$": "tuple", "v": [1]}, float("inf")),
    "small": (b"b", {3}, Path("p")),
}


@retap.task(name="make")
def make():
    _log("make")
    return VALUES[os.environ.get("MAKE", "large")]


@retap.task(name="check")
def check(value):
    _log("check")
    with open("types.log", "a") as fh:
        fh.write(repr(value) + "\\n")
    _maybe_fail("check")
    return value


@retap.task(name="odd")
def odd():
    backslash = chr(92)
    return f'say "hi" from C:{backslash}dir{backslash}'


@retap.task(name="opaque")
def opaque():
    _log("opaque")
    return "fixed" if os.environ.get("OPAQUE_FIXED") else object()
'''

# The values make returns, as the test process builds them (repr shows every type).
VALUES = {
    "large": (("t", 1), b"raw bytes", {1, 2}, dt.datetime(2024, 1, 2, 3, 4, 5),
              Path("some/file.txt"), frozenset({"x"}), dt.date(2024, 5, 6),
              decimal.Decimal("1.10"), {(1, 2): "tuple key"}, [("in", "list")],
              {"$": "tuple", "v": [1]}, float("inf")),
    "small": (b"b", {3}, Path("p")),
}

KEY = {"RETAP_PICKLE_KEY": "test-signing-key"}


@pytest.fixture
def proj(logging_project: Project) -> Project:
    logging_project.retapfile(LOGGING_TASKS + EXTRA_TASKS)
    return logging_project


def refused(result: Result, code: int = 2) -> str:
    """A refused command: the exit code, one line on stderr, no traceback."""
    assert result.code == code, (result.code, result.out, result.err)
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_ids(project: Project, *args: str, env: dict[str, str] | None = None) -> list[str]:
    return [r["run"] for r in project.run("runs", "--json", *args, env=env, check=0).json()]


# -- 11. where the store is, who may read it, and what is refused -------------------------------


def test_the_default_store_is_owner_only(proj: Project) -> None:
    proj.run("run", "--run-id", "r", "--", "a", check=0)

    store = proj.path / ".retap" / "retap.db"
    assert store.is_file()
    assert mode(store) == 0o600
    assert mode(store.parent) == 0o700
    for side in (".retap/retap.db-wal", ".retap/retap.db-shm"):
        if (proj.path / side).exists():
            assert mode(proj.path / side) & 0o077 == 0, side


def test_store_option_selects_the_file_before_or_after_the_subcommand(proj: Project) -> None:
    proj.run("run", "--store", "stores/one.db", "--run-id", "r1", "--", "a", check=0)
    proj.run("--store", "stores/two.db", "run", "--run-id", "r2", "--", "b", check=0)

    assert not (proj.path / ".retap").exists()
    assert mode(proj.path / "stores" / "one.db") == 0o600
    assert mode(proj.path / "stores") == 0o700
    assert run_ids(proj, "--store", "stores/one.db") == ["r1"]
    assert [r["run"] for r in proj.run("--store", "stores/two.db", "runs", "--json",
                                       check=0).json()] == ["r2"]
    shown = proj.run("--store", "stores/one.db", "show", "r1", "--json", check=0).json()
    assert shown["status"] == "done"
    assert proj.run("show", "r1").code == 2  # not in the default store


def test_retap_store_env_selects_the_file_and_store_option_wins(proj: Project) -> None:
    env = {"RETAP_STORE": str(proj.path / "env.db")}
    proj.run("run", "--run-id", "e1", "--", "a", env=env, check=0)

    assert (proj.path / "env.db").is_file()
    assert mode(proj.path / "env.db") == 0o600
    assert not (proj.path / ".retap" / "retap.db").exists()
    assert run_ids(proj, env=env) == ["e1"]
    assert proj.run("show", "e1", "--json", env=env, check=0).json()["run"] == "e1"

    proj.run("run", "--store", "opt.db", "--run-id", "o1", "--", "b", env=env, check=0)
    assert run_ids(proj, "--store", "opt.db", env=env) == ["o1"]
    assert run_ids(proj, env=env) == ["e1"]


@pytest.mark.parametrize("version", [1, 2, 4, 5, 6, 7])
def test_a_store_from_an_older_retap_is_upgraded_on_first_use(proj: Project,
                                                               version: int) -> None:
    proj.run("run", "--run-id", "r", "--", "a", "--:", "b", check=0)
    db = proj.path / ".retap" / "retap.db"
    with sqlite3.connect(db) as conn:  # as an older retap left it
        conn.execute("DROP TABLE versions")
        conn.execute("DROP TABLE counters")
        if version < 7:
            conn.execute("DROP INDEX dispatches_not_done")
        if version < 6:
            conn.execute("DROP TABLE logs")
            conn.execute("DROP TABLE workers")
        if version < 5:
            conn.execute("DROP TABLE attempts")
            conn.execute("DROP TABLE events")
        if version < 4:  # before the version table and leases
            conn.execute("DROP TABLE retap_schema")
            conn.execute("ALTER TABLE runs DROP COLUMN lease_token")
            conn.execute("ALTER TABLE runs DROP COLUMN lease_expires")
            conn.execute(f"PRAGMA user_version={version}")
        else:
            conn.execute(f"UPDATE retap_schema SET version={version}")
            conn.execute(f"PRAGMA user_version={version}")  # SQLite stores mirror it there
        if version < 2:
            conn.execute("DROP TABLE outputs")
    conn.close()

    assert run_ids(proj) == ["r"]  # a reader upgrades it once, then reads
    if version < 5:
        assert "timeline:" not in proj.run("show", "r", check=0).out  # no events kept then
    proj.run("run", "--run-id", "s", "--", "a", check=0)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM retap_schema").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM outputs").fetchone()[0] == 0
        assert conn.execute("SELECT kind FROM events WHERE run='s'").fetchall() == [
            ("created",), ("finished",)]
        assert conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND "
                            "tbl_name='dispatches'").fetchall() == [("dispatches_not_done",)]
        # the code versions of the run recorded before are listed; its counter is kept
        # from its next session on (read from its history until then)
        assert conn.execute("SELECT node, task FROM versions WHERE run='r' ORDER BY node"
                            ).fetchall() == [("0", "a"), ("1", "b")]
        assert conn.execute("SELECT run, seq FROM counters").fetchall() == [("s", 1)]
    conn.close()
    proj.run("logs", "s", check=0)  # the table of captured output is there


def test_a_store_from_a_newer_retap_is_refused(proj: Project) -> None:
    proj.run("run", "--run-id", "r", "--", "a", check=0)
    db = proj.path / ".retap" / "retap.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE retap_schema SET version=99")
    conn.close()

    for args in (("runs",), ("show", "r"), ("resume", "r"), ("run", "--", "a")):
        line = refused(proj.run(*args))
        assert "newer" in line, line
        assert "99" in line, line
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM retap_schema").fetchall() == [(99,)]
    conn.close()
    assert proj.counts() == {"a": 1}


@pytest.mark.parametrize("garbage", [os.urandom(4096), b"not a database\n",
                                     b"SQLite format 3\x00" + os.urandom(4096)],
                         ids=["random", "short", "bad-pages"])
def test_a_garbage_store_file_is_refused_without_a_traceback(proj: Project,
                                                             garbage: bytes) -> None:
    db = proj.path / ".retap" / "retap.db"
    db.parent.mkdir()
    db.write_bytes(garbage)

    for args in (("runs", "--json"), ("show", "r"), ("run", "--", "a")):
        line = refused(proj.run(*args))
        assert "retap.db" in line, line
    assert db.read_bytes() == garbage
    assert proj.counts() == {}


@pytest.mark.parametrize("args", [("show", "r"), ("audit", "r"), ("resume", "r"),
                                  ("replay", "r"), ("show", "r", "--store", ":memory:")])
def test_an_unknown_run_without_any_store_is_exit_2(proj: Project,
                                                    args: tuple[str, ...]) -> None:
    result = proj.run(*args)

    assert "'r'" in refused(result)
    assert not (proj.path / ".retap").exists()


def test_another_programs_sqlite_file_is_refused(proj: Project) -> None:
    other = proj.path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()

    line = refused(proj.run("runs", "--store", str(other)))
    assert "other.db" in line


def test_runs_json_lists_runs_newest_first(proj: Project) -> None:
    assert proj.runs() == []
    proj.run("run", "--run-id", "r1", "--", "a", check=0)
    proj.run("run", "--run-id", "r2", "--", "a", "--:", "b", check=0)
    proj.run("run", "--run-id", "r3", "--", "a", "--:", "b", env={"FAIL_ALWAYS": "b"}, check=1)

    runs = proj.runs()

    assert [r["run"] for r in runs] == ["r3", "r2", "r1"]
    for r in runs:
        assert set(r) == {"run", "status", "created", "dispatches", "duration", "command"}
        created = dt.datetime.fromisoformat(r["created"])
        assert created.tzinfo is not None or "T" in r["created"]
        assert abs(created.timestamp() - dt.datetime.now().timestamp()) < 120
    assert [r["status"] for r in runs] == ["failed", "done", "done"]
    assert [r["dispatches"] for r in runs] == [2, 2, 1]
    assert proj.last_run() == "r3"


# -- durability ------------------------------------------------------------------------------


def test_kill_9_in_batch_durability_reruns_the_lost_batch(proj: Project, procs: list) -> None:
    proc = proj.start("run", "--run-id", "bt", "--durability", "batch", "--", "a", "--:", "b",
                      "--:", "c", env={"DELAY_C": "30"})
    procs.append(proc)
    wait_for(lambda: "c" in proj.counts())
    proc.kill()
    proc.wait(timeout=10)
    assert proj.run("show", "bt", "--json", check=0).json()["status"] == "interrupted"

    again = proj.run("resume", "bt")

    # a crash re-runs at most the last uncommitted batch (a and b may run again); it never
    # drops pending work: resume must not call the unfinished run "already done"
    assert "already done" not in again.err, again.err
    assert again.code == 0, again.err
    counts = proj.counts()
    assert counts["c"] == 2, counts
    assert 1 <= counts["a"] <= 2 and 1 <= counts["b"] <= 2, counts
    audits = proj.run("audit", "bt", "--json", check=0).json()
    assert [a["status"] for a in audits] == ["done"] * 3


# -- 12. codecs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["large", "small"])
@pytest.mark.parametrize("verb", ["replay", "resume"])
def test_python_values_round_trip_through_the_store(proj: Project, verb: str,
                                                    size: str) -> None:
    env = {"MAKE": size, "FAIL_ONCE": "check"}
    proj.run("run", "--run-id", "t", "--", "make", "--:", "check", env=env, check=1)

    again = proj.run(verb, "t", env=env)

    assert again.code == 0, again.err
    assert proj.counts() == {"make": 1, "check": 2}
    # check's second call got its input back from the store: same values, same types
    expected = repr(VALUES[size])
    assert proj.log("types.log") == [expected, expected]

    audits = proj.run("audit", "t", "--json", check=0).json()
    assert [a["status"] for a in audits] == ["done", "done"]
    value = audits[0]["value"]
    if size == "small":
        assert value == ["b", [3], "p"]
    else:
        assert value[:3] == [["t", 1], "raw bytes", [1, 2]]
        assert value[3] in ("2024-01-02 03:04:05", "2024-01-02T03:04:05")
        assert value[4] == "some/file.txt"
    assert audits[1]["value"] == value


def test_an_unstorable_result_fails_its_dispatch_and_resumes_once_fixed(proj: Project) -> None:
    first = proj.run("run", "--run-id", "o", "--", "opaque", "--:", "b")

    assert first.code == 1, first.err
    assert "Traceback" not in first.err
    report = proj.run("show", "o", "--json", check=0).json()
    assert report["status"] == "failed"
    [failed] = report["failed"]
    assert failed["task"] == "opaque"
    assert failed["node"] == 0
    assert "opaque" in failed["error"]
    assert "object" in failed["error"]
    assert proj.counts() == {"opaque": 1}

    again = proj.run("resume", "o", env={"OPAQUE_FIXED": "1"})

    assert again.code == 0, again.err
    assert proj.counts() == {"opaque": 2, "b": 1}
    assert proj.log()[-1] == "b ('fixed',)"


def test_the_pickle_codec_needs_a_key(proj: Project) -> None:
    line = refused(proj.run("run", "--codec", "pickle", "--", "a"))

    assert "RETAP_PICKLE_KEY" in line
    assert proj.counts() == {}
    assert proj.runs() == []


def _pickled_run(project: Project) -> sqlite3.Connection:
    """A failed run `p` stored with the pickle codec; a connection to its store."""
    first = project.run("run", "--run-id", "p", "--codec", "pickle", "--", "a", "--:", "b",
                        env={**KEY, "FAIL_ONCE": "b"})
    assert first.code == 1, first.err
    conn = sqlite3.connect(project.path / ".retap" / "retap.db")
    rows = conn.execute('SELECT codec FROM "values"').fetchall()
    assert rows and {r[0] for r in rows} == {"pickle"}
    return conn


def test_the_pickle_codec_with_a_key_works(proj: Project) -> None:
    _pickled_run(proj).close()

    audits = proj.run("audit", "p", "--json", env=KEY, check=0).json()
    assert [(a["task"], a["status"], a["value"]) for a in audits] == [
        ("a", "done", "a()"), ("b", "failed", None)]

    again = proj.run("resume", "p", env={**KEY, "FAIL_ONCE": "b"})
    assert again.code == 0, again.err
    assert proj.counts() == {"a": 1, "b": 2}


def _tamper(conn: sqlite3.Connection, payload: bytes | None = None, rehash: bool = True) -> None:
    """Change the payload of every pickled value, keeping its signature (the first 32 bytes).

    ``rehash``: also give the value the digest of its new bytes, point every reference at it
    and fix the rows' checksums, as someone who edits the store on purpose would; only the
    signature is left to catch the change. Otherwise the row keeps its old digest."""
    allow_sealing(conn)
    for old, data in conn.execute('SELECT digest, data FROM "values" WHERE codec=?',
                                  ("pickle",)).fetchall():
        if payload is None:
            changed = bytearray(data)
            changed[-2] ^= 0x01  # a byte of the pickle, not of the signature
            new_data = bytes(changed)
        else:
            new_data = data[:32] + payload
        new = digest("pickle", new_data) if rehash else old
        conn.execute('UPDATE "values" SET data=?, digest=? WHERE digest=?', (new_data, new, old))
        conn.execute("UPDATE dispatches SET result=replace(result, ?, ?), "
                     "inputs=replace(inputs, ?, ?)", (old, new, old, new))
        conn.execute("UPDATE queue SET inputs=replace(inputs, ?, ?)", (old, new))
    if rehash:
        conn.execute(f"UPDATE dispatches SET crc={seal_sql(rows.DISPATCH)}")
        conn.execute(f"UPDATE queue SET crc={seal_sql(rows.QUEUE)}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("args", [("audit", "p"), ("audit", "p", "--json"), ("show", "p"),
                                  ("replay", "p"), ("replay", "p", "--rerun-changed"),
                                  ("resume", "p")], ids="-".join)
def test_a_tampered_pickle_is_refused_by_its_signature(proj: Project,
                                                        args: tuple[str, ...]) -> None:
    _tamper(_pickled_run(proj))

    result = proj.run(*args, env={**KEY, "FAIL_ONCE": "b"})

    assert result.code != 0, (result.out, result.err)
    assert "Traceback" not in result.err, result.err
    assert "signature" in result.err
    assert proj.counts() == {"a": 1, "b": 1}
    assert proj.runs()[0]["status"] == "failed"


@pytest.mark.parametrize("args", [("audit", "p"), ("replay", "p"), ("resume", "p")],
                         ids="-".join)
def test_a_changed_value_under_its_old_digest_is_refused(proj: Project,
                                                         args: tuple[str, ...]) -> None:
    _tamper(_pickled_run(proj), rehash=False)

    result = proj.run(*args, env={**KEY, "FAIL_ONCE": "b"})

    assert result.code != 0, (result.out, result.err)
    assert "Traceback" not in result.err, result.err
    assert "signature" in result.err or "digest" in result.err, result.err
    assert proj.counts() == {"a": 1, "b": 1}


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("rehash", [True, False], ids=["rehashed", "old-digest"])
def test_a_tampered_pickle_cannot_run_code(proj: Project, rehash: bool) -> None:
    marker = proj.path / "pwned"
    _tamper(_pickled_run(proj), pickle.dumps(_Evil(marker)), rehash=rehash)

    for args in (("audit", "p"), ("replay", "p"), ("resume", "p"), ("show", "p")):
        result = proj.run(*args, env=KEY)
        assert result.code != 0, (args, result.out, result.err)
        assert "Traceback" not in result.err, result.err
        assert not marker.exists(), args
        if rehash:
            assert "signature" in result.err, result.err


# -- 13. audit renderings ------------------------------------------------------------------------


@pytest.fixture
def audited(proj: Project) -> Project:
    """Run `au`: a -> b -> c with c failing, plus a lone lead d."""
    proj.run("run", "--run-id", "au", "--on-error", "continue", "--", "a", "--:", "b", "--:",
             "c", "--", "d", env={"FAIL_ALWAYS": "c"}, check=1)
    return proj


def test_audit_json_is_the_provenance_in_recording_order(audited: Project) -> None:
    audits = audited.run("audit", "au", "--json", check=0).json()

    assert all(set(a) == {"id", "node", "task", "sources", "status", "value", "attempts",
                          "history", "inputs", "configs", "error", "error_type", "started",
                          "finished", "outputs", "code_version", "reused_from"}
               for a in audits)
    assert all(len(a["history"]) == a["attempts"] for a in audits)
    assert [(a["node"], a["task"], a["status"]) for a in audits] == [
        (0, "a", "done"), (1, "b", "done"), (2, "c", "failed"), (3, "d", "done")]
    a, b, c, d = audits
    assert a["sources"] == [] and d["sources"] == []
    assert b["sources"] == [a["id"]]
    assert c["sources"] == [b["id"]]
    assert [x["value"] for x in (a, b, d)] == ["a()", "b(a())", "d()"]
    assert c["value"] is None
    assert all(x["attempts"] == 1 for x in audits)
    assert len({x["id"] for x in audits}) == 4


def test_audit_text_trail(audited: Project) -> None:
    text = audited.run("audit", "au", check=0).out

    assert "a()" in text and "b(a())" in text and "d()" in text
    [c_line] = [line for line in text.splitlines() if " c]" in line]
    assert "fail" in c_line.lower()
    lines = text.splitlines()
    index = {task: next(i for i, line in enumerate(lines) if f" {task}]" in line)
             for task in "abcd"}
    assert index["a"] < index["b"] < index["c"]


def test_audit_dot_is_a_digraph_with_the_edges(audited: Project) -> None:
    audits = audited.run("audit", "au", "--json", check=0).json()
    dot = audited.run("audit", "au", "--dot", check=0).out

    assert dot.lstrip().startswith("digraph")
    assert dot.rstrip().endswith("}")
    a, b, c, _ = audits
    assert f'"{a["id"]}" -> "{b["id"]}"' in dot
    assert f'"{b["id"]}" -> "{c["id"]}"' in dot
    assert dot.count("->") == 2


def test_audit_dot_escapes_quotes_and_backslashes(proj: Project) -> None:
    proj.run("run", "--run-id", "odd", "--", "odd", "--:", "b", check=0)

    dot = proj.run("audit", "odd", "--dot", check=0).out

    # a node line as DOT reads it: inside quotes a backslash escapes the next character
    node = re.compile(r'\s*"[0-9a-f]+" \[label="((?:[^"\\]|\\.)*)"(, color="red")?\];')
    lines = [line for line in dot.splitlines() if "label=" in line and "->" not in line]
    assert len(lines) == 2, dot
    for line in lines:
        assert node.fullmatch(line), line


def test_audit_mermaid_is_a_graph_with_the_edges(audited: Project) -> None:
    mermaid = audited.run("audit", "au", "--mermaid", check=0).out

    assert mermaid.startswith("graph")
    assert mermaid.count("-->") == 2
    assert "a()" in mermaid and "b(a())" in mermaid


def test_audit_of_a_run_whose_only_dispatch_failed(proj: Project) -> None:
    proj.run("run", "--run-id", "empty", "--", "a", env={"FAIL_ALWAYS": "a"}, check=1)

    audits = proj.run("audit", "empty", "--json", check=0).json()

    assert [(x["task"], x["status"], x["sources"]) for x in audits] == [("a", "failed", [])]


# -- run references and store names (issue 12, items 3 and 5) -----------------------------------


def test_a_run_is_named_by_last_or_a_unique_prefix_wherever_one_is_taken(
        proj: Project) -> None:
    proj.run("run", "--run-id", "nightly-41", "--", "a", check=0)
    proj.run("run", "--run-id", "nightly-42", "--", "c", env={"FAIL_ALWAYS": "c"}, check=1)
    assert proj.run("show", "last", "--json", check=0).json()["run"] == "nightly-42"
    assert proj.run("show", "nightly-41", "--json", check=0).json()["status"] == "done"
    assert proj.run("audit", "nightly-42", "--json", check=0).json()[0]["status"] == "failed"
    assert_one_line_error(proj.run("show", "nightly"), "'nightly' names 2 runs",
                          "nightly-41, nightly-42")
    assert_one_line_error(proj.run("logs", "nope"), "no run 'nope'")
    proj.run("resume", "last", env={"FAIL_ALWAYS": "c"}, check=1)  # the newest, failing again
    resumed = proj.run("show", "nightly-42", "--json", check=0).json()
    assert [e["kind"] for e in resumed["events"]].count("resumed") == 1
    proj.run("run", "--run-id", "other", "--", "a", check=0)
    assert proj.run("show", "oth", "--json", check=0).json()["run"] == "other"
    assert proj.run("export", "nightly-4", "-o", "x.retap").code == 2  # two: refused
    assert not (proj.path / "x.retap").exists()


def test_a_store_named_in_a_missing_folder_or_with_an_unknown_scheme_is_refused(
        proj: Project) -> None:
    assert_one_line_error(proj.run("runs", "--store", "typo/retap.db"),
                          "no such directory: typo")
    assert_one_line_error(proj.run("show", "r", "--store", "sqlite:///x.db"),
                          "not a store this retap knows")
    assert proj.run("runs", "--json", check=0).json() == []  # the default store: a new project


@pytest.mark.parametrize("formats", [("--json", "--dot"), ("--dot", "--mermaid"),
                                     ("--mermaid", "--json", "--dot")])
def test_audit_takes_one_format_at_a_time(proj: Project, formats: tuple[str, ...]) -> None:
    proj.run("run", "--run-id", "r", "--", "a", "1", check=0)
    line = refused(proj.run("audit", "r", *formats))
    assert "one format at a time" in line
    for fmt in formats:
        assert fmt in line
    assert proj.run("audit", "r", formats[0], check=0).out
