"""The Python API of tasks: configs, CLI names, function tasks, settings, definition errors,
docs, and how config values are coerced from command-line text."""

import enum
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import retap
from retap.configs import MISSING, spec_from, to_json, validate_one
from retap.discovery import Registry
from retap.syntax import HelpRequested, parse_workflow

HERE = Path(__file__).resolve().parent


class Goodnight(retap.Task):
    """Your basic goodnight moon task.

    Says goodnight with a configurable message.
    """

    message: str = retap.config("goodnight", help="a goodnight message")
    count: int = 1
    tags: list[str] = []

    def process(self, name):
        return " ".join([f"{self.message} {name}"] * self.count)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Typed(retap.Task):
    """One config of each common type, to check coercion from command-line text."""

    count: int = 0
    ratio: float = 0.0
    verbose: bool = False
    sizes: list[int] = []
    path: Path = Path(".")
    color: Color = Color.RED
    limit: Optional[int] = 10  # noqa: UP045 - the typing.Optional spelling is under test
    cap: int | None = 10

    def process(self):
        return None


def words_id(value):
    """Test ids: the command-line words of a case, as typed."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value)
    return None


def from_command_line(*words: str) -> Typed:
    """The Typed task configured as `retap run -- test_tasks:Typed WORDS...` would."""
    workflow, _ = parse_workflow([f"{__name__}:Typed", *words], Registry(HERE))
    return workflow.nodes[0].task


# --- class tasks: configs -------------------------------------------------------------------


def test_a_class_task_reads_its_configs_as_attributes_with_their_defaults():
    task = Goodnight()

    assert task.message == "goodnight"
    assert task.count == 1
    assert task.process("moon") == "goodnight moon"


def test_configs_given_in_python_replace_the_defaults():
    task = Goodnight(message="hi", count=2)

    assert task.message == "hi"
    assert task.process("moon") == "hi moon hi moon"


def test_retap_config_declares_a_default_and_a_help_text():
    specs = Goodnight.__retap__.configs

    assert specs["message"].default == "goodnight"
    assert specs["message"].help == "a goodnight message"
    assert specs["message"].type_name == "str"
    assert specs["count"].default == 1
    assert specs["count"].help == ""
    assert list(specs) == ["message", "count", "tags"]


def test_assigning_a_config_coerces_the_value_to_its_type():
    task = Goodnight()

    task.count = "3"

    assert task.count == 3
    assert type(task.count) is int


def test_assigning_a_bad_value_to_a_config_raises_and_keeps_the_old_value():
    task = Goodnight(count=2)

    with pytest.raises(retap.ConfigValueError) as caught:
        task.count = "x"

    assert (caught.value.task, caught.value.key, caught.value.value) == ("goodnight", "count", "x")
    assert task.count == 2


def test_a_bad_value_given_in_python_raises_config_value_error():
    with pytest.raises(retap.ConfigValueError, match="'message'"):
        Goodnight(message=3)


def test_an_unknown_config_given_in_python_raises_unknown_config_naming_it():
    with pytest.raises(retap.UnknownConfig, match="mesage") as caught:
        Goodnight(mesage="hi")

    assert "--message" in caught.value.message  # the hint lists the real configs


def test_a_config_without_a_default_is_required():
    class Read(retap.Task):
        path: str

        def process(self):
            return self.path

    with pytest.raises(retap.ConfigValueError, match=r"required.*--path"):
        Read()
    assert Read(path="in.csv").process() == "in.csv"


def test_a_mutable_default_is_not_shared_between_instances():
    first, second = Goodnight(), Goodnight()

    first.tags.append("changed")

    assert second.tags == []
    assert Goodnight().tags == []


def test_configs_as_json_are_plain_data():
    task = Typed(path="data/in.csv", color="green")

    assert task.configs["path"] == "data/in.csv"
    assert task.configs["color"] == "green"


PLAIN = [int, str, float, bool, int | None, Optional[str], float | None, bool | None]  # noqa: UP045
ANY_VALUE = (st.integers() | st.text() | st.floats() | st.booleans() | st.none()
             | st.binary(max_size=4) | st.lists(st.integers(), max_size=2))


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What ``call`` gave, comparable across two validators (NaN equals NaN here)."""
    try:
        value = call()
    except (pydantic.ValidationError, retap.ConfigValueError):
        return ("refused", None)
    return (type(value).__name__, repr(value))


