"""``python -m retap.torture``: run torture cases and report what held."""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from pathlib import Path

import click

from retap.torture.cases import CaseResult, Parallel, run_case

# kinds of problem, told apart by what their lines say (see retap.torture.checks)
CATEGORIES = {
    "divergences": r"differs",
    "duplicate executions": r"executed again",
    "memo misses": r"memo should have answered|earlier in the same attempt",
    "integrity problems": r"sqlite:|: run r\d+: |store cannot be read",
    "journals left": r"journal |\.retap/backup is not empty",
    "status mismatches": r"\(expected |is done with|was not recorded|with no failed",
    "unexpected exits": r"exited -?\d+",
    "changes applied twice": r"applied twice",
    "inexact replays": r"replay check",
    "history gaps": r"history of",
    "output gaps": r"output of done",
    "prune damage": r"prune",
    "stale reuses": r"made by older code",
}


def known_executors(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--executor``: one executor or a comma list of them, each one retap knows."""
    from retap.executors.choose import KNOWN, is_executor

    for name in value.split(","):
        if not is_executor(name):
            raise click.BadParameter(f"{name!r} is not one of {KNOWN}", ctx, param)
    return value


@click.command()
@click.option("--cases", default=20, show_default=True, help="how many cases to run")
@click.option("--seed", default=1, show_default=True, help="seed of the whole series")
@click.option("--only", type=int, default=None, help="run only this case index (to replay one)")
@click.option("--shard", default="1/1", show_default=True, metavar="K/N",
              help="run only every Nth case, starting at the Kth: N shards in N processes "
                   "share a series between cores")
@click.option("--budget", type=float, default=None, help="stop starting cases after SECONDS")
@click.option("--keep", type=click.Path(path_type=Path), default=None,
              help="keep each case's folder (store, logs) under this directory")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="attempts run -j 1 or -j JOBS, drawn per attempt")
@click.option("--executor", default="processes", show_default=True,
              callback=known_executors,
              help="the executor of attempts with -j above 1; a comma list draws one per "
                   "attempt (processes,threads,dask)")
@click.option("--store-server", "server", default=None, metavar="URL",
              help="record the cases' runs on this PostgreSQL server (a schema per case) "
                   "instead of in SQLite files")
def main(cases: int, seed: int, only: int | None, shard: str, budget: float | None,
         keep: Path | None, jobs: int, executor: str, server: str | None) -> None:
    """Kill generated workflows at random fault points; check nothing is lost or run twice."""
    parallel = Parallel(jobs, executor, server)
    started = time.monotonic()
    indexes = case_indexes(cases, only, shard)
    results: list[CaseResult] = []
    for index in indexes:
        if budget is not None and time.monotonic() - started > budget:
            break
        result = run_case(seed, index, keep, parallel=parallel)
        results.append(result)
        if len(results) % 100 == 0:
            click.echo(f"... {summary(results, seed, time.monotonic() - started)}", err=True)
        if not result.held:
            report_failure(result, seed)
    click.echo(summary(results, seed, time.monotonic() - started))
    sys.exit(0 if results and all(r.held for r in results) else 1)


def case_indexes(cases: int, only: int | None, shard: str) -> list[int]:
    """The cases to run: ``only``, or shard K of N of the first ``cases``."""
    k, _, n = shard.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise click.BadParameter(f"{shard!r} is not K/N with 1 <= K <= N", param_hint="--shard")
    return [only] if only is not None else list(range(int(k) - 1, cases, int(n)))


def report_failure(result: CaseResult, seed: int) -> None:
    click.echo(f"case {result.index} FAILED (seed {seed}, {result.scenario}, "
               f"{result.durability}, features: {', '.join(result.features) or 'none'}):",
               err=True)
    for problem in result.problems:
        click.echo(f"  {problem}", err=True)
    click.echo(f"  replay it: python -m retap.torture --seed {seed} --only {result.index} "
               "--keep torture-cases", err=True)


def summary(results: list[CaseResult], seed: int, seconds: float) -> str:
    """One line: what ran, what was injected, each feature's figures, what broke."""
    faults: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
    failed = [r for r in results if not r.held]
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(faults.items()))
    broken = ", ".join(f"{_count(results, pattern)} {name}"
                       for name, pattern in CATEGORIES.items())
    return (f"torture seed {seed}: {len(results)} cases, {sum(r.dispatches for r in results)} "
            f"reference dispatches, {sum(r.attempts for r in results)} attempts, "
            f"{sum(faults.values())} faults injected ({kinds}), "
            f"{sum(r.failures for r in results)} task failures; {features(results)}; "
            f"{len(failed)} cases failed: {broken}; {seconds:.1f} s")


def features(results: list[CaseResult]) -> str:
    """Per feature: how many cases had it, and its figures."""
    having = Counter(name for r in results for name in r.features)
    by_durability: Counter[str] = Counter()
    for r in results:
        by_durability[r.durability] += sum(r.faults.values())
    reused = [r.reused for r in results if r.reused]
    return (f"cases with file tasks {having['files']}, memoized tasks {having['memo']}, "
            f"memo reuse {len(reused)} ({sum(reused)} dispatches reused), on-error continue "
            f"{having['continue']}, rerun scenarios {having['rerun']}, fresh runs "
            f"{sum(r.fresh_runs for r in results)} (in {having['fresh']} cases allowed), "
            f"journals left by kills {sum(r.killed_journals for r in results)} "
            f"(faults inside a journal write {sum(r.journal_writes for r in results)}), "
            f"failed attempts with a worker's loss armed "
            f"{sum(r.worker_faults for r in results)}, "
            f"replays --from a node {sum(r.from_replays for r in results)}, "
            f"prunes {sum(r.prunes for r in results)}, "
            f"recoveries of a store as an older retap left it "
            f"{sum(r.older_stores for r in results)}, "
            f"code changes {sum(r.code_changes for r in results)}, "
            f"flaky nodes retried in their session {sum(r.retried_nodes for r in results)}, "
            f"paused coordinators taken over {sum(r.pauses for r in results)}, "
            f"attempts with the store opened beside them "
            f"{sum(r.neighboured for r in results)}, "
            f"parallel attempts {sum(r.parallel_attempts for r in results)} ("
            + "".join(f"{name} {n}, " for name, n in
                      sum((r.executors for r in results), Counter()).most_common())
            + f"cases compared by replay only {sum(r.unordered for r in results)}); "
            f"faults per durability: "
            + ", ".join(f"{d} {by_durability[d]}" for d in ("normal", "power", "batch")))


def _count(results: list[CaseResult], pattern: str) -> int:
    return sum(bool(re.search(pattern, p)) for r in results for p in r.problems)


if __name__ == "__main__":
    main()
