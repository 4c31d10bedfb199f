"""Joins: the edges that pass a node's result on, and their explicit, serialisable state.

Kinds: ``join`` (each result goes to every target alone: sequence, fork, merge),
``sync`` (one result from every source, passed on as a list in source order),
``switch`` (the result goes to one target, picked from the result), ``gate``
(results collected and passed on as a list when ``limit`` is reached or the queue
drains). Modifiers: ``enq`` (targets are queued, breadth-first, instead of run
next), ``iterate`` (each item of a list goes on alone), ``splat`` (a list becomes
the target's positional inputs).

A join's mutable state lives in a ``JoinState`` holding only audit ids and
counters in its serialised form, so it can be stored, restored and compared.
"""

from __future__ import annotations

import importlib
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from retap.dispatch import Dispatch, JoinIds, NodeId
from retap.errors import JoinError, SpecError

__all__ = ["Gate", "Join", "JoinKind", "JoinState", "Switch", "Sync", "join_from_dict",
           "selector"]

_SELECTOR_MARK = "__retap_selector__"


F = TypeVar("F", bound=Callable[..., Any])


def selector(fn: F) -> F:
    """Declare ``fn`` a switch selector. A recorded workflow may name it by import path,
    and a selector named by a spec, a store or a file is called only when so declared:
    a store is data, and cannot make retap call ``builtins:eval``."""
    if not callable(fn):
        raise SpecError(repr(fn), "@retap.selector decorates a function")
    setattr(fn, _SELECTOR_MARK, True)
    return fn


def is_selector(fn: Any) -> bool:
    return callable(fn) and getattr(fn, _SELECTOR_MARK, False) is True