@settings(max_examples=300, deadline=None)
@given(annotation=st.sampled_from(PLAIN), value=ANY_VALUE)
def test_a_config_of_a_plain_type_validates_and_records_every_value_as_pydantic_does(
        annotation: Any, value: Any) -> None:
    # Values already of the declared type skip the TypeAdapter; that shortcut must be exact.
    spec = spec_from("t", "c", annotation, MISSING)
    adapter = pydantic.TypeAdapter(annotation)

    assert _outcome(lambda: validate_one("t", spec, value)) == \
        _outcome(lambda: adapter.validate_python(value))
    if _outcome(lambda: adapter.validate_python(value))[0] != "refused":
        valid = adapter.validate_python(value)
        assert repr(to_json(spec, valid)) == repr(adapter.dump_python(valid, mode="json"))


def test_a_default_that_does_not_fit_its_type_is_an_error_before_anything_runs():
    with pytest.raises((retap.TaskDefinitionError, retap.ConfigValueError), match="'count'"):
        class Repeat(retap.Task):
            count: int = "x"

            def process(self, text):
                return text * self.count

        Repeat()


# --- inheritance ----------------------------------------------------------------------------


class Greeting(retap.Task):
    message: str = retap.config("hello", help="what to say")

    def process(self, name):
        return f"{self.message} {name}"


class Farewell(Greeting):
    message = "goodbye"
    times: int = 1


def test_a_subclass_inherits_the_configs_of_its_base_and_adds_its_own():
    assert list(Farewell.__retap__.configs) == ["message", "times"]
    assert Farewell(times=2).times == 2


def test_a_bare_assignment_in_a_subclass_overrides_the_base_default_there_only():
    assert Farewell().process("moon") == "goodbye moon"
    assert Greeting().process("moon") == "hello moon"
    assert Farewell.__retap__.configs["message"].help == "what to say"


def test_an_overridden_config_is_still_validated_and_settable():
    assert Farewell(message="bye").message == "bye"
    with pytest.raises(retap.ConfigValueError):
        Farewell(message=["not", "a", "string"])


# --- CLI names ------------------------------------------------------------------------------


@pytest.mark.parametrize(("class_name", "cli_name"), [
    ("Goodnight", "goodnight"),
    ("LoadCSV", "load_csv"),
    ("MyTask", "my_task"),
    ("LoadCSVFile", "load_csv_file"),
])
def test_the_cli_name_of_a_class_task_is_its_name_in_snake_case(class_name, cli_name):
    cls = type(class_name, (retap.Task,), {"__module__": __name__})

    assert cls.__retap__.name == cli_name


def test_the_name_class_keyword_sets_the_cli_name():
    class GoodnightMoon(retap.Task, name="gn"):
        def process(self):
            return None

    assert GoodnightMoon.__retap__.name == "gn"
    assert GoodnightMoon.__retap__.usage == "gn"


def test_with_the_name_keyword_an_annotated_name_attribute_is_a_config():
    class Greet(retap.Task, name="greet"):
        name: str = "moon"

        def process(self):
            return f"goodnight {self.name}"

    assert "name" in Greet.__retap__.configs
    assert Greet.__retap__.name == "greet"
    assert Greet().process() == "goodnight moon"
    assert Greet(name="sun").process() == "goodnight sun"


# --- function tasks -------------------------------------------------------------------------


@retap.task
def shout(text, *, times: int = 2):
    """Shouts its input.

    Upper-cases TEXT and repeats it.
    """
    return text.upper() * times


def test_a_function_task_takes_positional_parameters_as_inputs_and_keyword_only_as_configs():
    info = shout.__retap__

    assert info.name == "shout"
    assert info.usage == "shout TEXT"
    assert list(info.configs) == ["times"]
    assert info.configs["times"].default == 2


def test_a_function_task_processes_with_its_configs_as_keywords():
    assert shout().process("hi") == "HIHI"
    assert shout(times=3).process("hi") == "HIHIHI"


def test_a_function_task_validates_its_configs():
    with pytest.raises(retap.ConfigValueError, match="'times'"):
        shout(times="many")
    with pytest.raises(retap.UnknownConfig):
        shout(volume=11)


def test_the_task_decorator_with_arguments_sets_the_name_and_settings():
    @retap.task(name="yell", cache="inputs")
    def loud(text, suffix="!", *, times: int = 1):
        return (text.upper() + suffix) * times

    assert loud.__retap__.name == "yell"
    assert loud.cache == "inputs"
    assert loud.__retap__.usage == "yell TEXT [SUFFIX]"
    assert loud(times=2).process("hi", "?") == "HI?HI?"


def test_a_function_task_with_star_args_takes_any_number_of_inputs():
    @retap.task
    def join_words(*words, sep: str = " "):
        return sep.join(words)

    assert join_words.__retap__.name == "join_words"
    assert join_words.__retap__.accepts(0)
    assert join_words.__retap__.accepts(3)
    assert join_words(sep="-").process("a", "b", "c") == "a-b-c"


