"""A small sales pipeline built on file tasks: clean each CSV, total by region, report.

Each task writes its files through retap (`self.output`), so a run that fails or is
killed leaves no half-written file, and a task whose input files, configs and code are
unchanged is skipped on the next run.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

import retap


def _log(task: str, subject: str) -> None:
    with open("executions.log", "a") as fh:
        fh.write(f"{task} {subject}\n")


class Clean(retap.FileTask):
    """Parses one CSV of sales, drops malformed rows, writes it to --out-dir."""

    out_dir: retap.Output = retap.config(Path("build/clean"), help="where cleaned files go")

    def process(self, path: str) -> str:
        _log("clean", path)
        if os.environ.get("PIPELINE_FAIL_ON") == Path(path).name and not Path(
                f".failed-{Path(path).name}").exists():
            Path(f".failed-{Path(path).name}").touch()  # fail once, as a flaky source would
            raise RuntimeError(f"cannot parse {path}: connection reset while reading")
        target = self.out_dir / Path(path).name
        kept = []
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    kept.append({"region": row["region"].strip().lower(),
                                 "amount": f"{float(row['amount']):.2f}"})
                except (KeyError, ValueError, TypeError, AttributeError):
                    continue  # a malformed row
        with self.output(target) as tmp, open(tmp, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=["region", "amount"])
            writer.writeheader()
            writer.writerows(kept)
        return str(target)


class Aggregate(retap.FileTask):
    """Totals the cleaned files by region into --out."""

    out: retap.Output = retap.config(Path("build/totals.csv"), help="the totals file")

    def process(self, paths: list[str]) -> str:
        _log("aggregate", f"{len(paths)} files")
        totals: dict[str, float] = defaultdict(float)
        for path in sorted(paths):
            with open(path, newline="") as fh:
                for row in csv.DictReader(fh):
                    totals[row["region"]] += float(row["amount"])
        with self.output(self.out) as tmp, open(tmp, "w", newline="") as out:
            out.write("region,total\n")
            for region in sorted(totals):
                out.write(f"{region},{totals[region]:.2f}\n")
        return str(self.out)


class Report(retap.FileTask):
    """Writes a Markdown report of the totals to --out."""

    out: retap.Output = retap.config(Path("build/report.md"), help="the report file")
    title: str = retap.config("Sales by region", help="the report's title")

    def process(self, totals: str) -> str:
        _log("report", totals)
        with open(totals, newline="") as fh:
            rows = list(csv.DictReader(fh))
        lines = [f"# {self.title}", "", "| region | total |", "|---|---:|"]
        lines += [f"| {r['region']} | {r['total']} |" for r in rows]
        with self.output(self.out) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
        return str(self.out)
