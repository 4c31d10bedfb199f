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

The models below are the one description of the format: files are validated by them
(unknown keys refused), errors name the place in a YAML file (line and column), and
``retap schema`` prints their JSON Schema for editors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pydantic
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    field_validator,
)

from retap.discovery import Registry
from retap.errors import RetapError, WorkflowFileError
from retap.joins import KINDS, JoinKind
from retap.safeyaml import Marks, UnsafeYaml, load_yaml
from retap.taskdef import Task
from retap.workflow import Workflow

__all__ = ["WorkflowFile", "read_workflow_file", "workflow_file_schema"]

NodeId = Annotated[int, Field(strict=True)] | Annotated[str, Field(strict=True)]


def _shape(value: Any) -> str | None:
    """Which form of a union a value takes (None: neither, which pydantic reports)."""
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "name"
    return None


def _not_null(value: Any) -> Any:
    """Leaving a key out takes its default; writing it as null is a mistake."""
    if value is None:
        raise ValueError("must not be null (leave the key out for the default)")
    return value


class NodeEntry(BaseModel):
    """A node: the task it runs, its configs, and the inputs of its lead dispatch(es)."""

    model_config = ConfigDict(extra="forbid")

    id: NodeId | None = Field(None, description="the node's id (the list form; the mapping "
                                                 "form takes the key)")
    task: StrictStr = Field(description="a task name (`retap list`) or `module:Name`")
    inputs: list[Any] | None = Field(None, description="the inputs of its lead dispatch")
    leads: list[list[Any]] | None = Field(None, description="several lead dispatches: a "
                                                            "list of input lists")
    config: dict[StrictStr, Any] | None = Field(None, description="config name -> value")

    _given = field_validator("id", "inputs", "leads", mode="before")(_not_null)


NodeRef = NodeId | list[NodeId]


class JoinEntry(BaseModel):
    """A join from one or more nodes to one or more nodes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: NodeRef = Field(alias="from", description="source node id(s)")
    to: NodeRef = Field(description="target node id(s)")
    kind: JoinKind = Field(JoinKind.JOIN, description="how results pass on")
    id: NodeId | None = Field(None, description="the join's id (default: its index)")
    enq: StrictBool = Field(False, description="results go to the queue's tail")
    iterate: StrictBool = Field(False, description="each item of a list result goes alone")
    splat: StrictBool = Field(False, description="a list result is passed as several inputs")
    limit: StrictInt | None = Field(None, ge=1, description="a gate's batch size")
    selector: StrictStr | None = Field(None, description="a switch's `module:function`")

    _given = field_validator("id", mode="before")(_not_null)


Node = Annotated[Annotated[StrictStr, Tag("name")] | Annotated[NodeEntry, Tag("mapping")],
                 Discriminator(_shape, custom_error_type="node",
                               custom_error_message="must be a task name or a mapping with "
                                                    "`task`")]
Nodes = Annotated[
    Annotated[dict[NodeId, Node], Tag("mapping")] | Annotated[list[Node], Tag("list")],
    Discriminator(_shape, custom_error_type="nodes",
                  custom_error_message="must be a mapping of id to node, or a list")]
Joins = list[Annotated[Annotated[JoinEntry, Tag("mapping")]
                       | Annotated[tuple[NodeRef, NodeRef], Tag("list")],
                       Discriminator(_shape, custom_error_type="join",
                                     custom_error_message="must be {from: ..., to: ...} "
                                                          "or [from, to]")]]


class WorkflowFile(BaseModel):
    """A retap workflow file: its nodes and the joins between them."""

    model_config = ConfigDict(extra="forbid", title="retap workflow file")

    nodes: Nodes = Field(description="node id -> node (or a task name), or a list of nodes")
    joins: Joins | None = Field(None, description="joins: {from, to, kind, ...} or "
                                                  "[from, to]")


def workflow_file_schema() -> dict[str, Any]:
    """The JSON Schema of a workflow file, as ``retap schema`` prints it."""
    schema = WorkflowFile.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def read_workflow_file(path: str | Path, registry: Registry | None = None) -> Workflow:
    """Build the workflow a file describes; WorkflowFileError names what is wrong (and
    where, in a YAML file)."""
    registry = registry or Registry()
    marks: Marks = {}
    data = _load(Path(path), marks)
    try:
        if data.get("retap") is not None:
            return Workflow.from_spec(data, registry.resolve)
        return _build(_validate(data), registry, marks)
    except _Located as exc:
        raise WorkflowFileError(str(path), exc.message, marks.get(exc.where)) from None
    except RetapError as exc:
        raise WorkflowFileError(str(path), exc.message) from None


class _Located(RetapError):
    """What is wrong, and the path in the file to where it is."""

    def __init__(self, message: str, where: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.where = where


def _load(path: Path, marks: Marks) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowFileError(str(path), "no such file") from None
    except OSError as exc:
        raise WorkflowFileError(str(path), exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise WorkflowFileError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else load_yaml(text, marks)
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


def _validate(data: dict[str, Any]) -> WorkflowFile:
    try:
        return WorkflowFile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _first_problem(data, exc) from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise _Located(f"unreadable ({type(exc).__name__})", ()) from None


def _first_problem(data: Any, exc: pydantic.ValidationError) -> _Located:
    """The first error pydantic found, said in the file's own words, at its path."""
    error = exc.errors()[0]
    kind, loc = error["type"], error["loc"]
    path, value = _data_path(data, loc, kind == "missing")
    owner = _what(path[:-1])
    if kind in ("extra_forbidden", "invalid_key"):
        models: dict[str, type[BaseModel]] = {"node": NodeEntry, "join": JoinEntry}
        model = models.get(owner.partition(" ")[0], WorkflowFile)
        known = sorted(f.alias or name for name, f in model.model_fields.items())
        entry, _ = _data_path(data, loc[:-1], False)
        unknown = [k for k in _at(data, entry) if k not in known]
        return _Located(f"{owner} has unknown key(s) {', '.join(map(repr, unknown))} "
                        f"(known: {', '.join(known)})", path)
    if kind == "missing":
        return _Located(f"{owner} has no `{path[-1]}`", path[:-1])
    if kind in ("nodes", "node", "join"):
        return _Located(f"{_what(path)} {error['msg']}", path)
    if "[key]" in loc:
        reason = "its id must be an integer or a name" if path[:1] == ("nodes",) and \
            len(path) == 2 else f"key {path[-1]!r} must be a name (a string)"
        return _Located(f"{_what(path) if len(path) == 2 else owner}: {reason}", path)
    if len(path) == 2 and path[0] in ("nodes", "joins"):
        owner, subject = _what(path), "it"
    else:
        subject = f"`{path[-1]}`" if path and not isinstance(path[-1], int) else "it"
    message = error["msg"].removeprefix("Value error, ")
    if kind == "enum" and path[-1:] == ("kind",):
        reason = f"unknown join kind {value!r} (known: {', '.join(KINDS)})"
    elif path[-1:] in (("id",), ("from",), ("to",)) or (len(path) > 1 and path[-2] in
                                                       ("from", "to")):
        reason = f"{subject} must be a node id (an integer or a name), not {value!r}"
    elif path[-1:] == ("limit",):
        reason = f"limit must be a positive int, not {value!r}"
    elif kind == "value_error":
        reason = f"{subject} {message}"
    elif message.startswith("Input "):
        reason = f"{subject} {message[6:]}, not {value!r}"
    else:
        reason = f"{subject} {message[:1].lower()}{message[1:]} (it is {value!r})" \
            if subject != "it" else f"{message[:1].lower()}{message[1:]} (it is {value!r})"
    return _Located(f"{owner}: {reason}" if owner != "the file" else reason, path)


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


