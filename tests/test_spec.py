"""Workflow specs: every join kind and modifier survives ``spec()`` -> ``from_spec()``, the
rebuilt workflow runs the same, and what cannot be recorded is refused by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import retap
from retap import App, SpecError, Workflow

LOG: list[tuple[str, tuple[Any, ...]]] = []


class Record(retap.Task):
    """Logs (label, inputs) and returns its input (several inputs as a list)."""

    label: str = retap.config("", help="the name the log shows")

    def process(self, *inputs: Any) -> Any:
        LOG.append((self.label, inputs))
        if len(inputs) == 1:
            return inputs[0]
        return list(inputs)


@retap.task
def double(value: Any, *, times: int = 2) -> Any:
    """Repeats its input."""
    return value * times


@retap.selector
def pick_by_length(result: Any) -> int:
    """A module-level switch selector: short strings to target 0, long ones to target 1."""
    return 0 if len(result) < 4 else 1


@pytest.fixture(autouse=True)
def clean_log() -> None:
    LOG.clear()


def rec(label: str) -> Record:
    return Record(label=label)


# One workflow per join kind and modifier -------------------------------------------------------


def plain() -> Workflow:
    wf = Workflow()
    a = wf.add(rec("a"), "x")
    wf.add(rec("b"))
    wf.add(rec("c"))
    wf.join(a, [1, 2])
    return wf


def merge() -> Workflow:
    wf = Workflow()
    wf.add(rec("a"), 1)
    wf.add(rec("b"), 2)
    wf.add(double(times=3))
    wf.join([0, 1], 2)
    return wf


def sync() -> Workflow:
    wf = Workflow()
    wf.add(rec("a"), "goodnight")
    wf.add(rec("b"), "moon")
    wf.add(rec("c"))
    wf.join([1, 0], 2, "sync")
    return wf


def switch_with_selector() -> Workflow:
    wf = Workflow()
    a = wf.add(rec("a"), "hi")
    wf.enqueue(a, "hello")
    wf.add(rec("short"))
    wf.add(rec("long"))
    wf.join(a, [1, 2], "switch", selector=pick_by_length)
    return wf


def switch_with_pairs() -> Workflow:
    wf = Workflow()
    wf.add(rec("a"), [1, "x"])
    wf.add(rec("zero"))
    wf.add(rec("one"))
    wf.join(0, [1, 2], "switch")
    return wf


def gate_with_limit() -> Workflow:
    wf = Workflow()
    for name in "abc":
        wf.add(rec(name), name)
    wf.add(rec("out"))
    wf.join([0, 1, 2], 3, "gate", limit=2)
    return wf


def gate_without_limit() -> Workflow:
    wf = Workflow()
    for name in "abc":
        wf.add(rec(name), name)
    wf.add(rec("out"))
    wf.join([0, 1, 2], 3, "gate")
    return wf


def enq() -> Workflow:
    wf = Workflow()
    wf.add(rec("a"), "go")
    wf.add(rec("b"))
    wf.add(rec("c"))
    wf.add(rec("d"))
    wf.join(0, [1, 2], enq=True)
    wf.join(1, 3, enq=True)
    return wf


def iterate() -> Workflow:
    wf = Workflow()
    wf.add(rec("a"), [1, 2, 3])
    wf.add(rec("each"))
    wf.add(rec("total"))
    wf.join(0, 1, iterate=True)
    wf.join(1, 2, "gate")
    return wf


def splat() -> Workflow:
    wf = Workflow()
    wf.add(rec("a"), "goodnight")
    wf.add(rec("b"), "moon")
    wf.add(rec("c"))
    wf.add(rec("d"), [1, 2, 3])
    wf.add(rec("e"))
    wf.join([0, 1], 2, "sync", splat=True)
    wf.join(3, 4, splat=True)
    return wf


def named_nodes() -> Workflow:
    wf = Workflow()
    wf.add(rec("read"), ["p", "q"], id="read")
    wf.add(rec("each"), id="each")
    wf.add(rec("all"), id="all")
    wf.join("read", "each", iterate=True, enq=True, id="fan out")
    wf.join("each", "all", "gate", limit=1, id="collect")
    return wf


WORKFLOWS: dict[str, Callable[[], Workflow]] = {
    f.__name__: f for f in (plain, merge, sync, switch_with_selector, switch_with_pairs,
                            gate_with_limit, gate_without_limit, enq, iterate, splat, named_nodes)
}


def trail(wf: Workflow) -> tuple[str, list[tuple[Any, ...]], list[tuple[str, tuple[Any, ...]]]]:
    """Run ``wf``: its status, (id, node, status, value) of each dispatch, and the task log."""
    LOG.clear()
    result = App(wf).run()
    audits = [(x.id, x.node, x.status, x.value) for x in result.audits()]
    return result.status, audits, list(LOG)


@pytest.mark.parametrize("make", list(WORKFLOWS.values()), ids=list(WORKFLOWS))
def test_a_workflow_rebuilt_from_its_spec_has_the_same_spec(make: Callable[[], Workflow]) -> None:
    original = make()

    rebuilt = Workflow.from_spec(original.spec())

    assert rebuilt.spec() == original.spec()


@pytest.mark.parametrize("make", list(WORKFLOWS.values()), ids=list(WORKFLOWS))
def test_a_workflow_rebuilt_from_its_spec_runs_the_same(make: Callable[[], Workflow]) -> None:
    original = make()
    rebuilt = Workflow.from_spec(original.spec())

    status, audits, log = trail(original)

    assert status == "done"
    assert len(audits) > 1
    assert trail(rebuilt) == (status, audits, log)


@pytest.mark.parametrize("make", list(WORKFLOWS.values()), ids=list(WORKFLOWS))
def test_a_spec_survives_json(make: Callable[[], Workflow]) -> None:
    spec = make().spec()

    text = json.dumps(spec)
    rebuilt = Workflow.from_spec(json.loads(text))

    assert rebuilt.spec() == spec


def test_the_spec_names_tasks_and_selectors_by_import_path() -> None:
    spec = switch_with_selector().spec()

    assert spec["nodes"][0]["task"] == f"{__name__}:Record"
    assert spec["nodes"][0]["config"] == {"label": "a"}
    assert spec["nodes"][0]["leads"] == [["hi"], ["hello"]]
    assert spec["joins"][0]["kind"] == "switch"
    assert spec["joins"][0]["selector"] == f"{__name__}:pick_by_length"


def test_the_spec_records_gate_limits_and_modifiers() -> None:
    joins = named_nodes().spec()["joins"]

    assert joins[0] == {"id": "fan out", "kind": "join", "sources": ["read"],
                        "targets": ["each"], "enq": True, "iterate": True}
    assert joins[1] == {"id": "collect", "kind": "gate", "sources": ["each"],
                        "targets": ["all"], "limit": 1}


def test_a_function_task_keeps_its_configs_through_the_spec() -> None:
    rebuilt = Workflow.from_spec(merge().spec())

    assert rebuilt.nodes[2].task.config_values() == {"times": 3}
    _, audits, _ = trail(rebuilt)
    assert [value for _, node, _, value in audits if node == 2] == [3, 6]


def test_rebuilding_does_not_share_lead_inputs_with_the_spec() -> None:
    spec = iterate().spec()
    rebuilt = Workflow.from_spec(spec)

    rebuilt.nodes[0].leads[0][0].append(4)

    assert spec["nodes"][0]["leads"] == [[[1, 2, 3]]]


# What cannot be recorded -----------------------------------------------------------------------


def test_a_task_class_defined_inside_a_function_cannot_be_recorded() -> None:
    class Local(retap.Task):
        def process(self, *inputs: Any) -> Any:
            return "local ran"

    wf = Workflow()
    wf.add(rec("a"), "x")
    local = wf.add(Local())
    wf.join(0, local)

    with pytest.raises(SpecError) as caught:
        wf.spec()

    assert "node 1" in caught.value.message
    assert "local" in caught.value.message.lower()


def test_a_workflow_with_a_local_task_still_runs_in_memory() -> None:
    class Local(retap.Task):
        def process(self, *inputs: Any) -> Any:
            return f"local got {inputs[0]}"

    wf = Workflow()
    wf.add(rec("a"), "x")
    wf.add(Local())
    wf.join(0, 1)

    result = App(wf).run()

    assert result.status == "done"
    assert result.values(1) == ["local got x"]


def test_a_local_task_is_refused_by_a_recording_store(tmp_path: Any) -> None:
    class Local(retap.Task):
        def process(self, *inputs: Any) -> Any:
            return "never"

    wf = Workflow()
    wf.add(Local())
    store = retap.open_store(tmp_path / "retap.db")

    try:
        with pytest.raises(SpecError, match="node 0"):
            App(wf, store).run()
        assert store.runs() == []  # refused at the start: nothing recorded
    finally:
        store.close()


def test_a_lambda_selector_is_refused_by_a_recording_store_before_anything_runs(
        tmp_path: Any) -> None:
    wf = Workflow()
    wf.add(rec("a"), "x")
    wf.add(rec("b"))
    wf.join(0, 1, "switch", selector=lambda result: 0)
    store = retap.open_store(tmp_path / "retap.db")

    try:
        with pytest.raises(SpecError, match="switch 0"):
            App(wf, store).run()
        assert LOG == []
        assert store.runs() == []
    finally:
        store.close()


def test_a_lambda_switch_selector_cannot_be_recorded() -> None:
    wf = Workflow()
    wf.add(rec("a"), "x")
    wf.add(rec("b"))
    wf.join(0, 1, "switch", selector=lambda result: 0, id="chooser")

    with pytest.raises(SpecError) as caught:
        wf.spec()

    assert "chooser" in caught.value.message
    assert "lambda" in caught.value.message


def test_a_workflow_with_a_lambda_selector_still_runs_in_memory() -> None:
    wf = Workflow()
    wf.add(rec("a"), "x")
    wf.add(rec("b"))
    wf.add(rec("c"))
    wf.join(0, [1, 2], "switch", selector=lambda result: 1)

    result = App(wf).run()

    assert result.status == "done"
    assert result.values(2) == ["x"]
    assert result.values(1) == []


def test_from_spec_with_an_unknown_task_path_names_the_node() -> None:
    spec = plain().spec()
    spec["nodes"][1]["task"] = f"{__name__}:NoSuchTask"

    with pytest.raises(SpecError) as caught:
        Workflow.from_spec(spec)

    assert "node 1" in caught.value.message
    assert "NoSuchTask" in caught.value.message


def test_from_spec_with_an_unknown_module_names_the_node() -> None:
    spec = plain().spec()
    spec["nodes"][2]["task"] = "no_such_module_for_retap:Record"

    with pytest.raises(SpecError, match="node 2"):
        Workflow.from_spec(spec)


def test_from_spec_with_an_unknown_selector_path_names_the_join() -> None:
    spec = switch_with_selector().spec()
    spec["joins"][0]["selector"] = f"{__name__}:no_such_selector"

    with pytest.raises(SpecError) as caught:
        Workflow.from_spec(spec)

    assert "join 0" in caught.value.message or "switch 0" in caught.value.message
    assert "no_such_selector" in caught.value.message


def test_a_join_to_a_missing_node_is_refused_when_building() -> None:
    wf = Workflow()
    wf.add(rec("a"), "x")

    with pytest.raises(SpecError) as caught:
        wf.join(0, 7)

    assert "7" in caught.value.message
    assert wf.joins == []


def test_a_join_to_a_missing_node_is_refused_when_rebuilding_from_a_spec() -> None:
    spec = plain().spec()
    spec["joins"][0]["targets"] = [1, 9]

    with pytest.raises(SpecError) as caught:
        Workflow.from_spec(spec)

    assert "join 0" in caught.value.message
    assert "9" in caught.value.message


def test_a_spec_with_an_unknown_join_kind_is_refused() -> None:
    spec = plain().spec()
    spec["joins"][0]["kind"] = "bogus"

    with pytest.raises(SpecError, match="bogus"):
        Workflow.from_spec(spec)


def test_something_that_is_not_a_spec_is_refused() -> None:
    with pytest.raises(SpecError):
        Workflow.from_spec({"nodes": []})
    with pytest.raises(SpecError):
        Workflow.from_spec({"retap": 999, "nodes": [], "joins": []})


def test_a_gate_limit_must_be_a_positive_integer() -> None:
    wf = Workflow()
    wf.add(rec("a"), "x")
    wf.add(rec("b"))

    with pytest.raises(SpecError, match="limit"):
        wf.join(0, 1, "gate", limit=0)


@pytest.mark.parametrize(("edit", "named"), [
    (lambda s: s["nodes"][1].update(id=True), "nodes[1].id: Expected `int | str`, got `bool`"),
    (lambda s: s["nodes"][0].update(extra=1), "nodes[0]: Object contains unknown field `extra`"),
    (lambda s: s["nodes"][0].update(config={1: "x"}), "a key of nodes[0].config: Expected `str`"),
    (lambda s: s["joins"].append(5), "joins[1]: Expected `object`, got `int`"),
    (lambda s: s.update(nodes="abc"), "nodes: Expected `array`, got `str`"),
])
def test_a_malformed_spec_is_refused_naming_the_field(edit: Any, named: str) -> None:
    spec = plain().spec()
    edit(spec)

    with pytest.raises(SpecError) as caught:
        Workflow.from_spec(spec)

    assert caught.value.message.startswith(f"workflow spec: {named}"), caught.value.message
    assert "\n" not in caught.value.message
