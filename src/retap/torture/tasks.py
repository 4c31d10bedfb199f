"""Tasks of torture workflows: deterministic values, optional slowness and one-off failures.

Every execution is appended to ``$TORTURE_LOG`` as ``dispatch-id<TAB>label`` before any
work, so a checker outside the store can tell which dispatches really ran, and when.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import retap

__all__ = ["Gen"]


def _number(*parts: Any) -> int:
    return int(hashlib.blake2b(repr(parts).encode(), digest_size=4).hexdigest(), 16)


class Gen(retap.Task):
    """A value made from its inputs alone, shaped for its node's joins."""

    label: str = "n"
    mode: str = "value"  # value | list | pair
    width: int = 2
    slow_ms: int = 0
    flaky: bool = False

    def process(self, *inputs: Any) -> Any:
        self._log()
        if self.slow_ms:
            time.sleep(self.slow_ms / 1000)
        if self.flaky:
            self._fail_once()
        h = _number(self.label, inputs)
        if self.mode == "list":
            return [f"{self.label}{i}.{h % 97}" for i in range(self.width)]
        if self.mode == "pair":
            return [h % self.width, f"{self.label}.{h % 997}"]
        return f"{self.label}.{h % 9973}"

    def _log(self) -> None:
        log = os.environ.get("TORTURE_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(f"{self.dispatch_id}\t{self.label}\n")

    def _fail_once(self) -> None:
        markers = os.environ.get("TORTURE_MARKERS")
        if not markers:
            return
        marker = Path(markers) / f"{self.dispatch_id}"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            raise RuntimeError(f"{self.label} fails once (flaky)")
