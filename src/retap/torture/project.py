"""A torture case's project folder on disk: its input files, the files its runs produce,
and the journals they leave under ``.retap/backup``."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from retap.journal import BACKUP_ROOT
from retap.torture.filetasks import OUTPUT_DIRS
from retap.torture.plans import INPUT_FILES

__all__ = ["CODE_MODULE", "backup_leftovers", "change_input", "duplicate_stamps", "files",
           "journals", "set_up", "write_code"]

CODE_MODULE = "torture_code"  # the project's own module memoized torture tasks read

LONG_AGO = 1_000_000_000  # an old mtime: the digests of input files get remembered


def set_up(project: Path) -> None:
    """A fresh project with its input files (old, so their digests are remembered)."""
    project.mkdir(parents=True, exist_ok=True)
    for name in INPUT_FILES:
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"input {name}\n" * 3)
        os.utime(path, (LONG_AGO, LONG_AGO))


def change_input(project: Path, name: str, how: str) -> None:
    """Change an input file: ``append`` a line, or ``flip`` one byte in place (same size,
    same inode: only the content digest tells)."""
    path = project / name
    if how == "append":
        with open(path, "a") as fh:
            fh.write("changed\n")
        return
    with open(path, "r+b") as fh:
        fh.seek(0)
        fh.write(b"I")


def write_code(project: Path, variant: str) -> None:
    """The project's own code, in the variant a phase runs with (edited, not just touched,
    when the variant changes: a docstring or a comment alone would change nothing)."""
    path = project / f"{CODE_MODULE}.py"
    text = f'"""The torture case\'s project code."""\n\nVARIANT = {variant!r}\n'
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def files(project: Path) -> dict[str, bytes]:
    """Every file under the output folders (hidden ones too), by relative path."""
    found: dict[str, bytes] = {}
    for folder in OUTPUT_DIRS:
        for path in sorted((project / folder).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(project))] = path.read_bytes()
    return found


def journals(project: Path) -> list[tuple[str, str]]:
    """``(run, dispatch)`` of every journal folder under ``.retap/backup``."""
    root = project / BACKUP_ROOT
    return [(run.name, entry.name) for run in sorted(root.iterdir()) if run.is_dir()
            for entry in sorted(run.iterdir()) if entry.is_dir()] if root.is_dir() else []


def backup_leftovers(project: Path) -> list[str]:
    """Everything left under ``.retap/backup`` (relative paths)."""
    root = project / BACKUP_ROOT
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.is_dir() else []


def duplicate_stamps(project: Path) -> list[str]:
    """Lines that appear twice in a file changed in place: a change applied twice."""
    found = []
    for path in sorted((project / "mod").glob("*")) if (project / "mod").is_dir() else []:
        if path.is_file() and not path.name.startswith("."):
            counts = Counter(path.read_text(errors="replace").splitlines())
            found += [f"{path.name}: {line!r} x{n}" for line, n in counts.items() if n > 1]
    return found
