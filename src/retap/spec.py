"""The shape of a workflow spec: what ``Workflow.spec()`` writes and a store keeps.

A spec read back (from a store, an exported run or a file) is checked against this
model before a workflow is rebuilt from it, so a malformed one is refused with one
line naming the field, never half-built. The model is a msgspec struct, as the store's
rows are: showing a run or resuming one checks its spec without paying for pydantic's
model building (issue 13).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from retap.dispatch import NodeId  # checked strictly: a bool is not an id, nor "1" the id 1
from retap.errors import SpecError
from retap.store.boundary import problem

__all__ = ["SPEC_VERSION", "NodeSpec", "SpecModel", "check_spec", "spec_dict"]

SPEC_VERSION = 1


class NodeSpec(msgspec.Struct, forbid_unknown_fields=True):
    """One node: its id, the task's import path and name, its configs and lead inputs."""

    id: NodeId
    task: str
    name: str = ""
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    leads: list[list[Any]] = msgspec.field(default_factory=lambda: [[]])


class SpecModel(msgspec.Struct, forbid_unknown_fields=True):
    """A whole spec: its version, nodes and joins (joins are checked as they are built)."""

    retap: Literal[1]
    nodes: list[NodeSpec]
    joins: list[dict[str, Any]] = msgspec.field(default_factory=list)


def check_spec(spec: Any) -> SpecModel:
    """``spec`` as a SpecModel, or SpecError naming the first thing wrong with it."""
    if not isinstance(spec, dict) or spec.get("retap") != SPEC_VERSION:
        raise SpecError("workflow spec", f"not a retap spec of version {SPEC_VERSION}")
    try:
        return msgspec.convert(spec, SpecModel, strict=True)
    except msgspec.ValidationError as exc:
        raise SpecError("workflow spec", problem(str(exc), whole="")) from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise SpecError("workflow spec", f"unreadable ({type(exc).__name__})") from None


def spec_dict(model: SpecModel) -> dict[str, Any]:
    """A checked spec as plain JSON-shaped data, its defaults filled in."""
    return msgspec.to_builtins(model)  # type: ignore[no-any-return]
