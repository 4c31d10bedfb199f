"""The code stays lint-clean and type-checked, and the public surface stays what it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import retap

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing_in_src_and_tests() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing_in_src() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_public_api_is_exactly_this() -> None:
    assert sorted(retap.__all__) == sorted([
        "AmbiguousRun", "App", "BadRunId", "CodecError", "ConfigValueError", "DispatchTimeout",
        "ExecutorError", "FileTask", "Input",
        "InflightNotIdempotent", "InputArityError", "Interrupted", "JoinError", "JoinKind",
        "MemoryStore",
        "Middleware", "Output", "RetapError", "RunBusy", "RunExists", "RunResult",
        "SecretMissing", "SpecError", "Store", "StoreCorrupt", "StoreError", "StoreVersionError",
        "Task", "TaskDefinitionError", "TaskFailed", "UnknownConfig", "UnknownRun",
        "UnknownTask", "UsageError", "WorkerLost", "Workflow", "WorkflowSyntaxError", "config",
        "open_store",
        "replay", "resume", "selector", "task",
    ])
    for name in retap.__all__:
        assert hasattr(retap, name), name


def test_the_package_says_it_is_typed() -> None:
    from importlib.resources import files

    assert files("retap").joinpath("py.typed").is_file()


def test_import_retap_loads_none_of_its_heavy_parts() -> None:
    code = ("import sys, retap; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pydantic', 'rich', 'sqlite3', 'yaml', 'click')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_command_imports_its_own_module_and_no_other_command(tmp_path: Path) -> None:
    code = ("import sys; from retap.cli import main\n"
            "try:\n    main(['--store', sys.argv[1], 'runs'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('retap.cli.cmd_')))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.db")],
                          capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "['retap.cli.cmd_inspect']", done


def test_every_command_module_is_named_for_its_commands() -> None:
    import importlib
    import pkgutil

    import retap.cli
    from retap.cli.main import COMMANDS, main

    modules = {m.name for m in pkgutil.iter_modules(retap.cli.__path__)
               if m.name.startswith("cmd_")}
    for module in modules:
        importlib.import_module(f"retap.cli.{module}")
    assert set(COMMANDS.values()) == modules
    assert sorted(main.commands) == sorted(COMMANDS)
    assert all(COMMANDS[name] == main.commands[name].callback.__module__.split(".")[-1]
               for name in COMMANDS)


# Case 17: the error tree -------------------------------------------------------------------------


def test_case_17_a_store_error_is_not_a_usage_error() -> None:
    assert not issubclass(retap.StoreError, retap.UsageError)
    assert retap.StoreError("s", "x").exit_code == 2
    from retap.errors import StoreWriteError

    assert StoreWriteError("s", "disk full").exit_code == 1


def test_case_17_the_fail_task_raises_the_public_task_failed() -> None:
    from retap.tasks import Fail

    try:
        Fail(message="no").process()
    except retap.TaskFailed as exc:
        assert exc.message == "no"
    else:
        raise AssertionError("fail did not fail")
    assert retap.TaskFailed.__mro__[1] is retap.RetapError


def test_case_17_one_function_turns_an_exception_into_the_recorded_json() -> None:
    from retap.errors import error_record

    try:
        raise retap.UnknownTask("nope", ["load"])
    except retap.RetapError as exc:
        record = error_record(exc)
    assert record["type"] == "UnknownTask"
    assert record["details"]["name"] == "nope"
    assert "Traceback" in record["traceback"]
    assert error_record(SystemExit(3))["type"] == "SystemExit"
    assert error_record(ValueError(""))["message"] == "ValueError"


def test_case_17_a_duplicate_run_id_is_run_exists(tmp_path: Path) -> None:
    store = retap.open_store(tmp_path / "s.db")
    wf = retap.Workflow()
    from retap.tasks import Load

    wf.add(Load(), "x")
    retap.App(wf, store, run_id="same").run()
    try:
        retap.App(wf, store, run_id="same").run()
    except retap.RunExists as exc:
        assert exc.run == "same" and exc.exit_code == 2
    else:
        raise AssertionError("a second run with the same id was accepted")
