"""File tasks: files read and written through retap, so a run that fails or dies never
leaves a half-written output behind, and a task whose files did not change is not run
again.

A ``FileTask`` writes each output with ``self.output(path)``: a temporary path in the
same directory, renamed into place when the block succeeds. A file changed in place
goes through ``self.modify(path)``, which backs it up first. Every change is written to
a journal (``.retap/backup/<run>/<dispatch>/``) *before* it is made; when the dispatch
fails the journal is undone at once, and when the process dies it is undone before the
dispatch runs again. Files are compared by content digest, remembered by (size, mtime, inode),
so touching a file does not make it look changed, and changing one byte does.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from retap.store.base import Owner, Store
from retap.task import Task

__all__ = ["BACKUP_ROOT", "FileDigests", "FileTask", "Input", "Journal", "Output", "RunBackups",
           "digest_file", "roll_back_abandoned"]

BACKUP_ROOT = Path(".retap") / "backup"


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

    def __init__(self, store: Store) -> None:
        self.store = store

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
        if time.time() - st.st_mtime > RACY_SECONDS:
            self.store.remember_file(os.path.abspath(path), key, value)
        return value


class Journal:
    """What one dispatch changed on disk, recorded before each change so it can be undone.

    Entries: ``temp`` (a temporary file that may exist), ``made`` (a file that did not
    exist before), ``backup`` (a file saved before it was replaced or changed in place).
    """

    def __init__(self, root: Path, dispatch: str) -> None:
        self.dir = root / dispatch
        self.entries: list[list[str]] = []

    def begin(self) -> None:
        """Start afresh, first undoing what a killed earlier attempt left half done."""
        if self.dir.exists():
            self.load()
            self.rollback()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.entries = []
        self._save()

    def load(self) -> None:
        try:
            self.entries = json.loads((self.dir / "journal.json").read_text())
        except (OSError, ValueError):
            self.entries = []

    def record(self, kind: str, path: Path, backup: Path | None = None) -> None:
        self.entries.append([kind, str(path), str(backup or "")])
        self._save()

    def backup_path(self) -> Path:
        return self.dir / f"backup-{len(self.entries)}"

    def rollback(self) -> None:
        """Undo every recorded change, newest first, then forget the journal."""
        for kind, path, backup in reversed(self.entries):
            if kind in ("temp", "made"):
                Path(path).unlink(missing_ok=True)
            elif kind == "backup" and Path(backup).exists():
                os.replace(backup, path)
        self.discard()

    def discard(self) -> None:
        """The dispatch's changes stand: drop the backups (and the run's folder when empty)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self.entries = []
        if {p.name for p in self.dir.parent.glob("*")} <= {OWNER_FILE}:
            shutil.rmtree(self.dir.parent, ignore_errors=True)

    def _save(self) -> None:
        tmp = self.dir / "journal.json.tmp"
        tmp.write_text(json.dumps(self.entries))
        os.replace(tmp, self.dir / "journal.json")


OWNER_FILE = "owner.json"


class RunBackups:
    """The journals of one run (``.retap/backup/<run>/``), with the process that owns them,
    so another run can tell abandoned journals from live ones."""

    _tidied: set[str] = set()  # runs for which this process rolled back abandoned journals

    def __init__(self, run: str) -> None:
        self.run = run
        self.dir = BACKUP_ROOT / run

    def journal(self, dispatch: str) -> Journal:
        """The journal of ``dispatch``, after undoing what dead runs left half done."""
        if self.run not in self._tidied:
            roll_back_abandoned(self.run)
            self._tidied.add(self.run)
        self.dir.mkdir(parents=True, exist_ok=True)
        owner = self.dir / OWNER_FILE
        if _owner(owner) != Owner.current():
            owner.write_text(json.dumps(asdict(Owner.current())))
        return Journal(self.dir, dispatch)


def roll_back_abandoned(current: str) -> None:
    """Undo the file changes of dispatches whose run's process died part way through them."""
    if not BACKUP_ROOT.is_dir():
        return
    for folder in BACKUP_ROOT.iterdir():
        owner = _owner(folder / OWNER_FILE)
        if folder.name == current or not folder.is_dir() or (owner and owner.alive()):
            continue
        for entry in folder.iterdir():
            if entry.is_dir():
                journal = Journal(folder, entry.name)
                journal.load()
                journal.rollback()
        shutil.rmtree(folder, ignore_errors=True)


def _owner(path: Path) -> Owner | None:
    try:
        return Owner(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


class FileTask(Task, abstract=True, cache="inputs"):
    """A task that reads and writes files; skipped while its files are up to date.

    Override ``reads`` when the files a dispatch reads are not simply its inputs and
    configs that name existing files. Write outputs with ``with self.output(path) as
    tmp:`` and change files in place only after ``self.modify(path)``.
    """

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
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.retap-{secrets.token_hex(4)}.tmp"
        journal.record("temp", tmp)
        try:
            yield tmp
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if not tmp.exists():
            raise FileNotFoundError(f"{type(self).__name__} did not write {tmp} for {target}")
        self._save_original(journal, target)
        os.replace(tmp, target)
        self._touched.append(target)

    def modify(self, path: str | Path) -> Path:
        """Back ``path`` up before it is changed in place; restored if the dispatch fails."""
        journal = self._journal_now()
        target = Path(path)
        self._save_original(journal, target)
        self._touched.append(target)
        return target

    def execute(self, *inputs: Any) -> Any:
        run = self._app.run_id if self._app is not None else f"direct-{os.getpid()}"
        self._journal = RunBackups(run).journal(self.dispatch_id or "direct")
        self._journal.begin()
        self._touched: list[Path] = []
        try:
            return self.process(*inputs)
        except BaseException:
            self._journal.rollback()
            raise

    def written_files(self) -> dict[str, str]:
        return {str(p): digest_file(p) for p in dict.fromkeys(self._touched) if p.exists()}

    def after_commit(self, done: bool) -> None:
        if done:
            self._journal.discard()
        else:
            self._journal.rollback()  # recorded as failed after it returned: undo its files

    def _journal_now(self) -> Journal:
        journal = getattr(self, "_journal", None)
        if journal is None:
            raise RuntimeError(f"{type(self).__name__}.output and .modify work while the "
                               "task runs in a workflow (or through .execute)")
        return journal

    @staticmethod
    def _save_original(journal: Journal, target: Path) -> None:
        if any(e[1] == str(target) and e[0] in ("backup", "made") for e in journal.entries):
            return  # already saved in this dispatch
        if not target.exists():
            journal.record("made", target)
            return
        backup = journal.backup_path()
        journal.record("backup", target, backup)
        copying = backup.with_suffix(".copying")
        shutil.copy2(target, copying)
        os.replace(copying, backup)
