"""YAML (and JSON) workflow files through the real `retap run FILE` command: the same
workflow as the command line, named nodes, and one clear line for a malformed file."""

from __future__ import annotations

import json

import pytest

from conftest import Project, Result, assert_one_line_error

MEMORY = ("--store", ":memory:")

RETAPFILE = '''
import retap


@retap.selector
def pick_by_length(result):
    return 0 if len(result) < 4 else 1


@retap.task
def shout(text):
    """Upper-cases its one input."""
    return text.upper()
'''


def run_file(project: Project, name: str, text: str, *options: str) -> Result:
    project.write(name, text)
    return project.run("run", *MEMORY, *options, name)


def run_words(project: Project, *words: str) -> Result:
    return project.run("run", *MEMORY, "--", *words)


# -- the same workflow as the command line -----------------------------------------------------


def test_a_sync_file_prints_what_the_command_line_prints(project: Project) -> None:
    flow = """\
        nodes:
          - {task: load, inputs: [goodnight]}
          - {task: load, inputs: [moon]}
          - {task: dump}
        joins:
          - {from: [0, 1], to: 2, kind: sync}
        """

    from_file = run_file(project, "flow.yaml", flow)
    from_words = run_words(project, "load", "goodnight", "--", "load", "moon", "--", "dump",
                           "--[0,1][2].sync")

    assert from_file.code == 0, from_file.err
    assert from_file.lines == ['["goodnight", "moon"]']
    assert from_file.out == from_words.out


def test_a_sequence_file_with_the_short_join_form_prints_like_the_command_line(
        project: Project) -> None:
    flow = """\
        nodes:
          - {task: load, inputs: [goodnight moon]}
          - {task: dump}
        joins:
          - [0, 1]
        """

    from_file = run_file(project, "flow.yaml", flow)

    assert from_file.code == 0, from_file.err
    assert from_file.lines == ["goodnight moon"]
    assert from_file.out == run_words(project, "load", "goodnight moon", "--:", "dump").out


def test_a_fork_file_prints_the_result_once_per_target(project: Project) -> None:
    flow = """\
        nodes:
          - {task: load, inputs: [goodnight moon]}
          - {task: dump}
          - {task: dump}
        joins:
          - {from: 0, to: [1, 2]}
        """

    result = run_file(project, "flow.yaml", flow)

    assert result.code == 0, result.err
    assert result.lines == ["goodnight moon", "goodnight moon"]


def test_a_file_with_named_nodes_iterate_and_a_gate(project: Project) -> None:
    flow = """\
        nodes:
          read:  {task: load, inputs: ["[1, 2, 3]"], config: {yaml: true}}
          each:  {task: dump}
          total: dump
        joins:
          - {from: read, to: each, iterate: true}
          - {from: each, to: total, kind: gate}
        """

    from_file = run_file(project, "flow.yaml", flow)
    from_words = run_words(project, "load", "--yaml", "[1, 2, 3]", "--:i", "dump", "--:.gate",
                           "dump")

    assert from_file.code == 0, from_file.err
    assert from_file.lines == ["1", "2", "3", "[1, 2, 3]"]
    assert from_file.out == from_words.out


def test_a_gate_limit_in_a_file_releases_batches_like_gate_n_on_the_command_line(
        project: Project) -> None:
    flow = """\
        nodes:
          - {task: load, inputs: ["[1, 2, 3, 4, 5]"], config: {yaml: true}}
          - {task: dump}
          - {task: dump}
        joins:
          - {from: 0, to: 1, iterate: true}
          - {from: 1, to: 2, kind: gate, limit: 2}
        """

    from_file = run_file(project, "flow.yaml", flow)
    from_words = run_words(project, "load", "--yaml", "[1, 2, 3, 4, 5]", "--:i", "dump",
                           "--:.gate:2", "dump")

    assert from_file.code == 0, from_file.err
    assert from_file.lines == ["1", "2", "[1, 2]", "3", "4", "[3, 4]", "5", "[5]"]
    assert from_file.out == from_words.out


