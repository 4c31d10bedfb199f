"""Runs and audits as text, JSON, Graphviz dot and Mermaid.

The audit is a DAG: every dispatch names the dispatches whose results were its
inputs (its sources). The text trail draws it from the lead dispatches down, in the
spirit of Tap's audit dump; a dispatch with several sources is drawn under its first
and referred to (``^``) under the others.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retap.dispatch import Attempt
    from retap.store.base import AuditRecord, RunInfo

__all__ = ["attempt_json", "attempt_lines", "audit_dot", "audit_json", "audit_mermaid",
           "audit_trail", "iso", "jsonable", "runs_json", "runs_table", "upstream_trail"]


def jsonable(value: Any) -> Any:
    """A value as JSON data: tuples and sets become lists, bytes text, others their str."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {k if isinstance(k, str) else json.dumps(jsonable(k)): jsonable(v)
                for k, v in value.items()}
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    return str(value)


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def runs_json(runs: Iterable[RunInfo],
              summaries: dict[str, tuple[float | None, str | None]] | None = None
              ) -> list[dict[str, Any]]:
    """Runs as the contract's JSON; with ``summaries`` (run -> seconds run, command), those
    too, as ``duration`` and ``command``."""
    summaries = summaries or {}
    return [{"run": r.run, "status": r.effective_status, "created": iso(r.created),
             "dispatches": r.dispatches,
             **({"duration": summaries[r.run][0], "command": summaries[r.run][1]}
                if r.run in summaries else {})} for r in runs]


_STATUS_STYLE = {"done": "green", "failed": "red", "interrupted": "yellow", "running": "cyan",
                 "lost": "yellow"}


# a command can hold control characters: a tab prints as a space, the others not at all
_UNPRINTABLE = {c: (" " if c == 9 else None) for c in (*range(32), 127)}


