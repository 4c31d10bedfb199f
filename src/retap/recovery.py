"""Resume and replay: the two ways a failed or interrupted run continues in place.

``resume`` restores the saved queue and join states (failed and in-flight dispatches
first) and continues: O(pending + join state). ``replay`` rebuilds a clean workflow
from the stored spec, enqueues the leads again and runs with the store as a
dispatch-level cache: a done dispatch is not called, its recorded result flows
through the joins, so their state is rebuilt. Both go through the store's atomic
claim, so two of them cannot run one run at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from retap.app import App, RunResult
from retap.codeversion import CodeVersion, changed_parts, where_changed
from retap.configs import coerce_text, to_json, validate_one
from retap.dispatch import Dispatch, NodeId
from retap.errors import InflightNotIdempotent, StoreCorrupt, UnknownConfig, UsageError
from retap.history import recorded_code, session_facts
from retap.middleware import Middleware
from retap.secret import SecretSource
from retap.store.base import SESSIONS, Owner, RunInfo, RunLog, Store, busy_owner
from retap.workflow import Workflow

__all__ = ["CodeChange", "Recovery", "parse_set", "replay", "resume"]


class CodeChange(msgspec.Struct, frozen=True):
    """A node whose task code changed since some of its dispatches were done."""

    node: NodeId
    task: str
    old: str
    new: str
    parts: tuple[str, ...] = ()  # what changed, when the run's timeline kept the old parts

    def __str__(self) -> str:
        return (f"node {self.node} ({self.task}): code {self.old} -> {self.new}"
                f"{where_changed(self.parts)}")


class Recovery(msgspec.Struct):
    """What a resume or replay is about to do, before it runs."""

    info: RunInfo
    workflow: Workflow
    changes: list[CodeChange]
    settings: list[dict[str, Any]]  # each --set applied: node, key, old and new value
    from_nodes: list[NodeId] = msgspec.field(default_factory=list)  # replay --from: run these again
    older_versions: bool = False  # the run's sessions kept no pieces: an older retap's

    @property
    def already_done(self) -> bool:
        return self.info.effective_status == "done"


def parse_set(text: str) -> tuple[NodeId, str, str]:
    """``NODE.KEY=VALUE`` -> (node, key, value); a node of ASCII digits is an index."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"--set {text!r} is not valid UTF-8") from None
    target, eq, value = text.partition("=")
    node, dot, key = target.rpartition(".")
    if not eq or not dot or not node or not key:
        raise UsageError(f"--set expects NODE.KEY=VALUE, got {text!r}")
    index = node.isascii() and node.isdecimal()
    return (int(node) if index else node), key.replace("-", "_"), value


def prepare(store: Store, run: str, settings: Iterable[tuple[NodeId, str, Any]] = (),
            take_over: bool = False) -> Recovery:
    """Rebuild the run's workflow from its spec, apply ``--set``s, and list code changes."""
    info = store.run_info(run, count=False)  # what resume needs, without a pass over history
    busy = busy_owner(info, Owner.current(), take_over)
    if busy is not None:
        raise busy
    settings = list(settings)
    workflow = info.workflow if info.workflow is not None else Workflow.from_spec(
        info.spec, secrets=SecretSource(run, {(n, k): v for n, k, v in settings}))
    applied = [set_config(workflow, node, key, value) for node, key, value in settings]
    current = {n: type(workflow.nodes[n].task).__retap__.code for n in workflow.nodes}
    changed = [(node, task, version) for node, task, version in store.versions(run)
               if node in current and version != current[node].digest
               and store.holds_version(run, node, task, version)]
    events = store.events(run) if changed else []
    recorded = recorded_code(events)
    changes = [CodeChange(node, task, version, current[node].digest,
                          _changed(recorded, version, current[node]))
               for node, task, version in changed]
    older = bool(changed) and not any(isinstance(e.data.get("code"), dict) for e in events
                                      if e.kind in SESSIONS)
    return Recovery(info, workflow, changes, applied, older_versions=older)


def _changed(recorded: dict[str, dict[str, str]], old: str, new: CodeVersion
             ) -> tuple[str, ...]:
    return tuple(changed_parts(recorded[old], new.parts)) if old in recorded and new.parts \
        else ()