def test_a_function_task_with_a_keyword_only_param_without_default_requires_that_config():
    @retap.task
    def greet(name, *, greeting: str):
        return f"{greeting} {name}"

    with pytest.raises(retap.ConfigValueError, match="required"):
        greet()
    assert greet(greeting="hello").process("moon") == "hello moon"


# --- definition errors ----------------------------------------------------------------------


def test_a_config_declared_with_retap_config_but_no_annotation_is_refused_at_definition():
    with pytest.raises(retap.TaskDefinitionError, match="'count' has no type"):
        class Counter(retap.Task):
            count = retap.config(1, help="how many")


def test_annotating_a_reserved_setting_is_refused_at_definition():
    with pytest.raises(retap.TaskDefinitionError, match="'idempotent' is a task setting"):
        class Mailer(retap.Task):
            idempotent: bool = False


def test_annotating_a_method_name_is_refused_at_definition():
    with pytest.raises(retap.TaskDefinitionError, match="'process'"):
        class Odd(retap.Task):
            process: int = 1


def test_an_unknown_class_keyword_is_refused_at_definition_with_the_known_ones():
    with pytest.raises(retap.TaskDefinitionError, match="unknown task option 'nmae'") as caught:
        class Misspelt(retap.Task, nmae="x"):
            pass

    assert "name" in caught.value.reason


@pytest.mark.parametrize(("setting", "value", "hint"), [
    ("cache", "bogus", 'None or "inputs"'),
    ("retries", -1, "an int >= 0"),
    ("idempotent", "no", "True or False"),
    ("version", 3, "a string"),
])
def test_a_bad_setting_value_in_the_class_body_is_refused_at_definition(setting, value, hint):
    with pytest.raises(retap.TaskDefinitionError, match=setting) as caught:
        type("Badly", (retap.Task,), {"__module__": __name__, setting: value})

    assert hint in caught.value.reason


def test_a_bad_setting_value_as_a_class_keyword_is_refused_at_definition():
    with pytest.raises(retap.TaskDefinitionError, match="retries"):
        class Flaky(retap.Task, retries=-1):
            pass


def test_an_empty_name_keyword_is_refused_at_definition():
    with pytest.raises(retap.TaskDefinitionError, match="name"):
        class Nameless(retap.Task, name=""):
            pass


def test_a_function_task_with_var_keyword_params_is_refused_at_definition():
    with pytest.raises(retap.TaskDefinitionError, match=r"\*\*options"):
        @retap.task
        def anything(text, **options):
            return text


def test_a_function_task_with_an_unannotated_keyword_only_param_is_refused_at_definition():
    with pytest.raises(retap.TaskDefinitionError, match="'times' needs a type annotation"):
        @retap.task
        def repeat(text, *, times=2):
            return text * times


def test_the_task_decorator_refuses_an_unknown_setting():
    with pytest.raises(retap.TaskDefinitionError, match="unknown task option 'cahce'"):
        @retap.task(cahce="inputs")
        def slow(text):
            return text


@pytest.mark.parametrize("option", ["help", "config"])
def test_a_config_named_like_a_builtin_option_is_refused_or_settable_on_the_command_line(
        option, monkeypatch):
    try:
        shadowed = type("Shadowed", (retap.Task,), {
            "__module__": __name__, "__annotations__": {option: str}, option: "default"})
    except retap.TaskDefinitionError:
        return  # refused when declared: fine
    monkeypatch.setattr(sys.modules[__name__], "Shadowed", shadowed, raising=False)

    try:
        workflow, _ = parse_workflow([f"{__name__}:Shadowed", f"--{option}", "x"],
                                     Registry(HERE))
    except (HelpRequested, retap.RetapError) as exc:
        pytest.fail(f"config {option!r} is accepted but cannot be set with --{option}: {exc!r}")
    assert getattr(workflow.nodes[0].task, option) == "x"


# --- docs -----------------------------------------------------------------------------------


def test_the_summary_is_the_first_docstring_line_and_the_rest_is_the_description():
    info = Goodnight.__retap__

    assert info.summary == "Your basic goodnight moon task."
    assert info.description == "Says goodnight with a configurable message."


def test_a_function_task_takes_its_docs_from_the_function_docstring():
    assert shout.__retap__.summary == "Shouts its input."
    assert shout.__retap__.description == "Upper-cases TEXT and repeats it."


def test_a_task_without_a_docstring_has_an_empty_summary():
    class Quiet(retap.Task):
        def process(self):
            return None

    assert Quiet.__retap__.summary == ""
    assert Quiet.__retap__.description == ""


# --- coercion from strings ------------------------------------------------------------------


