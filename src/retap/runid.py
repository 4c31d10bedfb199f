"""Run ids: what a run may be called. Ids name folders (``.retap/backup/<run>``) and are
typed on command lines, so they are kept to a small, safe alphabet."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from retap.errors import AmbiguousRun, BadRunId, UnknownRun

if TYPE_CHECKING:
    from retap.store.base import Store

__all__ = ["LAST", "check_new_run_id", "check_run_id", "new_run_id", "resolve_run",
           "valid_run_id"]

LAST = "last"  # names the newest run of a store

_RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def valid_run_id(run: Any) -> bool:
    """True for 1-128 ASCII letters, digits, '.', '_' and '-', other than '.' and '..'."""
    return isinstance(run, str) and _RUN_ID.fullmatch(run) is not None and \
        run not in (".", "..")


def check_run_id(run: Any) -> str:
    """``run`` when it is a valid run id; else BadRunId."""
    if not valid_run_id(run):
        raise BadRunId(run if isinstance(run, str) else repr(run))
    return str(run)


def check_new_run_id(run: Any) -> str:
    """``run`` when a new run may be called that: a valid run id, but not ``last`` and not
    beginning with '-' (runs recorded under such ids before are still read)."""
    run = check_run_id(run)
    if run == LAST:
        raise BadRunId(run, "it names the newest run wherever a run is asked for")
    if run.startswith("-"):
        raise BadRunId(run, "a command line would read it as an option (was --run-id given "
                            "no value?)")
    return run


def new_run_id() -> str:
    """A sortable, readable run id: ``20261128-013045-3fa2c1``."""
    import secrets  # here: reading a store makes no run id

    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def resolve_run(store: Store, ref: str) -> str:
    """The id of the run ``ref`` names in ``store``: its id; ``last``, the newest run (unless
    a run is called that); or a prefix of exactly one run's id. UnknownRun when it names
    none, AmbiguousRun (listing them) when a prefix names several."""
    try:
        store.run_info(ref, count=False)
        return ref
    except UnknownRun:
        pass
    runs = [r.run for r in store.runs()]
    if ref == LAST and runs:
        return runs[0]
    found = sorted(r for r in runs if r.startswith(ref)) if ref else []
    if len(found) == 1:
        return found[0]
    if found:
        raise AmbiguousRun(ref, found)
    raise UnknownRun(ref, store.location)