def runs_table(runs: Iterable[RunInfo],
               summaries: dict[str, tuple[float | None, str | None]] | None = None,
               terminal_width: int | None = None) -> str:
    """Runs as a table: on a terminal ``terminal_width`` wide, with status colours (rich);
    else plain columns, never wrapped, for pipes and files (without loading rich)."""
    found = runs_json(runs, summaries)
    if not found:
        return "no runs in this store\n"
    rows = [(r["run"], r["status"], r["created"], _duration(r.get("duration")),
             str(r["dispatches"]), short(r.get("command") or "", 70)) for r in found]
    head = ("RUN", "STATUS", "CREATED", "DURATION", "DISPATCHES")
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    if not terminal_width:
        return "".join(_plain_line(row, widths) for row in [(*head, "COMMAND"), *rows])
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # cells as text, not markup: a command may hold "[red]"

    table = Table(box=None, pad_edge=False, header_style="bold")
    for i, name in enumerate(head):  # these are never cut; a narrow terminal cuts COMMAND
        table.add_column(name, no_wrap=True, justify="right" if i > 2 else "left",
                         min_width=widths[i])
    table.add_column("COMMAND", no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(row[0], Text(row[1], style=_STATUS_STYLE.get(row[1], "")),
                      *row[2:-1], Text(row[-1]))
    width = max(terminal_width, sum(widths) + 2 * len(widths) + 24)  # room for COMMAND
    console = Console(file=io.StringIO(), width=width, highlight=False,
                      color_system="standard", force_terminal=True)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def _plain_line(row: tuple[str, ...], widths: list[int]) -> str:
    """One line of the plain runs table: the columns padded as rich pads them, then the
    command."""
    *fixed, command = row
    cells = [c.rjust(w) if i > 2 else c.ljust(w)
             for i, (c, w) in enumerate(zip(fixed, widths, strict=True))]
    return "  ".join([*cells, command.translate(_UNPRINTABLE)]).rstrip() + "\n"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{secs:02d}s"


def audit_json(audits: Iterable[AuditRecord],
               history: dict[str, list[Attempt]] | None = None,
               configs: dict[Any, Any] | None = None) -> list[dict[str, Any]]:
    """The audit as the contract's JSON; with ``history`` (and ``configs``, by node), all
    a dispatch's record holds: its attempts, inputs, configs, error, timings, files
    written, code version and where a reused result came from."""
    return [{"id": a.id, "node": a.node, "task": a.task, "sources": list(a.sources),
             "status": a.status, "value": jsonable(a.value), "attempts": a.attempts,
             **(_audit_details(a, history, configs or {}) if history is not None else {})}
            for a in audits]


def _audit_details(a: AuditRecord, history: dict[str, list[Attempt]],
                   configs: dict[Any, Any]) -> dict[str, Any]:
    error = a.error or {}
    return {"history": [attempt_json(t) for t in history.get(a.id, [])],
            "inputs": jsonable(list(a.inputs)), "configs": jsonable(configs.get(a.node, {})),
            "error": error.get("message"), "error_type": error.get("type"),
            "started": iso(a.started) if a.started else None,
            "finished": iso(a.finished) if a.finished else None,
            "outputs": a.outputs or {}, "code_version": a.code_version or None,
            "reused_from": a.reused}


def attempt_json(a: Attempt) -> dict[str, Any]:
    error = a.error or {}
    host, pid = a.worker or (None, None)
    return {"n": a.n, "session": a.session, "status": a.status, "host": host, "pid": pid,
            "started": iso(a.started) if a.started else None,
            "finished": iso(a.finished) if a.finished else None,
            "error": error.get("message"), "error_type": error.get("type"),
            "traceback": error.get("traceback") or None}


def _seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def attempt_lines(a: Attempt) -> list[str]:
    """One attempt as lines of ``retap show``: how it ended, then a failure's traceback."""
    took = f" in {_seconds(a.finished - a.started)}" if a.started and a.finished else ""
    when = f" at {iso(a.started)}" if a.started else ""
    error = a.error or {}
    where = f" on {a.worker[0]} (pid {a.worker[1]})" if a.worker else ""
    line = f"  attempt {a.n} (session {a.session}): {a.status}{when}{took}{where}"
    if error:
        line += f": {error.get('type')}: {short(str(error.get('message', '')), 80)}"
    lines = [line]
    if error.get("traceback"):
        lines += ["    " + t for t in str(error["traceback"]).rstrip().splitlines()]
    return lines


def _label(a: AuditRecord) -> str:
    if a.status == "done":
        return short(a.value)
    message = (a.error or {}).get("message", "")
    return f"{a.status.upper()}" + (f": {short(message)}" if message else "")


def audit_trail(audits: list[AuditRecord]) -> str:
    """The provenance DAG as an indented trail, leads first."""
    if not audits:
        return "no dispatches recorded\n"
    by_id = {a.id: a for a in audits}
    children: dict[str, list[AuditRecord]] = {}
    for a in audits:
        for source in a.sources:
            children.setdefault(source, []).append(a)
    lines: list[str] = []
    roots = [a for a in audits if not any(s in by_id for s in a.sources)]
    stack: list[tuple[AuditRecord, str, str, str | None]] = [
        (a, "", "", None) for a in reversed(roots)]
    while stack:
        a, lead, rest, parent = stack.pop()
        home = next((s for s in a.sources if s in by_id), None)
        mark = "x" if a.status in ("failed", "interrupted", "lost") else "o"
        if parent is not None and home != parent:
            lines.append(f"{lead}{mark}-[{a.node} {a.task}] ^ {a.id[:12]}")
            continue
        lines.append(f"{lead}{mark}-[{a.node} {a.task}] {_label(a)}")
        kids = children.get(a.id, [])
        for i in reversed(range(len(kids))):
            last = i == len(kids) - 1
            stack.append((kids[i], rest + ("`-" if last else "|-"),
                          rest + ("  " if last else "| "), a.id))
    return "\n".join(lines) + "\n"


def upstream_trail(audits: list[AuditRecord], dispatch: str) -> str:
    """Where one value came from: ``dispatch`` and, indented under it, the dispatches that
    fed it, back to the leads (one already shown is named, not repeated)."""
    by_id = {a.id: a for a in audits}
    lines: list[str] = []
    shown: set[str] = set()
    stack: list[tuple[AuditRecord, str, str]] = [(by_id[dispatch], "", "")]
    while stack:
        a, lead, rest = stack.pop()
        mark = "x" if a.status in ("failed", "interrupted", "lost") else "o"
        if a.id in shown:
            lines.append(f"{lead}{mark}-[{a.node} {a.task}] ^ {a.id[:12]}")
            continue
        shown.add(a.id)
        lines.append(f"{lead}{mark}-[{a.node} {a.task}] {_label(a)}  ({a.id[:12]})")
        sources = [by_id[s] for s in a.sources if s in by_id]
        for i in reversed(range(len(sources))):
            last = i == len(sources) - 1
            stack.append((sources[i], rest + ("`-" if last else "|-"),
                          rest + ("  " if last else "| ")))
    return "\n".join(lines) + "\n"


def audit_dot(audits: list[AuditRecord]) -> str:
    lines = ["digraph audit {", "  rankdir=TB;", '  node [shape=box, fontname="monospace"];']
    for a in audits:
        label = "\\n".join(_dot_text(t) for t in (f"{a.node} {a.task}", _label(a)))
        color = ', color="red"' if a.status != "done" else ""
        lines.append(f'  "{a.id}" [label="{label}"{color}];')
    known = {a.id for a in audits}
    for a in audits:
        lines.extend(f'  "{s}" -> "{a.id}";' for s in a.sources if s in known)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


STATUS_COLOURS = {"done": "#c8e6c9", "failed": "#ffcdd2", "interrupted": "#ffe0b2",
                  "running": "#bbdefb", "lost": "#ffe0b2"}


def audit_mermaid(audits: list[AuditRecord], styled: bool = False) -> str:
    """The provenance DAG as a Mermaid graph, a node ``d<first 16 of its id>`` per
    dispatch; ``styled``: each coloured by its status (class ``s_<status>``)."""
    lines = ["graph TD"]
    for a in audits:
        label = f"{a.node} {a.task}: {_label(a)}".replace('"', "#quot;")
        lines.append(f'  d{a.id[:16]}["{_mermaid_text(label)}"]')
    known = {a.id for a in audits}
    for a in audits:
        lines.extend(f"  d{s[:16]} --> d{a.id[:16]}" for s in a.sources if s in known)
    if styled:
        lines += [f"  classDef s_{status} fill:{colour},stroke:#555"
                  for status, colour in STATUS_COLOURS.items()]
        lines += [f"  class d{a.id[:16]} s_{a.status}" for a in audits
                  if a.status in STATUS_COLOURS]
    return "\n".join(lines) + "\n"


def _spec_edges(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(source id, target id, join kind)`` of each edge of a spec's joins."""
    nodes = {str(n.get("id")) for n in spec.get("nodes", [])}
    return [(str(s), str(t), str(join.get("kind", ""))) for join in spec.get("joins", [])
            for s in join.get("sources", []) for t in join.get("targets", [])
            if str(s) in nodes and str(t) in nodes]


def spec_text(spec: dict[str, Any]) -> str:
    """A workflow spec as ``retap graph`` prints it: its nodes (leads with their inputs),
    then its joins."""
    joins = spec.get("joins", [])
    targets = {str(t) for j in joins for t in j.get("targets", [])}
    lines = ["nodes:"]
    for n in spec.get("nodes", []):
        ident = str(n.get("id"))
        name = n.get("name") or n.get("task", "")
        leads = "" if ident in targets else "  lead: " + "; ".join(
            short(list(inputs)) for inputs in n.get("leads", [[]]))
        config = f"  {short(n['config'])}" if n.get("config") else ""
        lines.append(f"  {ident} {name}{config}{leads}")
    if joins:
        lines.append("joins:")
        for j in joins:
            options = {k: v for k, v in j.items() if k not in ("id", "kind", "sources",
                                                                "targets") and v}
            extra = f"  {short(options)}" if options else ""
            lines.append(f"  {j.get('kind')}: {', '.join(map(str, j.get('sources', [])))} -> "
                         f"{', '.join(map(str, j.get('targets', [])))}{extra}")
    return "\n".join(lines) + "\n"


def spec_dot(spec: dict[str, Any]) -> str:
    """A workflow spec as a Graphviz digraph: its nodes, and each join's edges labelled
    with its kind."""
    lines = ["digraph workflow {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for n in spec.get("nodes", []):
        ident = str(n.get("id"))
        label = _dot_text(f"{ident} {n.get('name') or n.get('task', '')}")
        lines.append(f'  "{_dot_text(ident)}" [label="{label}"];')
    lines += [f'  "{_dot_text(s)}" -> "{_dot_text(t)}" [label="{_dot_text(kind)}"];'
              for s, t, kind in _spec_edges(spec)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def spec_mermaid(spec: dict[str, Any]) -> str:
    """A stored workflow spec as a Mermaid graph: its nodes, and each join as edges from
    its sources to its targets labelled with its kind."""
    nodes = spec.get("nodes", [])
    key = {str(n.get("id")): f"n{i}" for i, n in enumerate(nodes)}
    lines = ["graph LR"]
    for n in nodes:
        ident = str(n.get("id"))
        label = _mermaid_text(f"{ident} {n.get('name') or n.get('task', '')}")
        lines.append(f'  {key[ident]}["{label}"]')
    lines += [f"  {key[s]} -->|{_mermaid_text(kind)}| {key[t]}"
              for s, t, kind in _spec_edges(spec)]
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Text as a Mermaid label holds it: no quote, bracket, pipe or newline to end it."""
    for char, entity in (('"', "#quot;"), ("|", "#124;"), ("\n", " "), ("[", "#91;"),
                         ("]", "#93;")):
        text = text.replace(char, entity)
    return text
