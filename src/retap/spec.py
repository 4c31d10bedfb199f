"""The shape of a workflow spec: what ``Workflow.spec()`` writes and a store keeps.

A spec read back (from a store, an exported run or a file) is checked against this
model before a workflow is rebuilt from it, so a malformed one is refused with one
line naming the field, never half-built.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from retap.errors import SpecError

__all__ = ["SPEC_VERSION", "NodeSpec", "SpecModel", "check_spec"]

SPEC_VERSION = 1
NodeId = Annotated[int, Field(strict=True)] | Annotated[str, Field(strict=True)]


class NodeSpec(BaseModel):
    """One node: its id, the task's import path and name, its configs and lead inputs."""

    model_config = ConfigDict(extra="forbid")

    id: NodeId
    task: Annotated[str, Field(strict=True)]
    name: Annotated[str, Field(strict=True)] = ""
    config: dict[Annotated[str, Field(strict=True)], Any] = Field(default_factory=dict)
    leads: list[list[Any]] = Field(default_factory=lambda: [[]])


class SpecModel(BaseModel):
    """A whole spec: its version, nodes and joins (joins are checked as they are built)."""

    model_config = ConfigDict(extra="forbid")

    retap: Literal[1]
    nodes: list[NodeSpec]
    joins: list[dict[Annotated[str, Field(strict=True)], Any]] = Field(default_factory=list)


def check_spec(spec: Any) -> SpecModel:
    """``spec`` as a SpecModel, or SpecError naming the first thing wrong with it."""
    if not isinstance(spec, dict) or spec.get("retap") != SPEC_VERSION:
        raise SpecError("workflow spec", f"not a retap spec of version {SPEC_VERSION}")
    try:
        return SpecModel.model_validate(spec)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError("workflow spec", f"{where}: {first['msg']}") from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise SpecError("workflow spec", f"unreadable ({type(exc).__name__})") from None