def _data_path(data: Any, loc: tuple[Any, ...], missing: bool
               ) -> tuple[tuple[Any, ...], Any]:
    """The path into the data that an error's location names, without the names pydantic
    gives the members of a union (and the value found there)."""
    path: list[Any] = []
    for index, step in enumerate(loc):
        if isinstance(data, dict) and step == "from_":
            step = "from"
        if isinstance(data, dict) and step not in data:  # pydantic writes a key as text
            step = next((k for k in data if str(k) == step), step)
        if (isinstance(data, dict) and step in data) or (
                isinstance(data, list | tuple) and isinstance(step, int) and
                0 <= step < len(data)):
            data = data[step]
        elif missing and index == len(loc) - 1:
            path.append(step)  # the key that is missing
            break
        else:
            continue  # a union member's name
        path.append(step)
    return tuple(path), data


def _what(path: tuple[Any, ...]) -> str:
    """How a message names a place: ``node 'a'``, ``join 2``, ``node 'a' `config```,
    ``the file``."""
    if len(path) >= 2 and path[0] in ("nodes", "joins"):
        base = f"node {path[1]!r}" if path[0] == "nodes" else f"join {path[1]}"
        return base if len(path) == 2 else f"{base} `{'.'.join(map(str, path[2:]))}`"
    if path:
        return f"`{'.'.join(map(str, path))}`"
    return "the file"


def _build(model: WorkflowFile, registry: Registry, marks: Marks) -> Workflow:
    workflow = Workflow()
    nodes = list(model.nodes.items()) if isinstance(model.nodes, dict) else \
        list(enumerate(model.nodes))
    if not nodes:
        raise _Located("`nodes` is empty: a workflow needs at least one node", ("nodes",))
    for key, entry in nodes:
        entry = NodeEntry.model_validate({"task": entry}) if isinstance(entry, str) else entry
        node = key if entry.id is None else entry.id
        try:
            workflow.add(_task(entry, registry), id=node)
        except RetapError as exc:
            raise _Located(f"node {node!r}: {exc.message}", ("nodes", key)) from None
        workflow.nodes[node].leads = entry.leads if entry.leads is not None else \
            [entry.inputs or []]
    for index, join in enumerate(model.joins or []):
        if isinstance(join, tuple):
            join = JoinEntry.model_validate({"from": join[0], "to": join[1]})
        options = join.model_dump(include={"enq", "iterate", "splat", "limit", "selector"})
        try:
            workflow.join(join.from_, join.to, join.kind,
                          id=index if join.id is None else join.id, **options)
        except RetapError as exc:
            raise _Located(exc.message, ("joins", index)) from None
    try:
        workflow.check_inputs()
    except RetapError as exc:
        raise _Located(exc.message, ()) from None
    return workflow


def _task(entry: NodeEntry, registry: Registry) -> Task:
    """The node's task, configured; its name and config are checked before they are used."""
    return registry.find(entry.task)(**(entry.config or {}))