class JoinState:
    """Results a join holds between dispatches: one FIFO of (audit id, value) per slot.

    Every change is logged in ``changes`` as ``("add", slot, id)``, ``("take", slot, id,
    value)`` or ``("count", n)`` so a store can persist exactly what a dispatch changed,
    and ``undo`` can take a failed dispatch's changes back.
    """

    __slots__ = ("changes", "count", "slots")

    def __init__(self, nslots: int, count: int = 0) -> None:
        self.slots: list[deque[tuple[str, Any]]] = [deque() for _ in range(nslots)]
        self.count = count
        self.changes: list[tuple[Any, ...]] = []

    def push(self, slot: int, audit_id: str, value: Any) -> None:
        self.slots[slot].append((audit_id, value))
        self.changes.append(("add", slot, audit_id))

    def take(self, slot: int, n: int) -> list[tuple[str, Any]]:
        fifo = self.slots[slot]
        taken = [fifo.popleft() for _ in range(min(n, len(fifo)))]
        self.changes.extend(("take", slot, aid, value) for aid, value in taken)
        return taken

    def bump(self) -> int:
        """Advance the firing counter; returns the number the firing gets."""
        number = self.count
        self.count += 1
        self.changes.append(("count", self.count))
        return number

    def undo(self, changes: list[tuple[Any, ...]]) -> None:
        """Take ``changes`` back, newest first."""
        for change in reversed(changes):
            if change[0] == "add":
                self.slots[change[1]].pop()
            elif change[0] == "take":
                self.slots[change[1]].appendleft((change[2], change[3]))
            else:
                self.count = change[1] - 1

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON: audit ids per slot (values live in the audit) and the counter."""
        return {"slots": [[aid for aid, _ in fifo] for fifo in self.slots], "count": self.count}


class Join:
    """Plain join: every result of every source goes to every target, alone."""

    kind: ClassVar[str] = "join"

    def __init__(self, id: NodeId, sources: list[NodeId], targets: list[NodeId], *,
                 enq: bool = False, iterate: bool = False, splat: bool = False) -> None:
        self.id = id
        self.sources = list(sources)
        self.targets = list(targets)
        self.enq, self.iterate, self.splat = enq, iterate, splat
        self._ids: dict[NodeId, JoinIds] = {}  # by target: what its dispatch ids are made by

    def new_state(self) -> JoinState | None:
        return None

    def receive(self, state: JoinState | None, slot: int, audit_id: str,
                value: Any) -> Iterable[Dispatch]:
        """Take one result from the source in ``slot``; what goes on."""
        if len(self.targets) == 1:  # a sequence: the common case, without a second list
            return self.expand(self.targets[0], value, (audit_id,), None)
        return [d for target in self.targets
                for d in self.expand(target, value, (audit_id,), None)]

    def drain(self, state: JoinState | None) -> list[Dispatch]:
        """Release what is held when the queue has run dry (gates only)."""
        return []

    def expand(self, target: NodeId, value: Any, sources: tuple[str, ...],
               part: Any) -> list[Dispatch]:
        """Apply iterate and splat: the dispatches one passed-on value makes."""
        ids = self._ids.get(target)
        if ids is None:
            ids = self._ids[target] = JoinIds(self.id, target)
        if not self.iterate:
            return [Dispatch(ids(sources, part), target, self._inputs(value), sources)]
        return [Dispatch(ids(sources, index if part is None else [part, index]),
                         target, self._inputs(item), sources)
                for index, item in enumerate(self._items(value, "iterate"))]

    def _inputs(self, value: Any) -> tuple[Any, ...]:
        return tuple(self._items(value, "splat")) if self.splat else (value,)

    def _items(self, value: Any, flag: str) -> list[Any] | tuple[Any, ...]:
        if isinstance(value, list | tuple):
            return value
        raise JoinError(self.id, f"{flag} needs a list result, got {type(value).__name__} "
                                 f"{_short(value)}")

    @property
    def flags(self) -> str:
        return "q" * self.enq + "i" * self.iterate + "s" * self.splat

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "sources": self.sources,
                                "targets": self.targets}
        for key in ("enq", "iterate", "splat"):
            if getattr(self, key):
                data[key] = True
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, {self.sources}->{self.targets} {self.flags})"


class Sync(Join):
    """Waits for one result from every source, then passes them on as a list in source order.

    Each source has a FIFO slot, so a source that finishes twice before the others is
    paired with their next results rather than lost or raised on.
    """

    kind = "sync"

    def new_state(self) -> JoinState:
        return JoinState(len(self.sources))

    def receive(self, state: JoinState | None, slot: int, audit_id: str,
                value: Any) -> Iterator[Dispatch]:
        assert state is not None
        state.push(slot, audit_id, value)
        if not all(state.slots):
            return
        taken = [state.take(i, 1)[0] for i in range(len(state.slots))]
        state.bump()
        sources = tuple(aid for aid, _ in taken)
        values = [v for _, v in taken]
        for target in self.targets:
            yield from self.expand(target, values, sources, None)


class Gate(Join):
    """Collects results from any source; passes them on as one list every ``limit`` results,
    and passes on what is left when the queue drains (no limit: only then)."""

    kind = "gate"

    def __init__(self, id: NodeId, sources: list[NodeId], targets: list[NodeId], *,
                 limit: int | None = None, **flags: bool) -> None:
        super().__init__(id, sources, targets, **flags)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 1):
            raise SpecError(f"gate {id}", f"limit must be a positive int, not {limit!r}")
        self.limit = limit

    def new_state(self) -> JoinState:
        return JoinState(1)

    def receive(self, state: JoinState | None, slot: int, audit_id: str,
                value: Any) -> Iterator[Dispatch]:
        assert state is not None
        state.push(0, audit_id, value)
        if self.limit is not None and len(state.slots[0]) >= self.limit:
            yield from self._release(state, self.limit)

    def drain(self, state: JoinState | None) -> list[Dispatch]:
        assert state is not None
        return list(self._release(state, len(state.slots[0]))) if state.slots[0] else []

    def _release(self, state: JoinState, n: int) -> Iterator[Dispatch]:
        batch = state.take(0, n)
        number = state.bump()
        sources = tuple(aid for aid, _ in batch)
        values = [v for _, v in batch]
        for target in self.targets:
            yield from self.expand(target, values, sources, number)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.limit is not None:
            data["limit"] = self.limit
        return data


@selector
def pair_selector(result: Any) -> tuple[int, Any]:
    """The command line's switch rule: a result ``[index, value]`` sends value to target index."""
    if isinstance(result, (list, tuple)) and len(result) == 2 and \
            isinstance(result[0], int) and not isinstance(result[0], bool):  # true is no index
        return result[0], result[1]
    raise ValueError(f"a switch expects a result [index, value], got {_short(result)}")


