"""Join semantics through the Python API: what each kind of join passes on, to whom, in
which order, and with which dispatch ids (default in-memory store)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import retap
from retap import App, Middleware, Workflow
from retap.dispatch import _digest, join_dispatch_id, lead_dispatch_id
from retap.joins import Gate, Join

# Every execution of a Record task, in order: (label, inputs).
LOG: list[tuple[str, tuple[Any, ...]]] = []


class Record(retap.Task):
    """Logs (label, inputs) and returns its input (several inputs as a list)."""

    label: str = retap.config("", help="the name the log shows")

    def process(self, *inputs: Any) -> Any:
        LOG.append((self.label, inputs))
        if len(inputs) == 1:
            return inputs[0]
        return list(inputs)


class Boom(retap.Task):
    """Always fails."""

    def process(self, *inputs: Any) -> Any:
        raise RuntimeError("boom")


@retap.selector
def pick_by_length(result: Any) -> int:
    """A switch selector: short strings go to target 0, long ones to target 1."""
    return 0 if len(result) < 4 else 1


@retap.selector
def always_five(result: Any) -> int:
    return 5


@pytest.fixture(autouse=True)
def clean_log() -> None:
    LOG.clear()


def rec(label: str) -> Record:
    return Record(label=label)


def order() -> list[str]:
    return [label for label, _ in LOG]


def calls(label: str) -> list[tuple[Any, ...]]:
    return [inputs for name, inputs in LOG if name == label]


def run(wf: Workflow, **options: Any) -> retap.RunResult:
    return App(wf, **options).run()


# -- plain joins: sequence, fork, merge ------------------------------------------------------


def test_a_sequence_passes_the_result_of_a_to_b() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "hello")
    b = wf.add(rec("b"))
    wf.join(a, b)

    result = run(wf)

    assert result.status == "done"
    assert LOG == [("a", ("hello",)), ("b", ("hello",))]
    assert result.values(b) == ["hello"]


def test_a_fork_gives_the_result_to_every_target_in_the_order_written() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "x")
    b = wf.add(rec("b"))
    c = wf.add(rec("c"))
    wf.join(a, [b, c])

    result = run(wf)

    assert result.status == "done"
    assert LOG == [("a", ("x",)), ("b", ("x",)), ("c", ("x",))]


def test_a_merge_runs_the_target_once_per_input_each_alone() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "from a")
    b = wf.add(rec("b"), "from b")
    c = wf.add(rec("c"))
    wf.join([a, b], c)

    result = run(wf)

    assert result.status == "done"
    assert calls("c") == [("from a",), ("from b",)]
    assert result.values(c) == ["from a", "from b"]


def test_a_merged_dispatch_records_the_one_source_it_came_from() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), 1)
    b = wf.add(rec("b"), 2)
    c = wf.add(rec("c"))
    wf.join([a, b], c)

    audits = run(wf).audits()

    by_node = {}
    for audit in audits:
        by_node.setdefault(audit.node, []).append(audit)
    assert [x.sources for x in by_node[c]] == [(by_node[a][0].id,), (by_node[b][0].id,)]
    assert by_node[a][0].sources == ()


# -- depth-first by default, breadth-first with enq -----------------------------------------


def _fork_then_chain(enq_first: bool = False, enq_second: bool = False,
                     extra_lead: bool = False) -> Workflow:
    """a -> [b, c] and b -> d (optionally with a second lead x after them)."""
    wf = Workflow()
    a = wf.add(rec("a"), "go")
    b = wf.add(rec("b"))
    c = wf.add(rec("c"))
    d = wf.add(rec("d"))
    if extra_lead:
        wf.add(rec("x"), "other")
    wf.join(a, [b, c], enq=enq_first)
    wf.join(b, d, enq=enq_second)
    return wf


def test_joins_run_their_targets_depth_first_by_default() -> None:
    run(_fork_then_chain())

    assert order() == ["a", "b", "d", "c"]


def test_enqueued_joins_run_their_targets_breadth_first() -> None:
    run(_fork_then_chain(enq_first=True, enq_second=True))

    assert order() == ["a", "b", "c", "d"]


def test_enqueueing_only_the_second_join_puts_d_after_c() -> None:
    run(_fork_then_chain(enq_second=True))

    assert order() == ["a", "b", "c", "d"]


def test_an_enqueued_fork_lets_a_waiting_lead_run_before_its_targets() -> None:
    # depth-first: a's targets run at once, before the second lead x
    run(_fork_then_chain(extra_lead=True))
    assert order() == ["a", "b", "d", "c", "x"]
    LOG.clear()

    # enq: a's targets go behind x; b's own join is depth-first, so d follows b at once
    run(_fork_then_chain(enq_first=True, extra_lead=True))
    assert order() == ["a", "x", "b", "d", "c"]


# -- sync -------------------------------------------------------------------------------------


def test_a_sync_waits_for_every_source_and_passes_one_list() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "goodnight")
    b = wf.add(rec("b"), "moon")
    c = wf.add(rec("c"))
    wf.join([a, b], c, "sync")

    result = run(wf)

    assert result.status == "done"
    assert calls("c") == [(["goodnight", "moon"],)]


def test_a_sync_lists_results_in_source_order_as_written_not_arrival_order() -> None:
    wf = Workflow()
    first = wf.add(rec("first"), "ran first")
    second = wf.add(rec("second"), "ran second")
    c = wf.add(rec("c"))
    wf.join([second, first], c, "sync")  # written the other way round

    run(wf)

    assert order()[:2] == ["first", "second"]
    assert calls("c") == [(["ran second", "ran first"],)]


def test_a_sync_pairs_a_source_that_finishes_twice_with_the_others_next_results() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "a0")
    wf.enqueue(a, "a1")
    b = wf.add(rec("b"), "b0")
    wf.enqueue(b, "b1")
    c = wf.add(rec("c"))
    wf.join([a, b], c, "sync")

    result = run(wf)

    assert result.status == "done"
    assert order() == ["a", "a", "b", "c", "b", "c"]  # a twice before b: a1 waits its turn
    assert calls("c") == [(["a0", "b0"],), (["a1", "b1"],)]


def test_a_sync_holds_an_unpaired_result_and_passes_nothing_for_it() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "a0")
    wf.enqueue(a, "a1")
    b = wf.add(rec("b"), "b0")
    c = wf.add(rec("c"))
    wf.join([a, b], c, "sync")

    result = run(wf)

    assert result.status == "done"
    assert calls("c") == [(["a0", "b0"],)]  # a1 never gets a partner


# -- switch -------------------------------------------------------------------------------------


def test_a_switch_with_a_selector_sends_the_whole_result_to_the_chosen_target() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "hi")
    wf.enqueue(a, "hello")
    short = wf.add(rec("short"))
    long = wf.add(rec("long"))
    wf.join(a, [short, long], "switch", selector=pick_by_length)

    result = run(wf)

    assert result.status == "done"
    assert calls("short") == [("hi",)]
    assert calls("long") == [("hello",)]


def test_a_switch_without_a_selector_takes_index_and_value_from_the_result() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), [1, "x"])
    zero = wf.add(rec("zero"))
    one = wf.add(rec("one"))
    wf.join(a, [zero, one], "switch")

    result = run(wf)

    assert result.status == "done"
    assert calls("zero") == []
    assert calls("one") == [("x",)]
    assert result.values(one) == ["x"]


def test_a_switch_index_out_of_range_fails_the_source_dispatch_and_the_run() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), [5, "x"])
    zero = wf.add(rec("zero"))
    one = wf.add(rec("one"))
    wf.join(a, [zero, one], "switch")

    result = run(wf)

    assert result.status == "failed"
    assert calls("zero") == calls("one") == []
    (audit,) = [x for x in result.audits() if x.node == a]
    assert audit.status == "failed"
    assert audit.error is not None
    assert "switch" in audit.error["message"]
    assert "5" in audit.error["message"]


def test_a_selector_picking_a_missing_target_fails_the_run() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "x")
    b = wf.add(rec("b"))
    wf.join(a, b, "switch", selector=always_five)

    result = run(wf)

    assert result.status == "failed"
    assert calls("b") == []
    (audit,) = [x for x in result.audits() if x.node == a]
    assert audit.status == "failed"
    assert "switch" in audit.error["message"]


@pytest.mark.parametrize("result", ["not a pair", [True, "v"], ["1", "v"], [1.0, "v"]],
                         ids=["not-a-pair", "true", "text", "float"])
def test_a_switch_result_that_is_not_a_pair_fails_with_a_message_saying_so(
        result: object) -> None:
    wf = Workflow()
    a = wf.add(rec("a"), result)
    b = wf.add(rec("b"))
    wf.join(a, b, "switch")

    result = run(wf)

    assert result.status == "failed"
    (audit,) = [x for x in result.audits() if x.node == a]
    assert "[index, value]" in audit.error["message"]


# -- gate ---------------------------------------------------------------------------------------


def test_a_gate_with_a_limit_passes_batches_then_the_rest_when_the_queue_drains() -> None:
    wf = Workflow()
    loads = [wf.add(rec(name), name) for name in ("a", "b", "c")]
    out = wf.add(rec("out"))
    wf.join(loads, out, "gate", limit=2)

    result = run(wf)

    assert result.status == "done"
    assert calls("out") == [(["a", "b"],), (["c"],)]
    assert order() == ["a", "b", "out", "c", "out"]


def test_a_gate_without_a_limit_passes_everything_once_the_queue_drains() -> None:
    wf = Workflow()
    loads = [wf.add(rec(name), name) for name in ("a", "b", "c")]
    out = wf.add(rec("out"))
    wf.join(loads, out, "gate")

    result = run(wf)

    assert result.status == "done"
    assert calls("out") == [(["a", "b", "c"],)]
    assert order() == ["a", "b", "c", "out"]


def test_a_gate_whose_batches_fill_exactly_has_nothing_left_to_drain() -> None:
    wf = Workflow()
    loads = [wf.add(rec(str(i)), i) for i in range(4)]
    out = wf.add(rec("out"))
    wf.join(loads, out, "gate", limit=2)

    run(wf)

    assert calls("out") == [([0, 1],), ([2, 3],)]


def test_an_iterated_list_collected_by_a_gate_arrives_whole() -> None:
    wf = Workflow()
    load = wf.add(rec("load"), [1, 2, 3])
    each = wf.add(rec("each"))
    total = wf.add(rec("total"))
    wf.join(load, each, iterate=True)
    wf.join(each, total, "gate")

    run(wf)

    assert order() == ["load", "each", "each", "each", "total"]
    assert calls("total") == [([1, 2, 3],)]


# -- iterate and splat --------------------------------------------------------------------------


def test_iterate_passes_each_item_of_a_list_on_alone() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), ["x", "y", "z"])
    b = wf.add(rec("b"))
    wf.join(a, b, iterate=True)

    result = run(wf)

    assert result.status == "done"
    assert calls("b") == [("x",), ("y",), ("z",)]


def test_iterate_on_a_result_that_is_not_a_list_fails_with_a_clear_error() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "just a string")
    b = wf.add(rec("b"))
    wf.join(a, b, iterate=True)

    result = run(wf)

    assert result.status == "failed"
    assert calls("b") == []
    (audit,) = [x for x in result.audits() if x.node == a]
    assert audit.status == "failed"
    assert "iterate" in audit.error["message"]
    assert "list" in audit.error["message"]


def test_splat_makes_a_list_result_the_targets_positional_inputs() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), [1, 2, 3])
    b = wf.add(rec("b"))
    wf.join(a, b, splat=True)

    run(wf)

    assert calls("b") == [(1, 2, 3)]


def test_splat_on_a_result_that_is_not_a_list_fails_with_a_clear_error() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), 42)
    b = wf.add(rec("b"))
    wf.join(a, b, splat=True)

    result = run(wf)

    assert result.status == "failed"
    (audit,) = [x for x in result.audits() if x.node == a]
    assert "splat" in audit.error["message"]


def test_splat_on_a_sync_passes_the_results_as_separate_inputs() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "goodnight")
    b = wf.add(rec("b"), "moon")
    c = wf.add(rec("c"))
    wf.join([a, b], c, "sync", splat=True)

    run(wf)

    assert calls("c") == [("goodnight", "moon")]


def test_iterate_and_splat_together_splat_each_item() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), [[1, 2], [3, 4]])
    b = wf.add(rec("b"))
    wf.join(a, b, iterate=True, splat=True)

    run(wf)

    assert calls("b") == [(1, 2), (3, 4)]


# -- lead nodes ---------------------------------------------------------------------------------


def test_nodes_that_no_join_targets_are_leads_and_run_with_their_inputs() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), "A")
    wf.add(rec("b"), "B")  # not joined at all: still a lead
    c = wf.add(rec("c"), "ignored: c is a target")
    wf.join(a, c)

    assert [lead[0] for lead in wf.leads()] == [0, 1]
    run(wf)

    assert LOG == [("a", ("A",)), ("c", ("A",)), ("b", ("B",))]


def test_a_lead_with_no_inputs_runs_once_with_zero_inputs() -> None:
    wf = Workflow()
    wf.add(rec("a"))

    result = run(wf)

    assert result.status == "done"
    assert LOG == [("a", ())]
    assert len(result.audits()) == 1


def test_enqueue_gives_a_lead_another_dispatch() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), 1)
    wf.enqueue(a, 2)
    wf.enqueue(a, 3, 4)
    b = wf.add(rec("b"))
    wf.join(a, b, enq=True)

    result = run(wf)

    assert calls("a") == [(1,), (2,), (3, 4)]
    assert calls("b") == [(1,), (2,), ([3, 4],)]
    assert len({x.id for x in result.audits() if x.node == a}) == 3


def test_enqueue_on_an_unknown_node_is_refused() -> None:
    wf = Workflow()
    wf.add(rec("a"))

    with pytest.raises(retap.SpecError, match="nope"):
        wf.enqueue("nope", 1)


# -- dispatch ids -------------------------------------------------------------------------------


def _busy_workflow() -> Workflow:
    """A bit of everything: fork, iterate, sync, gate with a limit, enq, switch."""
    wf = Workflow()
    a = wf.add(rec("a"), [1, 2, 3])
    wf.enqueue(a, [4, 4])
    each = wf.add(rec("each"))
    b = wf.add(rec("b"), "b")
    wf.enqueue(b, "b2")
    pair = wf.add(rec("pair"))
    batch = wf.add(rec("batch"))
    sw = wf.add(rec("sw"), [0, "left"])
    left = wf.add(rec("left"))
    right = wf.add(rec("right"))
    wf.join(a, each, iterate=True)
    wf.join([a, b], pair, "sync", enq=True)
    wf.join(each, batch, "gate", limit=2)
    wf.join(sw, [left, right], "switch")
    return wf


def test_running_the_same_workflow_twice_gives_the_same_dispatch_ids_in_order() -> None:
    first = run(_busy_workflow()).audits()
    second = run(_busy_workflow()).audits()

    assert [(x.id, x.node, x.value) for x in first] == [(x.id, x.node, x.value) for x in second]
    assert len(first) > 10


def test_dispatch_ids_are_unique_within_a_run_even_for_equal_values() -> None:
    result = run(_busy_workflow())

    ids = [x.id for x in result.audits()]
    assert result.status == "done"
    assert len(ids) == len(set(ids))
    # [4, 4] iterated: two dispatches of `each` with the same input, different ids
    fours = [x for x in result.audits() if x.node == 1 and x.value == 4]
    assert len(fours) == 2 and fours[0].id != fours[1].id


def test_two_runs_have_different_run_ids_but_the_same_dispatch_ids() -> None:
    wf = Workflow()
    wf.add(rec("a"), "x")
    first, second = run(wf), run(wf)

    assert first.run != second.run
    assert [x.id for x in first.audits()] == [x.id for x in second.audits()]


def test_dispatch_ids_depend_on_lineage_not_on_values() -> None:
    def ids_for(value: str) -> list[str]:
        wf = Workflow()
        a = wf.add(rec("a"), value)
        b = wf.add(rec("b"))
        wf.join(a, b)
        return [x.id for x in run(wf).audits()]

    assert ids_for("one value") == ids_for("another value")


class QueueWatcher(Middleware):
    """Checks before every dispatch that no id sits in the queue twice."""

    def __init__(self) -> None:
        self.snapshots: list[list[str]] = []

    def before_dispatch(self, app: App, dispatch: Any) -> None:
        self.snapshots.append([d.id for d in app.queue])


def test_no_dispatch_id_is_ever_queued_twice() -> None:
    watcher = QueueWatcher()

    result = run(_busy_workflow(), middleware=[watcher])

    assert result.status == "done"
    assert len(watcher.snapshots) == len(result.audits())
    for queue in watcher.snapshots:
        assert len(queue) == len(set(queue)), queue


# -- the App: info, middleware, stop ------------------------------------------------------------


def test_app_info_shows_the_state_and_the_queue_length() -> None:
    wf = Workflow()
    wf.add(rec("a"), 1)
    app = App(wf)

    assert app.info() == "state: 0 (READY) queue: 0"
    app.run()
    assert app.info() == "state: 0 (READY) queue: 0"


class InfoSpy(Middleware):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def before_dispatch(self, app: App, dispatch: Any) -> None:
        self.seen.append(app.info())


def test_app_info_during_a_run_says_run_and_counts_the_queue() -> None:
    wf = Workflow()
    wf.add(rec("a"), 1)
    wf.add(rec("b"), 2)
    spy = InfoSpy()

    App(wf, middleware=[spy]).run()

    assert spy.seen == ["state: 1 (RUN) queue: 2", "state: 1 (RUN) queue: 1"]


class Spy(Middleware):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any, str]] = []

    def before_dispatch(self, app: App, dispatch: Any) -> None:
        self.events.append(("before_dispatch", dispatch.node, ""))

    def after_dispatch(self, app: App, dispatch: Any, outcome: Any) -> None:
        self.events.append(("after_dispatch", dispatch.node, outcome.status))

    def after_commit(self, app: App, dispatch: Any, outcome: Any) -> None:
        self.events.append(("after_commit", dispatch.node, outcome.status))


def test_middleware_sees_every_dispatch_before_after_and_once_committed() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), 1)
    b = wf.add(rec("b"))
    wf.join(a, b)
    spy = Spy()

    App(wf, middleware=[spy]).run()

    assert spy.events == [
        ("before_dispatch", a, ""), ("after_dispatch", a, "done"), ("after_commit", a, "done"),
        ("before_dispatch", b, ""), ("after_dispatch", b, "done"), ("after_commit", b, "done"),
    ]


def test_middleware_sees_a_failed_dispatch_as_failed() -> None:
    wf = Workflow()
    wf.add(Boom())
    spy = Spy()

    result = App(wf, middleware=[spy]).run()

    assert result.status == "failed"
    assert spy.events[-1] == ("after_commit", 0, "failed")


class Raising(Middleware):
    def __init__(self) -> None:
        self.calls = 0

    def before_dispatch(self, app: App, dispatch: Any) -> None:
        self.calls += 1
        raise RuntimeError("middleware bug")

    def after_commit(self, app: App, dispatch: Any, outcome: Any) -> None:
        raise ValueError("another middleware bug")


def test_a_middleware_hook_that_raises_does_not_stop_the_run() -> None:
    wf = Workflow()
    a = wf.add(rec("a"), 1)
    b = wf.add(rec("b"))
    wf.join(a, b)
    raising = Raising()
    spy = Spy()

    result = App(wf, middleware=[raising, spy]).run()

    assert result.status == "done"
    assert order() == ["a", "b"]
    assert raising.calls == 2
    assert [e[0] for e in spy.events].count("after_commit") == 2  # later middleware still runs


class StopAfter(Middleware):
    def __init__(self, node: Any, hook: str) -> None:
        self.node, self.hook = node, hook

    def before_dispatch(self, app: App, dispatch: Any) -> None:
        if self.hook == "before_dispatch" and dispatch.node == self.node:
            app.stop()

    def after_commit(self, app: App, dispatch: Any, outcome: Any) -> None:
        if self.hook == "after_commit" and dispatch.node == self.node:
            app.stop()


def _chain() -> Workflow:
    wf = Workflow()
    wf.add(rec("a"), "x")
    wf.add(rec("b"))
    wf.add(rec("c"))
    wf.sequence(0, 1, 2)
    return wf


def test_stop_from_a_middleware_ends_the_run_interrupted_after_the_current_dispatch() -> None:
    app = App(_chain(), middleware=[StopAfter(0, "after_commit")])

    result = app.run()

    assert result.status == "interrupted"
    assert order() == ["a"]
    assert [x.node for x in result.audits()] == [0]
    assert [d.node for d in app.queue] == [1]  # b is kept for a resume
    assert app.info() == "state: 0 (READY) queue: 1"


def test_stop_asked_before_a_dispatch_lets_that_dispatch_finish() -> None:
    app = App(_chain(), middleware=[StopAfter(1, "before_dispatch")])

    result = app.run()

    assert result.status == "interrupted"
    assert order() == ["a", "b"]
    assert [(x.node, x.status) for x in result.audits()] == [(0, "done"), (1, "done")]
    assert [d.node for d in app.queue] == [2]


def test_a_failed_task_stops_the_run_failed_and_downstream_does_not_run() -> None:
    wf = Workflow()
    a = wf.add(Boom())
    b = wf.add(rec("b"))
    wf.join(a, b)
    wf.add(rec("later"), "l")

    result = run(wf)

    assert result.status == "failed"
    assert LOG == []
    (audit,) = result.audits()
    assert audit.status == "failed"
    assert audit.error["message"] == "boom"


def test_with_on_error_continue_independent_branches_still_run() -> None:
    wf = Workflow()
    a = wf.add(Boom())
    b = wf.add(rec("after boom"))
    wf.join(a, b)
    wf.add(rec("independent"), "i")

    result = run(wf, on_error="continue")

    assert result.status == "failed"
    assert LOG == [("independent", ("i",))]
    assert [(x.node, x.status) for x in result.audits()] == [(0, "failed"), (2, "done")]


class TerminateOnSleep(retap.Middleware):
    """Asks the app to terminate as soon as the sleep task starts."""

    def before_dispatch(self, app: App, dispatch: Any) -> None:
        if app.workflow.nodes[dispatch.node].name == "sleep":
            app.terminate()


def test_terminate_aborts_a_task_at_its_next_checkpoint_and_keeps_it_queued() -> None:
    from retap.tasks import Sleep

    wf = Workflow()
    first = wf.add(Sleep(seconds=30), "x")
    after = wf.add(Sleep(seconds=0))
    wf.join(first, after)
    app = App(wf, middleware=[TerminateOnSleep()])

    result = app.run()

    assert result.status == "interrupted"
    assert [a.status for a in result.audits()] == ["interrupted"]
    assert app.info() == "state: 0 (READY) queue: 1"


def test_join_kinds_and_options_are_typed_and_checked() -> None:
    from retap import JoinKind

    wf = Workflow()
    a, b, c = wf.add(rec("a")), wf.add(rec("b")), wf.add(rec("c"))
    join = wf.join([a, b], c, JoinKind.SYNC, enq=True)
    assert (join.kind, join.enq) == ("sync", True)
    assert wf.spec()["joins"][0]["kind"] == "sync"
    with pytest.raises(retap.SpecError, match="only a gate takes a limit"):
        wf.join(a, b, JoinKind.SYNC, limit=2)
    with pytest.raises(retap.SpecError, match="unknown join kind 'merge'"):
        wf.join(a, b, "merge")
    with pytest.raises(TypeError):
        wf.join(a, b, colour="red")  # type: ignore[call-arg]


# -- the collector during a run --------------------------------------------------------------

SEEN_THRESHOLDS: list[tuple[int, int, int]] = []


class SeeCollector(retap.Task):
    """Notes the collector's thresholds as the task runs."""

    def process(self, *inputs: Any) -> Any:
        import gc

        SEEN_THRESHOLDS.append(gc.get_threshold())
        return 1


