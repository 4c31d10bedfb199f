"""``python -m retap.torture``: run torture cases and report what held."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import click

from retap.torture.cases import CaseResult, run_case


@click.command()
@click.option("--cases", default=20, show_default=True, help="how many cases to run")
@click.option("--seed", default=1, show_default=True, help="seed of the whole series")
@click.option("--only", type=int, default=None, help="run only this case index (to replay one)")
@click.option("--budget", type=float, default=None, help="stop starting cases after SECONDS")
@click.option("--keep", type=click.Path(path_type=Path), default=None,
              help="keep each case's folder (store, logs) under this directory")
def main(cases: int, seed: int, only: int | None, budget: float | None,
         keep: Path | None) -> None:
    """Kill generated workflows at random fault points; check nothing is lost or run twice."""
    started = time.monotonic()
    indexes = [only] if only is not None else range(cases)
    results: list[CaseResult] = []
    for index in indexes:
        if budget is not None and time.monotonic() - started > budget:
            break
        result = run_case(seed, index, keep)
        results.append(result)
        if len(results) % 100 == 0:
            click.echo(f"... {summary(results, seed, time.monotonic() - started)}", err=True)
        if not result.held:
            click.echo(f"case {index} FAILED (seed {seed}):", err=True)
            for problem in result.problems:
                click.echo(f"  {problem}", err=True)
            click.echo(f"  replay it: python -m retap.torture --seed {seed} --only {index} "
                       "--keep torture-cases", err=True)
    click.echo(summary(results, seed, time.monotonic() - started))
    sys.exit(0 if results and all(r.held for r in results) else 1)


def summary(results: list[CaseResult], seed: int, seconds: float) -> str:
    faults: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
    failed = [r for r in results if not r.held]
    duplicates = sum("executed again" in p for r in results for p in r.problems)
    divergences = sum("differs" in p for r in results for p in r.problems)
    integrity = sum(("sqlite:" in p or "run r:" in p) for r in results for p in r.problems)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(faults.items()))
    return (f"torture seed {seed}: {len(results)} cases, {sum(r.dispatches for r in results)} "
            f"reference dispatches, {sum(r.attempts for r in results)} attempts, "
            f"{sum(faults.values())} faults injected ({kinds}), "
            f"{sum(r.failures for r in results)} task failures; {len(failed)} cases failed: "
            f"{divergences} divergences, {duplicates} duplicate executions, "
            f"{integrity} integrity problems; {seconds:.1f} s")


if __name__ == "__main__":
    main()