@pytest.mark.parametrize(("words", "key", "expected"), [
    (["--count", "3"], "count", 3),
    (["--count", "-4"], "count", -4),
    (["--ratio", "0.25"], "ratio", 0.25),
    (["--verbose"], "verbose", True),
    (["--verbose=true"], "verbose", True),
    (["--verbose", "--no-verbose"], "verbose", False),
    (["--sizes", "1,2,3"], "sizes", [1, 2, 3]),
    (["--sizes", "[1, 2, 3]"], "sizes", [1, 2, 3]),
    (["--sizes", "1", "--sizes", "2", "--sizes", "3"], "sizes", [1, 2, 3]),
    (["--sizes", "1,2", "--sizes", "[3]"], "sizes", [1, 2, 3]),
    (["--path", "data/in.csv"], "path", Path("data/in.csv")),
    (["--color", "green"], "color", Color.GREEN),
    (["--limit", "none"], "limit", None),
    (["--limit", "5"], "limit", 5),
    (["--cap", "none"], "cap", None),
    (["--cap=7"], "cap", 7),
], ids=words_id)
def test_command_line_text_is_coerced_to_the_config_type(words, key, expected):
    value = getattr(from_command_line(*words), key)

    assert value == expected
    assert type(value) is type(expected)


def test_string_values_given_in_python_are_coerced_too():
    task = Typed(count="3", ratio="0.5", verbose="yes", path="out", color="green", limit="2")

    assert (task.count, task.ratio, task.verbose) == (3, 0.5, True)
    assert (task.path, task.color, task.limit) == (Path("out"), Color.GREEN, 2)


@pytest.mark.parametrize(("words", "key", "value", "expected"), [
    (["--count", "x"], "count", "'x'", "expected int"),
    (["--ratio", "fast"], "ratio", "'fast'", "expected float"),
    (["--verbose=maybe"], "verbose", "'maybe'", "expected bool"),
    (["--sizes", "1,x"], "sizes", "'x'", "expected list[int]"),
    (["--color", "blue"], "color", "'blue'", "expected one of red, green"),
    (["--limit", "lots"], "limit", "'lots'", "expected int or none"),
], ids=words_id)
def test_a_bad_value_names_the_task_the_key_the_value_and_the_expected_type(
        words, key, value, expected):
    with pytest.raises(retap.ConfigValueError) as caught:
        from_command_line(*words)

    message = caught.value.message
    assert "'typed'" in message
    assert f"config '{key}'" in message
    assert value in message
    assert expected in message
    assert (caught.value.task, caught.value.key) == ("typed", key)


# --- settings -------------------------------------------------------------------------------


def test_settings_have_defaults_readable_on_the_class():
    assert Goodnight.idempotent is True
    assert Goodnight.version is None
    assert Goodnight.retries == 0
    assert Goodnight.cache is None


def test_settings_are_set_as_plain_class_attributes():
    class Mail(retap.Task):
        idempotent = False
        version = "2"
        retries = 3
        cache = "inputs"

        def process(self):
            return None

    assert (Mail.idempotent, Mail.version, Mail.retries, Mail.cache) == (False, "2", 3, "inputs")
    assert Mail.__retap__.configs == {}


def test_settings_are_set_as_class_keywords():
    class Mail(retap.Task, idempotent=False, version="2", retries=3, cache="inputs"):
        def process(self):
            return None

    assert (Mail.idempotent, Mail.version, Mail.retries, Mail.cache) == (False, "2", 3, "inputs")


def test_a_setting_is_not_a_config():
    class Mail(retap.Task):
        idempotent = False

        def process(self):
            return None

    with pytest.raises(retap.UnknownConfig):
        Mail(idempotent=True)


def test_settings_are_inherited_by_subclasses():
    class Base(retap.Task, retries=2):
        cache = "inputs"

    class Child(Base):
        pass

    assert (Child.retries, Child.cache) == (2, "inputs")


@retap.task
def shout_plain(text: str, *, times: int = 1) -> str:
    """Upper-cases its input, repeated."""
    return " ".join([text.upper()] * times)


def test_a_task_function_is_still_the_plain_function_when_called_with_inputs() -> None:
    assert shout_plain("hi", times=2) == "HI HI"
    assert shout_plain(text="yo") == "YO"
    task = shout_plain(times=3)  # configs only: a task instance, as Workflow.add takes it
    assert isinstance(task, retap.Task) and task.times == 3
    assert task.process("a") == "A A A"
    wf = retap.Workflow()
    node = wf.add(shout_plain(times=2), "x")
    assert retap.App(wf).run().values(node) == ["X X"]
    with pytest.raises(TypeError):
        shout_plain("hi", colour="red")  # as the function itself would say
    with pytest.raises(retap.UnknownConfig):
        shout_plain(colour="red")  # configs only: a task, and it has no such config
