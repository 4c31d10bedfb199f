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
from retap.errors import RetapError, WorkflowFileError
from retap.workflow import Workflow

__all__ = ["WORKFLOW_SUFFIXES", "read_workflow_file"]

WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")
_JOIN_KEYS = {"from", "to", "kind", "enq", "iterate", "splat", "limit", "selector", "id"}
_NODE_KEYS = {"id", "task", "inputs", "leads", "config"}


def read_workflow_file(path: str | Path, registry: Registry | None = None) -> Workflow:
    """Build the workflow a file describes; WorkflowFileError names what is wrong."""
    registry = registry or Registry()
    path = Path(path)
    data = _load(path)
    try:
        if data.get("retap") is not None:
            return Workflow.from_spec(data, registry.resolve)
        workflow = Workflow()
        for entry in _node_entries(data.get("nodes"), path):
            _add_node(workflow, entry, registry, path)
        joins = data.get("joins") or []
        if not isinstance(joins, list):
            raise WorkflowFileError(str(path), "`joins` must be a list")
        for i, entry in enumerate(joins):
            _add_join(workflow, i, entry, path)
        workflow.check_inputs()
    except WorkflowFileError:
        raise
    except RetapError as exc:
        raise WorkflowFileError(str(path), exc.message) from None
    return workflow


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowFileError(str(path), "no such file") from None
    except OSError as exc:
        raise WorkflowFileError(str(path), exc.strerror or str(exc)) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise WorkflowFileError(str(path), f"not valid YAML/JSON: "
                                           f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or ("nodes" not in data and "retap" not in data):
        raise WorkflowFileError(str(path), "expected a mapping with `nodes` (and `joins`)")
    return data


def _node_entries(nodes: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(nodes, dict):
        entries = []
        for key, value in nodes.items():
            if isinstance(value, str):
                value = {"task": value}
            if not isinstance(value, dict):
                raise WorkflowFileError(str(path), f"node {key!r} must be a mapping with `task`")
            entries.append({"id": key, **value})
        return entries
    if isinstance(nodes, list):
        entries = []
        for i, node in enumerate(nodes):
            if isinstance(node, str):
                node = {"task": node}
            if not isinstance(node, dict):
                raise WorkflowFileError(str(path), f"node {i} must be a task name or a mapping "
                                                   "with `task`")
            entries.append({"id": i, **node})
        return entries
    raise WorkflowFileError(str(path), "`nodes` must be a mapping of id to node, or a list")


def _add_node(workflow: Workflow, entry: dict[str, Any], registry: Registry, path: Path) -> None:
    node = entry["id"]
    unknown = set(entry) - _NODE_KEYS
    if unknown:
        raise WorkflowFileError(str(path), f"node {node!r}: unknown key(s) {sorted(unknown)} "
                                           f"(known: {sorted(_NODE_KEYS - {'id'})})")
    if "task" not in entry:
        raise WorkflowFileError(str(path), f"node {node!r} has no `task`")
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise WorkflowFileError(str(path), f"node {node!r}: `config` must be a mapping")
    try:
        cls = registry.find(str(entry["task"]))
        task = cls(**config)
    except RetapError as exc:
        raise WorkflowFileError(str(path), f"node {node!r}: {exc.message}") from None
    leads = entry.get("leads", [entry.get("inputs", [])])
    if not isinstance(leads, list) or not all(isinstance(x, list) for x in leads):
        raise WorkflowFileError(str(path), f"node {node!r}: `inputs` must be a list "
                                           "(`leads` a list of lists)")
    try:
        workflow.add(task, id=node)
    except RetapError as exc:
        raise WorkflowFileError(str(path), exc.message) from None
    workflow.nodes[node].leads = leads


def _add_join(workflow: Workflow, index: int, entry: Any, path: Path) -> None:
    if isinstance(entry, list) and len(entry) == 2:
        entry = {"from": entry[0], "to": entry[1]}
    if not isinstance(entry, dict) or "from" not in entry or "to" not in entry:
        raise WorkflowFileError(str(path), f"join {index}: expected {{from: ..., to: ...}} "
                                           "or [from, to]")
    unknown = set(entry) - _JOIN_KEYS
    if unknown:
        raise WorkflowFileError(str(path), f"join {index}: unknown key(s) {sorted(unknown)} "
                                           f"(known: {sorted(_JOIN_KEYS)})")
    options = {k: entry[k] for k in ("enq", "iterate", "splat", "limit", "selector")
               if k in entry}
    try:
        workflow.join(entry["from"], entry["to"], entry.get("kind", "join"),
                      id=entry.get("id", index), **options)
    except RetapError as exc:
        raise WorkflowFileError(str(path), exc.message) from None
