"""The recorder: everything the App writes to the store for a run goes through here, one
commit per dispatch (its record, join-state and queue changes together), and the file
journals that follow those commits (dropped once a commit is durable, undone when a
dispatch is recorded as failed)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from retap import faults, journal
from retap.dispatch import Dispatch, NodeId, Outcome
from retap.errors import CodecError
from retap.files import digest_file
from retap.joins import JoinState
from retap.store.base import DispatchRecord, Effects, RunLog, Store
from retap.taskdef import TaskInfo

__all__ = ["Recorder"]


class Recorder:
    """Commits of one claimed run, and the counts of what they recorded."""

    def __init__(self, store: Store, log: RunLog) -> None:
        self.store = store
        self.log = log
        self.run = log.run
        self.executed = 0  # dispatches recorded from an execution or a memo answer
        self.reused = 0  # of which memo answers
        self._unsynced: list[str] = []  # journals to drop once their records are durable

    def commit(self, info: TaskInfo, d: Dispatch, outcome: Outcome,
               effects: Effects) -> tuple[Outcome, Effects]:
        """Commit ``d``'s record with its effects; a result the store cannot encode fails
        ``d`` instead (nothing of the effects is written then)."""
        self.executed += 1
        self.reused += outcome.reused is not None
        try:
            self.log.commit_dispatch(_record(info, d, outcome), effects)
        except CodecError as exc:
            error = {"type": "CodecError", "traceback": "",
                     "message": f"task {info.name} returned a value the store cannot keep: "
                                f"{exc.message}"}
            outcome = Outcome("failed", error=error, attempts=outcome.attempts,
                              started=outcome.started, finished=outcome.finished)
            effects = Effects()
            self.log.commit_dispatch(_record(info, d, outcome), effects)
        if faults.armed:
            faults.hit("after_commit")
        return outcome, effects

    def save(self, pending: list[Dispatch], states: Mapping[NodeId, JoinState]) -> None:
        """Replace the stored queue and join states (failed dispatches first)."""
        self.log.save_state(pending, states)

    def mark_running(self, d: Dispatch, info: TaskInfo) -> None:
        self.log.mark_running(d, info.name, info.code_version)

    def finish(self, status: str) -> None:
        self.log.finish(status)
        self.drop_journals(synced=True)

    # -- file journals ------------------------------------------------------------------------

    def settle_journal(self, d: Dispatch, done: bool) -> None:
        """A file task's dispatch is recorded: its journal goes once the record is durable;
        one recorded as failed or interrupted has its changes undone now."""
        if done:
            self._unsynced.append(d.id)
            self.drop_journals()
        else:
            journal.undo(self.run, d.id, self.keeps_file)

    def drop_journals(self, synced: bool = False) -> None:
        if self._unsynced and (synced or self.log.synced()):
            for dispatch in self._unsynced:
                journal.drop(self.run, dispatch)
            self._unsynced.clear()

    def keeps_file(self, path: str) -> bool:
        """True when ``path`` holds the recorded output of a committed dispatch: a roll-back
        leaves such a file alone."""
        return self.store.recorded_output(os.path.abspath(path), digest_file(path))


def _record(info: TaskInfo, d: Dispatch, outcome: Outcome) -> DispatchRecord:
    return DispatchRecord(d.id, d.node, info.name, d.sources, outcome.status, outcome.value,
                          outcome.error, outcome.attempts, outcome.started, outcome.finished,
                          info.code_version, d.inputs, d.ref, outcome.reused, outcome.outputs,
                          outcome.memo, outcome.earlier, outcome.log, outcome.worker)
