"""Workflows: nodes (task instances with ids), the joins between them, and their spec.

The spec is a plain dict (JSON for JSON inputs) naming tasks and selectors by import
path, so a run can rebuild a clean workflow without the command line that made it.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from retap.dispatch import NodeId
from retap.errors import InputArityError, RetapError, SpecError, UsageError
from retap.joins import Join, JoinKind, join_from_dict, make_join
from retap.secret import MARK, SecretSource, is_marker
from retap.spec import SPEC_VERSION, check_spec
from retap.taskdef import Task

__all__ = ["SPEC_VERSION", "Node", "Workflow"]


class Node(msgspec.Struct, eq=False):
    """One task instance placed in a workflow. ``leads`` are its lead input sets."""

    id: NodeId
    task: Task
    leads: list[list[Any]] = msgspec.field(default_factory=lambda: [[]])

    @property
    def name(self) -> str:
        return type(self.task).__retap__.name


class Workflow:
    """Nodes and the joins between them. Nodes that no join targets are leads."""

    def __init__(self) -> None:
        self.nodes: dict[NodeId, Node] = {}
        self.joins: list[Join] = []

    def add(self, task: Task | type[Task], *inputs: Any, id: NodeId | None = None) -> NodeId:
        """Place ``task`` as a node (lead inputs ``inputs``); returns its id (index by default)."""
        if isinstance(task, type) and issubclass(task, Task):
            task = task()
        if not isinstance(task, Task):
            raise SpecError(f"node {id if id is not None else len(self.nodes)}",
                            f"expected a retap.Task, got {type(task).__name__}")
        node_id = len(self.nodes) if id is None else id
        if not isinstance(node_id, int | str) or isinstance(node_id, bool):
            raise SpecError(f"node {node_id!r}", "node ids are ints or strings")
        if node_id in self.nodes:
            raise SpecError(f"node {node_id!r}", "a node with this id already exists")
        self.nodes[node_id] = Node(node_id, task, [list(inputs)])
        return node_id

    def enqueue(self, node: NodeId, *inputs: Any) -> None:
        """Give a lead node another lead dispatch, with these inputs."""
        self._node(node, "enqueue").leads.append(list(inputs))

    def join(self, sources: NodeId | Iterable[NodeId], targets: NodeId | Iterable[NodeId],
             kind: JoinKind | str = JoinKind.JOIN, *, id: NodeId | None = None,
             enq: bool = False, iterate: bool = False, splat: bool = False,
             limit: int | None = None,
             selector: Callable[[Any], Any] | str | None = None) -> Join:
        """Join ``sources`` to ``targets`` with a join of ``kind``. ``enq``: what it passes
        on goes to the queue's tail (else it runs next); ``iterate``: each item of a list
        result goes on alone; ``splat``: a list result is passed as several inputs;
        ``limit``: a gate's batch size; ``selector``: a switch's choice of target (a
        ``@retap.selector`` function, or its ``module:name``)."""
        join_id = len(self.joins) if id is None else id
        # flags as given (make_join refuses one that is not a bool), the rest when set
        options: dict[str, Any] = {k: v for k, v in (("enq", enq), ("iterate", iterate),
                                                      ("splat", splat)) if v is not False}
        options.update((k, v) for k, v in (("limit", limit), ("selector", selector))
                       if v is not None)
        join = make_join(join_id, str(kind), sources, targets, **options)
        self._check_join(join)
        self.joins.append(join)
        return join

    def sequence(self, *nodes: NodeId, **options: Any) -> list[Join]:
        """Join each node to the next: ``a -> b -> c``."""
        return [self.join(a, b, **options) for a, b in itertools.pairwise(nodes)]

    def targets(self) -> set[NodeId]:
        return {t for join in self.joins for t in join.targets}

    def find_node(self, ref: NodeId, what: str) -> NodeId:
        """The node ``ref`` names: its id (an index given as text counts), else its task's
        name when exactly one node has it. A UsageError naming ``what`` (the option) and
        listing the nodes otherwise."""
        if ref in self.nodes:
            return ref
        if isinstance(ref, str) and ref.isascii() and ref.isdecimal() and int(ref) in self.nodes:
            return int(ref)
        named = [n.id for n in self.nodes.values() if n.name == ref]
        if len(named) == 1:
            return named[0]
        listing = ", ".join(str(n.id) if n.id == n.name else f"{n.id} ({n.name})"
                            for n in self.nodes.values())
        shown = ref if str(ref).isdecimal() else repr(ref)
        if named:
            raise UsageError(f"{what}: {shown} names {len(named)} nodes; give its id (nodes: "
                             f"{listing})")
        raise UsageError(f"{what}: no node {shown} in the run (nodes: {listing})")

    def leads(self) -> list[tuple[NodeId, int, tuple[Any, ...]]]:
        """``(node, k, inputs)`` of every lead dispatch, in node order."""
        targets = self.targets()
        return [(node.id, k, tuple(inputs)) for node in self.nodes.values()
                if node.id not in targets for k, inputs in enumerate(node.leads)]

    def check_inputs(self) -> None:
        """Every lead dispatch's inputs fit its task's ``process``; else InputArityError."""
        for node_id, _, inputs in self.leads():
            info = type(self.nodes[node_id].task).__retap__
            if not info.accepts(len(inputs)):
                raise InputArityError(node_id, info.name, info.usage, len(inputs))

    def ignored_inputs(self) -> list[Node]:
        """Join targets that were given lead inputs (they are not leads, so the inputs go)."""
        targets = self.targets()
        return [n for n in self.nodes.values() if n.id in targets and any(n.leads)]

    def joins_from(self) -> dict[NodeId, list[tuple[Join, int]]]:
        """For each source node, the joins it feeds and its slot in each."""
        table: dict[NodeId, list[tuple[Join, int]]] = {}
        for join in self.joins:
            for slot, source in enumerate(join.sources):
                table.setdefault(source, []).append((join, slot))
        return table

    def downstream(self, nodes: Iterable[NodeId]) -> list[NodeId]:
        """Nodes that results of ``nodes`` can reach through joins, in breadth-first order."""
        table = self.joins_from()
        seen: list[NodeId] = []
        frontier = list(nodes)
        while frontier:
            node = frontier.pop(0)
            for join, _ in table.get(node, ()):
                for target in join.targets:
                    if target not in seen:
                        seen.append(target)
                        frontier.append(target)
        return seen

    def spec(self, strict: bool = True) -> dict[str, Any]:
        """The workflow as a plain dict. ``strict``: every part must have an import path."""
        nodes = []
        for node in self.nodes.values():
            info = type(node.task).__retap__
            if strict and not info.importable:
                raise SpecError(f"node {node.id} ({info.name})",
                                f"task class {info.cls.__qualname__} is defined inside a "
                                "function and cannot be recorded; define it at module level "
                                "(or run with --store :memory:)")
            entry: dict[str, Any] = {"id": node.id, "task": info.import_path, "name": info.name,
                                     "config": node.task.configs, "leads": node.leads}
            nodes.append(entry)
        joins = []
        for join in self.joins:
            try:
                joins.append(join.to_dict())
            except SpecError:
                if strict:
                    raise
                joins.append({**Join.to_dict(join), "kind": join.kind, "live": True})
        return {"retap": SPEC_VERSION, "nodes": nodes, "joins": joins}

    @classmethod
    def from_spec(cls, spec: dict[str, Any],
                  resolve: Callable[[str], type[Task]] | None = None,
                  secrets: Callable[[NodeId, str, str, Any], Any] | None = None) -> Workflow:
        """Rebuild a clean workflow from ``spec``; a part that no longer fits is a SpecError.
        Secret configs, which a spec only names, come from ``secrets`` (see SecretSource)."""
        if resolve is None:
            from retap.discovery import resolve_task

            resolve = resolve_task
        model = check_spec(spec)
        workflow = cls()
        for node in model.nodes:
            what = f"node {node.id} ({node.name or node.task})"
            try:
                task_cls = resolve(node.task)
            except RetapError as exc:
                raise SpecError(what, f"no longer fits the code: {exc.message}") from None
            config = _with_secrets(task_cls, node.id, node.config, secrets or SecretSource())
            try:
                task = task_cls(**config)
            except RetapError as exc:
                raise SpecError(what, f"no longer fits the code: {exc.message}") from None
            node_id = workflow.add(task, id=node.id)
            workflow.nodes[node_id].leads = copy.deepcopy(node.leads)
        for entry in model.joins:
            try:
                join = join_from_dict(entry)
                workflow._check_join(join)
            except RetapError as exc:
                raise SpecError(f"join {entry.get('id')}", exc.message) from None
            workflow.joins.append(join)
        return workflow

    def _node(self, node: NodeId, what: str) -> Node:
        try:
            return self.nodes[node]
        except KeyError:
            raise SpecError(f"{what} {node!r}", f"no such node (nodes: "
                                                f"{', '.join(map(str, self.nodes))})") from None

    def _check_join(self, join: Join) -> None:
        what = f"join {join.id}"
        if any(j.id == join.id for j in self.joins):
            raise SpecError(what, "a join with this id already exists")
        for role, ids in (("source", join.sources), ("target", join.targets)):
            if not ids:
                raise SpecError(what, f"has no {role}s")
            if len(set(ids)) != len(ids):
                raise SpecError(what, f"names a {role} twice: {ids}")
            for node in ids:
                if node not in self.nodes:
                    raise SpecError(what, f"{role} {node!r} is not a node (nodes: "
                                          f"{', '.join(map(str, self.nodes))})")


def _with_secrets(task_cls: type[Task], node: NodeId, config: dict[str, Any],
                  secrets: Callable[[NodeId, str, str, Any], Any]) -> dict[str, Any]:
    """``config`` with each secret the spec only names filled in from ``secrets``."""
    specs = task_cls.__retap__.configs
    filled = dict(config)
    for key, value in config.items():
        spec = specs.get(key)
        if spec is not None and spec.secret and is_marker(value):
            default = None if spec.required else spec.default
            filled[key] = secrets(node, key, value[MARK], default)
    return filled
