"""A store is data, never code (case 6); runs stored with pickle can be continued and shown
(case 9); run ids are checked before anything is written (case 12)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import retap
from conftest import Project, assert_one_line_error
from crafting import allow_sealing, seal_sql
from retap.store import rows

KEY = {"RETAP_PICKLE_KEY": "pickle test key"}


def edit_spec(project: Project, run: str, change: Any) -> None:
    """Rewrite a run's stored spec with ``change(spec)`` and recompute the row's checksum, as
    someone crafting a store on purpose would."""
    conn = sqlite3.connect(project.path / ".retap" / "retap.db")
    allow_sealing(conn)
    (data,) = conn.execute("SELECT spec FROM runs WHERE run=?", (run,)).fetchone()
    spec = json.loads(data)
    change(spec)
    conn.execute("UPDATE runs SET spec=? WHERE run=?", (json.dumps(spec).encode(), run))
    conn.execute(f"UPDATE runs SET crc={seal_sql(rows.RUN)} WHERE run=?", (run,))
    conn.commit()
    conn.close()


@pytest.fixture
def failed_run(project: Project) -> Project:
    project.run("run", "--run-id", "t", "--", "load", "x", "--:", "fail", "--", "dump", check=1)
    return project


PAYLOAD = "__import__('pathlib').Path('pwned').touch() or 0"


def eval_switch(spec: dict[str, Any]) -> None:
    spec["nodes"][0]["leads"] = [[PAYLOAD]]
    spec["joins"] = [{"id": 0, "kind": "switch", "sources": [0], "targets": [1, 2],
                      "selector": "builtins:eval"}]


def task_is(path: str) -> Any:
    def change(spec: dict[str, Any]) -> None:
        spec["nodes"][1]["task"] = path
        spec["nodes"][1]["config"] = {}
    return change


@pytest.mark.parametrize("change", [eval_switch, task_is("builtins:eval"), task_is("os:system"),
                                    task_is("retap.taskdef:task"), task_is("retap:__builtins__")],
                         ids=["eval-selector", "eval-task", "system-task", "decorator-task",
                              "dunder"])
@pytest.mark.parametrize("verb", ["resume", "replay"])
def test_case_6_a_crafted_store_cannot_make_retap_call_an_undeclared_callable(
        failed_run: Project, change: Any, verb: str) -> None:
    edit_spec(failed_run, "t", change)
    result = failed_run.run(verb, "t")
    assert_one_line_error(result)
    assert not (failed_run.path / "pwned").exists()


def test_case_6_a_declared_selector_still_works_from_a_recorded_run(project: Project) -> None:
    project.retapfile('''
        import retap

        @retap.selector
        def by_length(value):
            return 0 if len(value) < 4 else 1
        ''')
    project.write("flow.yaml", """
        nodes:
          src: {task: load, inputs: [hello]}
          short: {task: dump}
          long: {task: fail}
        joins:
          - {from: src, to: [short, long], kind: switch, selector: "retapfile:by_length"}
        """)
    project.run("run", "--run-id", "w", "flow.yaml", check=1)  # "hello" went to `fail`
    project.write("retapfile.py", (project.path / "retapfile.py").read_text().replace(
        "< 4", "< 99"))
    result = project.run("replay", "w", check=0)  # the selector, called again, picks dump
    assert result.out == "hello\n"


def test_case_6_an_undeclared_selector_is_refused_before_a_recorded_run_starts(
        project: Project) -> None:
    project.retapfile('''
        def by_length(value):
            return 0
        ''')
    project.write("flow.yaml", """
        nodes:
          src: {task: load, inputs: [hello]}
          out: {task: dump}
        joins:
          - {from: src, to: [out], kind: switch, selector: "retapfile:by_length"}
        """)
    line = assert_one_line_error(project.run("run", "flow.yaml"))
    assert "not a declared selector" in line
    assert not (project.path / ".retap").exists()


# Case 9: pickle --------------------------------------------------------------------------------

POINTS = '''
import dataclasses
import os

import retap


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


@retap.task
def make(n: str) -> Point:
    return Point(int(n), 2)


@retap.task
def move(p: Point) -> Point:
    if os.path.exists("fail-move"):
        raise RuntimeError("cannot move")
    return Point(p.x + 1, p.y)
'''


@pytest.fixture
def pickled(project: Project) -> Project:
    project.retapfile(POINTS)
    project.env.update(KEY)
    (project.path / "fail-move").touch()
    project.run("run", "--run-id", "p", "--codec", "pickle", "--", "make", "1", "--:", "move",
                "--:", "dump", check=1)
    (project.path / "fail-move").unlink()
    return project


@pytest.mark.parametrize("verb", ["resume", "replay"])
def test_case_9_a_pickle_run_continues_with_its_own_codec(pickled: Project, verb: str) -> None:
    result = pickled.run(verb, "p", check=0)
    assert result.out == '"Point(x=2, y=2)"\n'
    conn = sqlite3.connect(pickled.path / ".retap" / "retap.db")
    codecs = {c for (c,) in conn.execute('SELECT codec FROM "values"')}
    assert codecs == {"pickle"}


@pytest.mark.parametrize("args", [("show", "p"), ("audit", "p"), ("audit", "p", "--json"),
                                  ("show", "p", "--json"), ("check",)], ids=" ".join)
@pytest.mark.parametrize("key", [True, False], ids=["key", "no-key"])
def test_case_9_show_and_audit_read_a_pickle_run(pickled: Project, args: tuple[str, ...],
                                                 key: bool) -> None:
    env = {} if key else {"RETAP_PICKLE_KEY": ""}
    result = pickled.run(*args, env=env)
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    if args[0] == "audit" and len(args) == 2:
        assert ("Point(x=1, y=2)" in result.out) is key, result.out
        assert ("<pickle value" in result.out) is not key, result.out


# Case 12: run ids --------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["../x", "a/b", "x" * 129, "a\nb", ".", "..", "a b", "é",
                                    ""], ids=["dotdot-slash", "slash", "too-long", "newline",
                                              "dot", "dotdot", "space", "non-ascii", "empty"])
def test_case_12_a_bad_run_id_is_refused_before_anything_is_written(
        project: Project, run_id: str) -> None:
    line = assert_one_line_error(project.run("run", "--run-id", run_id, "--", "load", "a"))
    assert "bad run id" in line
    assert not (project.path / ".retap").exists()


@pytest.mark.parametrize("run_id,why", [("last", "names the newest run"),
                                        ("--", "read it as an option"),
                                        ("-x", "read it as an option")])
def test_a_new_run_may_not_be_called_last_nor_begin_with_a_dash(
        project: Project, tmp_path: Path, run_id: str, why: str) -> None:
    line = assert_one_line_error(project.run("run", "--run-id", run_id, "--", "load", "a"))
    assert f"bad run id {run_id!r}" in line and why in line
    assert not (project.path / ".retap").exists()
    wf = retap.Workflow()
    wf.add(retap.task(lambda: 1, name="one"))
    with pytest.raises(retap.BadRunId, match=why):
        retap.App(wf, retap.open_store(tmp_path / "s.db"), run_id=run_id).run()


def test_case_12_the_python_api_refuses_a_bad_run_id(tmp_path: Path) -> None:
    with pytest.raises(retap.BadRunId):
        retap.App(retap.Workflow(), run_id="../escape")


def test_case_12_a_good_run_id_of_128_characters_works(project: Project) -> None:
    run_id = "a-Z_0." + "x" * 122
    project.run("run", "--run-id", run_id, "--", "load", "a", check=0)
    assert project.last_run() == run_id
