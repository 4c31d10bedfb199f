"""Memoization across runs: when a remembered result can stand in for running a dispatch.

A task opts in with ``cache = "inputs"`` (file tasks do by default). Its dispatch's key
is a digest of its *facts*: the task, its code version (the parts of code it was made of
are kept beside, to name what changed), its configs, the digests of its
input values, of the files it reads, and of its ``fingerprint``. An earlier result with
the same key is reused when every file it wrote is still there, unchanged. When there
is none, the newest earlier result of the same dispatch says what changed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec

from retap.codeversion import changed_parts, where_changed
from retap.dispatch import Dispatch
from retap.errors import CodecError
from retap.files import FileDigests, FileTask
from retap.store.base import MemoEntry, Store
from retap.store.codec import JsonCodec
from retap.taskdef import Task

__all__ = ["Decision", "Memoizer", "explain", "memoized"]

UP_TO_DATE = "up to date"


def memoized(task: Task) -> bool:
    """True when the task's dispatches may be answered from earlier runs."""
    return task.cache == "inputs"


class Decision(msgspec.Struct):
    """Whether a dispatch runs, and why: ``hit`` is the result that stands in for it."""

    key: str | None
    facts: dict[str, Any] = msgspec.field(default_factory=dict)
    hit: MemoEntry | None = None
    reason: str = ""

    def remember(self, task: Task, value: Any, outputs: dict[str, str]) -> MemoEntry | None:
        """The memo entry a successful execution leaves (None when not memoizable)."""
        if self.key is None:
            return None
        return MemoEntry(type(task).__retap__.import_path, self.key, value, outputs,
                         self.facts)


class Memoizer:
    """Decides, against a store's memo, whether each memoized dispatch has to run."""

    def __init__(self, store: Store, remember: bool = True) -> None:
        self.store = store
        self.files = FileDigests(store, remember)  # remember=False: a dry run writes nothing

    def decide(self, task: Task, d: Dispatch) -> Decision:
        try:
            facts = self.facts(task, d)
        except CodecError as exc:
            return Decision(None, reason=f"its inputs cannot be fingerprinted ({exc.message})")
        key = _digest({k: v for k, v in facts.items() if k != "parts"})
        path = facts["task"]
        entry = self.store.memo_get(path, key)
        if entry is not None:
            problem = self.outputs_problem(entry.outputs)
            if problem is None:
                return Decision(key, facts, entry, UP_TO_DATE)
            return Decision(key, facts, None, problem)
        previous = self.store.memo_latest(path, d.id)
        return Decision(key, facts, None, explain(previous.facts if previous else None, facts))

    def facts(self, task: Task, d: Dispatch) -> dict[str, Any]:
        """What the dispatch's result depends on, as JSON."""
        info = type(task).__retap__
        codec = JsonCodec()
        facts: dict[str, Any] = {
            "task": info.import_path, "code": info.code_version, "configs": task.configs,
            "inputs": [hashlib.blake2b(codec.encode(v), digest_size=16).hexdigest()
                       for v in d.inputs]}
        if info.code.parts:  # kept to name what changed; the key is made without it
            facts["parts"] = info.code.parts
        if isinstance(task, FileTask):
            facts["files"] = {p: self.files.digest(p) for p in task.read_paths(*d.inputs)}
        extra = task.fingerprint(*d.inputs)
        if extra is not None:
            facts["fingerprint"] = json.loads(codec.encode(extra))
        return facts

    def outputs_problem(self, outputs: dict[str, str]) -> str | None:
        """Why recorded outputs no longer stand (missing or changed), or None."""
        for path, expected in sorted(outputs.items()):
            actual = self.files.digest(path)
            if actual is None:
                return f"output {path} is missing"
            if actual != expected:
                return f"output {path} changed since it was written"
        return None


def explain(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """What differs between the facts of an earlier result and of this dispatch."""
    if old is None:
        return "no earlier result"
    if old.get("code") != new.get("code"):
        which = changed_parts(old["parts"], new["parts"]) \
            if isinstance(old.get("parts"), dict) and new.get("parts") else []
        return f"code changed ({old.get('code')} -> {new.get('code')}){where_changed(which)}"
    for name in sorted(set(old.get("configs", {})) | set(new.get("configs", {}))):
        before, after = old.get("configs", {}).get(name), new.get("configs", {}).get(name)
        if before != after:
            return f"config {name} changed ({before!r} -> {after!r})"
    before_files, after_files = old.get("files", {}), new.get("files", {})
    for path in sorted(set(before_files) | set(after_files)):
        if path not in before_files:
            return f"input file {path} is new"
        if after_files.get(path) is None:
            return f"input file {path} is gone"
        if before_files[path] != after_files[path]:
            return f"input file {path} changed"
    if old.get("inputs") != new.get("inputs"):
        return "its input values changed"
    if old.get("fingerprint") != new.get("fingerprint"):
        return "its fingerprint changed"
    return "no earlier result with these inputs"


def _digest(facts: dict[str, Any]) -> str:
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
