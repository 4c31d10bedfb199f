"""Journals: what one file-task dispatch changed on disk, written down before each change
so the change can be undone.

A dispatch's journal lives in ``.retap/backup/<run>/<dispatch>/``; the run's folder says
which process and which store it belongs to (``owner.json``). A journal is dropped once
the commit that records its dispatch is durable, undone at once when its dispatch fails,
and left behind only when the process dies; ``retap.files.settle_journals`` then settles
it before the next run on the project decides anything.

Journals are data, like a store: one that names a path outside the project, a backup
outside its own folder, or a run other than its folder's is never acted on. Folders are
made 0700 and files 0600 whatever the umask.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from msgspec.structs import asdict

from retap import faults
from retap.owner import Owner

__all__ = ["BACKUP_ROOT", "Journal", "JournalRefused", "RunFolder", "abandoned", "drop", "undo"]

BACKUP_ROOT = Path(".retap") / "backup"
OWNER_FILE = "owner.json"
JOURNAL_FILE = "journal.json"
KINDS = ("temp", "made", "backup")  # a temporary file; a file made; a file saved first
VIAS = ("output", "modify")  # written whole by ``output``, or changed in place by ``modify``
_MODE = re.compile(r"(0o[0-7]{1,4})?")  # a file's permission bits; no setuid, no setgid


class JournalRefused(Exception):
    """A journal or run folder that does not hold up: it is left alone, never acted on."""


def project_root() -> Path:
    """The project a run works in: the directory whose ``.retap`` holds its journals."""
    return Path.cwd().resolve()


def inside(path: str | Path, root: Path) -> bool:
    """True when ``path``, with every symlink resolved, lies within ``root``."""
    return Path(os.path.realpath(path)).is_relative_to(root)


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` (0600) through a temporary file renamed into place; the temporary
    file is this thread's own (workers of one run claim its folder at the same time)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    if faults.armed:
        faults.hit("in_journal_write")
    os.replace(tmp, path)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _remove_tree(path: Path) -> None:
    import shutil  # here: it loads zlib, bz2 and lzma, which a run without file tasks skips

    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _folders_locked() -> Iterator[None]:
    """Hold the lock on ``.retap/backup`` that orders claiming a run folder for a journal
    against removing the folder once it holds none: without it a worker's new journal, or
    the owner.json it writes, could go with a folder another process found empty."""
    _private_dir(BACKUP_ROOT)
    fd = os.open(BACKUP_ROOT, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class FolderOwner(msgspec.Struct, frozen=True):
    """What ``owner.json`` says: the run, the process that ran it, and the run's store."""

    run: str
    host: str
    pid: int
    started: float
    store: str

    @property
    def process(self) -> Owner:
        return Owner(self.host, self.pid, self.started)


class RunFolder:
    """The journals of one run (``.retap/backup/<run>/``) and the process that owns them."""

    def __init__(self, run: str, store: str = ":memory:") -> None:
        self.run = run
        self.store = store
        self.dir = BACKUP_ROOT / run

    def journal(self, dispatch: str, owner: Owner | None = None) -> Journal:
        """Begin a journal for ``dispatch`` in this run (see ``Journal.begin``), the folder
        claimed for ``owner`` (the process that owns the run; this one by default)."""
        me = owner or Owner.current()
        claimed = FolderOwner(self.run, me.host, me.pid, me.started, self.store)
        journal = Journal(self.dir, self.run, dispatch)
        with _folders_locked():
            _private_dir(self.dir)
            if self.owner() != claimed:
                _write_private(self.dir / OWNER_FILE, json.dumps(asdict(claimed)))
            journal.begin()
        return journal

    def owner(self) -> FolderOwner | None:
        """The folder's owner, or None when ``owner.json`` is missing or malformed."""
        try:
            data = json.loads((self.dir / OWNER_FILE).read_text())
            owner = FolderOwner(**data)
        except (OSError, ValueError, TypeError):
            return None
        fields = (owner.run, owner.host, owner.store)
        if not all(isinstance(f, str) for f in fields) or not isinstance(owner.pid, int) \
                or not isinstance(owner.started, int | float) or not 0 < owner.pid < 2 ** 31:
            return None
        return owner

    def journals(self) -> list[Journal]:
        """The journals in this folder that hold up, each loaded (see ``Journal.load``)."""
        found = []
        for entry in sorted(self.dir.iterdir()) if self.dir.is_dir() else []:
            if entry.is_dir() and not entry.is_symlink():
                journal = Journal(self.dir, self.run, entry.name)
                try:
                    journal.load()
                except JournalRefused:
                    continue
                found.append(journal)
        return found

    def remove_if_empty(self) -> None:
        """Remove the folder when it holds no journal: only its ``owner.json``, the
        temporary files of ``owner.json`` writes a killed process left half done, and
        dispatch folders a process was killed in before their first journal was saved."""
        with _folders_locked():
            if self.dir.is_dir() and all(p.name == OWNER_FILE or _half_written(p, OWNER_FILE)
                                         or _never_begun(p) for p in self.dir.iterdir()):
                _remove_tree(self.dir)


