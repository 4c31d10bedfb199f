"""Run ids: what a run may be called. Ids name folders (``.retap/backup/<run>``) and are
typed on command lines, so they are kept to a small, safe alphabet."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

from retap.errors import BadRunId

__all__ = ["check_run_id", "new_run_id", "valid_run_id"]

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


def new_run_id() -> str:
    """A sortable, readable run id: ``20261128-013045-3fa2c1``."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
