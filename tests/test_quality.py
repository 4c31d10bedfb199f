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
