"""File tasks: files read and written through retap, so a run that fails or dies never
leaves a half-written output behind, and a task whose files did not change is not run
again.

A ``FileTask`` writes each output with ``self.output(path)``: a temporary path in the
same directory, renamed into place when the block succeeds. A file changed in place
goes through ``self.modify(path)``, which backs it up first. Every change is written to
a journal (``retap.journal``) *before* it is made; when the dispatch fails the journal is
undone at once; it is dropped once the dispatch's record is durably committed; and when
the process dies, the next run on the project settles it first (``settle_journals``).
Files are compared by content digest, remembered by (size, mtime, inode), so touching a
file does not make it look changed, and changing one byte does.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from retap.context import TaskContext
from retap.errors import Interrupted, RetapError, TaskFailed
from retap.journal import Journal, RunFolder, abandoned, inside, project_root
from retap.owner import Owner
from retap.store.base import Store
from retap.store.memory import MemoryStore
from retap.taskdef import Task

__all__ = ["FileDigests", "FileTask", "Input", "Output", "absolute_store", "digest_file",
           "settle_journals"]


class _Role:
    """Marks a path config as a file the task reads or writes."""

    def __init__(self, role: str) -> None:
        self.role = role

    def __repr__(self) -> str:
        return self.role


Input = Annotated[Path, _Role("input")]
Output = Annotated[Path, _Role("output")]


def config_role(annotation: Any) -> str | None:
    """``"input"`` or ``"output"`` for a config typed ``retap.Input`` / ``retap.Output``."""
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, _Role):
            return meta.role
    return None
RACY_SECONDS = 2.0  # a file changed this recently may change again within its mtime tick


def digest_file(path: str | Path) -> str:
    """The content digest of a file."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FileDigests:
    """Content digests of files, remembered in a store by (size, mtime_ns, inode) so an
    unchanged file is not read again; a recently changed one is always read."""

    def __init__(self, store: Store, remember: bool = True) -> None:
        self.store = store
        self.remember = remember  # False: a dry run, which writes nothing

    def digest(self, path: str) -> str | None:
        """The file's digest, or None when it does not exist (or is not a file)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not os.path.isfile(path):
            return None
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        known = self.store.file_digest(os.path.abspath(path), key)
        if known is not None:
            return known
        value = digest_file(path)
        if self.remember and time.time() - st.st_mtime > RACY_SECONDS:
            self.store.remember_file(os.path.abspath(path), key, value)
        return value


WRITER_GRACE = 10.0  # seconds a dead coordinator's worker may take to notice and exit


def settle_journals(store: Store, current: str) -> list[str]:
    """Settle the journals that dead processes left behind, newest first, before a run on
    this project decides anything: a journal whose dispatch its store has as done is
    dropped (its changes stand); any other is undone. Returns lines to warn about
    journals that could not be settled (their store is gone)."""
    found: list[tuple[int, Journal, Store]] = []
    notes: list[str] = []
    opened: list[Store] = []
    for folder, owner in abandoned(current):
        journals = folder.journals()
        if not journals:
            folder.remove_if_empty()
            continue
        where = _store_of(owner.store, store, opened)
        if where is None:
            notes.append(f"warning: file changes of run {owner.run} ({folder.dir}) are kept "
                         f"as they are: its store {owner.store} is gone")
            continue
        found.extend((j.opened, j, where) for j in journals)
    try:
        for _, journal, where in sorted(found, key=lambda f: f[0], reverse=True):
            if not journal.writer_gone(WRITER_GRACE):
                notes.append(f"warning: file changes of run {journal.run} ({journal.dir}) are "
                             f"left for now: {journal.writer} that made them still runs")
                continue
            if where.dispatch_status(journal.run, journal.dispatch) == "done":
                journal.discard()
            else:
                journal.rollback(keep=_recorded_by({store, where}))
    finally:
        for other in opened:
            other.close()
    return notes


def _store_of(location: str, current: Store, opened: list[Store]) -> Store | None:
    """The store a journal's run was recorded in: this one, an empty one when it kept
    nothing (``:memory:``), another store file read-only, or None when it is gone."""
    if location == ":memory:":
        return MemoryStore()
    if location == absolute_store(current.location):
        return current
    if not os.path.isfile(location):
        return None
    from retap.store import open_store

    try:
        other = open_store(location, readonly=True)
    except RetapError:
        return None
    opened.append(other)
    return other


def _recorded_by(stores: set[Store]) -> Callable[[str], bool]:
    """Whether a file's current content is the recorded output of a committed dispatch."""
    def keep(path: str) -> bool:
        digest = digest_file(path)
        return any(s.recorded_output(path, digest) for s in stores)
    return keep


