"""Tap's workflow syntax through the real `retap run` command: the examples print what Tap
printed, stdout holds only task output, and every malformed workflow is one line, exit 2."""

from __future__ import annotations

import pytest

from conftest import Project, Result, assert_one_line_error

MEMORY = ("--store", ":memory:")

RETAPFILE = '''
import retap


@retap.task
def shout(text):
    """Upper-cases its one input."""
    return text.upper()


class Greet(retap.Task):
    """Greets exactly one name."""

    def process(self, name):
        return f"hello {name}"
'''


def tap(project: Project, *words: str) -> Result:
    """`retap run --store :memory: -- WORDS...`"""
    return project.run("run", *MEMORY, "--", *words)


def assert_done(result: Result) -> None:
    assert result.code == 0, (result.code, result.out, result.err)
    assert "Traceback" not in result.err


# -- the examples -----------------------------------------------------------------------------


def test_a_sequence_prints_goodnight_moon(project: Project) -> None:
    result = tap(project, "load", "goodnight moon", "--:", "dump")

    assert_done(result)
    assert result.out == "goodnight moon\n"


def test_a_fork_prints_the_result_once_per_target(project: Project) -> None:
    result = tap(project, "load", "goodnight moon", "--", "dump", "--", "dump", "--[0][1,2]")

    assert_done(result)
    assert result.lines == ["goodnight moon", "goodnight moon"]


def test_a_merge_prints_each_input_alone_in_order(project: Project) -> None:
    result = tap(project, "load", "goodnight", "--", "load", "moon", "--", "dump", "--[0,1][2]")

    assert_done(result)
    assert result.lines == ["goodnight", "moon"]


def test_a_sync_merge_prints_one_list_in_source_order(project: Project) -> None:
    result = tap(project, "load", "goodnight", "--", "load", "moon", "--", "dump",
                 "--[0,1][2].sync")

    assert_done(result)
    assert result.lines == ['["goodnight", "moon"]']


def test_a_sync_lists_sources_as_written_not_as_they_arrived(project: Project) -> None:
    result = tap(project, "load", "goodnight", "--", "load", "moon", "--", "dump",
                 "--[1,0][2].sync")

    assert_done(result)
    assert result.lines == ['["moon", "goodnight"]']


def test_iterate_then_gate_prints_each_item_then_the_whole_list(project: Project) -> None:
    result = tap(project, "load", "--yaml", "[1, 2, 3]", "--:i", "dump", "--:.gate", "dump")

    assert_done(result)
    assert result.lines == ["1", "2", "3", "[1, 2, 3]"]


def test_a_gate_with_a_limit_prints_a_batch_then_the_rest(project: Project) -> None:
    result = tap(project, "load", "a", "--", "load", "b", "--", "load", "c", "--", "dump",
                 "--[0,1,2][3].gate:2")

    assert_done(result)
    assert result.lines == ['["a", "b"]', '["c"]']


def test_a_switch_sends_the_value_to_the_target_the_result_names(project: Project) -> None:
    project.retapfile(RETAPFILE)

    result = tap(project, "load", "--json", '[1, "x"]', "--", "dump", "--", "shout",
                 "--", "dump", "--[0][1,2].switch", "--[2][3]")

    assert_done(result)
    assert result.lines == ["X"]  # "x" went to node 2 (shout), never to node 1 (dump)


def test_a_switch_index_out_of_range_fails_the_run_with_exit_1(project: Project) -> None:
    result = tap(project, "load", "--json", '[5, "x"]', "--", "dump", "--", "dump",
                 "--[0][1,2].switch")

    assert result.code == 1, (result.out, result.err)
    assert result.out == ""
    assert "switch" in result.err
    assert "Traceback" not in result.err


def test_splat_flag_passes_a_list_as_separate_inputs(project: Project) -> None:
    result = tap(project, "load", "--json", '["goodnight", "moon"]', "--:s", "dump")

    assert_done(result)
    assert result.lines == ["goodnight", "moon"]


def test_without_splat_a_list_is_one_input_printed_as_json(project: Project) -> None:
    result = tap(project, "load", "--json", '["goodnight", "moon"]', "--:", "dump")

    assert_done(result)
    assert result.lines == ['["goodnight", "moon"]']


def test_iterate_flag_passes_each_item_alone(project: Project) -> None:
    result = tap(project, "load", "--json", '["goodnight", "moon"]', "--:i", "dump")

    assert_done(result)
    assert result.lines == ["goodnight", "moon"]


def test_iterate_on_a_non_list_fails_with_exit_1_and_says_why(project: Project) -> None:
    result = tap(project, "load", "just text", "--:i", "dump")

    assert result.code == 1, (result.out, result.err)
    assert "iterate" in result.err
    assert "Traceback" not in result.err


