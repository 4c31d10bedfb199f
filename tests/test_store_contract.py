"""The store contract: every method of ``Store`` and ``RunLog`` as its docstring states it,
on every store: in memory, SQLite and PostgreSQL (the server named by
``RETAP_TEST_POSTGRES``; see ``pgserver``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pgserver import fresh_schema
from retap.dispatch import Attempt, Dispatch, Log, lead_dispatch_id
from retap.errors import RunBusy, RunExists, UnknownRun
from retap.joins import Gate, Join, Sync
from retap.owner import Owner, process_start
from retap.store import MemoryStore, open_store
from retap.store.base import DispatchRecord, Effects, MemoEntry, RunLog, Store
from retap.store.sql import SQLStore
from retap.store.sqllog import SEQ_BLOCK, SQLRunLog

SPEC: dict[str, Any] = {"retap": 1, "nodes": [{"id": 0, "task": "x:T"}], "joins": []}
Opener = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the store under test; a durable store opened twice is the same store."""
    if request.param == "memory":
        memory = MemoryStore()
        yield lambda: memory
    elif request.param == "sqlite":
        yield lambda: open_store(tmp_path / "store.db")
    else:
        with fresh_schema("contract") as url:
            opened: list[Store] = []

            def open_pg() -> Store:
                opened.append(open_store(url))
                return opened[-1]

            yield open_pg
            for store in opened:
                store.close()


@pytest.fixture
def store(opener: Opener) -> Store:
    return opener()


def me() -> Owner:
    return Owner.current()


def lead(node: int, k: int, *inputs: Any) -> Dispatch:
    return Dispatch(lead_dispatch_id(node, k), node, tuple(inputs))


def record(d: Dispatch, status: str = "done", value: Any = None, **extra: Any
           ) -> DispatchRecord:
    return DispatchRecord(d.id, d.node, "t", d.sources, status, value, inputs=d.inputs,
                          ref=d.ref, started=1.0, finished=2.0, **extra)


def ids(dispatches: list[Dispatch]) -> list[str]:
    return [d.id for d in dispatches]


def new_run(store: Store, run: str = "r1", *leads: Dispatch, owner: Owner | None = None
            ) -> RunLog:
    return store.create_run(run, SPEC, owner or me(), leads=list(leads))


# -- runs -----------------------------------------------------------------------------------------


def test_a_new_run_is_running_with_its_spec_owner_and_leads(store: Store) -> None:
    a, b = lead(0, 0, "x"), lead(0, 1, "y")
    new_run(store, "r1", a, b)
    info = store.run_info("r1")
    assert (info.run, info.status, info.owner, info.dispatches) == ("r1", "running", me(), 0)
    assert [n["task"] for n in info.spec["nodes"]] == ["x:T"] and info.spec["joins"] == []
    assert ids(store.queue("r1")) == [a.id, b.id]
    assert [d.inputs for d in store.queue("r1")] == [("x",), ("y",)]


def test_run_info_counts_the_dispatches_unless_told_not_to(store: Store) -> None:
    log = new_run(store, "r1")
    a = lead(0, 0, "x")
    log.commit_dispatch(record(a, "done", "v"), Effects())
    assert store.run_info("r1").dispatches == 1
    assert store.run_info("r1", count=False).dispatches == 0  # no pass over the history
    assert store.run_info("r1", count=False).status == "running"


def test_a_second_run_with_the_same_id_is_refused(store: Store) -> None:
    new_run(store, "r1")
    with pytest.raises(RunExists):
        new_run(store, "r1")


def test_runs_lists_every_run_newest_first(store: Store) -> None:
    assert store.runs() == []
    for run in ("r1", "r2", "r3"):
        new_run(store, run)
    assert [i.run for i in store.runs()] == ["r3", "r2", "r1"]


def test_an_unknown_run_is_refused_by_every_read_of_a_run(store: Store) -> None:
    new_run(store, "r1")
    reads: list[Callable[[], object]] = [
        lambda: store.run_info("nope"), lambda: store.audits("nope"),
        lambda: store.dispatches("nope", ["done"]), lambda: store.versions("nope"),
        lambda: store.counts("nope"), lambda: store.queue("nope"),
        lambda: store.join_states("nope", []), lambda: store.claim_run("nope", me()),
        lambda: store.events("nope"), lambda: store.earlier_attempts("nope")]
    for read in reads:
        with pytest.raises(UnknownRun):
            read()
    assert store.dispatch_status("nope", lead(0, 0).id) is None
    assert store.dispatch_status("r1", lead(0, 0).id) is None