def test_named_nodes_are_the_ids_the_run_records(project: Project) -> None:
    project.write("flow.yaml", """\
        nodes:
          greet: {task: load, inputs: [hello]}
          show:  dump
        joins:
          - [greet, show]
        """)
    store = str(project.path / "runs.db")

    done = project.run("run", "--store", store, "flow.yaml")
    audit = project.run("audit", project.run("runs", "--store", store, "--json").json()[0]["run"],
                        "--store", store, "--json")

    assert done.code == 0, done.err
    assert done.lines == ["hello"]
    assert [entry["node"] for entry in audit.json()] == ["greet", "show"]


def test_a_node_with_several_leads_runs_once_per_lead(project: Project) -> None:
    flow = """\
        nodes:
          src:  {task: load, leads: [[one], [two], [three]]}
          show: dump
        joins:
          - [src, show]
        """

    result = run_file(project, "flow.yaml", flow)

    assert result.code == 0, result.err
    assert result.lines == ["one", "two", "three"]


def test_a_switch_in_a_file_uses_a_selector_from_the_retapfile(project: Project) -> None:
    project.retapfile(RETAPFILE)
    flow = """\
        nodes:
          src:   {task: load, leads: [[hi], [hello]]}
          short: dump
          long:  shout
          show:  dump
        joins:
          - {from: src, to: [short, long], kind: switch, selector: "retapfile:pick_by_length"}
          - [long, show]
        """

    result = run_file(project, "flow.yaml", flow)

    assert result.code == 0, result.err
    assert result.lines == ["hi", "HELLO"]


def test_a_switch_in_a_file_without_a_selector_takes_index_and_value(project: Project) -> None:
    flow = """\
        nodes:
          - {task: load, inputs: ['[1, "x"]'], config: {json: true}}
          - {task: dump}
          - {task: dump}
        joins:
          - {from: 0, to: [1, 2], kind: switch}
        """

    result = run_file(project, "flow.yaml", flow)

    assert result.code == 0, result.err
    assert result.lines == ["x"]


def test_splat_and_enq_in_a_file(project: Project) -> None:
    flow = """\
        nodes:
          - {task: load, inputs: ['["a", "b"]'], config: {json: true}}
          - {task: dump}
          - {task: load, inputs: [later]}
          - {task: dump}
        joins:
          - {from: 0, to: 1, splat: true, enq: true}
          - [2, 3]
        """

    result = run_file(project, "flow.yaml", flow)

    assert result.code == 0, result.err
    # enq: dump of a and b waits behind the second lead and its depth-first target
    assert result.lines == ["later", "a", "b"]


def test_a_json_workflow_file_works_like_yaml(project: Project) -> None:
    flow = json.dumps({"nodes": [{"task": "load", "inputs": ["hi"]}, {"task": "dump"}],
                       "joins": [[0, 1]]})

    result = run_file(project, "flow.json", flow)

    assert result.code == 0, result.err
    assert result.lines == ["hi"]


def test_a_file_holding_a_stored_spec_runs_that_spec(project: Project) -> None:
    spec = {"retap": 1,
            "nodes": [{"id": 0, "task": "retap.tasks.builtin:Load", "config": {},
                       "leads": [["from a spec"]]},
                      {"id": 1, "task": "retap.tasks.builtin:Dump", "config": {},
                       "leads": [[]]}],
            "joins": [{"id": 0, "kind": "join", "sources": [0], "targets": [1]}]}

    result = run_file(project, "spec.json", json.dumps(spec))

    assert result.code == 0, result.err
    assert result.lines == ["from a spec"]


