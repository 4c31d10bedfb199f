"""Tasks of torture workflows: deterministic values, optional slowness and one-off failures.

Every execution is appended to ``$TORTURE_LOG`` as ``dispatch-id<TAB>label<TAB>run<TAB>key``
before any work, so a checker outside the store can tell which dispatches really ran, in
which run, and (for memoized tasks) with which facts: ``key`` digests what a memoized
result depends on, so an execution whose key was already committed is one the memo should
have answered.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import retap

try:
    import torture_code  # a case project's own module (its folder is on PYTHONPATH)
except ImportError:  # outside a torture case's commands
    torture_code = None

__all__ = ["RETRIED", "Gen", "GenRetried", "Memo", "MemoRetried", "digest_text",
           "log_execution", "ran_line", "shaped", "tuning", "variant"]

# a flaky node may be drawn to retry within its session (the task's ``retries``): its one
# failure is then made good at once, while other dispatches may run (-j above 1)
RETRIED = {"retries": 1, "retry_delay": 0.005}


def variant() -> str:
    """The case project's code variant: a rerun scenario edits it between runs, and every
    memoized result made with the old one must be made again ("" when there is none)."""
    return torture_code.VARIANT if torture_code is not None else ""


def _number(*parts: Any) -> int:
    return int(hashlib.blake2b(repr(parts).encode(), digest_size=4).hexdigest(), 16)


def digest_text(*parts: Any) -> str:
    """A short stable digest of ``parts`` (their repr, which tells tuples from lists)."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def shaped(label: str, mode: str, width: int, h: int, payload: str) -> Any:
    """A node's value shaped for its joins: a value, a list of ``width`` or an index pair."""
    if mode == "list":
        return [f"{label}{i}.{h % 97}" for i in range(width - 1)] + [payload]
    if mode == "pair":
        return [h % width, payload]
    return payload


def log_execution(task: retap.Task, label: str, key: str = "") -> None:
    """Append this execution to ``$TORTURE_LOG`` (nothing outside the torture runner)."""
    log = os.environ.get("TORTURE_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{task.dispatch_id}\t{label}\t{task.run_id or ''}\t{key}\n")
        print(ran_line(task.dispatch_id or ""))  # the store keeps it with the attempt


def ran_line(dispatch: str) -> str:
    """What a torture task prints as it runs: each attempt made keeps it in the store."""
    return f"ran {dispatch}"


def fail_once(task: retap.Task, label: str) -> None:
    """Raise the first time this dispatch runs (a marker file remembers it across runs)."""
    markers = os.environ.get("TORTURE_MARKERS")
    if not markers:
        return
    marker = Path(markers) / f"{task.dispatch_id}"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        raise RuntimeError(f"{label} fails once (flaky)")


def tuning(task: Any) -> tuple[Any, ...]:
    """What a node's drawn ``scale`` and ``offsets`` add to the parts of its values: nothing
    at their defaults. A run rebuilt from its spec validates ``scale`` (a float) without
    pydantic and ``offsets`` (a tuple) with it; either coming back as another type (an int,
    a list) changes the values, and the comparison with the reference sees it."""
    parts = (task.scale, task.offsets)
    return () if parts == (1.0, ()) else parts


def pause(slow_ms: int) -> None:
    if slow_ms:
        time.sleep(slow_ms / 1000)


class Gen(retap.Task):
    """A value made from its inputs alone, shaped for its node's joins."""

    label: str = "n"
    mode: str = "value"  # value | list | pair
    width: int = 2
    slow_ms: int = 0
    flaky: bool = False
    scale: float = 1.0
    offsets: tuple[int, ...] = ()

    def process(self, *inputs: Any) -> Any:
        log_execution(self, self.label)
        pause(self.slow_ms)
        if self.flaky:
            fail_once(self, self.label)
        h = _number(self.label, inputs, *tuning(self))
        if self.mode == "list":
            return [f"{self.label}{i}.{h % 97}" for i in range(self.width)]
        if self.mode == "pair":
            return [h % self.width, f"{self.label}.{h % 997}"]
        return f"{self.label}.{h % 9973}"


class Memo(retap.Task, cache="inputs"):
    """Gen's values, memoized: a later run with the same inputs reuses the result."""

    label: str = "n"
    mode: str = "value"
    width: int = 2
    slow_ms: int = 0
    flaky: bool = False
    scale: float = 1.0
    offsets: tuple[int, ...] = ()

    def process(self, *inputs: Any) -> Any:
        code = variant()
        made_by = (code,) if code else ()  # no variant: values as before it existed
        made_by += tuning(self)
        log_execution(self, self.label, digest_text(self.label, inputs, *made_by))
        pause(self.slow_ms)
        if self.flaky:
            fail_once(self, self.label)
        h = _number(self.label, inputs, *made_by)
        return shaped(self.label, self.mode, self.width, h, f"{self.label}.{h % 9973}")


class GenRetried(Gen, **RETRIED):
    """Gen whose failure is retried within its session."""


class MemoRetried(Memo, **RETRIED):
    """Memo whose failure is retried within its session."""
