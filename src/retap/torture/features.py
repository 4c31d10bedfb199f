"""What a torture case exercises besides its graph, drawn per case from a stream of its own
(so the graph, the faults and the recoveries of a case draw the same numbers as before
these features existed, and ``CLASSIC`` replays an old case exactly)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["CLASSIC", "Features", "draw"]


@dataclass(frozen=True)
class Features:
    """One case's features: which node kinds, how errors and recoveries go."""

    files: bool = False  # WriteFile and StampFile nodes
    memo: bool = False  # memoized plain nodes (Memo)
    on_error: str = "stop"  # stop | continue, for the run and every recovery
    scenario: str = "single"  # single: one run to done; rerun: r1 done, an input changes, r2
    fresh: bool = False  # a recovery may start a fresh run on the same project and store
    replay_from: bool = False  # a done run is replayed --from a node, faulted, to done again
    code: bool = False  # rerun: the project code memoized tasks use changes before r2

    @property
    def names(self) -> list[str]:
        """The features this case has, as the summary counts them."""
        flags = {"files": self.files, "memo": self.memo, "continue": self.on_error == "continue",
                 "rerun": self.scenario == "rerun", "fresh": self.fresh,
                 "from": self.replay_from, "code": self.code}
        return [name for name, on in flags.items() if on]


CLASSIC = Features()


def feature_rng(case_seed: int) -> random.Random:
    """The features' own stream for a case."""
    return random.Random(f"features-{case_seed}")


def draw(rng: random.Random) -> Features:
    """A random mix; about half the cases have file tasks, a third are reruns."""
    return Features(files=rng.random() < 0.55, memo=rng.random() < 0.4,
                    on_error="continue" if rng.random() < 0.35 else "stop",
                    scenario="rerun" if rng.random() < 0.4 else "single",
                    fresh=rng.random() < 0.4, code=rng.random() < 0.7)
