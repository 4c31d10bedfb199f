"""The torture runner: try hard to break retap's promises, and say so when it does.

``python -m retap.torture --cases N --seed S`` generates N random workflows (every join
kind and modifier, iterate over lists, slow and flaky tasks), runs each without faults
for reference, then again killing it at random named fault points (SIGKILL, ``_exit``,
SIGINT, SIGTERM: see ``retap.faults``), resuming or replaying until it is done. After
every attempt it checks the store's integrity and that no dispatch the store had as
done executed again; at the end, that the audit equals the reference. It exits 0 only
when every case held; a failing case prints the command that replays it alone.
"""

from retap.torture.cases import CaseResult, run_case

__all__ = ["CaseResult", "run_case"]