def set_config(workflow: Workflow, node: NodeId, key: str, value: Any) -> dict[str, Any]:
    """Apply one ``--set`` (NODE an id, an index or a task's name); what it changed, as the
    run's timeline keeps it (a secret as its keyed digest, as a spec keeps it)."""
    node = workflow.find_node(node, "--set")
    task = workflow.nodes[node].task
    info = type(task).__retap__
    spec = info.configs.get(key)
    if spec is None:
        raise UnknownConfig(info.name, key, info.configs)
    if isinstance(value, str):
        value = coerce_text(info.name, spec, [value])
    old = task._config.get(key, spec.default)
    task._config[key] = validate_one(info.name, spec, value)
    return {"node": node, "key": key, "old": _as_json(spec, old),
            "new": _as_json(spec, task._config[key])}


def _as_json(spec: Any, value: Any) -> Any:
    try:
        return to_json(spec, value)
    except Exception:  # a value pydantic cannot dump (a default of no declared type)
        return repr(value)


def _warn_changes(recovery: Recovery, rerun_changed: bool,
                  notify: Callable[[str], None] | None) -> None:
    if not recovery.changes or notify is None:
        return
    how = "re-running them and what depends on them" if rerun_changed else \
        "reusing their recorded results (--rerun-changed re-runs them)"
    notify(f"warning: task code changed since these dispatches ran; {how}:")
    for change in recovery.changes:
        notify(f"  {change}")
    if recovery.older_versions:
        notify("  (this run was recorded by an older retap, which computed code versions from "
               "source text: they differ even where the code did not change)")


def resume(store: Store, run: str, *, settings: Iterable[tuple[NodeId, str, Any]] = (),
           rerun_inflight: bool = False, rerun_changed: bool = False,
           middleware: Iterable[Middleware] = (), on_error: str = "stop",
           notify: Callable[[str], None] | None = None,
           explain: Callable[[str], None] | None = None, take_over: bool = False,
           **running: Any) -> RunResult:
    """Continue ``run`` from its saved queue and join states. A dispatch the saved queue
    names but the store has as done is answered from the store, never executed.
    ``running``: ``jobs``, ``executor`` and ``timeout``, as ``App`` takes them."""
    recovery = prepare(store, run, list(settings), take_over)
    _warn_changes(recovery, rerun_changed, notify)
    if rerun_changed and recovery.changes:
        return _replay(store, recovery, rerun_inflight, True, middleware, on_error, notify,
                       explain, take_over, running)
    if recovery.already_done:
        store.check_structure()
        return RunResult(run, "done", store)
    app = _claim(store, recovery, "resumed", (rerun_inflight, False), take_over, middleware,
                 on_error, notify, explain, running, lambda app, log: app.attach(
                     log, _known(store, recovery.workflow, store.queue(run)),
                     store.join_states(run, recovery.workflow.joins), cache=log.lookup()))
    return app.run()


def _known(store: Store, workflow: Workflow, queue: list[Dispatch]) -> list[Dispatch]:
    """The saved queue, refused (StoreCorrupt) if it names a node the workflow lacks."""
    for d in queue:
        if d.node not in workflow.nodes:
            raise StoreCorrupt(store.location, f"the saved queue names node {d.node!r}, which "
                                               "the run's workflow does not have")
    return queue


def replay(store: Store, run: str, *, settings: Iterable[tuple[NodeId, str, Any]] = (),
           rerun_inflight: bool = False, rerun_changed: bool = False,
           middleware: Iterable[Middleware] = (), on_error: str = "stop",
           notify: Callable[[str], None] | None = None,
           explain: Callable[[str], None] | None = None,
           halt_before_execute: bool = False, take_over: bool = False,
           from_nodes: Iterable[NodeId] = (), **running: Any) -> RunResult:
    """Run ``run`` again from a clean workflow, answering done dispatches from the store,
    in the order they were recorded; the dispatches of ``from_nodes`` and everything
    downstream of them run again (their earlier attempts are kept). ``running``: as for
    ``resume``."""
    recovery = prepare(store, run, list(settings), take_over)
    recovery.from_nodes = _nodes(recovery.workflow, from_nodes)
    _warn_changes(recovery, rerun_changed, notify)
    if recovery.already_done and not (rerun_changed and recovery.changes) and \
            not recovery.from_nodes:
        store.check_structure()
        return RunResult(run, "done", store)
    return _replay(store, recovery, rerun_inflight, rerun_changed, middleware, on_error, notify,
                   explain, take_over, running, halt_before_execute)


