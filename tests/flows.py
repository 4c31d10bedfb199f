"""Generated workflows for property and crash tests: deterministic tasks and a generator.

``Gen`` makes a value from its inputs alone (so two runs agree), in the shape its
node's joins need: a plain value, a list (for iterate and splat), or ``[index, value]``
for a switch. It can be told to fail, or to kill its own process, at the k-th
execution, and it logs every execution so tests can count them.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import retap
from retap.workflow import Workflow

CONTROL: dict[str, Any] = {"count": 0, "fail_at": None, "log": []}


class Boom(RuntimeError):
    """The failure a test asked for."""


def _digest(*parts: Any) -> int:
    return int(hashlib.md5(repr(parts).encode()).hexdigest()[:8], 16)


class Gen(retap.Task):
    """A deterministic value from its inputs, shaped for its node's joins."""

    label: str = "n"
    mode: str = "value"  # value | list | pair
    width: int = 2

    def process(self, *inputs: Any) -> Any:
        _tick(self.label, inputs)
        h = _digest(self.label, inputs)
        if self.mode == "list":
            return [f"{self.label}{i}.{h % 97}" for i in range(self.width)]
        if self.mode == "pair":
            return [h % self.width, f"{self.label}.{h % 997}"]
        return f"{self.label}.{h % 9973}"


def _tick(label: str, inputs: tuple[Any, ...]) -> None:
    """Count an execution; fail or die at the one a test picked."""
    CONTROL["count"] += 1
    CONTROL["log"].append((label, repr(inputs)))
    if CONTROL["fail_at"] == CONTROL["count"]:
        raise Boom(f"{label} fails at execution {CONTROL['count']}")
    log = os.environ.get("FLOWS_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{label}\t{inputs!r}\n")
    kill_at = os.environ.get("FLOWS_KILL_AT")
    if kill_at and int(kill_at) == CONTROL["count"]:
        marker = Path(os.environ["FLOWS_MARKER"])
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)


def reset(fail_at: int | None = None) -> None:
    CONTROL.update(count=0, fail_at=fail_at, log=[])


MODES = ("value", "list", "pair")
KINDS = ("join", "sync", "switch", "gate")


def build(plan: dict[str, Any]) -> Workflow:
    """A workflow from a plan: ``{"nodes": [[mode, width], ...], "joins": [...], ...}``."""
    wf = Workflow()
    for i, (mode, width) in enumerate(plan["nodes"]):
        wf.add(Gen(label=f"n{i}", mode=mode, width=width))
        for k, value in enumerate(plan["leads"].get(i, [])):
            if k == 0:
                wf.nodes[i].leads = [[value]]
            else:
                wf.enqueue(i, value)
    for join in plan["joins"]:
        options = dict(join.get("options", {}))
        wf.join(join["sources"], join["targets"], join["kind"], **options)
    return wf


def plans(draw: Any) -> dict[str, Any]:
    """Draw a plan (call with hypothesis's ``draw``): a DAG of 3-6 nodes, every join kind,
    node 0 a lead with one to three lead dispatches."""
    from hypothesis import strategies as st

    count = draw(st.integers(3, 6))
    nodes = [[draw(st.sampled_from(MODES)), draw(st.integers(1, 3))] for _ in range(count)]
    joins = []
    for _ in range(draw(st.integers(2, count + 2))):
        kind = draw(st.sampled_from(KINDS))
        join = _draw_join(draw, st, nodes, kind)
        if join is not None:
            joins.append(join)
    leads = {0: draw(st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=3,
                              unique=True))}
    return {"nodes": nodes, "joins": joins, "leads": leads}


def _draw_join(draw: Any, st: Any, nodes: list[list[Any]], kind: str) -> dict[str, Any] | None:
    count = len(nodes)
    cut = draw(st.integers(1, count - 1))  # sources below the cut, targets at or above it
    lower = list(range(cut))
    upper = list(range(cut, count))
    options: dict[str, Any] = {"enq": draw(st.booleans())}
    if kind == "switch":
        pairs = [i for i in lower if nodes[i][0] == "pair"]
        widths = {nodes[i][1] for i in pairs}
        if not pairs or len(widths) != 1 or widths.pop() > len(upper):
            return None
        width = nodes[pairs[0]][1]
        sources = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=2, unique=True))
        targets = draw(st.lists(st.sampled_from(upper), min_size=width, max_size=width,
                                unique=True))
        return {"kind": kind, "sources": sources, "targets": targets, "options": options}
    if kind == "join":
        lists = [i for i in lower if nodes[i][0] == "list"]
        shaped = draw(st.booleans()) and bool(lists)
        pool = lists if shaped else lower
        if shaped:
            options[draw(st.sampled_from(["iterate", "splat"]))] = True
    else:
        pool = lower
        options["iterate"] = draw(st.booleans())
        options["splat"] = not options["iterate"] and draw(st.booleans())
        if kind == "gate" and draw(st.booleans()):
            options["limit"] = draw(st.integers(1, 3))
    sources = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
    targets = draw(st.lists(st.sampled_from(upper), min_size=1, max_size=2, unique=True))
    return {"kind": kind, "sources": sources, "targets": targets, "options": options}
