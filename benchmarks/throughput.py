"""Dispatch throughput of trivial tasks: what the App loop and each store cost per dispatch.

Workflows (see common.py): ``chain`` (n dispatches one after another, queue of one),
``fan-out`` (n dispatches queued at once at the head of the queue, depth-first) and
``fan-out q`` (the same at the tail, enqueued). Stores: in memory, SQLite with the
default durability (WAL, synchronous=NORMAL, one commit per dispatch), ``power``
(fsync every commit) and ``batch`` (group commit). Each figure is dispatches executed
divided by the wall time of ``App.run`` (which includes creating the run and its final
commit), best of N, on a fresh store file each time. Repetitions are interleaved across
stores so that a noisy spell does not hit one store only.
"""

from __future__ import annotations

from benchmarks.common import (
    REPEAT,
    STORES,
    WORKFLOWS,
    Row,
    Stat,
    rate,
    remove_store,
    run_app,
    spread_of,
    temp_dir,
)
from retap.store.base import Store

TARGETS = {"memory": 50_000.0, "sqlite": 10_000.0}


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
    return {key: (Stat(values), counts[key]) for key, values in rates.items()}


def run(quick: bool = False) -> list[Row]:
    results = measure(quick)
    rows = []
    for (wf_name, store_name), (stat, count) in results.items():
        memory = results[(wf_name, "memory")][0].best
        target = TARGETS.get(store_name)
        rows.append(Row(
            bench="throughput",
            case=f"{wf_name}, {store_name}",
            figure=rate(stat.best),
            spread=spread_of(stat, rate),
            ratio="" if store_name == "memory" else f"{stat.best / memory:.2f}x memory",
            target="" if target is None else f">= {target:,.0f}/s",
            met=None if target is None else stat.best >= target,
            note=f"{count:,} dispatches per run" if store_name == "memory" else "",
        ))
    return rows
