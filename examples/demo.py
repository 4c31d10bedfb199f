"""The retap demo: a workflow that fails part way, is inspected, fixed and resumed.

Runs in a fresh temporary folder with the `retap` command, as a user would:
1. `retap run` a workflow whose third task fails (the first two are recorded as done);
2. `retap show RUN` names the failed dispatch, its inputs and traceback;
3. `retap resume RUN --set 2.divisor=4` fixes the config and continues: the done tasks
   are not run again (their execution log shows one line each);
4. `retap audit RUN` draws where every value came from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent

RETAPFILE = '''
import retap


def log(name):
    with open("executions.log", "a") as fh:
        fh.write(name + "\\n")


class Numbers(retap.Task):
    """Reads numbers from a comma-separated string."""

    def process(self, text: str) -> list[int]:
        log("numbers")
        return [int(x) for x in text.split(",")]


@retap.task
def total(numbers: list[int]) -> int:
    """Adds the numbers up."""
    log("total")
    return sum(numbers)


class Divide(retap.Task):
    """Divides its input by --divisor."""

    divisor: int = retap.config(0, help="what to divide by")

    def process(self, value: int) -> float:
        log("divide")
        return value / self.divisor
'''


def retap(*args: str, cwd: Path) -> int:
    print(f"\n$ retap {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "retap", *args], cwd=cwd).returncode


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="retap-demo-"))
    try:
        (folder / "retapfile.py").write_text(RETAPFILE)
        shutil.copy(HERE / "goodnight" / "retapfile.py", folder / "goodnight.py")
        code = retap("run", "--run-id", "demo", "--", "numbers", "3,4,5", "--:", "total",
                     "--:", "divide", "--:", "dump", cwd=folder)
        assert code == 1, "the run should fail: divide by zero"
        retap("show", "demo", cwd=folder)
        code = retap("resume", "demo", "--set", "2.divisor=4", cwd=folder)
        assert code == 0, "the resume should finish the run"
        retap("audit", "demo", cwd=folder)
        log = (folder / "executions.log").read_text().split()
        print(f"\nexecutions: {', '.join(log)}  (numbers and total ran once; divide failed, "
              "then ran again with the new divisor)")
        assert log.count("numbers") == 1 and log.count("total") == 1
        retap("run", "--store", ":memory:", "--", "goodnight:Goodnight", "moon",
              "--message", "hello", "--:", "dump", cwd=folder)
        return 0
    finally:
        if not os.environ.get("RETAP_DEMO_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
