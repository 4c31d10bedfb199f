"""An attempt started in the background, for the generators that act while it runs (a
pause, neighbours): its stderr goes to a file, since a full pipe would block it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

__all__ = ["TIMEOUT", "start", "wait"]

TIMEOUT = 300  # seconds an attempt may take before it counts as hung


def start(command: list[str], cwd: Path, env: dict[str, str],
          err_path: Path) -> subprocess.Popen[Any]:
    """Start ``command`` with its stderr written to ``err_path``."""
    with open(err_path, "w") as err:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=err)


def wait(proc: subprocess.Popen[Any], timeout: float = TIMEOUT) -> int:
    """Its exit code; -1 when it hung (it is killed)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -1