def absolute_store(location: str) -> str:
    """A store's location as journals name it: absolute, or ``:memory:``."""
    return location if location == ":memory:" else os.path.abspath(location)


def _inside_project(task: Task, path: str | Path) -> Path:
    """``path`` as given, after checking that it lies inside the project: a change outside
    could not be undone (a journal naming such a path is never acted on)."""
    root = project_root()
    if not inside(path, root) or inside(path, root / ".retap"):
        raise TaskFailed(f"{type(task).__name__} writes {path}, outside the project {root}; "
                         "file tasks write inside the project (the working directory), so "
                         "a failed dispatch can be undone")
    return Path(path)


class FileTask(Task, abstract=True, cache="inputs"):
    """A task that reads and writes files; skipped while its files are up to date.

    Override ``reads`` when the files a dispatch reads are not simply its inputs and
    configs that name existing files. Write outputs with ``with self.output(path) as
    tmp:`` and change files in place only after ``self.modify(path)``.
    """

    journaled = True

    def reads(self, *inputs: Any) -> Iterable[str | Path]:
        """Files this dispatch reads: by default every input naming a file (or a list of
        them) and every config naming one, except configs typed ``retap.Output``."""
        specs = type(self).__retap__.configs
        candidates: list[Any] = []
        values = [v for k, v in self.config_values().items()
                  if config_role(specs[k].annotation) != "output"]
        for value in [*inputs, *values]:
            candidates.extend(value if isinstance(value, list | tuple) else [value])
        return [c for c in candidates if isinstance(c, str | Path) and os.path.isfile(c)]

    def read_paths(self, *inputs: Any) -> list[str]:
        return sorted({str(p) for p in self.reads(*inputs)})

    @contextmanager
    def output(self, path: str | Path) -> Iterator[Path]:
        """A temporary path to write ``path`` to; it replaces ``path`` when the block ends
        without an error (the old file backed up until the dispatch is recorded)."""
        journal = self._journal_now()
        target = _inside_project(self, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.retap-{os.urandom(4).hex()}.tmp"
        journal.record("temp", tmp)
        try:
            yield tmp
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if not tmp.exists():
            raise FileNotFoundError(f"{type(self).__name__} did not write {tmp} for {target}")
        self._save_original(journal, target, "output")
        os.replace(tmp, target)
        self._touched.append(target)

    def modify(self, path: str | Path) -> Path:
        """Back ``path`` up before it is changed in place; restored if the dispatch fails."""
        journal = self._journal_now()
        target = _inside_project(self, path)
        self._save_original(journal, target, "modify")
        self._touched.append(target)
        return target

    def execute(self, *inputs: Any) -> Any:
        """``process`` inside a journal. In a run, whoever records a failure undoes the
        journal (it can ask the store what to keep); called directly, a failure is undone
        here."""
        ctx = self._context or TaskContext(f"direct-{os.getpid()}", "direct", ":memory:",
                                           Owner.current())
        if ctx.owner.pid != os.getpid() and ctx.owner.local and not ctx.owner.alive():
            # a worker handed this job just before its coordinator died: the run's next
            # coordinator may already have settled the journals, so change nothing
            raise Interrupted("the end of its coordinator")
        self._journal: Journal | None = RunFolder(ctx.run, ctx.store).journal(ctx.dispatch,
                                                                              ctx.owner)
        self._touched: list[Path] = []
        try:
            return self.process(*inputs)
        except BaseException:
            if self._context is None:
                self._journal.rollback()
            raise
        finally:
            self._journal = None

    def written_files(self) -> dict[str, str]:
        return {str(p): digest_file(p) for p in dict.fromkeys(self._touched) if p.exists()}

    def _journal_now(self) -> Journal:
        journal = getattr(self, "_journal", None)
        if journal is None:
            raise RuntimeError(f"{type(self).__name__}.output and .modify work while the "
                               "task runs in a workflow (or through .execute)")
        return journal

    @staticmethod
    def _save_original(journal: Journal, target: Path, via: str) -> None:
        if journal.has(target, ("backup", "made")):
            return  # already saved in this dispatch
        if not target.exists():
            journal.record("made", target, via=via)
            return
        journal.save_copy(target, via)

