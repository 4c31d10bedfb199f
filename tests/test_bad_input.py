"""Bad input through the real `retap` command: bytes that are not UTF-8, Unicode digits,
retapfiles that exit, malformed workflow files, YAML alias bombs and deeply nested JSON.
A usage mistake is one line and exit 2; an input a task refuses is a failed, resumable run."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from conftest import Project, Result, assert_one_line_error
from retap.safeyaml import load_yaml

MEMORY = ("--store", ":memory:")
NOT_UTF8 = os.fsdecode(b"\xff")  # how Python hands over a word that is not UTF-8: '\udcff'


def _bomb_levels() -> list[str]:
    """Nine anchors, each a list of nine aliases of the one before: 9**9 strings expanded."""
    levels = ['&a ["x","x","x","x","x","x","x","x","x"]']
    for before, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"&{name} [{','.join(['*' + before] * 9)}]")
    return levels


BOMB = "".join(f"{name}: {level}\n" for name, level in zip("abcdefghi", _bomb_levels(),
                                                            strict=True))
FLOW_BOMB = "[" + ", ".join(_bomb_levels()) + "]"  # the same, as one command-line word

LIST_TASKS = '''
import retap


class Count(retap.Task):
    """Counts its configured items."""

    items: list[str] = retap.config([])
    table: dict[str, int] = retap.config({})

    def process(self):
        return len(self.items) + len(self.table)
'''


def tap(project: Project, *words: str) -> Result:
    """`retap run --store :memory: -- WORDS...`, stopped if it takes more than ten seconds."""
    return project.run("run", *MEMORY, "--", *words, timeout=10)


def assert_task_refused(result: Result, *needles: str) -> None:
    """A task refused its input: exit 1, no traceback, one stderr line saying why."""
    assert result.code == 1, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    failed = [line for line in result.err.splitlines() if "failed: TaskFailed" in line]
    assert len(failed) == 1, result.err
    for needle in needles:
        assert needle in failed[0], (needle, failed[0])


def failed_run(project: Project) -> str:
    """A run in the project's store whose one node (fail) failed; returns its id."""
    project.run("run", "--run-id", "r1", "--", "fail", "x", check=1)
    return "r1"


# -- 1. words that are not UTF-8 ---------------------------------------------------------------


@pytest.mark.parametrize(("words", "position"), [
    (("load", NOT_UTF8), "word 2"),
    (("load", "x", "--", "fail", "--message", NOT_UTF8), "word 6"),
    (("load", "--config", NOT_UTF8 + ".yaml", "x"), "word 3"),
], ids=["an input", "a config value", "a config file name"])
def test_a_word_that_is_not_utf8_is_refused_naming_its_position(
        project: Project, words: tuple[str, ...], position: str) -> None:
    result = tap(project, *words)

    assert_one_line_error(result, "not valid UTF-8", position)


@pytest.mark.parametrize(("name", "words", "needle"), [
    ("flow.yaml", ("flow.yaml",), "not UTF-8"),
    ("settings.yaml", ("--", "load", "--config", "settings.yaml", "x"), "UTF-8"),
], ids=["a workflow file", "a config file"])
def test_a_file_that_is_not_utf8_is_refused_in_one_line(
        project: Project, name: str, words: tuple[str, ...], needle: str) -> None:
    (project.path / name).write_bytes(b"nodes: {a: load}\n# \xff\n")

    result = project.run("run", *MEMORY, *words)

    assert_one_line_error(result, name, needle)


def test_a_set_value_that_is_not_utf8_is_refused_in_one_line(project: Project) -> None:
    run = failed_run(project)

    result = project.run("resume", run, "--set", f"0.message={NOT_UTF8}")

    assert_one_line_error(result, "--set", "not valid UTF-8")


# -- 2. Unicode digits where ASCII digits are meant --------------------------------------------


