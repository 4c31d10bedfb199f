"""A store is data (issue item 16): a store edited by hand, every checksum recomputed so it
passes, may hold any value in any field, and still no command reading it may fail with a
traceback. `runs`, `show` and `audit` end with exit 0, or 2 and one line `retap: error: ...`;
`check` may also exit 1 (the problems it lists), and `resume` and `replay` may also exit 1 (a
task failed). Rows are crafted at random (hypothesis, commands in-process) and by name (the
cases the issue lists, commands in a subprocess)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import Project, assert_one_line_error
from crafting import allow_sealing, seal_sql
from retap.cli import main
from retap.store import boundary, rows
from retap.store.codec import digest

COPY_TASK = '''
from pathlib import Path

import retap


class Copy(retap.FileTask):
    """Copies --src to --dst."""

    src: retap.Input = retap.config(Path("a.txt"), help="the file read")
    dst: retap.Output = retap.config(Path("b.txt"), help="the file written")

    def process(self):
        with self.output(self.dst) as tmp:
            Path(tmp).write_bytes(self.src.read_bytes())
        return str(self.dst)
'''
LONG = "x" * 100  # more than 64 bytes of JSON: kept in "values", not inline
# r1 fails part way: node 4 fails on the long value, node 7 fails before the sync join into
# node 8 fires (half full), and the gate into node 2 counts; r2 and r3 are remembered (memo).
RUNS = [("r1", "--on-error", "continue", "--", "load", "--yaml", "[1, 2, 3]", "--:i", "dump",
         "--:.gate:2", "dump", "--", "load", LONG, "--:", "fail", "--", "load", "a", "--",
         "load", "b", "--:", "fail", "--", "dump", "--[5,7][8].sync"),
        ("r2", "--", "glob", "*.txt"),
        ("r3", "--", "copy"),
        ("r4", "-j", "2", "--", "load", "--yaml", "[1, 2]", "--:i", "dump")]  # on workers
CRC_TABLES = {"runs": rows.RUN, "dispatches": rows.DISPATCH, "queue": rows.QUEUE,
              "join_entries": rows.JOIN_ENTRY, "join_counts": rows.JOIN_COUNT,
              "memo": rows.MEMO, "file_digests": rows.FILE, "attempts": rows.ATTEMPT,
              "events": rows.EVENT, "logs": rows.LOG, "workers": rows.WORKER,
              "counters": rows.COUNTER}
TABLES = [*CRC_TABLES, "values", "outputs", "versions"]
STORE = "s.db"


def build(path: Path) -> None:
    """The project at ``path``: a retapfile, an input file and a store of three runs."""
    path.mkdir(parents=True)
    (path / "retapfile.py").write_text(COPY_TASK)
    (path / "a.txt").write_text("hi\n")
    os.utime(path / "a.txt", (1e9, 1e9))  # old enough for its digest to be remembered
    for run, *workflow in RUNS:
        done = subprocess.run([sys.executable, "-m", "retap", "--store", STORE, "run", "-q",
                               "--run-id", run, *workflow], cwd=path, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == (1 if run == "r1" else 0), done.stderr
    done = subprocess.run([sys.executable, "-m", "retap", "--store", STORE, "resume", "r1"],
                          cwd=path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr  # fails again: its first attempts are kept
    with contextlib.closing(sqlite3.connect(path / STORE)) as conn:
        for table in TABLES:
            assert conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0], table
        assert conn.execute("SELECT count(*) FROM queue WHERE run='r1'").fetchone()[0] == 2


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project, built in ``work`` (the store holds absolute paths) and moved aside."""
    base = tmp_path_factory.mktemp("crafted")
    build(base / "work")
    return (base / "work").rename(base / "pristine")


def _copy(source: str, target: str) -> None:
    if Path(source).name == "a.txt":  # keeps the inode its remembered digest names; no task
        os.link(source, target)       # writes it
    else:
        shutil.copy2(source, target)


