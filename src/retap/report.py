"""What ``retap show`` tells of a run, as JSON-safe data: status, counts, failed
dispatches (configs, inputs, traceback, attempts), queue, timeline and the dispatches
attempted more than once. The CLI prints it; the web view shows it."""

from __future__ import annotations

from typing import Any

from retap.history import as_shown, attempt_history, event_line, shown_status
from retap.render import attempt_json, attempt_lines, iso, jsonable
from retap.store.base import Store
from retap.store.boundary import STATUSES

__all__ = ["show_report"]


def show_report(store: Store, run: str) -> dict[str, Any]:
    """What ``show`` tells, as the JSON the contract fixes, read from one snapshot."""
    with store.snapshot():
        return _show_report(store, run)


def _show_report(store: Store, run: str) -> dict[str, Any]:
    info = store.run_info(run)
    live = info.effective_status == "running"
    configs = {n["id"]: n.get("config", {}) for n in info.spec.get("nodes", [])}
    failed_records = store.dispatches(run, ["failed"])
    retried = store.earlier_attempts(run)
    shown = store.dispatches(run, STATUSES, retried) if retried else []
    history = attempt_history(store, run, [*failed_records, *shown])
    failed = [{"dispatch": a.id, "node": a.node, "task": a.task,
               "configs": jsonable(configs.get(a.node, {})),
               "inputs": jsonable(list(a.inputs)),
               "error": (a.error or {}).get("message", ""),
               "traceback": (a.error or {}).get("traceback", ""),
               "history": [attempt_json(t) for t in history[a.id]]}
              for a in failed_records]
    queue = [{"dispatch": d.id, "node": d.node, "inputs": jsonable(list(d.inputs))}
             for d in store.queue(run)]
    events = [{"seq": e.seq, "at": iso(e.at), "kind": e.kind, "data": e.data,
               "text": event_line(e)} for e in store.events(run)]
    retries = [{"dispatch": a.id, "node": a.node, "task": a.task, "status": a.status,
                "history": [attempt_json(t) for t in history[a.id]],
                "lines": [line for t in history[a.id] for line in attempt_lines(t)]}
               for a in as_shown(shown, live)]
    counts: dict[str, int] = {}
    for status, n in store.counts(run).items():
        status = shown_status(status, live)
        counts[status] = counts.get(status, 0) + n
    return {"run": info.run, "status": info.effective_status, "created": iso(info.created),
            "counts": counts, "failed": failed, "queue": queue, "events": events,
            "attempted_again": retries}
