"""Random workflows for the torture runner: DAGs of 3-7 nodes with every join kind and
modifier, iterate over lists, slow and flaky tasks, and (per the case's features) file
tasks and memoized tasks among them. Seeded, so a case can be replayed."""

from __future__ import annotations

import copy
import random
from typing import Any

from retap.taskdef import Task
from retap.torture.features import Features
from retap.workflow import Workflow

__all__ = ["INPUT_FILES", "build", "decorate", "downstream", "draw_retries", "from_nodes",
           "memoized_labels", "node_features", "plan", "read_inputs", "with_new_lead"]

MODES = ("value", "list", "pair")
KINDS = ("join", "sync", "switch", "gate")
INPUT_FILES = ("in/a.txt", "in/b.txt", "in/c.txt")
MEMOIZED = ("memo", "write", "stamp")  # node kinds whose results later runs may reuse
# configs a node may be given beyond the defaults (see tasks.tuning): a float (given an int
# too) validated without pydantic when a run is rebuilt from its spec, a tuple with it
TUNES: tuple[dict[str, Any], ...] = (
    {}, {}, {"scale": 0.5}, {"scale": 3}, {"offsets": [2, 5]}, {"scale": 2.5, "offsets": [7]})


def plan(rng: random.Random) -> dict[str, Any]:
    """A workflow plan: nodes ``[mode, width, slow_ms, flaky]``, joins, lead inputs."""
    count = rng.randint(3, 7)
    nodes = [[rng.choice(MODES), rng.randint(1, 3), rng.choice([0, 0, 0, 2, 10]),
              rng.random() < 0.08] for _ in range(count)]
    joins = [j for j in (_join(rng, nodes) for _ in range(rng.randint(2, count + 2))) if j]
    leads = rng.sample(["x", "y", "z"], rng.randint(1, 3))
    return {"nodes": nodes, "joins": joins, "leads": leads}


def decorate(workplan: dict[str, Any], rng: random.Random, features: Features) -> None:
    """Give each node a kind (gen, memo, write, stamp) and file nodes an input file."""
    kinds = ["gen"] + ["memo"] * features.memo + ["write", "stamp"] * features.files
    count = len(workplan["nodes"])
    workplan["kinds"] = [rng.choice(kinds) for _ in range(count)]
    workplan["srcs"] = [rng.choice(("", *INPUT_FILES)) for _ in range(count)]
    workplan["tunes"] = [rng.choice(TUNES) for _ in range(count)]
    if features.on_error == "continue":
        _steady_failures(workplan)


def _steady_failures(workplan: dict[str, Any]) -> None:
    """With on-error continue, a failed dispatch is parked while the rest runs on, so a
    failure lost to a kill (or answered by the memo in a fresh run) changes the order in
    which results reach a stateful join (sync, gate), and with it the values: no node
    upstream of one is flaky, so the reference stays comparable."""
    stateful = {s for j in workplan["joins"] if j["kind"] in ("sync", "gate")
                for s in j["sources"]}
    for i, node in enumerate(workplan["nodes"]):
        if downstream(workplan, i) & stateful:
            node[3] = False


def downstream(workplan: dict[str, Any], start: int) -> set[int]:
    """``start`` and every node its results reach."""
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for join in workplan["joins"]:
            if node in join["sources"]:
                fresh = set(join["targets"]) - seen
                seen |= fresh
                todo.extend(fresh)
    return seen


def memoized_labels(workplan: dict[str, Any]) -> set[str]:
    """Labels of the nodes whose results are memoized."""
    return {f"n{i}" for i, kind in enumerate(_kinds(workplan)) if kind in MEMOIZED}


def node_features(workplan: dict[str, Any]) -> list[str]:
    """``files`` when the plan has file nodes, ``memo`` when it has memoized plain ones."""
    kinds = set(_kinds(workplan))
    return ["files"] * bool(kinds & {"write", "stamp"}) + ["memo"] * ("memo" in kinds)


def from_nodes(workplan: dict[str, Any]) -> list[int]:
    """The nodes ``replay --from`` may be drawn for: those with no node changing a file in
    place at or below them (running such a node again applies its change again, as asked,
    which the reference does not have), and none feeding a gate or sync join at or below
    them (which replay --from refuses)."""
    kinds = _kinds(workplan)
    grouping = {s for j in workplan["joins"] if j["kind"] in ("gate", "sync")
                for s in j["sources"]}
    return [i for i in range(len(kinds))
            if all(kinds[n] != "stamp" for n in downstream(workplan, i))
            and not downstream(workplan, i) & grouping]


def read_inputs(workplan: dict[str, Any]) -> list[str]:
    """The input files some file node reads."""
    return sorted({src for kind, src in zip(_kinds(workplan), workplan.get("srcs", []),
                                            strict=False)
                   if src and kind in ("write", "stamp")})


def with_new_lead(workplan: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The plan with one lead input replaced (or one more added): a changed lead input."""
    changed = copy.deepcopy(workplan)
    leads = changed["leads"]
    fresh = rng.choice([v for v in ("u", "v", "w") if v not in leads])
    if rng.random() < 0.5:
        leads[rng.randrange(len(leads))] = fresh
    else:
        leads.append(fresh)
    return changed


def _kinds(workplan: dict[str, Any]) -> list[str]:
    return workplan.get("kinds") or ["gen"] * len(workplan["nodes"])


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


def draw_retries(workplan: dict[str, Any], rng: random.Random) -> None:
    """Draw which flaky nodes retry within their session (``retries``) instead of failing
    their dispatch (from a stream of its own: cases drawn before it keep their plans)."""
    workplan["retried"] = [node[3] and rng.random() < 0.4 for node in workplan["nodes"]]


def build(workplan: dict[str, Any]) -> Workflow:
    """The workflow of a plan; node 0 is a lead with one dispatch per lead input."""
    workflow = Workflow()
    count = len(workplan["nodes"])
    srcs = workplan.get("srcs") or [""] * count
    tunes = workplan.get("tunes") or [{}] * count
    retried = workplan.get("retried") or [False] * count
    for i, (kind, node, src, tune, again) in enumerate(zip(
            _kinds(workplan), workplan["nodes"], srcs, tunes, retried, strict=True)):
        workflow.add(_task(kind, f"n{i}", node, src, tune, again))
    workflow.nodes[0].leads = [[value] for value in workplan["leads"]]
    for join in workplan["joins"]:
        workflow.join(join["sources"], join["targets"], join["kind"], **join["options"])
    return workflow


def _task(kind: str, label: str, node: list[Any], src: str, tune: dict[str, Any],
          retried: bool) -> Task:
    from retap.torture import filetasks, tasks

    mode, width, slow_ms, flaky = node
    common = {"label": label, "mode": mode, "width": width, "slow_ms": slow_ms, "flaky": flaky,
              **tune}
    name = {"write": "WriteFile", "stamp": "StampFile", "memo": "Memo"}.get(kind, "Gen")
    made: type[Task] = getattr(filetasks if kind in ("write", "stamp") else tasks,
                               name + "Retried" * retried)
    return made(**common, src=src) if kind in ("write", "stamp") else made(**common)
