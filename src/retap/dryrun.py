"""Dry runs: what a run would run and skip, and why, without running or recording anything.

The workflow is run against an empty in-memory store with the real store's memo: a
dispatch whose result is remembered flows on; one that would run stops there, and every
node after it is reported as running after it (its inputs are not known until then).
"""

from __future__ import annotations

from retap.app import App
from retap.store.base import Store
from retap.store.memory import MemoryStore
from retap.workflow import Workflow

__all__ = ["dry_run"]


def dry_run(workflow: Workflow, store: Store) -> list[str]:
    """One line per dispatch reached (``run``/``skip``, the node, its inputs, the reason),
    then one per node that would run after those."""
    lines: list[str] = []
    app = App(workflow, MemoryStore(), memo=store, dry_run=True, explain=lines.append)
    app.run()
    reported = {d.node for d, _ in app.would_run}
    for node, after in app.waits_on.items():
        if node not in reported:
            lines.append(f"run  node {node} ({workflow.nodes[node].name}): after node {after} "
                         "runs")
    return lines
