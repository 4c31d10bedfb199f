"""File tasks of torture workflows: outputs written whole, files changed in place.

Both are memoized (file tasks are): a later run reuses a result while the inputs, the files
read and the files written are unchanged. Every file name and content is a function of the
label, the inputs and the content of the files read, so a run killed anywhere must end with
the same bytes on disk as an uninterrupted one.

- ``WriteFile`` writes ``out/<label>-<digest of inputs>.txt`` through ``self.output`` and
  passes the path on (a file task downstream then reads it).
- ``StampFile`` appends one line, ``<label> <key>``, to ``mod/<label>-<digest of
  inputs>.txt`` after ``self.modify``; that file is not read, so the line appears once per
  change of what the dispatch reads, and a line seen twice is a change applied twice.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import retap
from retap.torture.tasks import (
    RETRIED,
    digest_text,
    fail_once,
    log_execution,
    pause,
    shaped,
    tuning,
)

__all__ = ["OUTPUT_DIRS", "StampFile", "StampFileRetried", "WriteFile", "WriteFileRetried"]

OUTPUT_DIRS = ("in", "out", "mod")  # what the final comparison holds to the reference


def _content_digest(path: str) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=8).hexdigest()


class _Torturing(retap.FileTask, abstract=True):
    """What both file tasks share: their configs and the facts they log."""

    label: str = "n"
    mode: str = "value"
    width: int = 2
    slow_ms: int = 0
    flaky: bool = False
    scale: float = 1.0
    offsets: tuple[int, ...] = ()
    src: str = ""  # an input file under in/, read when set

    def start(self, inputs: tuple[Any, ...]) -> tuple[str, dict[str, str]]:
        """Log this execution with its key; return the key and the files read."""
        reads = {p: _content_digest(p) for p in self.read_paths(*inputs)}
        key = digest_text(self.label, inputs, sorted(reads.items()), *tuning(self))
        log_execution(self, self.label, key)
        return key, reads

    def target(self, folder: str, inputs: tuple[Any, ...]) -> Path:
        return Path(folder) / f"{self.label}-{digest_text(self.label, inputs)}.txt"

    def value(self, key: str, payload: str) -> Any:
        return shaped(self.label, self.mode, self.width, int(key[:8], 16), payload)


class WriteFile(_Torturing):
    """Writes a file made from the inputs and the files read; passes its path on."""

    def process(self, *inputs: Any) -> Any:
        key, reads = self.start(inputs)
        target = self.target("out", inputs)
        lines = [f"{self.label} {inputs!r}\n"] + [f"{p} {d}\n" for p, d in sorted(reads.items())]
        with self.output(target) as tmp, open(tmp, "w") as fh:
            fh.write(lines[0])
            fh.flush()
            pause(self.slow_ms)
            fh.writelines(lines[1:])
        if self.flaky:
            fail_once(self, self.label)  # after the output is in place: it must be undone
        return self.value(key, str(target))


class StampFile(_Torturing):
    """Appends one line naming its key to a file it does not read, in place."""

    def process(self, *inputs: Any) -> Any:
        key, _ = self.start(inputs)
        target = self.modify(self.target("mod", inputs))
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as fh:
            fh.write(f"{self.label} ")
            fh.flush()
            pause(self.slow_ms)
            fh.write(f"{key}\n")
        if self.flaky:
            fail_once(self, self.label)  # after the change: the file must come back
        return self.value(key, f"{self.label}:{key}")


class WriteFileRetried(WriteFile, **RETRIED):
    """WriteFile whose failure is rolled back and retried within its session."""


class StampFileRetried(StampFile, **RETRIED):
    """StampFile whose failure is rolled back and retried within its session."""
