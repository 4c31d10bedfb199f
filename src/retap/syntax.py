"""Tap's workflow syntax, read into a Workflow.

``--`` starts a node: a task name, then its inputs and ``--config value`` options.
``--:`` (``--:q``, ``--:i.sync``, ...) also starts a node and joins the previous node to
it. ``--[A][B]FLAGS.KIND`` joins nodes A (a comma list of indexes) to nodes B, e.g.
``--[0][1,2]q`` or ``--[0,1][2].sync``; ``.gate:N`` sets a gate's limit. Flags: ``q``
enqueue, ``i`` iterate, ``s`` splat. Errors name the offending word and its position.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from retap.configs import ConfigSpec, coerce_text, load_config_file
from retap.discovery import Registry
from retap.errors import (
    InputArityError,
    RetapError,
    UnknownConfig,
    WorkflowSyntaxError,
)
from retap.joins import KINDS
from retap.taskdef import Task
from retap.workflow import Workflow

__all__ = ["WORKFLOW_SUFFIXES", "HelpRequested", "is_break", "parse_workflow"]

# a first word ending so names a workflow file, not a task
WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")

_SEQUENCE = re.compile(r"^--:(?P<flags>[A-Za-z]*)(?:\.(?P<kind>[A-Za-z_]*)(?::(?P<limit>.*))?)?$")
_JOIN = re.compile(r"^--\[(?P<a>[^\]]*)\]\[(?P<b>[^\]]*)\](?P<flags>[A-Za-z]*)"
                   r"(?:\.(?P<kind>[A-Za-z_]*)(?::(?P<limit>.*))?)?$")
_FLAGS = {"q": "enq", "i": "iterate", "s": "splat"}
_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: "²".isdigit() is true, int("²") fails


class HelpRequested(Exception):
    """``--help`` was given after a task name."""

    def __init__(self, task: type[Task], name: str) -> None:
        super().__init__(name)
        self.task = task
        self.name = name  # as the user wrote it: a name, an entry point, or module:Name


class _Node(msgspec.Struct):
    position: int
    words: list[str]


class _Join(msgspec.Struct):
    position: int
    word: str
    sources: list[int]
    targets: list[int]
    kind: str
    options: dict[str, Any] = msgspec.field(default_factory=dict)


def is_break(word: str) -> bool:
    """True for the words that separate nodes: ``--``, ``--:...``, ``--[...``."""
    return word == "--" or word.startswith("--:") or word.startswith("--[")


def parse_workflow(words: list[str], registry: Registry | None = None
                   ) -> tuple[Workflow, list[str]]:
    """Read workflow words into a Workflow; returns it with warnings to show the user."""
    registry = registry or Registry()
    _check_text(words)
    nodes, joins = _split(words)
    workflow = Workflow()
    for node in nodes:
        task, inputs = _build_node(node, registry)
        workflow.add(task, *inputs)
    for join in joins:
        for index in join.sources + join.targets:
            if not 0 <= index < len(nodes):
                raise WorkflowSyntaxError(join.word, join.position,
                                          f"node {index} does not exist (nodes are 0-"
                                          f"{len(nodes) - 1})")
        try:
            workflow.join(join.sources, join.targets, join.kind, **join.options)
        except RetapError as exc:
            raise WorkflowSyntaxError(join.word, join.position, exc.message) from None
    _check_leads(workflow, nodes)
    warnings = [f"ignoring inputs of node {n.id} ({n.name}): it is the target of a join, "
                f"so its inputs come from the join" for n in workflow.ignored_inputs()]
    return workflow, warnings


def _check_text(words: list[str]) -> None:
    """Refuse a word holding bytes that are not UTF-8 (Python reads them as lone surrogates)."""
    for position, word in enumerate(words):
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            raise WorkflowSyntaxError(word, position, "not valid UTF-8") from None


def _split(words: list[str]) -> tuple[list[_Node], list[_Join]]:
    """Cut the words into nodes and joins; a break ends the node being read."""
    if not words:
        raise WorkflowSyntaxError("", 0, "no workflow given (e.g. `retap run -- load hi --: dump`)")
    nodes: list[_Node] = []
    joins: list[_Join] = []
    opened: tuple[int, str] | None = (0, "")  # where the node being read was opened
    current: _Node | None = None
    pending: _Join | None = None  # a `--:` waiting for the node after it
    for position, word in enumerate(words):
        if not is_break(word):
            if current is None:
                current = _Node(position, [])
            current.words.append(word)
            continue
        if word.startswith("--:") and not nodes and current is None:
            raise WorkflowSyntaxError(word, position, "--: has no node before it to join")
        if opened is not None and current is None:
            raise _empty(opened, pending, word, position)
        if current is not None:
            nodes.append(current)
        if pending is not None:
            joins.append(pending)
        current, pending, opened = None, None, None
        if word == "--":
            opened = (position, word)
        elif word.startswith("--:"):
            if not nodes:
                raise WorkflowSyntaxError(word, position, "--: has no node before it to join")
            pending = _parse_join(word, position, [len(nodes) - 1], [len(nodes)], _SEQUENCE)
            opened = (position, word)
        else:
            joins.append(_parse_join(word, position, None, None, _JOIN))
    if opened is not None and current is None:
        raise _empty(opened, pending, "", len(words))
    if current is not None:
        nodes.append(current)
    if pending is not None:
        joins.append(pending)
    return nodes, joins


def _empty(opened: tuple[int, str], pending: _Join | None, word: str,
           position: int) -> WorkflowSyntaxError:
    if pending is not None:
        return WorkflowSyntaxError(pending.word, pending.position,
                                   "--: has no node after it to join to")
    if opened[1]:
        return WorkflowSyntaxError(opened[1], opened[0], "empty node: a task name must follow")
    return WorkflowSyntaxError(word, position, "empty node: the workflow must start with a "
                                               "task name")


def _parse_join(word: str, position: int, sources: list[int] | None,
                targets: list[int] | None, pattern: re.Pattern[str]) -> _Join:
    match = pattern.match(word)
    if match is None:
        raise WorkflowSyntaxError(word, position, "malformed join (expected --[A][B]FLAGS.KIND "
                                                  "or --:FLAGS.KIND, e.g. --[0][1,2]q)")
    groups = match.groupdict()
    if sources is None:
        sources = _indexes(groups["a"], word, position, "sources")
        targets = _indexes(groups["b"], word, position, "targets")
    assert targets is not None
    kind = groups["kind"] if groups["kind"] is not None else "join"
    if kind not in KINDS:
        raise WorkflowSyntaxError(word, position, f"unknown join kind {kind!r} "
                                                  f"(known: {', '.join(KINDS)})")
    options: dict[str, Any] = {}
    for flag in groups["flags"]:
        if flag not in _FLAGS:
            raise WorkflowSyntaxError(word, position, f"unknown join flag {flag!r} "
                                                      "(known: q enqueue, i iterate, s splat)")
        if _FLAGS[flag] in options:
            raise WorkflowSyntaxError(word, position, f"join flag {flag!r} given twice")
        options[_FLAGS[flag]] = True
    if groups["limit"] is not None:
        if kind != "gate":
            raise WorkflowSyntaxError(word, position, f"only a gate takes a limit (:N), "
                                                      f"not a {kind}")
        if not _NUMBER.fullmatch(groups["limit"]) or int(groups["limit"]) < 1:
            raise WorkflowSyntaxError(word, position, f"gate limit must be a positive "
                                                      f"integer, not {groups['limit']!r}")
        options["limit"] = int(groups["limit"])
    return _Join(position, word, sources, targets, kind, options)


def _indexes(text: str, word: str, position: int, role: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not all(_NUMBER.fullmatch(p) for p in parts):
        raise WorkflowSyntaxError(word, position, f"join {role} must be a comma list of node "
                                                  f"indexes, not [{text}]")
    return [int(p) for p in parts]


def _build_node(node: _Node, registry: Registry) -> tuple[Task, list[str]]:
    name = node.words[0]
    where = f"node at word {node.position + 1}"
    try:
        cls = registry.find(name)
    except RetapError as exc:
        raise _located(exc, f"{where} ({name!r})") from None
    info = cls.__retap__
    raw: dict[str, list[Any]] = {}
    inputs: list[str] = []
    files: list[str] = []
    words = node.words[1:]
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word in ("--help", "-h"):
            raise HelpRequested(cls, name)
        if not word.startswith("--") or len(word) == 2:
            inputs.append(word)
            continue
        key, eq, value = word[2:].partition("=")
        key = key.replace("-", "_")
        if key == "config":
            if not eq:
                value, i = _value(words, i, word, node, info.name)
            files.append(value)
            continue
        spec = info.configs.get(key)
        if spec is None and key.startswith("no_") and key[3:] in info.configs and not eq:
            spec, key, eq, value = info.configs[key[3:]], key[3:], "=", "false"
        if spec is None:
            raise _located(UnknownConfig(info.name, word, info.configs), where)
        if not eq and not spec.is_bool:
            value, i = _value(words, i, word, node, info.name)
        raw.setdefault(key, []).append(value if eq or not spec.is_bool else "true")
    try:
        values: dict[str, Any] = {}
        for path in files:
            values.update(load_config_file(path, info.name))
        values.update({key: _coerce(info.name, info.configs[key], texts)
                       for key, texts in raw.items()})
        return cls(**values), inputs
    except RetapError as exc:
        raise _located(exc, where) from None


def _value(words: list[str], i: int, word: str, node: _Node, task: str) -> tuple[str, int]:
    if i >= len(words):
        raise WorkflowSyntaxError(word, node.position + i, f"{word} needs a value (task {task})")
    return words[i], i + 1


def _coerce(task: str, spec: ConfigSpec, texts: list[str]) -> Any:
    return coerce_text(task, spec, texts)


def _check_leads(workflow: Workflow, nodes: list[_Node]) -> None:
    try:
        workflow.check_inputs()
    except InputArityError as exc:
        raise _located(exc, f"node at word {nodes[exc.node].position + 1}") from None


def _located(exc: RetapError, where: str) -> RetapError:
    """Prefix an error's message with where in the workflow it happened."""
    exc.message = f"{where}: {exc.message}"
    exc.args = (exc.message,)
    return exc