def _half_written(path: Path, name: str) -> bool:
    """True for the temporary file of a write of ``name`` (``_write_private``) that a
    killed process left before renaming it into place."""
    return path.name.startswith(f"{name}.") and path.name.endswith(".tmp") \
        and path.is_file() and not path.is_symlink()


def _never_begun(path: Path) -> bool:
    """True for a dispatch folder whose journal was never saved (the process was killed
    within ``Journal.begin``): nothing was changed, since a change is written down before
    it is made. Read under the folders lock, so no live ``begin`` is taken for one."""
    try:
        return path.is_dir() and not path.is_symlink() and all(
            _half_written(p, JOURNAL_FILE) for p in path.iterdir())
    except FileNotFoundError:  # a journal dropped just now (``discard`` takes no lock)
        return False


def abandoned(current: str | None = None) -> Iterator[tuple[RunFolder, FolderOwner]]:
    """Run folders whose owning process is gone (``current``, the run this process has
    just claimed, counts as abandoned by its earlier owner). Folders without a readable
    owner, or whose owner names another run, are left alone; one whose owner file was
    never saved goes if it holds nothing else (see ``RunFolder.remove_if_empty``)."""
    if not BACKUP_ROOT.is_dir():
        return
    for path in sorted(BACKUP_ROOT.iterdir()):
        if not path.is_dir() or path.is_symlink():
            continue
        folder = RunFolder(path.name)
        owner = folder.owner()
        if owner is None and not (path / OWNER_FILE).exists():
            folder.remove_if_empty()  # a kill came before its owner file was first saved
        if owner is None or owner.run != path.name:
            continue
        if path.name != current and owner.process.alive():
            continue
        folder.store = owner.store
        yield folder, owner