def test_sync_with_splat_passes_the_results_as_separate_inputs(project: Project) -> None:
    result = tap(project, "load", "goodnight", "--", "load", "moon", "--", "dump",
                 "--[0,1][2]s.sync")

    assert_done(result)
    assert result.lines == ["goodnight", "moon"]


def test_enqueued_targets_run_after_what_is_already_queued(project: Project) -> None:
    depth_first = tap(project, "load", "a", "--", "dump", "--", "load", "b", "--[0][1]")
    breadth_first = tap(project, "load", "a", "--", "dump", "--", "load", "b", "--", "dump",
                        "--[0][1]q", "--[2][3]")

    assert_done(depth_first)
    assert depth_first.lines == ["a"]
    assert_done(breadth_first)
    assert breadth_first.lines == ["b", "a"]


def test_the_enqueue_flag_works_on_a_sequence_join(project: Project) -> None:
    result = tap(project, "load", "first", "--:q", "dump", "--", "load", "second", "--:", "dump")

    assert_done(result)
    assert result.lines == ["second", "first"]


def test_a_lead_with_no_inputs_runs_once(project: Project) -> None:
    result = tap(project, "load", "--:", "dump")

    assert_done(result)
    assert result.lines == ["null"]


def test_a_task_from_the_retapfile_takes_its_one_input(project: Project) -> None:
    project.retapfile(RETAPFILE)

    result = tap(project, "greet", "moon", "--:", "shout", "--:", "dump")

    assert_done(result)
    assert result.lines == ["HELLO MOON"]


# -- the two streams --------------------------------------------------------------------------


def test_stdout_holds_only_task_output_and_the_run_id_goes_to_stderr(project: Project) -> None:
    result = tap(project, "load", "goodnight moon", "--:", "dump")

    assert result.out == "goodnight moon\n"
    run_lines = [line for line in result.err.splitlines() if ": done" in line]
    assert len(run_lines) == 1
    run_id = run_lines[0].split("run ", 1)[1].split(":", 1)[0]
    assert run_id and run_id not in result.out


def test_a_failed_run_reports_on_stderr_only(project: Project) -> None:
    result = tap(project, "fail", "boom")

    assert result.code == 1
    assert result.out == ""
    assert "failed" in result.err
    assert "boom" in result.err


def test_warnings_go_to_stderr(project: Project) -> None:
    result = tap(project, "load", "a", "--", "dump", "ignored", "--[0][1]")

    assert_done(result)
    assert result.lines == ["a"]
    assert "ignoring inputs of node 1" in result.err


# -- malformed workflows: exit 2, one line pointing at the word ---------------------------------