@pytest.mark.parametrize("words", [
    ("load", "x", "--", "dump", "--[0][²]"),
    ("load", "x", "--", "dump", "--[²][1]"),
    ("load", "x", "--:.gate:²", "dump"),
    ("load", "x", "--", "dump", "--[0][1].gate:²"),
], ids=["join target", "join source", "sequence gate limit", "join gate limit"])
def test_a_unicode_digit_in_a_join_is_refused_in_one_line(project: Project,
                                                          words: tuple[str, ...]) -> None:
    join = next(word for word in words if "²" in word)

    result = tap(project, *words)

    assert_one_line_error(result, "workflow syntax", repr(join))


def test_a_unicode_digit_as_a_set_node_is_a_name_that_no_node_has(project: Project) -> None:
    run = failed_run(project)

    result = project.run("resume", run, "--set", "².message=hi")

    assert_one_line_error(result, "--set", "'²'")


# -- 3. task modules that exit while they are imported -----------------------------------------

EXITING = {
    "sys.exit()": "import sys\nsys.exit()\n",
    "sys.exit(0)": "import sys\nsys.exit(0)\n",
    "raise SystemExit": "raise SystemExit(3)\n",
    "a BaseException": "class Stop(BaseException):\n    pass\n\n\nraise Stop('no')\n",
}


RUN_LOAD = ("run", *MEMORY, "--", "load", "x")


@pytest.mark.parametrize(("case", "command"), [*((case, RUN_LOAD) for case in EXITING),
                                               ("sys.exit()", ("list",))],
                         ids=[*(f"run, {case}" for case in EXITING), "list, sys.exit()"])
def test_a_retapfile_that_exits_on_import_is_refused_in_one_line(
        project: Project, case: str, command: tuple[str, ...]) -> None:
    project.retapfile(EXITING[case])

    result = project.run(*command)

    assert_one_line_error(result, "cannot load tasks from", "retapfile.py")


def test_a_task_module_that_exits_on_import_is_refused_in_one_line(project: Project) -> None:
    project.write("mytasks.py", EXITING["sys.exit(0)"])

    result = tap(project, "mytasks:Shout", "x")

    assert_one_line_error(result, "cannot load tasks from mytasks", "SystemExit")


def test_an_entry_point_that_exits_on_import_is_refused_in_one_line(project: Project,
                                                                    tmp_path_factory) -> None:
    site = tmp_path_factory.mktemp("site")
    info = site / "byepkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: byepkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[retap.tasks]\nbye = byepkg:Bye\n")
    (site / "byepkg.py").write_text(EXITING["sys.exit()"])

    result = project.run("run", *MEMORY, "--", "bye", env={"PYTHONPATH": str(site)})

    assert_one_line_error(result, "entry point bye", "SystemExit")


# -- 4. malformed workflow files ---------------------------------------------------------------