class Journal:
    """What one dispatch changed, as entries ``[kind, path, backup, via, mode]``, saved
    before each change is made (``mode``: the octal mode a backed-up file is restored
    with, its backup being owner-only meanwhile)."""

    def __init__(self, folder: Path, run: str, dispatch: str) -> None:
        self.dir = folder / dispatch
        self.run = run
        self.dispatch = dispatch
        self.opened = 0
        self.entries: list[list[str]] = []
        self.writer: Owner | None = None  # the process making the changes (a worker)

    def begin(self) -> None:
        """Start this dispatch's journal afresh. A leftover of an earlier attempt (one that
        appeared after the run settled the journals: a late worker of a dead run) is undone
        first, so its changes are not taken for the original state."""
        if self.dir.exists():
            try:
                self.load()
                self._undo(lambda path: False)
            except JournalRefused:
                pass
            _remove_tree(self.dir)
        _private_dir(self.dir)
        self.opened = time.time_ns()
        self.entries = []
        self.writer = Owner.current()
        self._save()

    def writer_gone(self, timeout: float) -> bool:
        """Wait until the process that wrote this journal has exited (a worker of a dead
        coordinator exits on its own within a moment); False if it still runs after
        ``timeout`` seconds: its changes may not be over, so they are not settled yet."""
        deadline = time.monotonic() + timeout
        while self.writer is not None and self.writer.local and self.writer.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def load(self) -> None:
        """Read the journal back, refusing (``JournalRefused``) one that is malformed, that
        names another run or dispatch, a path outside the project, or a backup outside
        its own folder."""
        try:
            data = json.loads((self.dir / JOURNAL_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise JournalRefused(f"{self.dir}: unreadable ({exc})") from None
        if not isinstance(data, dict) or data.get("run") != self.run or \
                data.get("dispatch") != self.dispatch or not isinstance(data.get("opened"), int):
            raise JournalRefused(f"{self.dir}: not this folder's journal")
        writer = data.get("writer")
        if writer is not None:
            if not (isinstance(writer, list) and len(writer) == 3 and isinstance(writer[0], str)
                    and type(writer[1]) is int and 0 < writer[1] < 2 ** 31
                    and isinstance(writer[2], int | float)):
                raise JournalRefused(f"{self.dir}: malformed writer {writer!r}")
            self.writer = Owner(writer[0], writer[1], float(writer[2]))
        entries = data.get("entries")
        if not isinstance(entries, list):
            raise JournalRefused(f"{self.dir}: malformed entries")
        root = project_root()
        for entry in entries:
            _check_entry(entry, root, self.dir)
        self.opened, self.entries = data["opened"], entries

    def record(self, kind: str, path: Path, backup: Path | None = None,
               via: str = "output", mode: int | None = None) -> None:
        """Write down a change before it is made."""
        self.entries.append([kind, str(Path(path).absolute()),
                             str(backup.absolute()) if backup else "", via,
                             oct(mode) if mode is not None else ""])
        self._save()

    def save_copy(self, path: Path, via: str) -> None:
        """Record a backup of ``path``, then copy it into the journal (owner-only)."""
        backup = self.dir / f"backup-{len(self.entries)}"
        self.record("backup", path, backup, via, stat.S_IMODE(path.stat().st_mode))
        copying = backup.with_suffix(".copying")
        import shutil

        fd = os.open(copying, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            os.fchmod(out.fileno(), 0o600)
            shutil.copyfileobj(src, out)
        os.replace(copying, backup)

    def has(self, path: Path, kinds: tuple[str, ...]) -> bool:
        target = str(Path(path).absolute())
        return any(e[1] == target and e[0] in kinds for e in self.entries)

    def rollback(self, keep: Callable[[str], bool] = lambda path: False) -> None:
        """Undo every change, newest first, then drop the journal. A file written whole
        whose current content ``keep`` vouches for (the recorded output of a committed
        dispatch) is left as it is; changes made in place are always undone."""
        self._undo(keep)
        self.discard()

    def _undo(self, keep: Callable[[str], bool]) -> None:
        for kind, path, backup, via, mode in reversed(self.entries):
            if kind == "temp":
                Path(path).unlink(missing_ok=True)
            elif via == "output" and os.path.isfile(path) and keep(path):
                continue
            elif kind == "made":
                Path(path).unlink(missing_ok=True)
            elif kind == "backup" and os.path.isfile(backup):
                os.chmod(backup, int(mode, 8) if mode else 0o644)
                os.replace(backup, path)

    def discard(self) -> None:
        """The dispatch's changes stand: drop the journal and its backups. The journal file
        goes last: a process killed halfway through leaves a journal the next run drops
        again, not backups that no journal names and nothing would ever remove."""
        if self.dir.is_dir():
            for entry in self.dir.iterdir():
                if entry.name == JOURNAL_FILE:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    _remove_tree(entry)
                else:
                    entry.unlink(missing_ok=True)
        _remove_tree(self.dir)
        self.entries = []
        RunFolder(self.run).remove_if_empty()

    def _save(self) -> None:
        data: dict[str, Any] = {"run": self.run, "dispatch": self.dispatch,
                                "opened": self.opened, "entries": self.entries}
        if self.writer is not None:
            data["writer"] = [self.writer.host, self.writer.pid, self.writer.started]
        _write_private(self.dir / JOURNAL_FILE, json.dumps(data))


def _check_entry(entry: Any, root: Path, folder: Path) -> None:
    if not (isinstance(entry, list) and len(entry) == 5 and all(isinstance(e, str)
                                                                for e in entry)):
        raise JournalRefused(f"{folder}: malformed entry {entry!r}")
    kind, path, backup, via, mode = entry
    if kind not in KINDS or via not in VIAS or not _MODE.fullmatch(mode):
        raise JournalRefused(f"{folder}: unknown entry {entry!r}")
    if not path or not inside(path, root) or inside(path, root / ".retap"):
        raise JournalRefused(f"{folder}: names a path outside the project: {path}")
    if kind == "backup" and not inside(backup, folder.resolve()):
        raise JournalRefused(f"{folder}: names a backup outside its folder: {backup}")


def drop(run: str, dispatch: str) -> None:
    """The commit recording ``dispatch`` is durable: its changes stand, its journal goes."""
    Journal(BACKUP_ROOT / run, run, dispatch).discard()


def undo(run: str, dispatch: str, keep: Callable[[str], bool]) -> None:
    """``dispatch`` was recorded as failed after its task returned: undo its changes."""
    journal = Journal(BACKUP_ROOT / run, run, dispatch)
    try:
        journal.load()
    except JournalRefused:  # kept, unless its worker died before saving it (nothing done)
        RunFolder(run).remove_if_empty()
        return
    journal.rollback(keep)
