"""Random workflows for the torture runner: DAGs of 3-7 nodes with every join kind and
modifier, iterate over lists, slow and flaky tasks. Seeded, so a case can be replayed."""

from __future__ import annotations

import random
from typing import Any

from retap.workflow import Workflow

__all__ = ["build", "plan"]

MODES = ("value", "list", "pair")
KINDS = ("join", "sync", "switch", "gate")


def plan(rng: random.Random) -> dict[str, Any]:
    """A workflow plan: nodes ``[mode, width, slow_ms, flaky]``, joins, lead inputs."""
    count = rng.randint(3, 7)
    nodes = [[rng.choice(MODES), rng.randint(1, 3), rng.choice([0, 0, 0, 2, 10]),
              rng.random() < 0.08] for _ in range(count)]
    joins = [j for j in (_join(rng, nodes) for _ in range(rng.randint(2, count + 2))) if j]
    leads = rng.sample(["x", "y", "z"], rng.randint(1, 3))
    return {"nodes": nodes, "joins": joins, "leads": leads}


def _join(rng: random.Random, nodes: list[list[Any]]) -> dict[str, Any] | None:
    kind = rng.choice(KINDS)
    cut = rng.randint(1, len(nodes) - 1)
    lower, upper = list(range(cut)), list(range(cut, len(nodes)))
    options: dict[str, Any] = {"enq": rng.random() < 0.5}
    if kind == "switch":
        pairs = [i for i in lower if nodes[i][0] == "pair"]
        widths = {nodes[i][1] for i in pairs}
        if not pairs or len(widths) != 1 or nodes[pairs[0]][1] > len(upper):
            return None
        sources = rng.sample(pairs, min(len(pairs), rng.randint(1, 2)))
        return {"kind": kind, "sources": sources,
                "targets": rng.sample(upper, nodes[pairs[0]][1]), "options": options}
    pool = lower
    if kind == "join":
        lists = [i for i in lower if nodes[i][0] == "list"]
        if lists and rng.random() < 0.5:
            pool = lists
            options[rng.choice(["iterate", "splat"])] = True
    else:
        options["iterate"] = rng.random() < 0.4
        options["splat"] = not options["iterate"] and rng.random() < 0.3
        if kind == "gate" and rng.random() < 0.5:
            options["limit"] = rng.randint(1, 3)
    sources = rng.sample(pool, min(len(pool), rng.randint(1, 3)))
    targets = rng.sample(upper, min(len(upper), rng.randint(1, 2)))
    return {"kind": kind, "sources": sources, "targets": targets, "options": options}


def build(plan: dict[str, Any]) -> Workflow:
    """The workflow of a plan; node 0 is a lead with one dispatch per lead input."""
    from retap.torture.tasks import Gen

    workflow = Workflow()
    for i, (mode, width, slow_ms, flaky) in enumerate(plan["nodes"]):
        workflow.add(Gen(label=f"n{i}", mode=mode, width=width, slow_ms=slow_ms, flaky=flaky))
    workflow.nodes[0].leads = [[value] for value in plan["leads"]]
    for join in plan["joins"]:
        workflow.join(join["sources"], join["targets"], join["kind"], **join["options"])
    return workflow
