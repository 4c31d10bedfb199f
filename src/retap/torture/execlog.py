"""The executions torture tasks log to ``$TORTURE_LOG``, read attempt by attempt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ExecLog", "Execution"]


@dataclass(frozen=True)
class Execution:
    """One execution of a task: which dispatch of which run, and its memo key (or "")."""

    dispatch: str
    label: str
    run: str
    key: str


class ExecLog:
    """The log file, with a mark before each attempt so executions are attributed to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.last_key: dict[tuple[str, str], str] = {}  # (run, dispatch) -> latest key

    def mark(self, attempt: int) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"# attempt {attempt}\n")

    def since_mark(self) -> list[Execution]:
        """The executions logged since the last mark, in order."""
        with open(self.path) as fh:
            fh.seek(self._offset)
            text = fh.read()
            self._offset = fh.tell()
        found = [_parse(line) for line in text.splitlines() if line and not line.startswith("#")]
        for e in found:
            self.last_key[(e.run, e.dispatch)] = e.key
        return found


def _parse(line: str) -> Execution:
    dispatch, label, run, key = ([*line.split("\t"), "", "", ""])[:4]
    return Execution(dispatch, label, run, key)
