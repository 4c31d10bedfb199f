"""YAML as ``yaml.safe_load`` reads it, but refusing documents built to exhaust memory or stack:
aliases that expand without bound ("billion laughs"), alias cycles, and very deep nesting.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_ALIASED", "MAX_DEPTH", "Marks", "UnsafeYaml", "load_yaml"]

Marks = dict[tuple[Any, ...], tuple[int, int]]  # path of keys and indexes -> (line, column)

MAX_ALIASED = 100_000  # values that aliases may add to a document, over its own
MAX_DEPTH = 100  # nesting of sequences and mappings


class UnsafeYaml(ValueError):
    """A YAML document refused for its expanded size, an alias cycle, or its depth."""


def load_yaml(text: str, marks: Marks | None = None) -> Any:
    """``yaml.safe_load(text)``, after checking the composed document is safe to build.
    ``marks``, when given, is filled with where each value starts (1-based line and
    column), by its path: a mapping entry at its key, a sequence item at the item."""
    loader = yaml.SafeLoader(text)
    try:
        node = _compose(loader)
        if node is None:
            return None
        _check(node)
        if marks is not None:
            _mark(loader, node, (), marks)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _mark(loader: yaml.SafeLoader, node: yaml.Node, path: tuple[Any, ...],
          marks: Marks) -> None:
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            marks[(*path, index)] = (item.start_mark.line + 1, item.start_mark.column + 1)
            _mark(loader, item, (*path, index), marks)
    elif isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # a key no path can name (or a merge, whose entries come later)
            key = loader.construct_object(key_node)
            marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _mark(loader, value, (*path, key), marks)


def _compose(loader: yaml.SafeLoader) -> yaml.Node | None:
    """The document's node graph, in which an alias is the very node its anchor names."""
    try:
        return loader.get_single_node()
    except RecursionError:
        raise UnsafeYaml(f"nested more than {MAX_DEPTH} deep") from None


def _check(root: yaml.Node) -> None:
    measured: dict[int, tuple[int, int]] = {}
    size, height = _measure(root, 0, measured, set())
    if height > MAX_DEPTH:
        raise UnsafeYaml(f"nested more than {MAX_DEPTH} deep")
    if size - len(measured) > MAX_ALIASED:
        raise UnsafeYaml(f"its aliases expand it by more than {MAX_ALIASED} values")


def _measure(node: yaml.Node, depth: int, measured: dict[int, tuple[int, int]],
             open_nodes: set[int]) -> tuple[int, int]:
    """(expanded size, nesting height) of ``node``; each node is measured once, however
    often it is aliased, so this takes time linear in the text."""
    key = id(node)
    if key in open_nodes:
        raise UnsafeYaml("an alias refers to a node that contains it")
    if key in measured:
        return measured[key]
    if depth > MAX_DEPTH:
        raise UnsafeYaml(f"nested more than {MAX_DEPTH} deep")
    open_nodes.add(key)
    parts = [_measure(child, depth + 1, measured, open_nodes) for child in _children(node)]
    open_nodes.discard(key)
    nested = isinstance(node, yaml.CollectionNode)
    height = 1 + max((h for _, h in parts), default=0) if nested else 0
    measured[key] = (1 + sum(s for s, _ in parts), height)
    return measured[key]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
