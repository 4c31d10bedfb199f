"""A case's scenario as phases: each phase starts a fresh run (after an optional change to
an input file or to the lead inputs) and must bring it to done.

- ``single``: one phase, today's run brought to done.
- ``rerun``: r1 brought to done; then an input file a file node reads changes (or a lead
  input does) and a new run on the same project and store is brought to done: memoized
  results of r1 meet the new run, and killed file tasks meet memo reuse. With the ``code``
  feature the project's own module that memoized tasks read (``torture_code.py``) is
  edited too: no result made by the old code may be reused.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retap.torture.features import Features
from retap.torture.plans import build, read_inputs, with_new_lead
from retap.torture.project import change_input, write_code

__all__ = ["Phase", "phases"]


@dataclass(frozen=True)
class Phase:
    """One run of the scenario: its plan, flow file, and what changes before it starts."""

    workplan: dict[str, Any]
    flow: str
    change: tuple[str, str] | None = None  # (input file, "append" | "flip")
    variant: str = ""  # the code variant of the project module memoized tasks read

    def prepare(self, project: Path) -> None:
        """Write the phase's flow file and project code and make its change, in
        ``project``."""
        (project / self.flow).write_text(json.dumps(build(self.workplan).spec()))
        write_code(project, self.variant)
        if self.change is not None:
            change_input(project, *self.change)

    def describe(self) -> str:
        what = f"change {self.change[0]} ({self.change[1]})" if self.change else \
            f"leads {self.workplan['leads']}"
        return what + (f", code variant {self.variant!r}" if self.variant else "")


def phases(workplan: dict[str, Any], features: Features, rng: random.Random) -> list[Phase]:
    """The phases of a case's scenario."""
    first = Phase(workplan, "flow.json")
    if features.scenario == "single":
        return [first]
    code = "v2" if features.code and "memo" in workplan.get("kinds", ()) else ""
    inputs = read_inputs(workplan)
    if inputs and rng.random() < 0.75:
        change = (rng.choice(inputs), rng.choice(["append", "flip"]))
        return [first, Phase(workplan, "flow.json", change, code)]
    return [first, Phase(with_new_lead(workplan, rng), "flow2.json", variant=code)]
