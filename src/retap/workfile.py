"""Workflow files: a YAML (or JSON) description of a workflow too long for one line.

```yaml
nodes:
  read:  {task: load, inputs: ["[1, 2, 3]"], config: {yaml: true}}
  each:  {task: dump}
  total: {task: retapfile:Total}
joins:
  - {from: read, to: each, iterate: true}
  - {from: each, to: total, kind: gate}
```

Nodes are keyed by their ids (``nodes`` may also be a list of ``{id: ..., task: ...}``);
``task`` is a task name or ``module:Name``; ``inputs`` are the lead inputs (``leads``:
a list of input lists for several lead dispatches). A join is ``{from, to, kind, enq,
iterate, splat, limit, selector}`` or the short ``[from, to]``. A file holding a stored
spec (``retap: 1``) is read as that spec.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from retap.discovery import Registry
from retap.dispatch import NodeId
from retap.errors import RetapError, UsageError, WorkflowFileError
from retap.joins import KINDS
from retap.safeyaml import UnsafeYaml, load_yaml
from retap.taskdef import Task
from retap.workflow import Workflow

__all__ = ["WORKFLOW_SUFFIXES", "read_workflow_file"]

WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")
_TOP_KEYS = {"nodes", "joins"}
_NODE_KEYS = {"id", "task", "inputs", "leads", "config"}
_JOIN_OPTIONS = ("enq", "iterate", "splat", "limit", "selector")
_JOIN_KEYS = {"from", "to", "kind", "id", *_JOIN_OPTIONS}


def read_workflow_file(path: str | Path, registry: Registry | None = None) -> Workflow:
    """Build the workflow a file describes; WorkflowFileError names what is wrong."""
    registry = registry or Registry()
    data = _load(Path(path))
    try:
        if data.get("retap") is not None:
            return Workflow.from_spec(data, registry.resolve)
        return _build(data, registry)
    except RetapError as exc:
        raise WorkflowFileError(str(path), exc.message) from None


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowFileError(str(path), "no such file") from None
    except OSError as exc:
        raise WorkflowFileError(str(path), exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise WorkflowFileError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else load_yaml(text)
    except UnsafeYaml as exc:
        raise WorkflowFileError(str(path), f"refused: {exc}") from None
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        raise WorkflowFileError(str(path), f"not valid YAML/JSON: {_reason(exc)}") from None
    if not isinstance(data, dict) or ("nodes" not in data and "retap" not in data):
        raise WorkflowFileError(str(path), "expected a mapping with `nodes` (and `joins`)")
    return data


def _reason(exc: Exception) -> str:
    """What is wrong with the text, in one line, with its place in a YAML file."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc).splitlines()[0]


def _build(data: dict[str, Any], registry: Registry) -> Workflow:
    _check_keys("the file", data, _TOP_KEYS)
    workflow = Workflow()
    for node, entry in _node_entries(data["nodes"]):
        _add_node(workflow, node, entry, registry)
    joins = data.get("joins") or []
    if not isinstance(joins, list):
        raise UsageError("`joins` must be a list")
    for index, entry in enumerate(joins):
        _add_join(workflow, index, entry)
    workflow.check_inputs()
    return workflow


def _node_entries(nodes: Any) -> list[tuple[NodeId, dict[str, Any]]]:
    """(id, entry) of each node, from the mapping form (keyed by id) or the list form."""
    if isinstance(nodes, dict):
        pairs = list(nodes.items())
    elif isinstance(nodes, list):
        pairs = list(enumerate(nodes))
    else:
        raise UsageError("`nodes` must be a mapping of id to node, or a list")
    if not pairs:
        raise UsageError("`nodes` is empty: a workflow needs at least one node")
    return [_node_entry(key, value) for key, value in pairs]


def _node_entry(key: Any, value: Any) -> tuple[NodeId, dict[str, Any]]:
    entry = {"task": value} if isinstance(value, str) else value
    if not isinstance(entry, dict):
        raise UsageError(f"node {key!r} must be a task name or a mapping with `task`")
    node = entry.get("id", key)
    if not _is_id(node):
        raise UsageError(f"node {key!r}: its id must be an integer or a name, not {node!r}")
    return node, entry


def _add_node(workflow: Workflow, node: NodeId, entry: dict[str, Any],
              registry: Registry) -> None:
    what = f"node {node!r}"
    _check_keys(what, entry, _NODE_KEYS)
    task = _task(what, entry, registry)
    leads = entry.get("leads", [entry.get("inputs", [])])
    if not isinstance(leads, list) or not all(isinstance(x, list) for x in leads):
        raise UsageError(f"{what}: `inputs` must be a list (`leads` a list of lists)")
    workflow.add(task, id=node)
    workflow.nodes[node].leads = leads


def _task(what: str, entry: dict[str, Any], registry: Registry) -> Task:
    """The node's task, configured; its name and config are checked before they are used."""
    if "task" not in entry:
        raise UsageError(f"{what} has no `task`")
    name, config = entry["task"], entry.get("config") or {}
    if not isinstance(name, str):
        raise UsageError(f"{what}: `task` must be a task name, not {name!r}")
    if not isinstance(config, dict) or not all(isinstance(key, str) for key in config):
        raise UsageError(f"{what}: `config` must be a mapping of config names to values")
    try:
        return registry.find(name)(**config)
    except RetapError as exc:
        raise UsageError(f"{what}: {exc.message}") from None


def _add_join(workflow: Workflow, index: int, entry: Any) -> None:
    what = f"join {index}"
    if isinstance(entry, list) and len(entry) == 2:
        entry = {"from": entry[0], "to": entry[1]}
    if not isinstance(entry, dict) or "from" not in entry or "to" not in entry:
        raise UsageError(f"{what}: expected {{from: ..., to: ...}} or [from, to]")
    _check_keys(what, entry, _JOIN_KEYS)
    join_id, kind = entry.get("id", index), entry.get("kind", "join")
    if not _is_id(join_id):
        raise UsageError(f"{what}: its id must be an integer or a name, not {join_id!r}")
    if not isinstance(kind, str):
        raise UsageError(f"{what}: `kind` must be one of {', '.join(KINDS)}, not {kind!r}")
    options = {key: entry[key] for key in _JOIN_OPTIONS if key in entry}
    workflow.join(entry["from"], entry["to"], kind, id=join_id, **options)


def _check_keys(what: str, entry: dict[Any, Any], known: set[str]) -> None:
    unknown = [key for key in entry if key not in known]
    if unknown:
        raise UsageError(f"{what} has unknown key(s) {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(sorted(known))})")


def _is_id(value: Any) -> bool:
    """Node and join ids are integers or names; YAML's true and false are neither."""
    return isinstance(value, int | str) and not isinstance(value, bool)
