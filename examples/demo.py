"""The retap demo: a file pipeline that fails part way, is resumed, and rebuilds only what
changed. It runs `examples/pipeline` in a fresh temporary folder with the `retap`
command, as a user would:

1. `retap run flow.yaml` cleans four CSV files, totals them and writes a report; the
   third file fails to parse (a flaky source, once), so the run stops and exits 1;
2. `retap show` names the failed dispatch, its input and traceback;
3. `retap resume` continues: the two files already cleaned are not cleaned again;
4. `retap run` again: everything is up to date, nothing is rebuilt;
5. one amount in one input file changes: `--dry-run` says what would run and why, and
   `--explain` rebuilds exactly that file's cleaning, the totals and the report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def retap(*args: str, cwd: Path, env: dict[str, str] | None = None) -> int:
    print(f"\n$ retap {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "retap", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, stderr=subprocess.STDOUT)
    return done.returncode


def executions(folder: Path) -> list[str]:
    log = folder / "executions.log"
    return log.read_text().splitlines() if log.exists() else []


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="retap-demo-"))
    try:
        shutil.copytree(HERE / "pipeline", folder, dirs_exist_ok=True)
        subprocess.run([sys.executable, "make_data.py"], cwd=folder, check=True)
        print(f"working in {folder}: data/{', data/'.join(sorted(os.listdir(folder / 'data')))}")

        step("1. run the pipeline; cleaning data/c.csv fails (once)")
        code = retap("run", "--run-id", "sales", "flow.yaml", cwd=folder,
                     env={"PIPELINE_FAIL_ON": "c.csv"})
        assert code == 1, "the run should stop on the failed task"

        step("2. inspect the failure")
        retap("show", "sales", cwd=folder)

        step("3. resume: only what did not finish runs")
        before = len(executions(folder))
        assert retap("resume", "sales", cwd=folder) == 0
        print(f"\nresumed work: {', '.join(executions(folder)[before:])}")
        assert not any(e.endswith(("a.csv", "b.csv")) for e in executions(folder)[before:])

        step("4. run again: everything is up to date")
        before = len(executions(folder))
        assert retap("run", "flow.yaml", cwd=folder) == 0
        assert executions(folder)[before:] == [], "nothing should have been rebuilt"
        print("\nnothing was rebuilt")

        step("5. change one amount in data/b.csv, ask what would run, then run")
        data = folder / "data" / "b.csv"
        lines = data.read_text().splitlines()
        lines[1] = lines[1].rsplit(",", 1)[0] + ",1000.00"
        data.write_text("\n".join(lines) + "\n")
        retap("run", "--dry-run", "flow.yaml", cwd=folder)
        before = len(executions(folder))
        assert retap("run", "--explain", "flow.yaml", cwd=folder) == 0
        rebuilt = executions(folder)[before:]
        print(f"\nrebuilt: {', '.join(rebuilt)}")
        assert rebuilt == ["clean data/b.csv", "aggregate 4 files", "report build/totals.csv"]

        print("\n" + (folder / "build" / "report.md").read_text())
        return 0
    finally:
        if os.environ.get("RETAP_DEMO_KEEP"):
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