def test_finish_sets_the_status_and_update_spec_replaces_the_spec(store: Store) -> None:
    log = new_run(store, "r1")
    log.update_spec({**SPEC, "nodes": [{"id": 0, "task": "x:T", "config": {"n": 2}}]})
    log.finish("done")
    info = store.run_info("r1")
    assert info.status == "done"
    assert info.spec["nodes"][0]["config"] == {"n": 2}


# -- claiming a run -------------------------------------------------------------------------------


@pytest.fixture
def other_process() -> Iterator[Owner]:
    """A live process of this host that is not this one."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield Owner(me().host, proc.pid, process_start(proc.pid))
    finally:
        proc.kill()
        proc.wait()


def test_a_live_owner_keeps_its_run(store: Store, other_process: Owner) -> None:
    new_run(store, "r1", owner=other_process)
    with pytest.raises(RunBusy):
        store.claim_run("r1", me())
    assert store.run_info("r1").owner == other_process


def test_a_dead_owners_run_is_claimed_and_was_interrupted(store: Store) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = Owner(me().host, proc.pid, process_start(proc.pid) or 1.0)
    proc.wait()
    new_run(store, "r1", owner=dead)
    log = store.claim_run("r1", me())
    assert log.previous == "interrupted"
    assert store.run_info("r1").owner == me()


def test_an_owner_on_another_host_is_taken_over_only_when_asked(store: Store) -> None:
    remote = Owner("elsewhere.example", 4242, 1.0)
    new_run(store, "r1", owner=remote)
    with pytest.raises(RunBusy, match="another host"):
        store.claim_run("r1", me())
    store.claim_run("r1", me(), take_over=True)
    assert store.run_info("r1").owner == me()


def test_an_owner_on_another_host_whose_lease_expired_is_taken_over(
        opener: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    store = opener()
    monkeypatch.setenv("RETAP_LEASE_SECONDS", "0.2")
    remote = new_run(store, "r1", owner=Owner("elsewhere.example", 4242, 1.0))
    with pytest.raises(RunBusy):
        store.claim_run("r1", me())  # the lease still holds
    remote.close()  # its coordinator is gone: nobody renews the lease
    time.sleep(0.3)
    assert store.run_info("r1").effective_status == "interrupted"
    store.claim_run("r1", me())
    assert store.run_info("r1").owner == me()


def test_a_finished_run_is_claimed_with_its_status_as_previous(store: Store) -> None:
    new_run(store, "r1").finish("failed")
    assert store.claim_run("r1", me()).previous == "failed"
    assert store.run_info("r1").status == "running"


# -- what a commit changes ------------------------------------------------------------------------


def test_a_done_dispatch_leaves_the_queue_and_its_effects_join_it(store: Store) -> None:
    a, b, c = lead(0, 0, 1), lead(0, 1, 2), lead(0, 2, 3)
    log = new_run(store, "r1", a, b)
    store.queue("r1")
    front, back = lead(1, 0, "f"), lead(2, 0, "k")
    log.commit_dispatch(record(a, value=10), Effects(removed=a, front=[front], back=[back]))
    log.commit_effects(Effects(back=[c]))
    assert ids(store.queue("r1")) == [front.id, b.id, back.id, c.id]
    assert store.dispatch_status("r1", a.id) == "done"
    assert store.counts("r1") == {"done": 1}
    [audit] = store.audits("r1")
    assert (audit.id, audit.status, audit.value, audit.attempts) == (a.id, "done", 10, 1)


def test_values_small_and_large_come_back_equal(store: Store) -> None:
    small, large = [1, "two"], {"text": "x" * 500, "nested": [[1.5, None, True]]}
    a, b = lead(0, 0, small), lead(0, 1, large)
    log = new_run(store, "r1", a, b)
    log.commit_dispatch(record(a, value=large), Effects(removed=a))
    log.commit_dispatch(record(b, value=small), Effects(removed=b))
    done = {d.id: d for d in store.dispatches("r1", ["done"])}
    assert (done[a.id].value, done[a.id].inputs) == (large, (small,))
    assert (done[b.id].value, done[b.id].inputs) == (small, (large,))
    recorded = log.cached()
    assert (recorded.value(a.id), recorded.value(b.id)) == (large, small)
    assert log.lookup().value(b.id) == small


def test_failed_dispatches_stay_queued_and_come_first_for_a_retry(store: Store) -> None:
    a, b, c = lead(0, 0, 1), lead(0, 1, 2), lead(0, 2, 3)
    log = new_run(store, "r1", a, b, c)
    store.queue("r1")
    log.commit_dispatch(record(c, "failed", error={"type": "ValueError", "message": "no"}),
                        Effects())
    assert ids(store.queue("r1")) == [c.id, a.id, b.id]
    assert store.counts("r1") == {"failed": 1}
    [failed] = store.dispatches("r1", ["failed"])
    assert failed.error == {"type": "ValueError", "message": "no"}
    assert failed.inputs == (3,)


def test_a_dispatch_recorded_again_adds_its_attempts(store: Store) -> None:
    a = lead(0, 0, 1)
    log = new_run(store, "r1", a)
    log.commit_dispatch(record(a, "failed", attempts=2), Effects())
    log.mark_running(a, "t", "v2")
    assert store.dispatch_status("r1", a.id) == "running"
    log.commit_dispatch(record(a, value=5, code_version="v2"), Effects(removed=a))
    [audit] = store.audits("r1")
    assert (audit.status, audit.attempts, audit.value, audit.code_version) == ("done", 3, 5,
                                                                               "v2")
    assert store.queue("r1") == []


def test_every_attempt_is_kept_with_the_session_it_belonged_to(opener: Opener) -> None:
    a, b = lead(0, 0, 1), lead(0, 1, 2)
    store = opener()
    log = new_run(store, "r1", a, b)
    log.start_session("created", {"argv": ["retap", "run"]})
    retried = Attempt(0, 0, "failed", 1.0, 1.5, {"type": "E", "message": "first"})
    log.commit_dispatch(record(a, "failed", attempts=2, earlier=[retried],
                               error={"type": "E", "message": "second"}), Effects())
    log.commit_dispatch(record(b, value=2), Effects(removed=b))
    log.mark_running(a, "t", "v1")  # then the coordinator dies: the attempt is lost
    store = opener()
    log = store.claim_run("r1", me())
    log.start_session("resumed", {"argv": ["retap", "resume", "r1"]})
    log.event("set", {"node": 0, "key": "k", "old": 1, "new": 2})
    log.commit_dispatch(record(a, value=7), Effects(removed=a))
    log.finish("done")

    kept = store.earlier_attempts("r1")
    assert list(kept) == [a.id]
    assert kept[a.id][:2] == [
        Attempt(1, 1, "failed", 1.0, 1.5, {"type": "E", "message": "first"}),
        Attempt(2, 1, "failed", 1.0, 2.0, {"type": "E", "message": "second"})]
    lost = kept[a.id][2]
    assert (lost.n, lost.session, lost.status, lost.finished) == (3, 1, "lost", None)
    audits = {x.id: x for x in store.audits("r1")}
    assert (audits[a.id].status, audits[a.id].attempts) == ("done", 4)
    assert audits[b.id].attempts == 1
    assert [(e.seq, e.kind) for e in store.events("r1")] == [
        (1, "created"), (2, "resumed"), (3, "set"), (4, "finished")]
    # the resumed session's first commit is a's last; commits 1-3 came before it (a killed
    # session may leave a gap: seqs only ever increase)
    assert store.events("r1")[1].data["first"] == audits[a.id].seq > 3
    assert store.events("r1")[2].data == {"node": 0, "key": "k", "old": 1, "new": 2}
    assert store.events("r1")[3].data == {"status": "done"}


def test_each_attempts_output_and_worker_are_kept_with_the_commit_that_recorded_it(
        opener: Opener) -> None:
    a, b = lead(0, 0, 1), lead(0, 1, 2)
    store = opener()
    log = new_run(store, "r1", a, b)
    retried = Attempt(0, 0, "failed", 1.0, 1.5, {"type": "E", "message": "first"},
                      Log("first try\n"), ("w1", 41))
    log.commit_dispatch(record(a, "failed", attempts=2, earlier=[retried],
                               log=Log("second try\n")), Effects())  # in the coordinator
    log.commit_dispatch(record(b, value=2), Effects(removed=b))  # printed nothing
    store = opener()
    log = store.claim_run("r1", me())
    text = "ünïcode, a NUL \x00 and a lone surrogate \udc80\n"
    log.commit_dispatch(record(a, value=7, log=Log(text * 3, 12), worker=("w2", 42)),
                        Effects(removed=a))
    log.finish("done")
    assert store.workers("r1") == {(a.id, 1): ("w1", 41), (a.id, 3): ("w2", 42)}

    found = store.logs("r1")
    last = {x.id: x.seq for x in store.audits("r1")}[a.id]  # > 2: after a gap, if killed
    assert [(e.dispatch, e.attempt, e.seq, e.text, e.dropped) for e in found] == [
        (a.id, 1, 1, "first try\n", 0), (a.id, 2, 1, "second try\n", 0),
        (a.id, 3, last, "ünïcode, a NUL \\x00 and a lone surrogate \\udc80\n" * 3, 12)]
    assert last > 2
    assert [e.attempt for e in store.logs("r1", after=1)] == [3]
    assert store.logs("r1", after=last) == []
    # the logs and workers are read on their own
    assert [(t.log, t.worker) for t in store.earlier_attempts("r1")[a.id]] == [(None, None)] * 2
    with pytest.raises(UnknownRun):
        store.logs("nope")


def test_delete_runs_deletes_all_of_a_run_but_never_one_a_live_owner_holds(
        store: Store, other_process: Owner) -> None:
    a, b = lead(0, 0, "x" * 100), lead(0, 1, "y")
    for run in ("r1", "r2"):
        log = new_run(store, run, a, b)
        log.commit_dispatch(record(a, value="v" * 100, memo=MemoEntry("t", run, "v" * 100,
                                                                      {}, {})),
                            Effects(removed=a))
        log.finish("done")
    new_run(store, "r3", owner=other_process)
    assert store.delete_runs(["r1", "r3", "nope"]) == ["r1"]
    assert [r.run for r in store.runs()] == ["r3", "r2"]
    with pytest.raises(UnknownRun):
        store.audits("r1")
    assert store.memo_get("t", "r1") is None and store.memo_get("t", "r2") is not None
    assert [x.value for x in store.audits("r2")] == ["v" * 100]  # its values are kept
    assert ids(store.queue("r2")) == [b.id]


def test_a_run_without_history_has_none(store: Store) -> None:
    new_run(store, "r1")
    assert store.events("r1") == [] and store.earlier_attempts("r1") == {}


def test_mark_running_records_a_dispatch_about_to_run(store: Store) -> None:
    a = lead(0, 0, 1)
    log = new_run(store, "r1", a)
    log.mark_running(a, "t", "v1")
    assert store.counts("r1") == {"running": 1}
    assert ids(store.queue("r1")) == [a.id]


def test_recorded_order_is_commit_order(store: Store) -> None:
    ds = [lead(0, k, k) for k in range(5)]
    log = new_run(store, "r1", *ds)
    for d in reversed(ds):
        log.commit_dispatch(record(d, value=d.inputs[0]), Effects(removed=d))
    assert [a.id for a in store.audits("r1")] == ids(ds[::-1])
    cached = log.cached()
    seqs = [cached.seq(d.id) for d in ds[::-1]]
    assert seqs == sorted(seqs) and None not in seqs
    assert cached.seq(lead(9, 9).id) is None and log.lookup().seq(lead(9, 9).id) is None


def test_chosen_dispatches_come_in_recorded_order_past_one_statements_parameters(
        store: Store) -> None:
    ds = [lead(0, k, k) for k in range(620)]  # more ids than one SQL statement is given
    log = new_run(store, "r1", *ds)
    for d in reversed(ds):
        log.commit_dispatch(record(d, value=d.inputs[0]), Effects(removed=d))
    log.commit_dispatch(record(lead(1, 0), "failed", error={"message": "no"}), Effects())
    chosen = [*ids(ds[:600]), lead(1, 0).id, "not-a-dispatch", ds[3].id]
    every = ["done", "failed"]

    found = store.dispatches("r1", every, chosen)

    assert [a.id for a in found] == [*ids(ds[:600][::-1]), lead(1, 0).id]
    assert [(a.value, a.inputs) for a in found[:2]] == [(599, (599,)), (598, (598,))]
    assert [a.id for a in store.dispatches("r1", ["failed"], chosen)] == [lead(1, 0).id]
    assert store.dispatches("r1", every, []) == []
    assert store.counts("r1") == {"done": 620, "failed": 1}
    with pytest.raises(UnknownRun):
        store.dispatches("r9", every, chosen)


def test_the_first_audits_are_read_without_the_rest(store: Store) -> None:
    ds = [lead(0, k, k) for k in range(30)]
    log = new_run(store, "r1", *ds)
    for d in reversed(ds):
        log.commit_dispatch(record(d, value=d.inputs[0]), Effects(removed=d))

    assert [a.id for a in store.audits("r1", 7)] == ids(ds[::-1][:7])
    assert store.audits("r1", 0) == [] and len(store.audits("r1", 99)) == 30
    with pytest.raises(UnknownRun):
        store.audits("r9", 7)


def test_dispatch_ids_are_those_that_begin_with_a_prefix_in_any_case(store: Store) -> None:
    ds = [lead(0, k, k) for k in range(40)]
    log = new_run(store, "r1", *ds)
    for d in ds:
        log.commit_dispatch(record(d, value=1), Effects(removed=d))
    prefix = ds[7].id[:1]

    assert sorted(store.dispatch_ids("r1", prefix.upper())) == \
        sorted(i for i in ids(ds) if i.startswith(prefix))
    assert store.dispatch_ids("r1", ds[7].id) == [ds[7].id]
    assert sorted(store.dispatch_ids("r1", "")) == sorted(ids(ds))
    assert store.dispatch_ids("r1", ds[7].id + "0") == []
    with pytest.raises(UnknownRun):
        store.dispatch_ids("r9", prefix)


def test_a_replays_answers_are_read_ahead_of_it_not_all_at_once(store: Store) -> None:
    n = 1300  # more than two chunks a SQL store reads ahead
    ds = [lead(0, k, k) for k in range(n + 1)]
    log = new_run(store, "r1", *ds)
    for d in ds[:n]:
        log.commit_dispatch(record(d, value="x" * 80 if d.inputs[0] % 7 == 0 else d.inputs[0]),
                            Effects(removed=d))
    seqs = {a.id: a.seq for a in store.audits("r1")}
    cached = log.cached()
    last, far = ds[n - 1], ds[n // 2]
    assert cached.seq(last.id) == seqs[last.id]  # far ahead of what was read: asked alone
    assert cached.seq(ds[n].id) is None  # not done
    held = []
    for d in ds[:n]:  # in the order recorded, as a replay asks
        assert cached.seq(d.id) == seqs[d.id]
        assert cached.value(d.id) == ("x" * 80 if d.inputs[0] % 7 == 0 else d.inputs[0])
        held.append(len(getattr(cached, "ahead", ())))
    if isinstance(store, SQLStore):  # it holds a chunk read ahead, never the history
        assert max(held) <= SQLRunLog.AHEAD + 2
    assert cached.seq(far.id) == seqs[far.id]  # answered already: asked again, still there
    assert cached.value(far.id) == far.inputs[0] or far.inputs[0] % 7 == 0


def test_a_replay_that_runs_half_its_dispatches_again_still_reads_ahead(store: Store) -> None:
    n = 1300
    ds = [lead(0, k, k) for k in range(n)]
    log = new_run(store, "r1", *ds)
    for d in ds:
        log.commit_dispatch(record(d, value=d.inputs[0]), Effects(removed=d))
    cached = log.cached()
    held = []
    for d in ds:  # every other one is run again (replay --from): asked, never answered
        assert cached.seq(d.id) is not None
        if d.inputs[0] % 2:
            assert cached.value(d.id) == d.inputs[0]
        held.append(len(getattr(cached, "ahead", ())))
    if isinstance(store, SQLStore):  # what no answer took does not pile up
        assert max(held) <= SQLRunLog.AHEAD + 2


def test_versions_are_those_of_done_dispatches(store: Store) -> None:
    a, b, c = lead(0, 0, 1), lead(1, 0, 2), lead(1, 1, 3)
    log = new_run(store, "r1", a, b, c)
    log.commit_dispatch(record(a, value=1, code_version="v1"), Effects(removed=a))
    log.commit_dispatch(record(b, value=1, code_version="v2"), Effects(removed=b))
    log.commit_dispatch(record(c, "failed", code_version="v3"), Effects())
    assert sorted(store.versions("r1")) == [(0, "t", "v1"), (1, "t", "v2")]


def test_a_version_no_done_dispatch_holds_any_longer_is_told_apart(opener: Opener) -> None:
    a, b = lead(0, 0, 1), lead(0, 1, 2)
    store = opener()
    log = new_run(store, "r1", a, b)
    log.commit_dispatch(record(a, value=1, code_version="v1"), Effects(removed=a))
    log.commit_dispatch(record(b, value=2, code_version="v1"), Effects(removed=b))
    log.finish("done")
    log = opener().claim_run("r1", me())  # both run again with new code (replay --from)
    for d in (a, b):
        log.rerunning(d.id)
        log.commit_dispatch(record(d, value=3, code_version="v2"), Effects())
    log.finish("done")
    store = opener()
    assert (0, "t", "v2") in store.versions("r1")
    assert store.holds_version("r1", 0, "t", "v2")
    assert not store.holds_version("r1", 0, "t", "v1")  # listed, perhaps: held by none
    assert not store.holds_version("r1", 1, "t", "v2")


def test_seqs_only_increase_across_sessions_and_a_finished_one_leaves_no_gap(
        opener: Opener) -> None:
    ds = [lead(0, k, k) for k in range(6)]
    store = opener()
    log = new_run(store, "r1", *ds)
    log.commit_dispatch(record(ds[0], value=0), Effects(removed=ds[0]))
    log.finish("failed")
    log = opener().claim_run("r1", me())
    log.commit_dispatch(record(ds[1], value=1), Effects(removed=ds[1]))
    log.commit_dispatch(record(ds[2], value=2), Effects(removed=ds[2]))  # then it is killed
    log = opener().claim_run("r1", me(), take_over=True)
    log.commit_dispatch(record(ds[3], value=3), Effects(removed=ds[3]))
    log.finish("done")
    seqs = {x.id: x.seq for x in opener().audits("r1")}
    assert [seqs[d.id] for d in ds[:3]] == [1, 2, 3]  # finished: the next one follows on
    assert 3 < seqs[ds[3].id] <= 3 + SEQ_BLOCK + 1  # killed: a gap, at most a block


# -- join states ----------------------------------------------------------------------------------


def test_join_states_come_back_with_their_values_and_counters(store: Store) -> None:
    sync: Join = Sync("s", [0, 1], [2])
    gate: Join = Gate("g", [0], [3])
    a, b = lead(0, 0, 1), lead(1, 0, 2)
    log = new_run(store, "r1", a, b)
    log.commit_dispatch(record(a, value="A"), Effects(removed=a, joins=[
        ("s", ("add", 0, a.id)), ("g", ("add", 0, a.id)), ("g", ("count", 1))]))
    log.commit_dispatch(record(b, value="B"), Effects(removed=b, joins=[
        ("s", ("add", 1, b.id))]))
    states = store.join_states("r1", [sync, gate])
    assert [list(s) for s in states["s"].slots] == [[(a.id, "A")], [(b.id, "B")]]
    assert [list(s) for s in states["g"].slots] == [[(a.id, "A")]]
    assert (states["s"].count, states["g"].count) == (0, 1)
    c = lead(2, 0, ["A", "B"])
    log.commit_effects(Effects(front=[c], joins=[("s", ("take", 0, a.id, "A")),
                                                 ("s", ("take", 1, b.id, "B")),
                                                 ("s", ("count", 1))]))
    states = store.join_states("r1", [sync])
    assert [list(s) for s in states["s"].slots] == [[], []] and states["s"].count == 1
    assert ids(store.queue("r1")) == [c.id]


def test_save_state_replaces_the_queue_and_join_states(store: Store) -> None:
    gate: Join = Gate("g", [0], [3])
    a, b, c = lead(0, 0, 1), lead(0, 1, 2), lead(0, 2, 3)
    log = new_run(store, "r1", a, b)
    log.commit_dispatch(record(a, value="A"), Effects(removed=a, joins=[("g", ("add", 0, a.id))]))
    state = gate.new_state()
    assert state is not None
    state.count = 4
    log.save_state([c, b], {"g": state})
    assert ids(store.queue("r1")) == [c.id, b.id]
    saved = store.join_states("r1", [gate])["g"]
    assert ([list(s) for s in saved.slots], saved.count) == ([[]], 4)


# -- memo, outputs and file digests ---------------------------------------------------------------


def memo_entry(key: str, value: Any, dispatch: str = "") -> MemoEntry:
    return MemoEntry("t", key, value, {"/tmp/out.txt": "d1"}, {"inputs": key}, dispatch=dispatch)


def test_remembered_results_are_found_by_key_and_explained_by_dispatch(store: Store) -> None:
    a, b = lead(0, 0, 1), lead(0, 1, 2)
    log = new_run(store, "r1", a, b)
    log.commit_dispatch(record(a, value="A", memo=memo_entry("k1", "A")), Effects(removed=a))
    log.commit_dispatch(record(b, value="B", memo=memo_entry("k2", "B")), Effects(removed=b))
    hit = store.memo_get("t", "k1")
    assert hit is not None
    assert (hit.value, hit.run, hit.dispatch, hit.outputs) == ("A", "r1", a.id,
                                                               {"/tmp/out.txt": "d1"})
    assert store.memo_get("t", "k3") is None and store.memo_get("u", "k1") is None
    latest_a, latest = store.memo_latest("t", a.id), store.memo_latest("t", "other")
    assert latest_a is not None and latest_a.key == "k1"
    assert latest is not None and latest.key == "k2"
    assert store.memo_latest("u", a.id) is None


def test_forget_drops_a_tasks_results_for_one_run_or_all(store: Store) -> None:
    for run in ("r1", "r2"):
        a = lead(0, 0, 1)
        log = new_run(store, run, a)
        log.commit_dispatch(record(a, value=run, memo=memo_entry(f"k-{run}", run)),
                            Effects(removed=a))
    assert store.forget("t", "r1") == 1
    assert store.memo_get("t", "k-r1") is None and store.memo_get("t", "k-r2") is not None
    assert store.forget("t") == 1 and store.forget("t") == 0


def test_outputs_of_committed_dispatches_are_recognised(store: Store) -> None:
    a = lead(0, 0, 1)
    log = new_run(store, "r1", a)
    path = os.path.abspath("out.txt")
    log.commit_dispatch(record(a, value=path, outputs={path: "digest1"}), Effects(removed=a))
    assert store.recorded_output(path, "digest1")
    assert not store.recorded_output(path, "digest2")
    assert not store.recorded_output("/elsewhere", "digest1")


def test_file_digests_hold_while_the_stat_is_unchanged(store: Store) -> None:
    assert store.file_digest("/data/x", (10, 5, 7)) is None
    store.remember_file("/data/x", (10, 5, 7), "d1")
    assert store.file_digest("/data/x", (10, 5, 7)) == "d1"
    assert store.file_digest("/data/x", (10, 6, 7)) is None
    store.remember_file("/data/x", (10, 6, 7), "d2")
    assert store.file_digest("/data/x", (10, 6, 7)) == "d2"
    assert store.file_digest("/data/x", (10, 5, 7)) is None


# -- durability -----------------------------------------------------------------------------------


def test_what_was_committed_is_there_when_the_store_is_opened_again(opener: Opener) -> None:
    store = opener()
    a, b = lead(0, 0, 1), lead(0, 1, 2)
    log = new_run(store, "r1", a, b)
    log.commit_dispatch(record(a, value={"v": 1}), Effects(removed=a))
    again = opener()
    assert [x.value for x in again.audits("r1")] == [{"v": 1}]
    assert ids(again.queue("r1")) == [b.id]
    with again.snapshot():
        assert again.counts("r1") == {"done": 1}