def test_a_file_run_writes_only_task_output_to_stdout(project: Project) -> None:
    result = run_file(project, "flow.yaml", "nodes:\n  - {task: load, inputs: [hi]}\n"
                                            "  - {task: dump}\njoins:\n  - [0, 1]\n")

    assert result.out == "hi\n"
    assert "done" in result.err


def test_words_after_the_workflow_file_are_refused(project: Project) -> None:
    project.write("flow.yaml", "nodes:\n  - {task: load, inputs: [hi]}\n")

    result = project.run("run", *MEMORY, "flow.yaml", "extra")

    assert_one_line_error(result, "flow.yaml", "extra")


# -- malformed files: exit 2, one line naming the file and the problem --------------------------

MALFORMED = {
    "bad YAML": ("nodes: [\n  {task: load\n", "YAML"),
    "not a mapping": ("- just a list\n", "nodes"),
    "nodes not a mapping or list": ("nodes: 5\n", "nodes"),
    "node without a task": ("nodes:\n  a: {inputs: [x]}\n", "task"),
    "unknown task": ("nodes:\n  a: {task: nosuch}\n", "nosuch"),
    "unknown node key": ("nodes:\n  a: {task: load, colour: red}\n", "colour"),
    "unknown config": ("nodes:\n  a: {task: load, config: {colour: red}}\n", "colour"),
    "bad config value": ("nodes:\n  a: {task: load, config: {yaml: notabool}}\n", "yaml"),
    "inputs not a list": ("nodes:\n  a: {task: load, inputs: x}\n", "inputs"),
    "duplicate node id": ("nodes:\n  - {task: load}\n  - {id: 0, task: dump}\n", "0"),
    "join to an unknown node": ("nodes:\n  a: {task: load, inputs: [x]}\njoins:\n  - [a, zz]\n",
                                "zz"),
    "unknown join kind": ("nodes:\n  a: {task: load}\n  b: dump\n"
                          "joins:\n  - {from: a, to: b, kind: bogus}\n", "bogus"),
    "unknown join key": ("nodes:\n  a: {task: load}\n  b: dump\n"
                         "joins:\n  - {from: a, to: b, flavour: x}\n", "flavour"),
    "join without from/to": ("nodes:\n  a: {task: load}\njoins:\n  - {to: a}\n", "from"),
    "join that is a number": ("nodes:\n  a: {task: load}\njoins:\n  - 5\n", "join 0"),
    "bad gate limit": ("nodes:\n  a: {task: load}\n  b: dump\n"
                       "joins:\n  - {from: a, to: b, kind: gate, limit: 0}\n", "limit"),
    "unknown selector": ("nodes:\n  a: {task: load}\n  b: dump\n"
                         "joins:\n  - {from: a, to: b, kind: switch, selector: nomod:f}\n",
                         "nomod"),
    "wrong number of lead inputs": ("nodes:\n  s: {task: shout, inputs: [a, b]}\n", "shout"),
    "stored spec of another version": ("retap: 2\n", "spec"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_file_exits_2_with_one_line_naming_the_file_and_problem(
        project: Project, case: str) -> None:
    project.retapfile(RETAPFILE)
    text, needle = MALFORMED[case]

    result = run_file(project, "flow.yaml", text)

    assert_one_line_error(result, "flow.yaml", needle)


def test_joins_that_are_not_a_list_are_a_one_line_error(project: Project) -> None:
    result = run_file(project, "flow.yaml", "nodes:\n  a: {task: load}\njoins: 5\n")

    assert_one_line_error(result, "flow.yaml", "joins")


def test_a_config_that_is_not_a_mapping_is_a_one_line_error(project: Project) -> None:
    result = run_file(project, "flow.yaml", "nodes:\n  a: {task: load, config: 5}\n")

    assert_one_line_error(result, "flow.yaml", "config")


def test_a_node_id_that_is_not_a_name_or_number_is_a_one_line_error(project: Project) -> None:
    result = run_file(project, "flow.yaml", "nodes:\n  - {id: [1], task: load}\n")

    assert_one_line_error(result, "flow.yaml", "node")


def test_a_malformed_stored_spec_is_a_one_line_error(project: Project) -> None:
    result = run_file(project, "flow.yaml", "retap: 1\nnodes: 5\n")

    assert_one_line_error(result, "flow.yaml", "nodes")


def test_a_limit_on_a_join_that_is_not_a_gate_says_only_a_gate_takes_one(
        project: Project) -> None:
    result = run_file(project, "flow.yaml", "nodes:\n  a: {task: load}\n  b: dump\n"
                                            "joins:\n  - {from: a, to: b, kind: sync, limit: 2}\n")

    assert_one_line_error(result, "flow.yaml", "limit", "gate")
    assert "__init__" not in result.err


# -- where the problem is, and the schema editors check files with ---------------------------

PLACED = {
    "an unknown node key": ("nodes:\n  read: {task: load}\n  each: {task: dump, iterat: true}\n",
                            (3, 22), "node 'each' has unknown key(s) 'iterat'"),
    "a flag that is not a bool": ("nodes:\n  a: {task: load}\n  b: dump\njoins:\n"
                                  "  - from: a\n    to: b\n    enq: 'yes'\n",
                                  (7, 5), "join 0: `enq` should be a valid boolean"),
    "an unknown task": ("nodes:\n  a: load\n  b:\n    task: nosuch\n", (3, 3),
                        "node 'b': unknown task 'nosuch'"),
    "a join to an unknown node": ("nodes: {a: load}\njoins:\n  - [a, b]\n", (3, 5),
                                  "join 0: target 'b' is not a node"),
    "a join without from": ("nodes: {a: load}\njoins:\n  - {to: a}\n", (3, 5),
                            "join 0 has no `from`"),
}


@pytest.mark.parametrize("case", list(PLACED), ids=list(PLACED))
def test_an_error_in_a_yaml_file_names_its_line_and_column(project: Project, case: str) -> None:
    text, (line, column), said = PLACED[case]

    result = run_file(project, "flow.yaml", text)

    assert_one_line_error(result, f"workflow file flow.yaml, line {line}, column {column}: "
                                  f"{said}")


def test_a_null_where_a_key_may_be_left_out_is_refused_not_taken_as_the_default(
        project: Project) -> None:
    result = run_file(project, "flow.yaml", "nodes:\n  a: {task: load, inputs: null}\n")

    assert_one_line_error(result, "line 2, column 19",
                          "node 'a': `inputs` must not be null")


def test_retap_schema_prints_a_json_schema_that_checks_workflow_files(project: Project) -> None:
    import jsonschema
    import yaml

    from conftest import ROOT

    printed = project.run("schema", check=0)
    schema = json.loads(printed.out)
    jsonschema.Draft202012Validator.check_schema(schema)
    check = jsonschema.Draft202012Validator(schema)
    for example in sorted(ROOT.glob("examples/*/flow.yaml")):
        assert not list(check.iter_errors(yaml.safe_load(example.read_text()))), example
    good = {"nodes": {"a": {"task": "load", "inputs": ["x"]}, "b": "dump"},
            "joins": [["a", "b"], {"from": "a", "to": ["b"], "kind": "gate", "limit": 2}]}
    assert not list(check.iter_errors(good))
    for bad in ({"nodes": {"a": {"task": "load", "colour": "red"}}},
                {"nodes": {"a": "load"}, "joins": [{"from": "a", "to": "a", "kind": "bogus"}]},
                {"nodes": {"a": "load"}, "joins": [{"from": "a", "to": "a", "enq": "yes"}]},
                {"nodes": 5}, {"nodes": {"a": "load"}, "joinz": []}):
        assert list(check.iter_errors(bad)), bad
        project.write("bad.yaml", yaml.safe_dump(bad))
        assert project.run("run", *MEMORY, "bad.yaml").code == 2, bad  # retap refuses it too
