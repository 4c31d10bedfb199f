"""Where tasks come from: ``retapfile.py`` in the working directory, ``module:Name``,
the ``retap.tasks`` entry-point group, and the built-ins. Earlier sources win a name.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from retap.errors import RetapError, TaskImportError, UnknownTask
from retap.taskdef import Task

__all__ = ["Registry", "resolve_task", "tasks_in"]

BUILTINS = "retap.tasks.builtin"
RETAPFILE = "retapfile"
ENTRY_POINT_GROUP = "retap.tasks"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_IMPORT_PATH = re.compile(rf"{_NAME}(\.{_NAME})*:{_NAME}(\.{_NAME})*")


@dataclass(frozen=True)  # not a msgspec struct: `retap list` reads no store, loads no msgspec
class Found:
    """A task and the place it was found, for ``retap list``."""

    cls: type[Task]
    source: str


def tasks_in(module: ModuleType) -> list[type[Task]]:
    """The tasks a module defines itself: Task subclasses and ``@task`` functions."""
    found = []
    for value in vars(module).values():
        if (isinstance(value, type) and issubclass(value, Task) and value is not Task
                and value.__module__ == module.__name__
                and "__retap__" in value.__dict__ and not value.__retap__.abstract):
            found.append(value)
    return found


class Registry:
    """Tasks by command-line name, looked up lazily in the order above."""

    def __init__(self, cwd: str | Path | None = None) -> None:
        self.cwd = Path(cwd or Path.cwd())
        self._installed: list[Any] | None = None

    def _entry_points(self) -> list[Any]:
        """The installed packages' task entry points, read once: each read scans every
        installed distribution's metadata (milliseconds), and a command line names a task
        per node."""
        if self._installed is None:
            from importlib.metadata import entry_points

            self._installed = list(entry_points(group=ENTRY_POINT_GROUP))
        return self._installed

    def find(self, name: str) -> type[Task]:
        """The task called ``name`` (or at ``module:Name``); UnknownTask on a miss."""
        if ":" in name:
            return self.resolve(name)
        retapfile = self.retapfile()
        if retapfile is not None:
            for cls in tasks_in(retapfile):
                if cls.__retap__.name == name:
                    return cls
        for ep in self._entry_points():
            if ep.name == name:
                return _entry_point_task(ep)
        for cls in tasks_in(importlib.import_module(BUILTINS)):
            if cls.__retap__.name == name:
                return cls
        raise UnknownTask(name, self.all())

    def resolve(self, path: str) -> type[Task]:
        """The task at ``module:QualName`` (the retapfile module is read from ``cwd``)."""
        module_name, _, qualname = path.partition(":")
        if not _IMPORT_PATH.fullmatch(path) or "__" in path:
            raise UnknownTask(path, why="not an import path (module:Name)")
        module = self.retapfile() if module_name == RETAPFILE else \
            _import(module_name, self.cwd, path)
        if module is None:
            raise UnknownTask(path, why=f"there is no {RETAPFILE}.py in {self.cwd}")
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if not (isinstance(obj, type) and issubclass(obj, Task) and "__retap__" in obj.__dict__
                and not obj.__retap__.abstract):
            raise UnknownTask(path, why=f"{module_name} has no task {qualname}")
        return obj

    def all(self) -> dict[str, Found]:
        """Every task by name, first source winning: retapfile, entry points, built-ins."""
        found: dict[str, Found] = {}
        retapfile = self.retapfile()
        if retapfile is not None:
            for cls in tasks_in(retapfile):
                found.setdefault(cls.__retap__.name, Found(cls, f"{RETAPFILE}.py"))
        for ep in self._entry_points():
            try:
                found.setdefault(ep.name, Found(_entry_point_task(ep), ep.value))
            except RetapError as exc:
                print(f"retap: skipping entry point {ep.name}: {exc}", file=sys.stderr)
        for cls in tasks_in(importlib.import_module(BUILTINS)):
            found.setdefault(cls.__retap__.name, Found(cls, "built-in"))
        return found

    def retapfile(self) -> ModuleType | None:
        """The ``retapfile.py`` of ``cwd`` as the module ``retapfile`` (loaded once)."""
        path = (self.cwd / f"{RETAPFILE}.py").resolve()
        loaded = sys.modules.get(RETAPFILE)
        if loaded is not None and getattr(loaded, "__file__", None) == str(path):
            return loaded
        if not path.is_file():
            return None
        if str(self.cwd) not in sys.path:
            sys.path.insert(0, str(self.cwd))
        spec = importlib.util.spec_from_file_location(RETAPFILE, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[RETAPFILE] = module
        try:
            spec.loader.exec_module(module)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: a retapfile must not end retap
            del sys.modules[RETAPFILE]
            raise TaskImportError(str(path), _where(exc, str(path))) from None
        return module


def _import(module_name: str, cwd: Path, path: str) -> ModuleType:
    """The module of the task ``path`` names."""
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownTask(path, why=f"cannot import {module_name}: {exc}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise TaskImportError(module_name, _where(exc, module_name)) from None


def _where(exc: BaseException, path: str) -> str:
    """``ZeroDivisionError: division by zero (line 3)``: what failed and where in ``path``."""
    line = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == path or frame.filename.endswith(path):
            line = f" (line {frame.lineno})"
            break
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    if isinstance(exc, RetapError):
        return exc.message + line
    message = str(exc)
    return f"{type(exc).__name__}{': ' if message else ''}{message}{line}"


def _entry_point_task(ep: Any) -> type[Task]:
    try:
        obj = ep.load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise TaskImportError(f"entry point {ep.name} = {ep.value}", _where(exc, "")) from None
    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise TaskImportError(f"entry point {ep.name}", f"{ep.value} is not a retap task")
    return obj


_default: Registry | None = None


def resolve_task(path: str) -> type[Task]:
    """Resolve a spec's ``module:Name`` with a registry on the working directory."""
    global _default
    if _default is None or _default.cwd != Path.cwd():
        _default = Registry()
    return _default.resolve(path)
