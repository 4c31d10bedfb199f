"""Fewer full garbage collections while a run goes on.

A run allocates a few short-lived objects per dispatch, and a run in memory keeps every
record: Python's full collections, which walk every live object, then cost the in-memory
chain about 15% of its time. While any run is going on in this process, a full collection
waits for a thousand collections of the middle generation instead of ten; the young
generations are collected as often as ever, so cyclic garbage a task makes is still freed
promptly. The thresholds the process had come back when the last run ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["fewer_full_collections"]

FULL_EVERY = 1000  # middle-generation collections per full one (Python's default: 10)

_lock = threading.Lock()
_runs = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_full_collections() -> Iterator[None]:
    """While this lasts (runs nest, and may overlap in threads), full collections are
    rarer; the thresholds before the first run are restored after the last."""
    global _runs, _saved
    with _lock:
        if _runs == 0:
            _saved = gc.get_threshold()
            young, middle, full = _saved
            gc.set_threshold(young, middle, max(full, FULL_EVERY))
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
