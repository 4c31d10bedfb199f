"""Tasks through the real `retap` command: listing, help, configs from the command line and
config files, where tasks are found, and the built-in tasks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import Project
from retap.tasks import builtin

MEMORY = ("--store", ":memory:")

RETAPFILE = '''
from __future__ import annotations

import retap


class Goodnight(retap.Task):
    """Your basic goodnight moon task.

    Says goodnight with a configurable message.
    """

    message: str = retap.config("goodnight", help="a goodnight message")
    count: int = retap.config(1, help="how many times to say it")
    loud: bool = retap.config(False, help="shout it")

    def process(self, name):
        text = " ".join([f"{self.message} {name}"] * self.count)
        return text.upper() if self.loud else text


class Settings(retap.Task):
    """Returns its configs as a dict."""

    message: str = "default"
    count: int = 1
    tags: list[int] = []
    dry_run: bool = True

    def process(self):
        return self.configs


@retap.task
def shout(text, *, times: int = 2):
    """Shouts its input.

    Upper-cases TEXT and repeats it.
    """
    return text.upper() * times
'''

DEFAULT_SETTINGS = {"message": "default", "count": 1, "tags": [], "dry_run": True}


@pytest.fixture
def tasks(project):
    """A project whose retapfile defines goodnight, settings and shout."""
    project.retapfile(RETAPFILE)
    return project


def listed(out: str) -> dict[str, dict[str, str]]:
    """`retap list` output as {group: {task name: its line}}."""
    groups: dict[str, dict[str, str]] = {}
    group = ""
    for line in out.splitlines():
        if line.startswith("  "):
            groups[group][line.split()[0]] = line
        elif line.strip():
            group = line.rstrip(":")
            groups[group] = {}
    return groups


def line_with(text: str, needle: str) -> str:
    """The one line of ``text`` that contains ``needle``."""
    found = [line for line in text.splitlines() if needle in line]
    assert len(found) == 1, (needle, text)
    return found[0]


def assert_one_line_error(result, code: int = 2) -> str:
    """A usage error: the exit code, nothing on stdout, one line on stderr, no traceback."""
    assert result.code == code, (result.out, result.err)
    assert result.out == ""
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    return result.err


# --- retap list -----------------------------------------------------------------------------


def test_list_shows_the_retapfile_tasks_with_their_summaries(tasks):
    result = tasks.run("list", check=0)

    ours = listed(result.out)["retapfile.py"]
    assert sorted(ours) == ["goodnight", "settings", "shout"]
    assert "Your basic goodnight moon task." in ours["goodnight"]
    assert "Returns its configs as a dict." in ours["settings"]
    assert "Shouts its input." in ours["shout"]


def test_list_shows_the_builtin_tasks_with_their_summaries(project):
    result = project.run("list", check=0)

    shown = listed(result.out)["built-in"]
    for cls in (builtin.Load, builtin.Dump, builtin.Fail, builtin.Sleep, builtin.Glob):
        name = cls.__retap__.name
        assert name in shown
        assert cls.__retap__.summary
        assert cls.__retap__.summary in shown[name]
    assert {"load", "dump", "fail", "sleep", "glob"} <= set(shown)


def test_a_retapfile_that_raises_on_import_is_a_one_line_error_naming_it(project):
    project.retapfile("import retap\n\nratio = 1 / 0\n")

    result = project.run("list")

    err = assert_one_line_error(result)
    assert "retapfile.py" in err
    assert "ZeroDivisionError" in err
    assert "line 3" in err


def test_a_retapfile_with_a_bad_task_declaration_stops_a_run_before_it_starts(project):
    project.retapfile("""
        import retap

        class Counter(retap.Task):
            count = retap.config(1)
    """)

    result = project.run("run", *MEMORY, "--", "load", "hi", "--:", "dump")

    err = assert_one_line_error(result)
    assert "retapfile.py" in err
    assert "'count' has no type" in err


def test_only_tasks_defined_in_the_retapfile_become_tasks(project):
    project.write("mytasks.py", """
        import retap

        class Shout(retap.Task):
            '''Upper-cases its input.'''

            def process(self, text):
                return text.upper()
    """)
    project.retapfile("""
        import retap
        from retap.tasks.builtin import Dump
        from mytasks import Shout


        def helper(text):
            '''A plain function.'''
            return text


        class Plain:
            '''A plain class with a process method.'''

            def process(self, text):
                return text


        class Greet(retap.Task):
            '''Greets its input.'''

            def process(self, name):
                return f"hello {name}"


        @retap.task
        def whisper(text):
            '''Lower-cases its input.'''
            return text.lower()
    """)

    result = project.run("list", check=0)

    groups = listed(result.out)
    assert sorted(groups["retapfile.py"]) == ["greet", "whisper"]
    assert [line.split()[0] for line in result.out.splitlines()].count("dump") == 1
    assert "dump" in groups["built-in"]
    names = {name for group in groups.values() for name in group}
    assert not names & {"helper", "plain", "shout"}


# --- retap run -- TASK --help ---------------------------------------------------------------


def test_task_help_prints_usage_configs_and_docs_and_runs_nothing(tasks):
    result = tasks.run("run", "--", "goodnight", "--help", check=0)

    out = result.out
    assert "usage: retap run -- goodnight NAME" in out
    assert "Your basic goodnight moon task." in out
    assert "Says goodnight with a configurable message." in out
    message = line_with(out, "--message MESSAGE")
    assert "a goodnight message" in message
    assert "str" in message
    assert "default: 'goodnight'" in message
    count = line_with(out, "--count COUNT")
    assert "how many times to say it" in count
    assert "int" in count
    assert "default: 1" in count
    loud = line_with(out, "--[no-]loud")
    assert "bool" in loud
    assert "default: false" in loud
    assert "--config FILE" in out
    assert "goodnight" not in result.err  # no run was started
    assert not (tasks.path / ".retap").exists()


def test_task_help_works_for_a_function_task(tasks):
    result = tasks.run("run", "--", "shout", "--help", check=0)

    assert "usage: retap run -- shout TEXT" in result.out
    assert "Shouts its input." in result.out
    assert "Upper-cases TEXT and repeats it." in result.out
    times = line_with(result.out, "--times TIMES")
    assert "int" in times
    assert "default: 2" in times


# --- configs on the command line ------------------------------------------------------------


def test_a_config_set_on_the_command_line_is_used(tasks):
    result = tasks.run("run", *MEMORY, "--", "goodnight", "world", "--message", "hello",
                       "--:", "dump", check=0)

    assert result.out == "hello world\n"


def test_without_options_a_task_uses_its_defaults(tasks):
    result = tasks.run("run", *MEMORY, "--", "goodnight", "moon", "--:", "dump", check=0)

    assert result.out == "goodnight moon\n"


def test_configs_can_be_given_as_key_equals_value(tasks):
    result = tasks.run("run", *MEMORY, "--", "goodnight", "world", "--message=hello",
                       "--count=2", "--:", "dump", check=0)

    assert result.out == "hello world hello world\n"


def test_a_function_task_takes_its_configs_on_the_command_line(tasks):
    result = tasks.run("run", *MEMORY, "--", "shout", "hi", "--times", "3", "--:", "dump",
                       check=0)

    assert result.out == "HIHIHI\n"


@pytest.mark.parametrize(("options", "expected"), [
    (["--loud"], "GOODNIGHT MOON"),
    (["--loud", "--no-loud"], "goodnight moon"),
    (["--loud=false"], "goodnight moon"),
])
def test_a_bool_config_is_a_flag_with_a_no_form(tasks, options, expected):
    result = tasks.run("run", *MEMORY, "--", "goodnight", "moon", *options, "--:", "dump",
                       check=0)

    assert result.out == f"{expected}\n"


def test_the_no_form_turns_off_a_config_that_defaults_to_true(tasks):
    result = tasks.run("run", *MEMORY, "--", "settings", "--no-dry-run", "--:", "dump", check=0)

    assert json.loads(result.out) == {**DEFAULT_SETTINGS, "dry_run": False}


def test_a_list_config_takes_commas_a_yaml_list_or_the_flag_repeated(tasks):
    result = tasks.run("run", *MEMORY, "--", "settings", "--tags", "1,2", "--tags", "[3, 4]",
                       "--tags", "5", "--:", "dump", check=0)

    assert json.loads(result.out)["tags"] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("name", "text"), [
    ("settings.yaml", "message: from a file\ncount: 2\ntags: [1, 2]\ndry-run: false\n"),
    ("settings.toml", 'message = "from a file"\ncount = 2\ntags = [1, 2]\ndry_run = false\n'),
    ("settings.json", '{"message": "from a file", "count": 2, "tags": [1, 2],'
                      ' "dry_run": false}'),
])
def test_configs_are_read_from_a_yaml_toml_or_json_file(tasks, name, text):
    tasks.write(name, text)

    result = tasks.run("run", *MEMORY, "--", "settings", "--config", name, "--:", "dump",
                       check=0)

    assert json.loads(result.out) == {"message": "from a file", "count": 2, "tags": [1, 2],
                                      "dry_run": False}


def test_precedence_is_default_then_config_file_then_command_line(tasks):
    tasks.write("settings.yaml", "message: from the file\ncount: 2\n")

    # the option comes before --config on purpose: precedence does not depend on order
    result = tasks.run("run", *MEMORY, "--", "settings", "--count", "3",
                       "--config=settings.yaml", "--:", "dump", check=0)

    assert json.loads(result.out) == {
        "message": "from the file",  # the file beats the default
        "count": 3,                  # the command line beats the file
        "tags": [],                  # the default stays when nothing sets it
        "dry_run": True,
    }


# --- bad configs on the command line --------------------------------------------------------


def test_a_bad_config_value_is_a_one_line_error_naming_task_key_value_and_type(tasks):
    result = tasks.run("run", *MEMORY, "--", "goodnight", "world", "--count", "x",
                       "--:", "dump")

    err = assert_one_line_error(result)
    assert "'goodnight'" in err
    assert "'count'" in err
    assert "'x'" in err
    assert "expected int" in err


def test_a_bad_value_in_a_config_file_is_a_one_line_error(tasks):
    tasks.write("settings.yaml", "count: lots\n")

    result = tasks.run("run", *MEMORY, "--", "settings", "--config", "settings.yaml")

    err = assert_one_line_error(result)
    assert "'count'" in err
    assert "'lots'" in err
    assert "expected int" in err


def test_an_unknown_config_is_a_one_line_error_naming_it(tasks):
    result = tasks.run("run", *MEMORY, "--", "goodnight", "world", "--nope", "--:", "dump")

    err = assert_one_line_error(result)
    assert "--nope" in err
    assert "--message" in err  # the hint lists the task's configs


def test_a_config_missing_its_value_at_the_end_is_a_one_line_error(tasks):
    result = tasks.run("run", *MEMORY, "--", "goodnight", "world", "--count")

    err = assert_one_line_error(result)
    assert "--count needs a value" in err


def test_a_config_missing_its_value_before_a_join_is_a_one_line_error(tasks):
    result = tasks.run("run", *MEMORY, "--", "goodnight", "world", "--count", "--:", "dump")

    err = assert_one_line_error(result)
    assert "--count needs a value" in err


def test_a_config_missing_its_value_is_reported_at_its_own_position(tasks):
    result = tasks.run("run", *MEMORY, "--", "goodnight", "world", "--count")

    assert result.code == 2
    assert "at word 3 '--count'" in result.err


# --- where tasks are found ------------------------------------------------------------------


def test_a_task_is_found_by_module_and_class_name(project):
    project.write("mytasks.py", """
        import retap


        class Shout(retap.Task):
            '''Upper-cases its input.'''

            def process(self, text):
                return text.upper() + "!"
    """)

    result = project.run("run", *MEMORY, "--", "mytasks:Shout", "hi", "--:", "dump", check=0)

    assert result.out == "HI!\n"


def test_an_unknown_module_and_name_is_a_one_line_error(project):
    project.write("mytasks.py", "import retap\n")

    result = project.run("run", *MEMORY, "--", "mytasks:Shout", "hi", "--:", "dump")

    err = assert_one_line_error(result)
    assert "mytasks:Shout" in err


@pytest.fixture
def installed(tmp_path_factory) -> dict[str, str]:
    """A fake installed distribution offering `hello` in the `retap.tasks` entry-point group,
    outside the project folder; returns the environment that puts it on the path."""
    site = tmp_path_factory.mktemp("site")
    info = site / "hellopkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hellopkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[retap.tasks]\nhello = hellopkg:Hello\ngreet = hellopkg:Greeter\n")
    (site / "hellopkg.py").write_text(textwrap.dedent('''
        import retap


        class Hello(retap.Task):
            """Says hello from an installed package."""

            def process(self):
                return "hello from a package"


        class Greeter(retap.Task):
            """Greets its input; installed under the entry-point name greet."""

            def process(self, name):
                return f"greetings {name}"
    '''))
    return {"PYTHONPATH": str(site)}


def test_list_shows_tasks_of_installed_packages_from_their_entry_points(project, installed):
    result = project.run("list", env=installed, check=0)

    names = {name: line for group in listed(result.out).values() for name, line in group.items()}
    assert "Says hello from an installed package." in names["hello"]
    assert "hello" not in project.run("list", check=0).out  # not there when not installed


def test_a_task_of_an_installed_package_runs_by_its_entry_point_name(project, installed):
    result = project.run("run", *MEMORY, "--", "hello", "--:", "dump", env=installed, check=0)

    assert result.out == "hello from a package\n"


def test_an_entry_point_task_runs_by_its_entry_point_name_not_its_class_name(project,
                                                                            installed):
    result = project.run("run", *MEMORY, "--", "greet", "moon", "--:", "dump", env=installed,
                         check=0)

    assert result.out == "greetings moon\n"


def test_help_of_an_entry_point_task_shows_the_name_it_is_run_by(project, installed):
    result = project.run("run", "--", "greet", "--help", env=installed, check=0)

    assert "usage: retap run -- greet NAME" in result.out


def test_help_of_a_module_and_name_task_shows_how_to_run_it(project):
    project.write("mytasks.py", """
        import retap


        class Shout(retap.Task):
            '''Upper-cases its input.'''

            def process(self, text):
                return text.upper() + "!"
    """)

    result = project.run("run", "--", "mytasks:Shout", "--help", check=0)

    assert "usage: retap run -- mytasks:Shout TEXT" in result.out


# --- built-in tasks -------------------------------------------------------------------------


def test_load_json_parses_its_input_and_dump_prints_it_as_one_json_line(project):
    result = project.run("run", *MEMORY, "--", "load", "--json", '{"a": [1, 2]}', "--:", "dump",
                         check=0)

    assert result.out == '{"a": [1, 2]}\n'


def test_load_yaml_parses_its_input(project):
    result = project.run("run", *MEMORY, "--", "load", "--yaml", "{a: 1}", "--:", "dump",
                         check=0)

    assert result.out == '{"a": 1}\n'


def test_dump_prints_a_list_as_one_line_and_iterated_items_one_per_line(project):
    result = project.run("run", *MEMORY, "--", "load", "--yaml", "[1, two]", "--:", "dump",
                         "--", "load", "--yaml", "[3, 4]", "--:i", "dump", check=0)

    assert result.lines == ['[1, "two"]', "3", "4"]


def test_load_without_options_passes_its_input_on_as_a_string(project):
    result = project.run("run", *MEMORY, "--", "load", "[1, 2]", "--:", "dump", check=0)

    assert result.out == "[1, 2]\n"


def test_fail_exits_1_with_its_message(project):
    result = project.run("run", *MEMORY, "--", "fail", "--message", "boom")

    assert result.code == 1
    assert "boom" in result.err
    assert "Traceback" not in result.err


def test_glob_returns_the_sorted_matches_of_its_patterns(project):
    for name in ("b.txt", "c.csv", "a.txt", "notes.md", "sub/d.txt"):
        project.write(name, "")

    result = project.run("run", *MEMORY, "--", "glob", "*.txt", "*.csv", "--:", "dump",
                         check=0)

    assert json.loads(result.out) == ["a.txt", "b.txt", "c.csv"]


def test_sleep_passes_its_input_through(project):
    result = project.run("run", *MEMORY, "--", "load", "moon", "--:", "sleep", "--seconds",
                         "0.1", "--:", "dump", check=0)

    assert result.out == "moon\n"


def test_load_json_of_bad_input_fails_the_task(project):
    result = project.run("run", *MEMORY, "--", "load", "--json", "{a: 1}", "--:", "dump")

    assert result.code == 1
    assert result.out == ""
    assert "not valid JSON" in result.err


def test_built_in_task_help_lists_its_configs(project):
    result = project.run("run", "--", "sleep", "--help", check=0)

    seconds = line_with(result.out, "--seconds SECONDS")
    assert "float or none" in seconds
    assert "default: none" in seconds


def test_a_retapfile_task_named_like_a_builtin_wins(project):
    project.retapfile("""
        import retap


        class Dump(retap.Task):
            '''Prints with a prefix.'''

            def process(self, value):
                print(f"mine: {value}")
                return value
    """)

    result = project.run("run", *MEMORY, "--", "load", "hi", "--:", "dump", check=0)

    assert result.out == "mine: hi\n"



# -- never silent, never noisy (issue 12, item 4) -------------------------------------------------

NOISY = """
import retap


