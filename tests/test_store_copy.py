"""``retap store copy``: run history moves from SQLite to PostgreSQL and back, and a copied
run reads, checks and resumes as the original would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import Project, assert_one_line_error
from pgserver import fresh_schema


@pytest.fixture
def pg(logging_project: Project) -> Iterator[tuple[Project, str]]:
    with fresh_schema("copy") as url:
        yield logging_project, url


def audit(proj: Project, run: str, store: str) -> object:
    return proj.run("audit", run, "--store", store, "--json", check=0).json()


def test_runs_go_to_postgres_and_back_and_resume_there(pg: tuple[Project, str]) -> None:
    proj, url = pg
    proj.run("run", "--run-id", "ok", "--", "a", "1", "--:", "b", check=0)
    proj.run("run", "--run-id", "broken", "--", "a", "2", "--:", "c", check=1,
             env={"FAIL_ONCE": "c"})
    sqlite = ".retap/retap.db"

    copied = proj.run("store", "copy", sqlite, url, check=0)
    assert sorted(copied.lines) == ["broken: 2 dispatch(es)", "ok: 2 dispatch(es)"]
    assert "copied 2 run(s)" in copied.err
    for run in ("ok", "broken"):
        assert audit(proj, run, url) == audit(proj, run, sqlite)
    assert proj.run("check", "--store", url, check=0).out.strip().endswith(": ok")

    before = proj.counts()
    proj.run("resume", "broken", "--store", url, check=0)
    assert proj.counts() - before == {"c": 1}  # only the failed dispatch ran again

    back = str(proj.path / "back.db")
    proj.run("store", "copy", url, back, "--run", "broken", check=0)
    assert audit(proj, "broken", back) == audit(proj, "broken", url)
    statuses = {r["run"]: r["status"] for r in proj.run("runs", "--store", back, "--json",
                                                        check=0).json()}
    assert statuses == {"broken": "done"}


def test_a_run_the_destination_has_is_refused_before_anything_is_written(
        pg: tuple[Project, str]) -> None:
    proj, url = pg
    proj.run("run", "--run-id", "one", "--", "a", "1", check=0)
    proj.run("store", "copy", ".retap/retap.db", url, check=0)
    proj.run("run", "--run-id", "two", "--", "a", "2", check=0)
    line = assert_one_line_error(proj.run("store", "copy", ".retap/retap.db", url), "one")
    assert "exists" in line or "already" in line
    runs = [r["run"] for r in proj.run("runs", "--store", url, "--json", check=0).json()]
    assert runs == ["one"]


def test_copying_from_a_store_that_is_not_there_is_one_line(project: Project) -> None:
    assert_one_line_error(project.run("store", "copy", "missing.db", "other.db"),
                          "missing.db", "no such store")
    assert not (project.path / "other.db").exists()


def test_a_refused_copy_or_import_into_a_new_store_leaves_no_store_behind(
        project: Project) -> None:
    project.run("run", "--run-id", "a", "--", "load", "x", check=0)
    line = assert_one_line_error(
        project.run("store", "copy", "--run", "nosuch", ".retap/retap.db", "new.db"), "nosuch")
    assert not list(project.path.glob("new.db*")), line
    project.run("store", "copy", ".retap/retap.db", "kept.db", check=0)
    line = assert_one_line_error(project.run("store", "copy", ".retap/retap.db", "kept.db"),
                                 "already exists", "nothing was copied")
    assert "--run-id" not in line and (project.path / "kept.db").exists()
    (project.path / "junk.retap").write_bytes(b"not an export")
    assert_one_line_error(project.run("import", "junk.retap", "--store", "imported.db"),
                          "not an exported run")
    assert not list(project.path.glob("imported.db*"))
