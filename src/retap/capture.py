"""Captured output: what one attempt at a dispatch printed (stdout, stderr) and logged, kept
with the attempt in the store (``retap logs``) and still shown live as it is written.

While a run captures, ``sys.stdout`` and ``sys.stderr`` are wrapped by streams that write
through and also keep what the running task's thread writes; a handler on the root logger
keeps the records that reach it. That handler is added once something has imported
``logging`` (checked as each attempt starts), so a run whose code never logs starts
without it; an attempt that first imports it keeps its records as Python's last-resort
handler prints them to the wrapped stderr. What a task's own threads or child processes write to the
file descriptors directly is shown but not kept. Past the limit (``RETAP_OUTPUT_LIMIT``
characters, 1 MiB by default) the middle of the text is left out, and the record says how
much: the start and the end of a long output are what people read.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from retap.dispatch import Log

if TYPE_CHECKING:
    import logging

__all__ = ["DEFAULT_LIMIT", "LIMIT_ENV", "Capture", "capturing", "output_limit"]

DEFAULT_LIMIT = 1 << 20
LIMIT_ENV = "RETAP_OUTPUT_LIMIT"
FORMAT = "%(levelname)s %(name)s: %(message)s"


def output_limit(value: str | None = None) -> int:
    """The most characters kept per attempt: ``value`` (or ``$RETAP_OUTPUT_LIMIT``) as a
    whole number with an optional ``k``/``m`` (KiB, MiB) suffix; 0 keeps nothing. Anything
    else is the default, 1 MiB."""
    text = (value if value is not None else os.environ.get(LIMIT_ENV, "")).strip().lower()
    scale = {"k": 1 << 10, "m": 1 << 20}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    return int(digits) * scale if digits.isdigit() else DEFAULT_LIMIT


class _Kept:
    """The text one attempt wrote, bounded while it is written: the first half of the limit
    as it came, the last half in a rolling window."""

    def __init__(self, limit: int) -> None:
        self.half = limit // 2
        self.rest = limit - self.half
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.dropped = 0

    def write(self, text: str) -> None:
        if self.head_size < self.half:
            part = text[:self.half - self.head_size]
            self.head.append(part)
            self.head_size += len(part)
            text = text[len(part):]
        if not text:
            return
        self.tail.append(text)
        self.tail_size += len(text)
        while self.tail_size > self.rest:
            over = self.tail_size - self.rest
            first = self.tail[0]
            if len(first) <= over:
                self.tail.popleft()
                cut = len(first)
            else:
                self.tail[0] = first[over:]
                cut = over
            self.tail_size -= cut
            self.dropped += cut

    def log(self) -> Log | None:
        head, tail = "".join(self.head), "".join(self.tail)
        if self.dropped:
            note = f"\n[retap: {self.dropped} characters left out]\n"
            return Log(head + note + tail, self.dropped)
        return Log(head + tail) if head or tail else None


_local = threading.local()  # .kept: the capture of the attempt this thread runs, if any


def _kept() -> Capture | None:
    return getattr(_local, "kept", None)


class _Tee:
    """A stream that writes through to the one it wraps and keeps what the thread of a
    captured attempt writes."""

    def __init__(self, stream: TextIO) -> None:
        self.wrapped = stream

    def write(self, text: str) -> int:
        written = self.wrapped.write(text)
        kept = _kept()
        if kept is not None and isinstance(text, str):
            kept.write(text)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.wrapped.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, isatty, buffer...
        return getattr(self.wrapped, name)


def _new_handler() -> logging.Handler:
    import logging

    class _Handler(logging.Handler):
        """Keeps the log records a captured attempt's thread emits, each once, formatted
        alike. It stands in for Python's last-resort handler too, which no longer fires
        once any handler is set: with no other handler, a record is shown as that one
        would."""

        def __init__(self) -> None:
            super().__init__(logging.NOTSET)
            self.setFormatter(logging.Formatter(FORMAT))

        def emit(self, record: logging.LogRecord) -> None:
            kept = _kept()
            others = _other_handlers(record.name, self)
            if not others:
                last = logging.lastResort
                if last is not None and record.levelno >= last.level:
                    _local.kept = None  # shown as without retap, kept below as any record is
                    try:
                        last.handle(record)
                    finally:
                        _local.kept = kept
            elif any(isinstance(getattr(h, "stream", None), _Tee) for h in others):
                return  # a handler writing to a wrapped stream is kept there already
            if kept is not None:
                try:
                    kept.write(self.format(record) + "\n")
                except Exception:
                    self.handleError(record)

    return _Handler()


def _other_handlers(name: str, mine: logging.Handler) -> list[logging.Handler]:
    """The handlers besides ``mine`` a record of logger ``name`` reaches."""
    import logging

    found: list[logging.Handler] = []
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None:
        found.extend(h for h in logger.handlers if h is not mine)
        logger = logger.parent if logger.propagate else None
    return found


_lock = threading.Lock()
_users = 0
_held = 0  # long-lived holders (a run, a worker process): attempts inside need not wrap
_handler: logging.Handler | None = None  # made once logging is loaded
_handling = False  # whether _handler is on the root logger
_saved: tuple[TextIO, TextIO] | None = None


def _attach() -> None:
    """Add the handler to the root logger if something has loaded ``logging`` by now (a
    run that never logs saves its import: about 5 ms of every recovery's start)."""
    global _handler, _handling
    if not _handling and "logging" in sys.modules:
        import logging

        if _handler is None:
            _handler = _new_handler()
        logging.getLogger().addHandler(_handler)
        _handling = True


def _wrap() -> None:
    global _users, _saved
    with _lock:
        _users += 1
        if _users == 1:
            _saved = (sys.stdout, sys.stderr)
            sys.stdout, sys.stderr = _Tee(sys.stdout), _Tee(sys.stderr)  # type: ignore[assignment]
            _attach()


def _unwrap() -> None:
    global _users, _saved, _handling
    with _lock:
        _users -= 1
        if _users == 0:
            if _handling:
                import logging

                logging.getLogger().removeHandler(_handler)  # type: ignore[arg-type]
                _handling = False
            assert _saved is not None
            out, err = _saved
            # put back what was there, unless someone has replaced the streams since
            if isinstance(sys.stdout, _Tee) and sys.stdout.wrapped is out:
                sys.stdout = out
            if isinstance(sys.stderr, _Tee) and sys.stderr.wrapped is err:
                sys.stderr = err
            _saved = None


@contextmanager
def capturing() -> Iterator[None]:
    """Wrap stdout and stderr and add the log handler while this lasts (nested uses, from
    several threads, share one wrapping); a run holds it so each attempt need not."""
    global _held
    _wrap()
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        _unwrap()


class Capture:
    """Keep what this thread prints and logs while this lasts, up to ``limit`` characters
    (0: keep nothing, wrap nothing); ``log`` is what was kept. A class, not a generator:
    it is entered once per attempt, and an attempt that prints nothing costs next to
    nothing (the text is kept only from its first write)."""

    __slots__ = ("kept", "limit", "outer", "wrapped")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: _Kept | None = None
        self.outer: Capture | None = None
        self.wrapped = False

    def write(self, text: str) -> None:
        if self.kept is None:
            self.kept = _Kept(self.limit)
        self.kept.write(text)

    @property
    def log(self) -> Log | None:
        return self.kept.log() if self.kept is not None else None

    def __enter__(self) -> Capture:
        if self.limit > 0:
            if not _held:  # no run or worker holds the wrapping: this attempt does
                _wrap()
                self.wrapped = True
            elif not _handling and "logging" in sys.modules:  # loaded since the run began
                with _lock:
                    if _users:
                        _attach()
            self.outer = getattr(_local, "kept", None)
            _local.kept = self
        return self

    def __exit__(self, *exc: object) -> None:
        if self.limit > 0:
            _local.kept = self.outer
            if self.wrapped:
                _unwrap()
