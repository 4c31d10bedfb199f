"""Dry runs: what a run would run and skip, and why, without running or recording anything.

The workflow is run against an empty in-memory store with the real store's memo: a
dispatch whose result is remembered flows on; one that would run stops there, and every
node after it is reported as running after it (its inputs are not known until then).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from retap.dispatch import Dispatch, NodeId
from retap.workflow import Workflow

if TYPE_CHECKING:
    from retap.store.base import Store

__all__ = ["DryPlan", "dry_run"]


class DryPlan:
    """What a dry run found would run: dispatches, and the nodes that wait on them."""

    def __init__(self, workflow: Workflow, explain: Callable[[str], None] | None) -> None:
        self.workflow = workflow
        self.explain = explain
        self.would_run: list[tuple[Dispatch, str]] = []
        self.waits_on: dict[NodeId, str] = {}  # nodes that wait on one that runs

    def waiting(self, d: Dispatch) -> str | None:
        """Why ``d`` cannot be judged: the node whose result it waits on would run."""
        after = self.waits_on.get(d.node)
        return f"after node {after} runs" if after is not None else None

    def runs(self, d: Dispatch, reason: str, described: str | None) -> None:
        """``d`` would run (``described`` it, unless its decision was explained already);
        it passes nothing on, and everything downstream of it would run too."""
        if described is not None and self.explain is not None:
            self.explain(f"run  {described}: {reason}")
        self.would_run.append((d, reason))
        name = self.workflow.nodes[d.node].name
        for node in self.workflow.downstream([d.node]):
            self.waits_on.setdefault(node, f"{d.node} ({name})")


def dry_run(workflow: Workflow, store: Store, force: set[NodeId] | None = None) -> list[str]:
    """One line per dispatch reached (``run``/``skip``, the node, its inputs, the reason),
    then one per node that would run after those; ``force``: nodes that run whatever the
    memo has (``run --force``)."""
    from retap.app import App
    from retap.store.memory import MemoryStore

    lines: list[str] = []
    app = App(workflow, MemoryStore(), memo=store, dry_run=True, explain=lines.append)
    app.force_nodes = force or set()
    app.run()
    assert app.plan is not None
    reported = {d.node for d, _ in app.plan.would_run}
    for node, after in app.plan.waits_on.items():
        if node not in reported:
            lines.append(f"run  node {node} ({workflow.nodes[node].name}): after node {after} "
                         "runs")
    return lines
