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
        "App", "CodecError", "ConfigValueError", "FileTask", "Input", "InflightNotIdempotent",
        "InputArityError", "Interrupted", "JoinError", "MemoryStore", "Middleware", "Output",
        "RetapError", "RunBusy",
        "RunResult", "SpecError", "Store", "StoreCorrupt", "StoreError", "StoreVersionError",
        "Task", "TaskDefinitionError", "UnknownConfig", "UnknownRun", "UnknownTask",
        "UsageError", "Workflow", "WorkflowSyntaxError", "config", "open_store", "replay",
        "resume", "task",
    ])
    for name in retap.__all__:
        assert hasattr(retap, name), name
