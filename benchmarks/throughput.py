"""Dispatch throughput of trivial tasks: what the App loop and each store cost per dispatch.

Workflows (see common.py): ``chain`` (n dispatches one after another, queue of one),
``fan-out`` (n dispatches queued at once at the head of the queue, depth-first) and
``fan-out q`` (the same at the tail, enqueued). Stores: in memory, SQLite with the
default durability (WAL, synchronous=NORMAL, one commit per dispatch), ``power``
(fsync every commit) and ``batch`` (group commit). Each figure is dispatches executed
divided by the wall time of ``App.run`` (which includes creating the run and its final
commit), best of N, on a fresh store file each time. Repetitions are interleaved across
stores so that a noisy spell does not hit one store only.

``chain, sqlite: its SQL alone`` is the floor under the SQLite rows: the statements one
dispatch of the chain commits (BEGIN, the dispatch's row checked against the run's lease,
its own queue row deleted, the next dispatch's queue row, COMMIT), issued straight through
``sqlite3`` on retap's own schema and settings with their parameters made beforehand, and
nothing else. Variants of it show what that floor is made of: ``sequential ids`` gives the
dispatches ids that sort in the order they are written (retap's are hashes, so each commit
lands on a random page of the dispatches table); ``clustered by seq`` keeps retap's ids
but stores the rows in the order written (a rowid table) with a unique index on the id,
the schema change that sequential ids suggest; and ``no queue row`` leaves out the queue
rows (one table written per commit instead of two).

``chain, memory: its work alone`` is the floor under the in-memory rows: what every
dispatch of the chain must do whatever the framework around it, in a bare loop with no
App (its dispatch id hashed with retap's own function, its ``Dispatch`` made, ``Step``
called, its result kept in a dict with two timestamps). A target above a floor cannot be
met on that machine, and the row's note says so. ``chain, memory: retap's pieces alone``
sits between that floor and the App: the chain run by a bare loop through the pieces the
App uses for each dispatch (the lease check before it runs, the capture of what it prints,
the task, the joins that make the next dispatch and its id, the record and the in-memory
store's commit), with none of the App's choices around them (memo, retries, middleware,
signals, replay answers). No change to the App alone can beat it; a target above it needs
the pieces themselves made cheaper.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections import deque
from pathlib import Path
from typing import Any

from benchmarks.common import (
    REPEAT,
    STORES,
    WORKFLOWS,
    Row,
    Stat,
    chain,
    rate,
    remove_store,
    run_app,
    spread_of,
    temp_dir,
)
from benchmarks.tasks import Step
from retap import open_store
from retap.capture import DEFAULT_LIMIT, Capture, capturing
from retap.dispatch import Dispatch, join_dispatch_id, lead_dispatch_id
from retap.owner import Owner
from retap.runid import new_run_id
from retap.store import MemoryStore, rows
from retap.store.base import DispatchRecord, Effects, Store
from retap.store.dialect import SQLITE
from retap.store.sqllog import LEASE_HELD, QUEUE_INSERT

# issue 13 (item 3); the targets before it, 50,000/s and 10,000/s, are in the notes
TARGETS = {"memory": 200_000.0, "sqlite": 20_000.0}
EARLIER = {"memory": 50_000.0, "sqlite": 10_000.0}
SQL_ALONE = "sqlite: its SQL alone"
WORK_ALONE = "memory: its work alone"
PIECES_ALONE = "memory: retap's pieces alone"
# the floor under each store's chain row: a target above it cannot be met there
FLOORS = {"memory": WORK_ALONE, "sqlite": SQL_ALONE}
# the SQL alone and its variants: name -> (sequential ids, with the queue rows, clustered by
# seq, note)
SQL_VARIANTS = {
    SQL_ALONE: (False, True, False, ""),
    f"{SQL_ALONE}, sequential ids": (
        True, True, False, "the same commits with ids that sort in the order written"),
    f"{SQL_ALONE}, clustered by seq": (
        False, True, True, "the same commits into a rowid table with a unique index on "
                           "(run, id)"),
    f"{SQL_ALONE}, no queue row": (
        False, False, False, "the same commits without the queue rows"),
}
# dispatches stored in the order written, found by id through an index of their own
CLUSTERED_BY_SEQ = f"""
DROP INDEX dispatches_not_done;
DROP TABLE dispatches;
CREATE TABLE dispatches ({", ".join(rows.DISPATCH)}, crc);
CREATE UNIQUE INDEX dispatches_by_id ON dispatches (run, id);
CREATE INDEX dispatches_not_done ON dispatches (run, status) WHERE status != 'done';
"""


def sizes(quick: bool) -> int:
    return 2_000 if quick else 50_000


def measure(quick: bool) -> dict[tuple[str, str], tuple[Stat, int]]:
    """(workflow, store) -> (dispatches/s over the repetitions, dispatches per run)."""
    n = sizes(quick)
    rates: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], int] = {}
    with temp_dir() as tmp:
        for rep in range(REPEAT):
            for wf_name, make in WORKFLOWS.items():
                for store_name, open_store in STORES.items():
                    path = tmp / f"{wf_name}-{store_name}-{rep}.db".replace(" ", "_")
                    store: Store = open_store(path)
                    try:
                        result, elapsed = run_app(make(n), store)
                    finally:
                        store.close()
                        remove_store(path)
                    if result.status != "done":
                        raise RuntimeError(f"{wf_name} in {store_name} ended {result.status}")
                    key = (wf_name, store_name)
                    rates.setdefault(key, []).append(result.executed / elapsed)
                    counts[key] = result.executed
            rates.setdefault(("chain", WORK_ALONE), []).append(work_alone(n))
            counts[("chain", WORK_ALONE)] = n
            rates.setdefault(("chain", PIECES_ALONE), []).append(pieces_alone(n))
            counts[("chain", PIECES_ALONE)] = n + 2
            for name, (sequential, queue, clustered, _) in SQL_VARIANTS.items():
                path = tmp / f"alone-{rep}.db"
                rates.setdefault(("chain", name), []).append(
                    sql_alone(n, path, sequential, queue, clustered))
                counts[("chain", name)] = n
                remove_store(path)
    return {key: (Stat(values), counts[key]) for key, values in rates.items()}


def work_alone(n: int) -> float:
    """Dispatches/s of the chain's own work without the App (see the module's docstring)."""
    step = Step(n=n + 1)
    kept: dict[str, tuple[Any, ...]] = {}
    x, source = 1, lead_dispatch_id(0, 0)
    start = time.perf_counter()
    for _ in range(n):
        d = Dispatch(join_dispatch_id(1, 1, (source,), 0), 1, (x,), (source,))
        started = time.time()
        value = step.process(*d.inputs)
        kept[d.id] = ("done", value, started, time.time())
        source, x = d.id, value[1]
    return n / (time.perf_counter() - start)


def pieces_alone(n: int) -> float:
    """Dispatches/s of the chain run by a bare loop through the pieces of retap the App uses
    for each dispatch (see the module's docstring)."""
    workflow = chain(n)
    store = MemoryStore()
    log = store.create_run(new_run_id(), workflow.spec(strict=False), Owner.current(),
                           workflow, [])
    joins_from, nodes = workflow.joins_from(), workflow.nodes
    queue = deque(Dispatch(lead_dispatch_id(node, k), node, inputs)
                  for node, k, inputs in workflow.leads())
    queued = {d.id for d in queue}
    done = 0
    start = time.perf_counter()
    with capturing():
        while queue:
            d = queue[0]
            task = nodes[d.node].task
            log.about_to_run()
            started = time.time()
            with Capture(DEFAULT_LIMIT) as captured:
                value = task.execute(*d.inputs)
            finished = time.time()
            effects = Effects(removed=d)
            for join, slot in joins_from.get(d.node, ()):
                effects.front.extend(made for made in join.receive(None, slot, d.id, value)
                                     if made.id not in queued)
            info = type(task).__retap__
            log.commit_dispatch(DispatchRecord(
                d.id, d.node, info.name, d.sources, "done", value, None, 1, started, finished,
                info.code_version, d.inputs, d.ref, log=captured.log), effects)
            queue.popleft()
            queued.discard(d.id)
            queue.extendleft(reversed(effects.front))
            queued.update(made.id for made in effects.front)
            done += 1
    took = time.perf_counter() - start
    store.close()
    return done / took


def sql_alone(n: int, path: Path, sequential: bool = False, queue: bool = True,
              clustered: bool = False) -> float:
    """Dispatches/s of the chain's commits as SQL alone (see the module's docstring): with
    ``sequential`` ids in the order written, without the queue rows unless ``queue``, and
    with the dispatches ``clustered`` by seq."""
    open_store(path).close()  # retap's schema, WAL, synchronous=NORMAL
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    if clustered:
        conn.executescript(CLUSTERED_BY_SEQ)
    run, token = "20261130-000000-bench0", "f" * 32
    conn.execute("INSERT INTO runs (run, status, created, updated, codec, spec, crc, "
                 "lease_token) VALUES (?, 'running', 0, 0, 'json', x'', 0, ?)", (run, token))
    upsert = SQLITE.insert("dispatches", (*rows.DISPATCH, "crc"), replace_on=("run", "id"),
                           only_if=LEASE_HELD)
    ids = [f"{i:032x}" if sequential else hashlib.blake2b(str(i).encode(), digest_size=16)
           .hexdigest() for i in range(n + 1)]
    now = time.time()

    def sources(i: int) -> str:  # dispatch i's: the one before it
        return f'["{ids[i - 1]}"]' if i else "[]"

    def queued(i: int) -> tuple[Any, ...]:  # dispatch i's queue row, at the head
        fields = (run, -i, ids[i], "1", sources(i), '["=6"]')
        return (*fields, rows.crc(*fields))

    work: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []
    for i in range(n):
        dispatch = (run, ids[i], "1", "step", sources(i), '["=5"]', "done", "=[0,6]", None, 1,
                    i + 1, now, now, "a2cf15a756550fbf", None, None)
        work.append(((*dispatch, rows.crc(*dispatch), run, token), queued(i + 1)))
    if queue:
        conn.execute(QUEUE_INSERT, queued(0))
    start = time.perf_counter()
    for i, (dispatch_row, queue_row) in enumerate(work):
        conn.execute("BEGIN")
        conn.execute(upsert, dispatch_row)
        if queue:
            conn.execute("DELETE FROM queue WHERE run=? AND pos=?", (run, -i))
            conn.execute(QUEUE_INSERT, queue_row)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def run(quick: bool = False) -> list[Row]:
    results = measure(quick)
    table = []
    for (wf_name, store_name), (stat, count) in results.items():
        memory = results[(wf_name, "memory")][0].best
        target, earlier = TARGETS.get(store_name), EARLIER.get(store_name)
        ratio = "" if store_name == "memory" else f"{stat.best / memory:.2f}x memory"
        note = f"{count:,} dispatches per run" if store_name == "memory" else ""
        if store_name == WORK_ALONE:
            ratio = f"chain, memory is {memory / stat.best:.2f}x it"
            note = f"{count:,} dispatches' ids, records and task calls in a bare loop"
        elif store_name == PIECES_ALONE:
            ratio = f"chain, memory is {memory / stat.best:.2f}x it"
            note = (f"{count:,} dispatches in a bare loop through retap's own pieces: what "
                    "no change to the App alone can beat")
            if stat.best < TARGETS["memory"]:
                note += (f"; below the target of {TARGETS['memory']:,.0f}/s: meeting it needs "
                         "the pieces themselves made cheaper")
        elif store_name == SQL_ALONE:
            sqlite = results[(wf_name, "sqlite")][0].best
            ratio = f"chain, sqlite is {sqlite / stat.best:.2f}x it"
            note = f"{count:,} commits, their parameters made beforehand"
        elif store_name.startswith(SQL_ALONE):
            ratio = f"{stat.best / results[(wf_name, SQL_ALONE)][0].best:.2f}x the SQL alone"
            note = SQL_VARIANTS[store_name][3]
        floor = FLOORS.get(store_name) if wf_name == "chain" else None
        if floor is not None and target is not None and \
                results[(wf_name, floor)][0].best < target:
            note += ("; " if note else "") + (
                f"the target is above this machine's floor: {wf_name}, {floor} reaches "
                f"{results[(wf_name, floor)][0].best:,.0f}/s")
        if earlier is not None:
            note += ("; " if note else "") + (
                f"the target before issue 13, >= {earlier:,.0f}/s: "
                f"{'met' if stat.best >= earlier else 'NOT met'}")
        table.append(Row(
            bench="throughput",
            case=f"{wf_name}, {store_name}",
            figure=rate(stat.best),
            spread=spread_of(stat, rate),
            ratio=ratio,
            target="" if target is None else f">= {target:,.0f}/s",
            met=None if target is None else stat.best >= target,
            note=note,
        ))
    return table