def _nodes(workflow: Workflow, given: Iterable[NodeId]) -> list[NodeId]:
    """The nodes ``given`` (ids, indexes or task names), each checked: none may feed, at or
    above it, a join that groups results by when they arrive (gate, sync). Running such a
    node again changes what arrives when, so the join would release a second, differently
    grouped batch beside the recorded one, and a later replay could not rebuild either."""
    nodes = [workflow.find_node(node, "--from") for node in given]
    again = {*nodes, *workflow.downstream(nodes)}
    for join in workflow.joins:
        if join.kind in ("gate", "sync") and again.intersection(join.sources):
            fed = sorted(map(str, again.intersection(join.sources)))
            raise UsageError(f"--from: node(s) {', '.join(fed)} feed {join.kind} join "
                             f"{join.id}, which groups results by when they arrive; running "
                             "them again would record a second batch beside the first, so "
                             "replay --from does not take a node at or above a gate or sync")
    return nodes


def _replay(store: Store, recovery: Recovery, rerun_inflight: bool, rerun_changed: bool,
            middleware: Iterable[Middleware], on_error: str,
            notify: Callable[[str], None] | None, explain: Callable[[str], None] | None,
            take_over: bool, running: dict[str, Any], halt: bool = False) -> RunResult:
    app = _claim(store, recovery, "replayed", (rerun_inflight, rerun_changed), take_over,
                 middleware, on_error, notify, explain, running,
                 lambda app, log: app.attach(log, cache=log.cached()))
    again = set(recovery.from_nodes)
    if rerun_changed:
        again |= {c.node for c in recovery.changes}
    if again:
        app.rerun_nodes = again
        app.force_nodes = set(recovery.from_nodes)
    app.halt_before_execute = halt
    app.enqueue_leads_for_replay()
    return app.run()


def _claim(store: Store, recovery: Recovery, kind: str, rerun: tuple[bool, bool],
           take_over: bool, middleware: Iterable[Middleware], on_error: str,
           notify: Callable[[str], None] | None, explain: Callable[[str], None] | None,
           running: dict[str, Any], attach: Callable[[App, RunLog], None]) -> App:
    """Claim the run through the store's atomic claim, record the session on its timeline
    (a ``resumed`` or ``replayed`` event, then what ``--set`` changed and what code
    changed) and attach an App to it; a resume or replay refused while attaching leaves
    the run as it was."""
    run = recovery.info.run
    rerun_inflight, rerun_changed = rerun
    _check_inflight(store, recovery, rerun_inflight)
    app = App(recovery.workflow, store, run_id=run, middleware=middleware, on_error=on_error,
              notify=notify, explain=explain, **running)
    log = store.claim_run(run, Owner.current(), take_over)
    try:
        if recovery.info.workflow is None:
            log.update_spec(recovery.workflow.spec())
        info = recovery.info
        took_over = str(info.owner) if info.status == "running" and info.owner else None
        log.start_session(kind, {**session_facts(recovery.workflow), "took_over": took_over,
                                 "options": {"rerun_inflight": rerun_inflight,
                                             "rerun_changed": rerun_changed,
                                             "from": recovery.from_nodes,
                                             "on_error": on_error, "take_over": take_over}})
        for change in recovery.settings:
            log.event("set", change)
        for code in recovery.changes:
            log.event("code", {"node": code.node, "task": code.task, "old": code.old,
                               "new": code.new, "changed": list(code.parts),
                               "decision": "re-run" if rerun_changed else "reused"})
        # the claim and the session's events are written; nothing else is until the
        # store's structure check passes (it reads the whole file: the first dispatch
        # goes on beside it)
        log.hold_writes_until(store.start_structure_check())
        attach(app, log)
    except BaseException:
        log.finish(log.previous)  # refused before anything ran: the run stays as it was
        raise
    return app


def _check_inflight(store: Store, recovery: Recovery, rerun_inflight: bool) -> None:
    """Dispatches stopped part-way (left running by a dead process, or aborted by a second
    signal) re-run only if their task is idempotent, or when asked."""
    if rerun_inflight:
        return
    risky = []
    for record in store.dispatches(recovery.info.run, ["running", "interrupted"]):
        node = recovery.workflow.nodes.get(record.node)
        if node is not None and not node.task.idempotent:
            risky.append((record.id, record.node, record.task))
    if risky:
        raise InflightNotIdempotent(recovery.info.run, risky)