class Always(retap.Task, name="always"):
    "Fails every time; tried three times."

    retries = 2

    def process(self, x):
        raise RuntimeError(f"no {x}")
"""


def test_progress_off_a_terminal_is_a_plain_line_at_most_every_interval(
        project: Project) -> None:
    words = ["--", "load", "--yaml", "[1, 2, 3, 4, 5]", "--:i", "dump"]
    quick = project.run("run", *words, check=0)  # faster than the interval: no line
    assert [line for line in quick.err.splitlines() if " · " in line] == []
    every = project.run("run", *words, env={"RETAP_PROGRESS_SECONDS": "0"}, check=0)
    lines = [line for line in every.err.splitlines() if " · " in line]
    assert len(lines) == 6 and lines[-1].startswith("retap: 6 done · 6/6")  # one per change
    assert project.run("run", "-q", *words, env={"RETAP_PROGRESS_SECONDS": "0"},
                       check=0).err == ""


def test_each_retry_is_one_line_and_the_failure_says_how_many_attempts(
        project: Project) -> None:
    project.retapfile(NOISY)
    failed = project.run("run", "--", "always", "x", check=1)
    retries = [line for line in failed.err.splitlines() if "retry" in line]
    assert len(retries) == 2 and "RuntimeError: no x); retry 1 of 2" in retries[0]
    assert "node 0 (always) failed after 3 attempts: RuntimeError: no x" in failed.err
    quiet = project.run("run", "-q", "--", "always", "x", check=1)  # -q hides no failure
    assert quiet.err.strip() == "retap: node 0 (always) failed after 3 attempts: " \
                                "RuntimeError: no x"


SCRIPT = """
import sys

import retap
from retap import App, Workflow, open_store


@retap.task
def shout(text: str) -> str:
    return text.upper()


wf = Workflow()
wf.add(shout, "hi")
print(App(wf, open_store(sys.argv[1])).run().status)
"""


def test_tasks_of_the_script_being_run_get_a_warning_when_the_run_is_kept(
        tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(SCRIPT)
    for store, warned in (("kept.db", True), (":memory:", False)):
        done = subprocess.run([sys.executable, "script.py", store], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.stdout == "done\n", done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == warned, lines
        if warned:
            assert "shout are defined in the script being run (__main__)" in lines[0]