class Switch(Join):
    """Passes each result to one target, chosen by a selector.

    ``selector(result)`` returns the target's index (the whole result goes on); with no
    selector, the result must be ``[index, value]`` and ``value`` goes on.
    """

    kind = "switch"

    def __init__(self, id: NodeId, sources: list[NodeId], targets: list[NodeId], *,
                 selector: Callable[[Any], int] | str | None = None, **flags: bool) -> None:
        super().__init__(id, sources, targets, **flags)
        self.selector = resolve_selector(selector, f"switch {id}") if isinstance(
            selector, str) else selector

    def receive(self, state: JoinState | None, slot: int, audit_id: str,
                value: Any) -> Iterable[Dispatch]:
        index, value = self._select(value)
        if not isinstance(index, int) or not 0 <= index < len(self.targets):
            raise JoinError(self.id, f"switch picked target {index!r}, but it has "
                                     f"{len(self.targets)} target(s) {self.targets}")
        return self.expand(self.targets[index], value, (audit_id,), None)

    def _select(self, value: Any) -> tuple[Any, Any]:
        try:
            if self.selector is None:
                return pair_selector(value)
            return self.selector(value), value
        except Exception as exc:
            raise JoinError(self.id, f"switch selector failed: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.selector is not None:
            what = f"selector of switch {self.id}"
            data["selector"] = callable_path(self.selector, what)
            if not is_selector(self.selector):
                raise SpecError(what, f"{data['selector']} is not a declared selector; "
                                      "decorate it with @retap.selector so a recorded run "
                                      "may call it")
        return data


class JoinKind(StrEnum):
    """The kinds of join, as ``Workflow.join`` takes them (plain strings work too)."""

    JOIN = "join"  # each result goes on to every target
    SYNC = "sync"  # one result of each source, together, as a list in source order
    SWITCH = "switch"  # each result to the target its selector picks
    GATE = "gate"  # results in batches of ``limit`` (or all, when the queue drains)


KINDS: dict[str, type[Join]] = {JoinKind.JOIN: Join, JoinKind.SYNC: Sync,
                                JoinKind.SWITCH: Switch, JoinKind.GATE: Gate}


_OPTIONS = {"join": set(), "sync": set(), "gate": {"limit"}, "switch": {"selector"}}
_FLAG_NAMES = ("enq", "iterate", "splat")


def make_join(id: NodeId, kind: str, sources: Any, targets: Any, **options: Any) -> Join:
    """Build a join of ``kind``, checking every option; SpecError names what is wrong."""
    what = f"join {id!r}"
    if not isinstance(id, int | str) or isinstance(id, bool):
        raise SpecError(what, "join ids are ints or strings")
    if not isinstance(kind, str) or kind not in KINDS:
        raise SpecError(what, f"unknown join kind {kind!r} (known: {', '.join(KINDS)})")
    for key, value in options.items():
        if key in _FLAG_NAMES:
            if not isinstance(value, bool):
                raise SpecError(what, f"{key} must be true or false, not {value!r}")
        elif key in ("limit", "selector") and key not in _OPTIONS[kind]:
            owner = "gate" if key == "limit" else "switch"
            raise SpecError(what, f"only a {owner} takes a {key}, not a {kind}")
        elif key not in _OPTIONS[kind]:
            raise SpecError(what, f"unknown join option {key!r}")
    selector = options.get("selector")
    if selector is not None and not (isinstance(selector, str) or callable(selector)):
        raise SpecError(what, f"selector must be 'module:function', not {selector!r}")
    return KINDS[kind](id, _node_ids(what, "sources", sources),
                       _node_ids(what, "targets", targets), **options)


def _node_ids(what: str, role: str, value: Any) -> list[NodeId]:
    ids = [value] if isinstance(value, int | str) else value
    if not isinstance(ids, list | tuple) or not all(
            isinstance(i, int | str) and not isinstance(i, bool) for i in ids):
        raise SpecError(what, f"{role} must be node ids (ints or names), not {value!r}")
    return list(ids)


def join_from_dict(data: dict[str, Any]) -> Join:
    """Rebuild a join from its ``to_dict`` form."""
    if not isinstance(data, dict) or "sources" not in data or "targets" not in data:
        raise SpecError("join", f"expected a mapping with sources and targets, not {data!r}")
    options = {k: data[k] for k in (*_FLAG_NAMES, "limit", "selector") if k in data}
    return make_join(data.get("id", 0), data.get("kind", "join"), data["sources"],
                     data["targets"], **options)


def callable_path(fn: Callable[..., Any], what: str) -> str:
    """``module:qualname`` of a callable, or SpecError when it cannot be imported back."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<lambda>" in qualname or "<locals>" in qualname or not qualname:
        raise SpecError(what, f"{qualname or fn!r} cannot be recorded: a lambda or a function "
                              "defined inside a function has no import path; define it at "
                              "module level (or run with --store :memory:)")
    return f"{module}:{qualname}"


def resolve_selector(path: str, what: str) -> Any:
    """The declared selector at ``module:qualname``; anything else is refused unused."""
    obj = import_path(path, what)
    if not is_selector(obj):
        raise SpecError(what, f"{path} is not a declared selector (@retap.selector); "
                              "refusing to call it")
    return obj


_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def import_path(path: str, what: str) -> Any:
    """Import ``module:qualname`` (plain identifiers, no dunders); SpecError on a miss."""
    module_name, _, qualname = path.partition(":")
    if not (_PATH.fullmatch(module_name) and _PATH.fullmatch(qualname)) or "__" in path:
        raise SpecError(what, f"{path!r} is not an import path (module:name)")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # a module that fails to import is refused, whatever it raised
        raise SpecError(what, f"cannot import {path!r}: {type(exc).__name__}: {exc}") from None
    return obj


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