def copy_project(source: Path, target: Path) -> Path:
    """A copy of the project at ``target`` (with the store's -wal and -shm, if any)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=_copy)
    return target / STORE


def key_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    return [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]]


def edit(db: Path, table: str, where: dict[str, Any], column: str, value: Any) -> None:
    """Set ``column`` of the row ``where`` to ``value`` as a hand would, then fix up what a
    careful editor fixes: every row's checksum, and a changed value's digest and its refs."""
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        allow_sealing(conn)
        match = " AND ".join(f"{c} IS ?" for c in where)
        changed = conn.execute(f'UPDATE "{table}" SET {column}=? WHERE {match}',
                               (value, *where.values())).rowcount
        assert changed == 1, (table, where)
        if table == "values" and column in ("codec", "data"):
            codec, data = conn.execute('SELECT codec, data FROM "values" WHERE digest=?',
                                       (where["digest"],)).fetchone()
            if isinstance(codec, str) and isinstance(data, bytes):
                old, new = where["digest"], digest(codec, data)
                conn.execute('UPDATE OR IGNORE "values" SET digest=? WHERE digest=?', (new, old))
                for t, c in [("dispatches", "result"), ("dispatches", "inputs"),
                             ("queue", "inputs"), ("memo", "result")]:
                    conn.execute(f"UPDATE {t} SET {c}=replace({c}, ?, ?)", (old, new))
        for name, columns in CRC_TABLES.items():
            conn.execute(f"UPDATE {name} SET crc={seal_sql(columns)}")


# -- values a hand may put in a field ------------------------------------------------------------

HEX = st.text("0123456789abcdef", min_size=32, max_size=32)
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_MARK = "\x00deep\x00"
JSON_TEXTS = st.sampled_from(
    ["", "5", "null", "[]", "{}", '"x"', "[1,2]", '[""]', '["="]', "[null]", "[5]",
     '{"$":"decimal","v":"abc"}', '{"$":"timedelta","v":1e300}', '{"$":"set","v":[[1]]}',
     '{"$":"bytes","v":"!!"}', '{"$":"nope","v":1}', '{"$":"datetime","v":"x"}', "NaN",
     "1e999", "[1e400]", '{"nodes":5}', DEEP])
INTS = st.one_of(st.integers(-(2**63), 2**63 - 1),
                 st.sampled_from([0, -1, 1, 7, 2**31, 2**62, 2**63 - 1, -(2**63)]))
FLOATS = st.one_of(st.floats(), st.sampled_from([1e300, -1e300, -1.0, 0.0, float("inf"),
                                                 float("-inf"), float("nan")]))
TEXTS = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
SCALARS = st.one_of(st.none(), INTS, st.just(float(2**70)), FLOATS, TEXTS, st.binary(max_size=20))
REFS = st.one_of(st.sampled_from(["=", "=[", "", "=" + DEEP]), HEX,
                 JSON_TEXTS.map(lambda t: "=" + t), JSON_TEXTS)
JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), INTS, st.just(2**70), FLOATS, TEXTS, HEX,
    st.sampled_from([[], {}, [1], [""], ["="], {"$": "decimal", "v": "abc"},
                     {"$": "timedelta", "v": 1e300}, {"$": "set", "v": [[1]]}, {"$": "tuple"},
                     DEEP_MARK]))


def paths(doc: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) \
        if isinstance(doc, list) else ()
    for key, child in items:
        yield from paths(child, (*here, key))


def mutated(data: st.DataObject, current: Any) -> Any:
    """``current`` (JSON text or bytes, maybe ``=``-prefixed) with one part of it changed."""
    text = current.decode() if isinstance(current, bytes) else current
    prefix = "=" if text.startswith("=") else ""
    doc = json.loads(text[len(prefix):])
    path = data.draw(st.sampled_from(list(paths(doc))), label="path")
    new = data.draw(JSON_LEAVES, label="leaf")
    if not path:
        doc = new
    else:
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans(), label="delete"):
            del parent[path[-1]]
        else:
            parent[path[-1]] = new
    out = prefix + json.dumps(doc).replace(json.dumps(DEEP_MARK), DEEP)
    return out.encode() if isinstance(current, bytes) else out


def is_json(value: Any) -> bool:
    try:
        text = value.decode() if isinstance(value, bytes) else value
        json.loads(text[1:] if text.startswith("=") else text)
    except (AttributeError, UnicodeDecodeError, ValueError):
        return False
    return True


# -- any value in any field, in-process ----------------------------------------------------------

READS = [("runs",), ("runs", "--json"), ("show", "{run}"), ("show", "{run}", "--json"),
         ("audit", "{run}"), ("audit", "{run}", "--json"), ("audit", "{run}", "--dot"),
         ("audit", "{run}", "--mermaid"), ("logs", "{run}"), ("logs", "{run}", "--json"),
         ("export", "{run}", "-o", "run.retap")]
COMMANDS = [*((c, {0, 2}) for c in READS), (("check",), {0, 1, 2}),
            (("check", "{run}"), {0, 1, 2}), (("resume", "{run}"), {0, 1, 2}),
            (("replay", "{run}"), {0, 1, 2})]


def invoke(db: Path, args: list[str], codes: set[int]) -> None:
    result = CliRunner().invoke(main, ["--store", str(db), *args], catch_exceptions=True)
    where = f"retap {' '.join(args)}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{where} raised:\n" + "".join(traceback.format_exception(
            type(result.exception), result.exception, result.exception.__traceback__)))
    assert result.exit_code in codes, (where, result.exit_code, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, (where, result.stderr[-2000:])
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("retap: error:"), (where, result.stderr)


@pytest.fixture
def workdir(pristine: Path) -> Iterator[Path]:
    """Where each example's copy lives: always the same path, as the store's file paths are
    absolute; the in-process commands run there."""
    work = pristine.parent / "work"
    saved = sys.path[:]
    try:
        yield work
    finally:
        sys.path[:] = saved
        sys.modules.pop("retapfile", None)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_in_any_field_ends_in_exit_0_1_or_2_never_a_traceback(
        pristine: Path, workdir: Path, data: st.DataObject) -> None:
    db = copy_project(pristine, workdir)
    table = data.draw(st.sampled_from(TABLES), label="table")
    with contextlib.closing(sqlite3.connect(db)) as conn:
        keys = key_columns(conn, table)
        columns = [c[1] for c in conn.execute(f'PRAGMA table_info("{table}")') if c[1] != "crc"]
        found = conn.execute(f'SELECT {", ".join(columns)} FROM "{table}"').fetchall()
    row = dict(zip(columns, data.draw(st.sampled_from(found), label="row"), strict=True))
    where = {k: row[k] for k in keys}
    column = data.draw(st.sampled_from(columns), label="column")
    current = row[column]
    kinds = {"scalar": SCALARS, "ref": REFS, "json bytes": JSON_TEXTS.map(str.encode)}
    kind = data.draw(st.sampled_from([*kinds, "mutated"] if is_json(current) else [*kinds]),
                     label="kind")
    value = mutated(data, current) if kind == "mutated" else data.draw(kinds[kind], label="value")
    if isinstance(value, int) and abs(value) >= 2**63:
        value = float(value)  # what SQLite makes of an integer literal too big for it
    try:
        edit(db, table, where, column, value)
    except sqlite3.IntegrityError:  # NOT NULL or a duplicate key: no hand can store that
        assume(False)
    run = "r3" if table in ("file_digests", "outputs") else "r1"
    if "run" in row:  # the run the row belonged to before the edit
        run = str(row["run"])
    with contextlib.chdir(workdir):
        for args, codes in COMMANDS:
            invoke(db, [a.format(run=run) for a in args], codes)


# -- the cases the issue names, through the real command -----------------------------------------

QUEUED = "SELECT id FROM queue WHERE run='r1' ORDER BY pos"  # the failed dispatch resumed first
JOINED = "SELECT audit FROM join_entries WHERE run='r1'"  # held in the half-full sync


def r1(**extra: Any) -> dict[str, Any]:
    return {"run": "r1", **extra}


CASES = {  # name: (edits as (table, key or a query for the id, column, value), commands)
    "spec-is-a-list": ([("runs", {}, "spec", b"[]")], ["show", "audit", "resume"]),
    "sources-is-5": ([("dispatches", QUEUED, "sources", "5")], ["show", "audit"]),
    "held-sources-is-5": ([("dispatches", JOINED, "sources", "5")], ["audit", "resume"]),
    "queued-input-is-empty": ([("queue", QUEUED, "inputs", '[""]')], ["show", "resume"]),
    "result-is-a-bad-decimal": ([("dispatches", JOINED, "result",
                                  '={"$":"decimal","v":"abc"}')], ["audit", "resume"]),
    "result-is-a-huge-timedelta": ([("dispatches", JOINED, "result",
                                     '={"$":"timedelta","v":1e300}')], ["audit", "resume"]),
    "result-is-100k-deep": ([("dispatches", JOINED, "result", "=" + DEEP)],
                            ["audit", "resume"]),
    "created-is-1e300": ([("runs", {}, "created", 1e300)], ["runs", "show", "audit", "resume"]),
    "owner-pid-is-2**62": ([("runs", {}, "status", "running"),
                            ("runs", {}, "owner_pid", 2**62)],
                           ["runs", "show", "audit", "resume"]),
    "join-slot-out-of-range": ([("join_entries", JOINED, "slot", 7)], ["resume"]),
}


CRAFTED = [(n, c) for n, (_, commands) in CASES.items() for c in commands]


@pytest.mark.parametrize(("name", "command"), CRAFTED, ids=[f"{n}-{c}" for n, c in CRAFTED])
def test_a_crafted_row_is_refused_in_one_line(pristine: Path, tmp_path: Path, name: str,
                                              command: str) -> None:
    db = copy_project(pristine, tmp_path / "project")
    for table, key, column, value in CASES[name][0]:
        if isinstance(key, str):
            with contextlib.closing(sqlite3.connect(db)) as conn:
                ident = conn.execute(key).fetchone()[0]
            key = {"id": ident} if table != "join_entries" else {"audit": ident}
        edit(db, table, r1(**key), column, value)
    project = Project(db.parent)

    result = project.run(command, *([] if command == "runs" else ["r1"]), "--store", STORE)

    line = assert_one_line_error(result)
    assert line.startswith("retap: error:"), line


def test_what_the_writer_s_json_can_hold_is_read_back_and_the_rest_named() -> None:
    # the store writes its JSON columns with the standard json module: NaN, Infinity and
    # integers of any size are its output too, and must read back
    event = {"seq": 1, "at": 1.5, "kind": "set", "data": json.dumps(
        {"x": float("nan"), "y": float("inf"), "n": 10 ** 40})}
    row = boundary.valid(boundary.EventRow, dict(event))
    assert isinstance(row, boundary.EventRow) and row.data["n"] == 10 ** 40
    assert boundary.valid(boundary.EventRow, {**event, "data": "[1]"}) == \
        "data: Expected `object`, got `array`"
    assert boundary.valid(boundary.EventRow, {**event, "data": 5}) == \
        "data: JSON text expected, got `int`"
    assert boundary.valid(boundary.EventRow, {**event, "seq": True}) == \
        "seq: Expected `int`, got `bool`"
    assert boundary.valid(boundary.EventRow, {**event, "kind": "set\n"}).startswith("kind: ")
    assert boundary.valid(boundary.EventRow, {**event, "extra": 1}) == \
        "row: Object contains unknown field `extra`"
    run = {"run": "..", "status": "done", "created": 1.0}
    assert boundary.valid(boundary.RunRow, run) == "run: not a valid run id"
