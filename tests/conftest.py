"""Shared test helpers: the real `retap` command in a subprocess, and a project folder."""

from __future__ import annotations

import compileall
import json
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The `retap` processes the tests start read retap's compiled bytecode, as an installed
# retap does: where PYTHONDONTWRITEBYTECODE is set (this machine kind sets it), every one
# of them would otherwise compile retap again, about a quarter of a short command's time.
# Only retap's own modules: a test project's files are rewritten within a second, with the
# same size, which a bytecode cache would not notice.
compileall.compile_dir(ROOT / "src" / "retap", quiet=2)


@dataclass
class Result:
    """What a `retap` command did: its exit code and its two output streams."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def assert_one_line_error(result: Result, *needles: str) -> str:
    """Bad usage: exit 2, nothing on stdout, one line on stderr holding every needle."""
    assert result.code == 2, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert result.out == ""
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


class Project:
    """A working directory with a retapfile, where `retap` is run as a user would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env.pop("RETAP_STORE", None)

    def retapfile(self, source: str) -> Path:
        """Write ``retapfile.py`` (dedented)."""
        target = self.path / "retapfile.py"
        target.write_text(textwrap.dedent(source))
        return target

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
        return target

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "retap", *args]

    def run(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None,
            check: int | None = None) -> Result:
        """Run `retap ARGS...` here and wait for it."""
        done = subprocess.run(self.command(*args), cwd=self.path, capture_output=True,
                              text=True, timeout=timeout, env={**self.env, **(env or {})})
        result = Result(done.returncode, done.stdout, done.stderr)
        if check is not None:
            assert result.code == check, (result.code, result.out, result.err)
        return result

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `retap ARGS...` here without waiting."""
        return subprocess.Popen(self.command(*args), cwd=self.path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**self.env, **(env or {})})

    def runs(self) -> list[dict[str, Any]]:
        return self.run("runs", "--json", check=0).json()

    def last_run(self) -> str:
        return self.runs()[0]["run"]

    def log(self, name: str = "exec.log") -> list[str]:
        """Lines of an execution log the project's tasks append to."""
        path = self.path / name
        return path.read_text().splitlines() if path.exists() else []

    def counts(self, name: str = "exec.log") -> Counter[str]:
        return Counter(line.split()[0] for line in self.log(name))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, so the workers start on them and the run does not end waiting
    for one of them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Background `retap` processes, killed at teardown if a test left them running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


# A retapfile of tasks that log each execution to exec.log and fail once on demand:
# FAIL_ONCE=c makes task c raise the first time it runs (a marker file remembers).
LOGGING_TASKS = '''
import os
import time
from pathlib import Path

import retap


def _log(name, *inputs):
    with open("exec.log", "a") as fh:
        fh.write(f"{name} {inputs!r}\\n")


def _maybe_fail(name):
    if name in os.environ.get("FAIL_ONCE", "").split(","):
        marker = Path(f".failed-{name}")
        if not marker.exists():
            marker.touch()
            raise RuntimeError(f"{name} fails once")
    if name in os.environ.get("FAIL_ALWAYS", "").split(","):
        raise RuntimeError(f"{name} always fails")


def _step(name):
    def step(*inputs):
        _log(name, *inputs)
        _maybe_fail(name)
        delay = float(os.environ.get(f"DELAY_{name.upper()}", "0"))
        if delay:
            time.sleep(delay)
        return f"{name}({','.join(map(str, inputs))})"
    step.__name__ = name
    step.__qualname__ = name
    return retap.task(step, name=name)


a = _step("a")
b = _step("b")
c = _step("c")
d = _step("d")
e = _step("e")
'''


@pytest.fixture
def logging_project(project: Project) -> Project:
    project.retapfile(LOGGING_TASKS)
    return project


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def on_terminal(project: Project, *args: str, escapes: bool = False) -> tuple[int, str]:
    """Run `retap ARGS` with stdin, stdout and stderr on a pseudo-terminal: (code, text),
    without the terminal's escape sequences unless ``escapes``."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(project.command(*args), cwd=project.path, stdin=slave,
                            stdout=slave, stderr=slave, close_fds=True,
                            env={**project.env, "TERM": "xterm", "COLUMNS": "160"})
    os.close(slave)
    chunks = []
    try:
        while select.select([master], [], [], 30)[0]:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    code = proc.wait(timeout=30)
    text = b"".join(chunks).decode()
    return code, text if escapes else re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