def test_full_collections_are_rarer_during_a_run_and_the_thresholds_come_back() -> None:
    import gc

    from retap.collector import FULL_EVERY

    before = gc.get_threshold()
    gc.set_threshold(500, 7, 3)
    try:
        SEEN_THRESHOLDS.clear()
        workflow = Workflow()
        workflow.add(SeeCollector())
        App(workflow, retap.MemoryStore()).run()
        assert SEEN_THRESHOLDS == [(500, 7, FULL_EVERY)]  # the young ones as they were
        assert gc.get_threshold() == (500, 7, 3)
        workflow = Workflow()
        workflow.add(Boom())
        assert App(workflow, retap.MemoryStore()).run().status == "failed"
        assert gc.get_threshold() == (500, 7, 3)
    finally:
        gc.set_threshold(*before)


NODE_IDS = st.integers() | st.text(max_size=8)
PARTS = st.recursive(st.none() | st.integers() | st.text(max_size=6) | st.booleans(),
                     lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@given(join=NODE_IDS, target=NODE_IDS, part=PARTS,
       sources=st.lists(st.text(max_size=33), max_size=3), as_list=st.booleans())
def test_a_join_dispatch_id_is_the_digest_of_its_parts_as_stores_recorded_them(
        join: Any, target: Any, part: Any, sources: list[str], as_list: bool) -> None:
    # a replay finds its answers by these ids, so they never change between versions
    given_sources = sources if as_list else tuple(sources)

    made = join_dispatch_id(join, target, given_sources, part)

    assert made == _digest(("join", join, target, tuple(sources), part))


def test_dispatch_ids_are_those_every_earlier_retap_made() -> None:
    # a replay or resume recomputes ids and finds the recorded dispatches by them: a change to
    # how they are hashed would orphan every store written before it
    lead = lead_dispatch_id(0, 0)
    assert lead == "390864680b5ae0742170f49d9c8ffd25"
    assert join_dispatch_id(1, 2, (lead,), None) == "fe41ff5b85f102ffa2e1eaa60bcd54bc"
    assert join_dispatch_id("g", "t", ["a", "b"], [3, 1]) == "9d6bd4507f655038c1bd3cb33ba088e4"
    sequence = Join(1, [0], [2])
    assert [d.id for d in sequence.receive(None, 0, lead, "v")] == [
        "fe41ff5b85f102ffa2e1eaa60bcd54bc"]
    gate = Gate("g", [0], ["t"], iterate=True)
    assert [d.id for d in gate.expand("t", ["x", "y"], ("a", "b"), 3)] == [
        join_dispatch_id("g", "t", ("a", "b"), [3, 0]), "9d6bd4507f655038c1bd3cb33ba088e4"]
