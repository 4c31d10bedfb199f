"""The PostgreSQL store next to SQLite, in the same run: chain throughput at ``normal`` and
``batch`` durability, a resume of a long history to its first dispatch, and the peak
memory of a replay at 10x the history (the memory benchmark's children).

The server is the one ``RETAP_TEST_POSTGRES`` names (``.ci/run`` and the test suite use
it too); without it this benchmark says so and measures nothing. Each measurement uses a
schema of its own, dropped afterwards. The server runs on the same 2-core machine as the
coordinator, so every commit is a round trip through the loopback interface to a process
competing for the same cores.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks import memory, recovery
from benchmarks.common import (
    REPEAT,
    Row,
    Stat,
    chain,
    mb,
    open_store,
    rate,
    remove_store,
    run_app,
    seconds,
    spread_of,
    temp_dir,
)

ENV = "RETAP_TEST_POSTGRES"
TARGETS = {"normal": 3_000.0, "batch": 10_000.0}


@contextmanager
def schema(url: str) -> Iterator[str]:
    """A store URL in a fresh schema, dropped afterwards."""
    from retap.store.postgres import drop_schema, with_schema

    where = with_schema(url, f"retap_bench_{uuid.uuid4().hex[:10]}")
    try:
        yield where
    finally:
        drop_schema(where)


def run(quick: bool = False) -> list[Row]:
    url = os.environ.get(ENV, "")
    if not url:
        return [Row("postgres", "skipped", "-", note=f"set {ENV}=postgresql://USER@HOST:PORT/DB "
                                                      "to measure the PostgreSQL store")]
    n = 2_000 if quick else 20_000
    rates: dict[str, list[float]] = {"sqlite": [], "normal": [], "batch": []}
    with temp_dir() as tmp:
        for rep in range(REPEAT):
            path = tmp / f"chain-{rep}.db"
            store = open_store(path)
            try:
                result, took = run_app(chain(n), store)
            finally:
                store.close()
                remove_store(path)
            rates["sqlite"].append(result.executed / took)
            for durability in ("normal", "batch"):
                with schema(url) as where:
                    store = open_store(where, durability=durability)
                    try:
                        result, took = run_app(chain(n), store)
                    finally:
                        store.close()
                if result.status != "done":
                    raise RuntimeError(f"postgres {durability} ended {result.status}")
                rates[durability].append(result.executed / took)
    sqlite = Stat(rates["sqlite"]).best
    rows = []
    for durability in ("normal", "batch"):
        stat = Stat(rates[durability])
        rows.append(Row("postgres", f"chain, postgres {durability}", rate(stat.best),
                        spread_of(stat, rate), f"{stat.best / sqlite:.2f}x sqlite normal",
                        f">= {TARGETS[durability]:,.0f}/s", stat.best >= TARGETS[durability],
                        f"{n + 2:,} dispatches per run" if durability == "normal" else ""))
    rows.append(Row("postgres", "chain, sqlite normal (same run)", rate(sqlite),
                    spread_of(Stat(rates["sqlite"]), rate)))
    done = 5_000 if quick else 100_000
    with schema(url) as where:
        run_id, built = recovery.build(where, done)  # type: ignore[arg-type]
        first, whole = recovery.time_resumes(where, run_id, done)  # type: ignore[arg-type]
    rows.append(Row("postgres", f"{done:,} done: resume -> first dispatch",
                    seconds(first.best), spread_of(first, seconds), "", "< 1 s",
                    first.best < 1.0, f"whole resume call: {seconds(whole.best)}; building "
                                      f"the run took {seconds(built)} ({done / built:,.0f}/s)"))
    recovery.FAIL["at"] = None
    rows.append(replay_memory(url, quick))
    return rows


def replay_memory(url: str, quick: bool) -> Row:
    """The replay's peak RSS at 10x the history, in PostgreSQL (the memory benchmark's
    children, each run built at ``batch`` durability): what a driver that received the
    whole ordered history before its first row would show as growth."""
    small_n, large_n = (1_000, 10_000) if quick else (10_000, 100_000)
    replays = {}
    for n in (small_n, large_n):
        with schema(url) as where:
            memory.measure(n, where)  # type: ignore[arg-type]
            replays[n] = memory.measure(n, where, "--replay-child")  # type: ignore[arg-type]
    small, large = replays[small_n]["peak_mb"], replays[large_n]["peak_mb"]
    return Row("postgres", f"replay peak RSS {large_n:,} vs {small_n:,}",
               f"{large - small:+.1f} MB", "(1 run each)", f"{large / small:.2f}x",
               f"flat (within {memory.FLAT_TOLERANCE:.0%})",
               large / small - 1 <= memory.FLAT_TOLERANCE,
               f"every dispatch answered from the store: peak {mb(small)} at {small_n:,}, "
               f"{mb(large)} at {large_n:,} "
               f"({replays[large_n]['executed'] / replays[large_n]['elapsed']:,.0f} cached/s)")
