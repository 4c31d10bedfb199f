"""Code versions: a digest of a task's normalized code and of the project code it uses.

Normalized means the syntax tree without docstrings, so comments, formatting and docs do
not count and a change that can alter a result does. Project code is every module-level
function, class and constant the task reaches, followed from module to module, in modules
that are neither Python's own, nor installed (``site-packages``), nor retap's: editing a
helper re-runs the task, upgrading a library does not. Each reached piece is a *part*
named ``module:qualname`` with a digest of its own, so a change can be named.
"""

from __future__ import annotations

import ast
import builtins
import gc
import hashlib
import inspect
import json
import os
import sys
import textwrap
import types
from collections.abc import Mapping
from functools import cache
from typing import Any

import msgspec

__all__ = ["CodeVersion", "changed_parts", "code_version", "digest_of", "where_changed"]


class CodeVersion(msgspec.Struct, frozen=True):
    """A task's code version and the parts it was made of (none for a pinned ``version``)."""

    digest: str
    parts: dict[str, str] = msgspec.field(default_factory=dict)


def code_version(target: Any, pinned: str | None = None) -> CodeVersion:
    """The code version of a task class or function: ``pinned`` when the task sets
    ``version``, else the digest of every part of project code it reaches."""
    if pinned is not None:
        return CodeVersion(pinned)
    collecting = gc.isenabled()
    gc.disable()  # a syntax tree is many small objects: collections would cost a third
    try:
        parts: dict[str, str] = {}
        pending = [_own_part(target)]
        while pending:
            part = pending.pop()
            if part.name not in parts:
                parts[part.name] = part.digest
                pending.extend(p for p in (_part(*key) for key in part.uses) if p is not None)
    finally:
        if collecting:
            gc.enable()
    return CodeVersion(digest_of(parts), parts)


