"""What computing code versions costs a 200-task workflow.

A task's code version is the digest of its normalized code and of the project code it
reaches (see ``retap.codeversion``). A run computes it for every task of its workflow when
it starts (the timeline keeps each task's parts) and a resume or replay does again (to
find code changes). Here a generated project of 200 task classes in one module, each
calling two of 20 helpers in another module and reading one of 10 constants there, is
imported in a fresh process (not timed), then every task's version is computed once
(timed): parsing both modules, normalizing, following the helpers. Best of 3 processes.

Child mode (used by the parent): ``python -m benchmarks.codeversions --child DIR``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPEAT, Row, Stat, seconds, spread_of, temp_dir

ROOT = Path(__file__).resolve().parent.parent
TASKS = 200
TARGET_S = 0.050


def write_project(where: Path, tasks: int) -> None:
    """A helpers module and a tasks module, as a user's project might have them."""
    helpers = ['"""Helpers of the generated project."""', "import math", ""]
    helpers += [f"LIMIT_{i} = {i * 7 + 3}" for i in range(10)]
    for i in range(20):
        helpers += ["", "", f"def helper_{i}(value, scale=1):",
                    f'    """Helper {i}: scale, clip and round a value."""',
                    f"    clipped = min(max(value * scale, -LIMIT_{i % 10}), LIMIT_{i % 10})",
                    f"    return round(math.sqrt(abs(clipped)) + {i}, 3)"]
    (where / "cvbench_helpers.py").write_text("\n".join(helpers) + "\n")
    lines = ['"""Tasks of the generated project."""', "import retap", "",
             "import cvbench_helpers as h", ""]
    for i in range(tasks):
        lines += ["", f"class Task{i}(retap.Task):",
                  f'    """Task {i}: two helpers and a limit."""', "",
                  "    scale: int = retap.config(1)", "",
                  "    def process(self, value):",
                  "        # the first helper scales, the second clips again",
                  f"        first = h.helper_{i % 20}(value, self.scale)",
                  f"        second = h.helper_{(i * 7) % 20}(first)",
                  f"        return min(first + second, h.LIMIT_{i % 10})"]
    (where / "cvbench_tasks.py").write_text("\n".join(lines) + "\n")


def child(where: str) -> dict[str, Any]:
    sys.path.insert(0, where)
    import cvbench_tasks

    classes = [getattr(cvbench_tasks, f"Task{i}") for i in range(TASKS)]
    start = time.perf_counter()
    parts = sum(len(cls.__retap__.code.parts) for cls in classes)
    took = time.perf_counter() - start
    return {"seconds": took, "parts": parts}


def run(quick: bool) -> list[Row]:
    times, parts = [], 0
    with temp_dir() as where:
        write_project(where, TASKS)
        for _ in range(1 if quick else REPEAT):
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.codeversions", "--child", str(where)],
                cwd=ROOT, capture_output=True, text=True, check=True)
            report = json.loads(done.stdout)
            times.append(report["seconds"])
            parts = report["parts"]
    stat = Stat(times, higher_is_better=False)
    return [Row("codeversions", f"{TASKS} tasks: every code version, fresh process",
                seconds(stat.best), spread_of(stat, seconds),
                f"{stat.best / TASKS * 1e6:,.0f} us a task", f"< {seconds(TARGET_S)}",
                stat.best < TARGET_S,
                f"{parts} parts in all (each task: itself, two helpers, a limit and the "
                "constants its helpers clip with); both modules parsed inside the figure")]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2])))
    else:
        for row in run("--quick" in sys.argv):
            print(row)