MALFORMED = {
    "a config key that is not a name": ("nodes: {a: {task: load, config: {1: 2}}}", "'a'"),
    "a null node id": ("nodes: {null: {task: load}}", "node None"),
    "a null id in the list form": ("nodes: [{id: null, task: load}]", "node 0"),
    "a join that is a number": ("nodes: {a: load}\njoins: [5]", "join 0"),
    "a join id that is a list": ("nodes: {a: load, b: dump}\n"
                                 "joins: [{from: a, to: b, id: [1]}]", "join 0"),
    "a join id that is a bool": ("nodes: {a: load, b: dump}\n"
                                 "joins: [{from: a, to: b, id: true}]", "join 0"),
    "a join kind that is a list": ("nodes: {a: load, b: dump}\n"
                                   "joins: [{from: a, to: b, kind: [1]}]", "join 0"),
    "a join from a list of lists": ("nodes: {a: load, b: dump}\n"
                                    "joins: [{from: [[1]], to: b}]", "join 0"),
    "inputs that are a number": ("nodes: {a: {task: load, inputs: 5}}", "'a'"),
    "leads that are not lists": ("nodes: {a: {task: load, leads: [5]}}", "'a'"),
    "a task that is a number": ("nodes: {a: {task: 5}}", "'a'"),
    "unknown keys of several types": ("nodes: {a: {task: load, 1: x, colour: red}}", "colour"),
    "no nodes": ("nodes: []", "empty"),
    "a top-level list": ("[1, 2]", "nodes"),
    "an unknown top-level key": ("nodes: {a: load}\njoinz: [[a, a]]", "joinz"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_workflow_file_is_refused_in_one_line_naming_the_part(
        project: Project, case: str) -> None:
    text, needle = MALFORMED[case]
    project.write("flow.yaml", text + "\n")

    result = project.run("run", *MEMORY, "flow.yaml")

    assert_one_line_error(result, "flow.yaml", needle)


def test_a_yaml_syntax_error_in_a_workflow_file_says_on_which_line(project: Project) -> None:
    project.write("flow.yaml", "nodes:\n  a: {task: load\n")

    result = project.run("run", *MEMORY, "flow.yaml")

    assert_one_line_error(result, "flow.yaml", "line 3")


# -- 5. YAML alias bombs -----------------------------------------------------------------------


def test_an_alias_bomb_in_a_workflow_file_is_refused_in_one_line(project: Project) -> None:
    project.write("flow.yaml", BOMB + "nodes: {a: load}\n")

    result = project.run("run", *MEMORY, "flow.yaml", timeout=10)

    assert_one_line_error(result, "flow.yaml", "refused", "aliases")


def test_an_alias_bomb_in_a_config_file_is_refused_in_one_line(project: Project) -> None:
    project.write("settings.yaml", BOMB)

    result = tap(project, "load", "--config", "settings.yaml", "x")

    assert_one_line_error(result, "settings.yaml", "aliases")


@pytest.mark.parametrize("word", ["--items", "--table"])
def test_an_alias_bomb_as_a_config_value_is_refused_in_one_line(project: Project,
                                                                word: str) -> None:
    project.retapfile(LIST_TASKS)
    value = FLOW_BOMB if word == "--items" else "{bomb: " + FLOW_BOMB + "}"

    result = tap(project, "count", word, value)

    assert_one_line_error(result, "count", word[2:], "aliases")


def test_an_alias_bomb_given_to_load_yaml_fails_the_task_in_one_line(project: Project) -> None:
    result = tap(project, "load", "--yaml", FLOW_BOMB)

    assert_task_refused(result, "input refused as YAML", "aliases")


@pytest.mark.parametrize("text", ["&a [*a]", "[" * 200 + "]" * 200],
                         ids=["an alias cycle", "deep nesting"])
def test_yaml_load_refuses_cycles_and_deep_nesting(project: Project, text: str) -> None:
    result = tap(project, "load", "--yaml", text)

    assert_task_refused(result, "input refused as YAML")


ORDINARY = {
    "a mapping": "a: 1\nb: [x, {c: null}]\n",
    "anchors and merge keys": "base: &b {x: 1}\nmore: {<<: *b, y: 2}\nagain: *b\n",
    "tags": "when: 2024-01-01\nseen: !!set {a, b}\n",
    "empty": "",
}


@pytest.mark.parametrize("text", list(ORDINARY.values()), ids=list(ORDINARY))
def test_ordinary_yaml_reads_as_yaml_safe_load_reads_it(text: str) -> None:
    assert load_yaml(text) == yaml.safe_load(text)


def test_several_yaml_documents_are_refused_as_yaml_safe_load_refuses_them() -> None:
    with pytest.raises(yaml.YAMLError, match="single document"):
        load_yaml("a: 1\n---\nb: 2\n")


# -- 6. deeply nested JSON ---------------------------------------------------------------------


def test_json_nested_100000_deep_fails_the_load_task_and_the_run_resumes(
        project: Project) -> None:
    deep = "[" * 100_000 + "]" * 100_000  # too long for one command-line word
    flow = {"nodes": [{"task": "load", "inputs": [deep], "config": {"json": True}}]}
    project.write("flow.json", json.dumps(flow))

    result = project.run("run", "--run-id", "deep", "flow.json", timeout=10)

    assert_task_refused(result, "input refused as JSON", "nested too deeply")
    assert project.runs()[0]["status"] == "failed"
    assert "retap resume deep" in result.err
    assert_task_refused(project.run("resume", "deep"), "nested too deeply")


# -- 7. values a task returns that no store can keep ----------------------------------------------

ODD_VALUES = '''
import os

import retap


def _deep(n):
    value = []
    for _ in range(n):
        value = [value]
    return value


def _loop():
    value = []
    value.append(value)
    return value


MAKERS = {"surrogate": lambda: "bad \\udcff name", "deep": lambda: _deep(5000),
          "loop": _loop, "huge-int": lambda: 10 ** 5000}


@retap.task
def odd(kind: str):
    """Returns the odd value named by its input, until a file named `fixed` exists."""
    return kind if os.path.exists("fixed") else MAKERS[kind]()
'''


@pytest.mark.parametrize("kind", ["surrogate", "deep", "loop", "huge-int"])
def test_a_value_no_store_can_keep_fails_its_dispatch_in_one_line_and_resumes(
        project: Project, kind: str) -> None:
    project.retapfile(ODD_VALUES)
    first = project.run("run", "--run-id", "v", "--", "load", kind, "--:", "odd", "--:", "dump")
    assert first.code == 1, first.err
    assert "Traceback" not in first.err
    assert "node 1 (odd) failed: CodecError" in first.err
    assert project.run("show", "v", "--json", check=0).json()["status"] == "failed"
    (project.path / "fixed").touch()
    assert project.run("resume", "v", check=0).out == f"{kind}\n"


def test_a_file_name_that_is_not_utf8_fails_glob_in_one_line(project: Project) -> None:
    (project.path / os.fsdecode(b"bad-\xff.txt")).write_text("x")
    result = project.run("run", "--run-id", "g", "--", "glob", "*.txt", "--:i", "dump")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert "not valid Unicode" in result.err
    assert project.run("show", "g").code == 0


@pytest.mark.parametrize("args", [(), ("store",)], ids=["retap", "retap-store"])
def test_a_group_given_no_command_prints_its_help_as_it_is_and_exits_2(
        project: Project, args: tuple[str, ...]) -> None:
    shown = project.run(*args, check=2)
    usage = shown.err.splitlines()[0]
    assert usage.startswith("Usage: ") and f"retap {' '.join(args)}".rstrip() + " [OPTIONS]" \
        in usage, usage
    assert "Commands:" in shown.err and len(shown.err.splitlines()) > 5
    assert "error" not in shown.err and shown.out == ""


@pytest.mark.parametrize("args", [("show", "{run}"), ("audit", "{run}", "--json"),
                                  ("resume", "{run}"), ("logs", "{run}"),
                                  ("store", "copy", "--run", "{run}", ".retap/retap.db", "c.db")],
                         ids=["show", "audit", "resume", "logs", "store-copy"])
@pytest.mark.parametrize("run", [NOT_UTF8, "a b"], ids=["not-utf8", "space"])
def test_a_run_no_run_id_can_be_is_unknown_not_a_damaged_store(
        project: Project, args: tuple[str, ...], run: str) -> None:
    failed_run(project)

    result = project.run(*(a.format(run=run) for a in args))

    assert_one_line_error(result, "no run")
    assert not (project.path / "c.db").exists()


def test_exporting_from_a_store_that_is_not_there_says_the_run_is_not_there(
        project: Project) -> None:
    result = project.run("export", "x", "-o", "x.retap", "--store", "none.db")

    assert_one_line_error(result, "no run 'x' in none.db")
    assert not (project.path / "none.db").exists()


def test_logs_of_a_dispatch_no_id_can_begin_with_is_a_usage_error(project: Project) -> None:
    run = failed_run(project)

    result = project.run("logs", run, NOT_UTF8)

    assert_one_line_error(result, "neither a node nor a dispatch")