def digest_of(parts: Mapping[str, str]) -> str:
    """The code version that a set of parts makes."""
    text = json.dumps(dict(sorted(parts.items())), separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def changed_parts(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """The parts that differ, as a user reads them: ``helpers:clean``, ``helpers:LIMIT
    (new)``, ``helpers:old_rule (gone)``."""
    found = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            found.append(f"{name} (new)")
        elif name not in new:
            found.append(f"{name} (gone)")
        elif old[name] != new[name]:
            found.append(name)
    return found


def where_changed(names: Any) -> str:
    """`` in helpers:clean, helpers:LIMIT`` after a code change's digests ("" when the
    parts that changed are not known); ``names`` may come from a stored record."""
    if not isinstance(names, list | tuple) or not names:
        return ""
    return f" in {', '.join(map(str, names))}"


class _Part(msgspec.Struct, frozen=True):
    name: str
    digest: str
    uses: tuple[tuple[str, str], ...]  # (module, name) of the parts it reaches


def _own_part(target: Any) -> _Part:
    """The task's own code: found in its module's syntax tree, else by its source, else
    (code made at run time) by its compiled code."""
    module, qualname = target.__module__, target.__qualname__
    found = _part(module, qualname)
    if found is not None:
        return found
    node = _parse_object(target)
    name = f"{module}:{qualname}"
    if node is None:
        code = getattr(target, "__code__", None) or target.process.__code__
        text = repr((code.co_code, code.co_consts, code.co_names))
        return _Part(name, hashlib.blake2b(text.encode(), digest_size=8).hexdigest(), ())
    return _part_of(_Module.of(module), name, node)


def _part(module: str, name: str) -> _Part | None:
    """A definition or constant of a project module (or the task's own, in any module)."""
    info = _Module.of(module)
    return None if info is None else info.part(name)


def _part_of(info: _Module | None, name: str, node: ast.AST) -> _Part:
    """A part from its syntax tree: its digest, and the project parts its names reach."""
    out: list[str] = []
    names: list[str] = []
    attributes: list[tuple[str, str]] = []
    _scan(node, out, names, attributes)
    digest = hashlib.blake2b("\x00".join(out).encode(), digest_size=8).hexdigest()
    if info is None:
        return _Part(name, digest, ())
    found: list[tuple[str, str]] = []
    for used in dict.fromkeys(names):
        found.extend(_resolve(info, used))
    for owner, attribute in dict.fromkeys(attributes):
        value = info.namespace.get(owner)
        if isinstance(value, types.ModuleType) and _is_project(value):
            found.extend(_resolve(_Module.of(value.__name__), attribute))
    return _Part(name, digest, tuple(dict.fromkeys(found)))


def _resolve(info: _Module | None, name: str, depth: int = 0) -> list[tuple[str, str]]:
    """Where a name used in a module is defined, when that is project code."""
    if info is None or depth > 8 or (name not in info.namespace and hasattr(builtins, name)):
        return []
    value = info.namespace.get(name)
    if isinstance(value, types.ModuleType):
        return []  # a module is followed through its attributes, in _part_of
    try:
        target = inspect.unwrap(getattr(value, "_fn", value)) if callable(value) else value
    except Exception:  # a proxy whose attributes raise: not code to follow
        target = None
    if inspect.isfunction(target) or inspect.isclass(target):
        module = getattr(target, "__module__", None)
        if isinstance(module, str) and module in sys.modules and \
                _is_project(sys.modules[module]) and isinstance(target.__qualname__, str):
            return [(module, target.__qualname__)]
        if module != info.name:
            return []
    if name in info.defs or name in info.assigns:
        return [(info.name, name)]
    source = info.imports.get(name)
    if source is not None and source[0] in sys.modules and _is_project(sys.modules[source[0]]):
        return _resolve(_Module.of(source[0]), source[1], depth + 1)
    return []


class _Module:
    """A module's syntax tree, indexed: definitions by qualname, top-level assignments by
    name, and names imported from other modules."""

    def __init__(self, module: types.ModuleType, tree: ast.Module) -> None:
        self.name = module.__name__
        self.namespace = vars(module)
        self.defs: dict[str, ast.AST] = {}
        self.assigns: dict[str, ast.AST] = {}
        self.imports: dict[str, tuple[str, str]] = {}
        self._parts: dict[str, _Part | None] = {}
        self._index(tree.body, "")

    @staticmethod
    def of(name: str) -> _Module | None:
        """The module's index, parsed once for as long as its file stays the same."""
        module = sys.modules.get(name)
        if module is None:
            return None
        try:
            stat = os.stat(module.__file__ or "")
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except (OSError, TypeError, AttributeError):
            stamp = None  # no file: the source (if any) cannot change under us
        cached = _MODULES.get(name)
        if cached is not None and cached[0] == stamp and cached[1] is not None and \
                cached[1].namespace is vars(module):
            return cached[1]
        try:
            info: _Module | None = _Module(module, ast.parse(inspect.getsource(module)))
        except (OSError, TypeError, SyntaxError, ValueError):
            info = None
        _MODULES[name] = (stamp, info)
        return info

    def part(self, name: str) -> _Part | None:
        if name not in self._parts:
            node = self.defs.get(name) or self.assigns.get(name)
            self._parts[name] = None if node is None else \
                _part_of(self, f"{self.name}:{name}", node)
        return self._parts[name]

    def _index(self, body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.defs[prefix + node.name] = node
                if isinstance(node, ast.ClassDef):
                    self._index(node.body, f"{prefix}{node.name}.")
            elif prefix:
                continue
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            self.assigns[name.id] = node
            elif isinstance(node, ast.ImportFrom):
                source = self._absolute(node)
                for alias in node.names:
                    if alias.name != "*":
                        self.imports[alias.asname or alias.name] = (source, alias.name)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for block in ("body", "orelse", "finalbody"):
                    self._index(getattr(node, block, []), prefix)
                for handler in getattr(node, "handlers", []):
                    self._index(handler.body, prefix)

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = self.namespace.get("__package__") or ""
        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        return f"{base}.{node.module}" if node.module else base


_MODULES: dict[str, tuple[tuple[int, int] | None, _Module | None]] = {}


def _parse_object(target: Any) -> ast.AST | None:
    """The syntax tree of one function or class by its own source (one made inside a
    function, which its module's index does not hold)."""
    try:
        source = textwrap.dedent(inspect.getsource(target))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, ValueError):
        return None
    return tree.body[0] if tree.body else None


_DOCUMENTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _scan(node: ast.AST, out: list[str], names: list[str],
          attributes: list[tuple[str, str]]) -> None:
    """Write the node's normalized form to ``out`` (the tree without positions, comments,
    layout or docstrings: ``ast.dump`` without them, in one pass) and collect the names it
    uses (``x``) and the attributes of names (``helpers.clean``)."""
    kind = type(node)
    out.append(kind.__name__)
    if kind is ast.Name:
        names.append(node.id)  # type: ignore[attr-defined]
    elif kind is ast.Attribute and type(node.value) is ast.Name:  # type: ignore[attr-defined]
        attributes.append((node.value.id, node.attr))  # type: ignore[attr-defined]
    for slot in node._fields:
        value = getattr(node, slot, None)
        if isinstance(value, list):
            if slot == "body" and kind in _DOCUMENTED and value and _is_docstring(value[0]):
                value = value[1:] or [ast.Pass()]
            out.append("[")
            for item in value:
                if isinstance(item, ast.AST):
                    _scan(item, out, names, attributes)
                else:
                    out.append(repr(item))
            out.append("]")
        elif isinstance(value, ast.AST):
            _scan(value, out, names, attributes)
        else:
            out.append(repr(value))


def _is_docstring(node: ast.AST) -> bool:
    return type(node) is ast.Expr and type(node.value) is ast.Constant and \
        isinstance(node.value.value, str)


def _is_project(module: types.ModuleType) -> bool:
    """True for the user's own modules: not Python's, not installed, not retap."""
    return _is_project_file(module.__name__.partition(".")[0], getattr(module, "__file__", None))


@cache
def _is_project_file(top: str, file: str | None) -> bool:
    if top == "retap" or top in sys.stdlib_module_names or not file:
        return False
    path = os.path.realpath(file)
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not any(path.startswith(root + os.sep) for root in _installed_roots())


@cache
def _installed_roots() -> tuple[str, ...]:
    """Where Python's own and installed modules live: the standard library's folder, each
    prefix's ``lib/pythonX.Y`` and the site-packages folders (sysconfig's stdlib,
    platstdlib, purelib and platlib), found without loading sysconfig's build data, which
    costs a recovering process 2 ms before its first step."""
    import site

    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    roots = {os.path.dirname(os.__file__)}
    roots.update(os.path.join(prefix, sys.platlibdir, version) for prefix in
                 (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix))
    roots.update(getattr(site, "getsitepackages", list)())
    return tuple({os.path.realpath(root) for root in roots})
