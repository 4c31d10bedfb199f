"""Row checksums in both their forms: rows written now carry the marshalled form, stores
and exported files written before schema 9 carry the ``repr`` form, and both are read and
both catch a changed field. Through the real `retap` command where a user would see it."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import marshal
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, assert_one_line_error
from retap.store import open_store, rows
from retap.store.portable import CHECKED, TABLES
from retap.torture.older import as_older_retap

TASKS = '''
import retap


class Half(retap.Task, name="half"):
    """x / 2, failing on 3 until the file `ok` exists."""

    def process(self, x):
        import os
        if x == 3 and not os.path.exists("ok"):
            raise ValueError("three")
        return x / 2
'''


def repr_crc(*fields: Any) -> int:
    """The checksum as retap wrote it before schema 9."""
    return zlib.crc32(repr(fields).encode())


def test_the_marshalled_form_is_pinned_and_above_the_older_one() -> None:
    fields = ("r", "a" * 32, 7, 2**40, 1.5, -0.0, None, b"\x00x", "\u00e9\ud800")
    assert rows.crc(*fields) == rows.MARSHALLED + zlib.crc32(marshal.dumps(fields, 2))
    # marshal's version 2 must not change under a newer Python: this is its exact output
    assert rows.crc("r", 1, 1.5, None, b"x") == rows.MARSHALLED + 0x6B6D68D1
    assert rows.holds(rows.crc(*fields), fields)


@pytest.mark.parametrize("changed", [
    ("r", 2, 1.5, None, b"x"), ("r", 1.0, 1.5, None, b"x"), ("r", 1, 1.5, "", b"x"),
    ("r", 1, 1.5, None, "x"), ("R", 1, 1.5, None, b"x"), ("r", 1, 1.5000001, None, b"x"),
    ("r", True, 1.5, None, b"x"), ("r", 1, 1.5, None, b"x", None)])
def test_either_form_refuses_a_changed_field_or_type(changed: tuple[Any, ...]) -> None:
    fields = ("r", 1, 1.5, None, b"x")
    for stored in (rows.crc(*fields), repr_crc(*fields)):
        assert rows.holds(stored, fields)
        assert not rows.holds(stored, changed)


def test_a_field_marshal_cannot_write_is_checksummed_in_the_older_form() -> None:
    class Name(str):
        pass

    stored = rows.crc("run", Name("node"))
    assert stored < rows.MARSHALLED
    assert rows.holds(stored, ("run", "node"))  # what a driver reads back: a plain str


def reseal_in_the_older_form(path: Path) -> None:
    """Make a store look as a retap before schema 9 left it (the torture runner's way)."""
    with open_store(path) as store:
        as_older_retap(store, [r.run for r in store.runs()])
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM retap_schema").fetchall() == [(8,)]
        assert all(crc == repr_crc(*fields) for *fields, crc in conn.execute(
            f"SELECT {', '.join(rows.DISPATCH)}, crc FROM dispatches"))


def failed_run(project: Project) -> str:
    project.retapfile(TASKS)
    project.run("run", "--run-id", "r", "--", "load", "--yaml", "[2, 3, 4]", "--:i", "half",
                "--:", "dump", check=1)
    return "r"


def test_a_store_written_before_schema_9_is_read_resumed_and_replayed(
        project: Project) -> None:
    run = failed_run(project)
    audit = project.run("audit", run, "--json", check=0).json()
    store = project.path / ".retap" / "retap.db"
    reseal_in_the_older_form(store)
    assert project.run("check", check=0).code == 0
    assert project.run("audit", run, "--json", check=0).json() == audit
    (project.path / "ok").write_text("")
    resumed = project.run("resume", run, check=0)
    assert json.loads(resumed.out.splitlines()[-1]) == 2.0
    project.run("replay", run, check=0)
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT version FROM retap_schema").fetchall() == [(9,)]
        forms = {crc >= rows.MARSHALLED for (crc,) in
                 conn.execute("SELECT crc FROM dispatches WHERE run=?", (run,))}
    assert forms == {False, True}  # the old rows kept their form, the new ones the new
    assert project.run("check", check=0).code == 0


def test_a_changed_field_in_a_row_of_the_older_form_is_refused(project: Project) -> None:
    run = failed_run(project)
    store = project.path / ".retap" / "retap.db"
    reseal_in_the_older_form(store)
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE dispatches SET attempts = attempts + 1 WHERE status = 'failed'")
    assert_one_line_error(project.run("resume", run), "fails its checksum")
    assert "fails its checksum" in project.run("check").out


def exported_in_format_1(project: Project, tmp_path: Path, version: Any = 1) -> Path:
    """An exported run as retap wrote it before schema 9: ``repr`` checksums, format 1."""
    run = failed_run(project)
    file = tmp_path / "r.retap"
    project.run("export", run, "-o", str(file), check=0)
    lines = gzip.decompress(file.read_bytes()).splitlines()
    header = json.loads(lines[0])
    header["version"] = version
    out = [json.dumps(header).encode()]
    for line in lines[1:-1]:
        table, values = json.loads(line)
        if table in CHECKED:
            row = dict(zip(TABLES[table], values, strict=True))
            values[-1] = repr_crc(*(_plain(row[c]) for c in CHECKED[table]))
        out.append(json.dumps([table, values]).encode())
    digest = hashlib.sha256(b"".join(line + b"\n" for line in out)).hexdigest()
    out.append(json.dumps({"sha256": digest}).encode())
    file.write_bytes(gzip.compress(b"".join(line + b"\n" for line in out)))
    return file


def _plain(value: Any) -> Any:
    return base64.b64decode(value["b64"]) if isinstance(value, dict) else value


def test_a_run_exported_in_format_1_is_imported(project: Project, tmp_path: Path) -> None:
    file = exported_in_format_1(project, tmp_path)
    other = Project(tmp_path / "other")
    other.path.mkdir()
    other.retapfile(TASKS)
    other.run("import", str(file), check=0)
    assert [a["status"] for a in other.run("audit", "r", "--json", check=0).json()].count(
        "done") == 3
    other.run("check", check=0)


@pytest.mark.parametrize("version", [3, True, "2"])
def test_a_file_in_a_format_this_retap_does_not_read_is_refused_by_name(
        project: Project, tmp_path: Path, version: Any) -> None:
    file = exported_in_format_1(project, tmp_path, version)
    other = Project(tmp_path / "other")
    other.path.mkdir()
    assert_one_line_error(other.run("import", str(file)), "exported in format",
                          "reads formats 1, 2")
