"""The PostgreSQL store next to SQLite, in the same run: chain throughput at ``normal`` and
``batch`` durability, and a resume of a long history to its first dispatch.

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

from benchmarks import recovery
from benchmarks.common import (
    REPEAT,
    Row,
    Stat,
    chain,
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
    return rows
