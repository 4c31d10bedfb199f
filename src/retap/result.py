"""What a run, resume or replay reports when it ends."""

from __future__ import annotations

from typing import Any

import msgspec

from retap.dispatch import NodeId
from retap.store.base import AuditRecord, Store

__all__ = ["RunResult"]


class RunResult(msgspec.Struct):
    """How a run (or a resume or replay of it) ended."""

    run: str
    status: str  # done | failed | interrupted
    store: Store
    signal: str | None = None
    executed: int = 0
    cached: int = 0
    reused: int = 0
    failures: list[tuple[NodeId, str, dict[str, Any]]] = msgspec.field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.status == "done":
            return 0
        if self.status == "failed":
            return 1
        return 143 if self.signal == "SIGTERM" else 130

    def audits(self) -> list[AuditRecord]:
        """Every recorded dispatch of the run, in recording order."""
        return self.store.audits(self.run)

    def values(self, node: NodeId) -> list[Any]:
        """Results of ``node``'s done dispatches, in recording order."""
        return [a.value for a in self.audits() if a.node == node and a.status == "done"]