MALFORMED: dict[str, tuple[list[str], list[str]]] = {
    # case: (words after `--`, what the one error line must show)
    "unknown task": (["load", "a", "--:", "nosuch"], ["'nosuch'", "unknown task", "word 4"]),
    "task in a module that is not there": (
        ["nomod:Twice", "3"], ["unknown task 'nomod:Twice'", "cannot import nomod"]),
    "join index out of range": (["load", "a", "--", "dump", "--[0][5]"],
                                ["'--[0][5]'", "5"]),
    "empty node in the middle": (["load", "a", "--", "--", "dump"], ["empty node", "'--'"]),
    "trailing break": (["load", "a", "--"], ["empty node", "'--'"]),
    "dangling sequence at the end": (["load", "a", "--:"], ["'--:'", "no node after"]),
    "sequence first": (["--:", "load", "a"], ["'--:'", "word 1"]),
    "unknown flag": (["load", "a", "--:x", "dump"], ["'--:x'", "flag 'x'"]),
    "unknown join kind": (["load", "a", "--", "dump", "--[0][1].bogus"],
                          ["'--[0][1].bogus'", "bogus"]),
    "malformed join": (["load", "a", "--", "dump", "--[0]"], ["'--[0]'", "malformed join"]),
    "unclosed join": (["load", "a", "--", "dump", "--[0][1"], ["'--[0][1'"]),
    "non-numeric join index": (["load", "a", "--", "dump", "--[a][1]"], ["'--[a][1]'"]),
    "gate limit on a non-gate": (["load", "a", "--:.sync:2", "dump"],
                                 ["'--:.sync:2'", "gate"]),
    "bad gate limit": (["load", "a", "--:.gate:0", "dump"], ["'--:.gate:0'", "limit"]),
    "flag given twice": (["load", "a", "--:ii", "dump"], ["'--:ii'", "twice"]),
    "unknown config": (["load", "a", "--colour", "red"], ["--colour"]),
    "config without its value": (["sleep", "--seconds"], ["--seconds"]),
    "bad config value": (["sleep", "--seconds", "soon"], ["seconds", "soon"]),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_workflow_exits_2_with_one_line_at_the_offending_word(
        project: Project, case: str) -> None:
    words, needles = MALFORMED[case]

    result = tap(project, *words)

    assert_one_line_error(result, *needles)


def test_a_wrong_number_of_lead_inputs_is_a_usage_error_naming_the_task(
        project: Project) -> None:
    project.retapfile(RETAPFILE)

    too_many = tap(project, "shout", "a", "b", "--:", "dump")
    too_few = tap(project, "greet", "--:", "dump")

    assert_one_line_error(too_many, "shout", "2 input(s)", "usage: shout TEXT")
    assert_one_line_error(too_few, "greet", "0 input(s)", "usage: greet NAME")


def test_a_join_target_needs_no_lead_inputs_even_if_its_task_takes_one(
        project: Project) -> None:
    project.retapfile(RETAPFILE)

    result = tap(project, "load", "moon", "--:", "greet", "--:", "dump")

    assert_done(result)
    assert result.lines == ["hello moon"]


@pytest.mark.parametrize("words", [("--",), ()], ids=["only a break", "nothing"])
def test_no_workflow_at_all_is_a_usage_error(project: Project, words: tuple[str, ...]) -> None:
    result = project.run("run", *MEMORY, *words)

    assert_one_line_error(result, "no workflow")


def test_a_usage_error_runs_nothing_and_records_nothing(project: Project) -> None:
    store = str(project.path / "runs.db")

    result = project.run("run", "--store", store, "--", "load", "a", "--:", "nosuch")

    assert_one_line_error(result, "nosuch")
    assert project.run("runs", "--store", store, "--json", check=0).json() == []


# -- --store before and after the subcommand; exit codes ----------------------------------------


def test_store_before_the_subcommand_records_the_run_there(project: Project) -> None:
    store = str(project.path / "before.db")

    result = project.run("--store", store, "run", "--", "load", "hi", "--:", "dump")

    assert_done(result)
    assert result.lines == ["hi"]
    runs = project.run("runs", "--store", store, "--json", check=0).json()
    assert [(r["status"], r["dispatches"]) for r in runs] == [("done", 2)]


def test_store_after_the_subcommand_records_the_run_there(project: Project) -> None:
    store = str(project.path / "after.db")

    result = project.run("run", "--store", store, "--", "load", "hi", "--:", "dump")

    assert_done(result)
    assert result.lines == ["hi"]
    runs = project.run("--store", store, "runs", "--json", check=0).json()
    assert [(r["status"], r["dispatches"]) for r in runs] == [("done", 2)]
    assert not (project.path / ".retap").exists()  # the default store was not touched


def test_a_store_after_the_subcommand_wins_over_one_before_it(project: Project) -> None:
    before, after = str(project.path / "before.db"), str(project.path / "after.db")

    result = project.run("--store", before, "run", "--store", after, "--", "load", "x")

    assert_done(result)
    assert len(project.run("runs", "--store", after, "--json", check=0).json()) == 1


def test_exit_codes_are_0_done_1_failed_2_bad_usage(project: Project) -> None:
    store = str(project.path / "runs.db")

    done = project.run("run", "--store", store, "--", "load", "x", "--:", "dump")
    failed = project.run("run", "--store", store, "--", "load", "x", "--:", "fail")
    bad = project.run("run", "--store", store, "--", "load", "x", "--:", "nosuch")

    assert (done.code, failed.code, bad.code) == (0, 1, 2)
    statuses = [r["status"] for r in project.run("runs", "--store", store, "--json",
                                                   check=0).json()]
    assert statuses == ["failed", "done"]  # newest first; the bad one was never recorded
    assert "resume" in failed.err  # a recorded failure says how to continue


# -- retap run's own options are options (issue 12, item 1) --------------------------------------


def test_a_mistyped_run_option_is_an_option_error_with_a_suggestion(project: Project) -> None:
    project.write("flow.yaml", "nodes:\n  a: {task: load, inputs: [hi]}\n  b: {task: dump}\n"
                               "joins:\n  - {from: a, to: b}\n")
    line = assert_one_line_error(project.run("run", "--dryrun", "flow.yaml"),
                                 "no such option --dryrun", "did you mean --dry-run")
    assert "unknown task" not in line
    assert_one_line_error(project.run("--stor", "x.db", "runs"), "no such option --stor")
    assert_one_line_error(project.run("run", "--jobs", "many", "--", "load", "x"),
                          "retap run:", "--jobs")
    assert_one_line_error(project.run("run", "--run-id"),  # click names no command here
                          "retap run: option '--run-id' requires an argument")
    assert_one_line_error(project.run("audit", "last", "--trail"),
                          "retap audit: option '--trail' requires an argument")
    assert not (project.path / ".retap").exists()  # nothing ran, nothing was recorded


def test_run_options_may_follow_a_workflow_file_and_n_is_dry_run(project: Project) -> None:
    project.write("flow.yaml", "nodes:\n  a: {task: load, inputs: [hi]}\n  b: {task: dump}\n"
                               "joins:\n  - {from: a, to: b}\n")
    for option in ("--dry-run", "-n"):
        planned = project.run("run", "flow.yaml", option, check=0)
        assert planned.out.startswith("run  node a (load) hi")  # listed, not run
        assert "hi\n" not in planned.out
    assert not (project.path / ".retap" / "retap.db").exists()
    ran = project.run("run", "flow.yaml", "--run-id", "f", "-q", check=0)
    assert ran.out == "hi\n" and ran.err == ""


def test_words_after_the_double_dash_belong_to_the_workflow(project: Project) -> None:
    # after `--`, `--quiet` is a config of the node it follows, not retap run's option
    assert_one_line_error(project.run("run", "-q", "--", "load", "a", "--:", "dump", "--quiet"),
                          "task 'dump' has no config '--quiet'")
    assert project.run("run", "-q", "--", "load", "a", "--:", "dump", check=0).out == "a\n"


def test_set_on_run_overrides_a_config_by_node_index_or_name(project: Project) -> None:
    assert project.run("run", "-q", "--set", "0.yaml=true", "--", "load", "[1, 2]", "--:",
                       "dump", check=0).out == "[1, 2]\n"
    assert project.run("run", "-q", "--set", "load.yaml=true", "--", "load", "[3]", "--:",
                       "dump", check=0).out == "[3]\n"
    project.write("flow.yaml", "nodes:\n  src: {task: load, inputs: ['[4]']}\n"
                               "  out: {task: dump}\njoins:\n  - {from: src, to: out}\n")
    assert project.run("run", "flow.yaml", "-q", "--set", "src.yaml=true",
                       check=0).out == "[4]\n"
    assert_one_line_error(project.run("run", "--set", "nope.yaml=true", "flow.yaml"),
                          "--set: no node 'nope'", "nodes: src (load), out (dump)")
    assert_one_line_error(project.run("run", "--set", "src.colour=red", "flow.yaml"),
                          "no config 'colour'")


def test_graph_shows_a_workflows_nodes_and_joins_without_running_it(project: Project) -> None:
    words = ["--", "load", "--yaml", "[1, 2]", "--:i", "dump", "--", "load", "b",
             "--[0,2][1].sync", "dump"]
    shown = project.run("graph", *words[:6], check=0).out
    assert shown.splitlines() == ["nodes:", '  0 load  {"json": false, "yaml": true}  lead: '
                                  '["[1, 2]"]', "  1 dump", "joins:",
                                  '  join: 0 -> 1  {"iterate": true}']
    mermaid = project.run("graph", "--mermaid", *words[:6], check=0).out
    assert mermaid.startswith("graph LR\n") and "n0 -->|join| n1" in mermaid
    dot = project.run("graph", "--dot", "--", "load", "a", "--[0][1].sync", "dump",
                      check=0).out
    assert '"0" -> "1" [label="sync"];' in dot
    assert not (project.path / ".retap").exists()  # nothing ran
    assert_one_line_error(project.run("graph", "--", "nosuchtask"), "nosuchtask")


def test_run_help_explains_the_workflow_words_with_examples(project: Project) -> None:
    shown = project.run("run", "--help", check=0).out
    for words in ("--:FLAGS", "--[A][B]", ".sync", ".gate:N", ".switch", "iterate", "splat",
                  "enqueue", "Examples:", "retap run -- load 'goodnight moon' --: dump"):
        assert words in shown, words
    # the examples do what they say
    assert project.run("run", "-q", "--", "load", "--yaml", "[1, 2]", "--:i", "dump",
                       check=0).out == "1\n2\n"
    assert project.run("run", "-q", "--", "load", "a", "--", "load", "b", "--", "dump",
                       "--[0,1][2].sync", check=0).out == '["a", "b"]\n'


def test_a_config_is_spelled_one_way_in_help_and_errors(project: Project) -> None:
    project.retapfile("""
        import retap


        class Save(retap.Task, name="save"):
            \"\"\"Saves.\"\"\"

            out_dir: str = "out"

            def process(self, x):
                return f"{self.out_dir}/{x}"
        """)
    assert "--out-dir OUT_DIR" in project.run("run", "--", "save", "--help", check=0).out
    assert project.run("run", "-q", "--", "save", "a", "--out-dir", "b", "--:", "dump",
                       check=0).out == "b/a\n"
    assert_one_line_error(project.run("run", "--", "save", "a", "--outdir", "c"),
                          "(configs: --out-dir)")
