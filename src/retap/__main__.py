"""The ``retap`` command (also ``python -m retap``).

SIGINT and SIGTERM are caught before anything else is imported: a signal during
start-up ends the command with 130 / 143 and one line, never a traceback. Once a run
starts, the App handles them (``retap.signals``). ``_signal`` is the C half of
``signal``, which would cost an import of ``enum`` here.
"""

from __future__ import annotations

import _signal
import os

_NAMES = {_signal.SIGINT: "SIGINT", _signal.SIGTERM: "SIGTERM"}


def _exit_on_signal(signum: int, frame: object) -> None:
    os.write(2, f"retap: interrupted by {_NAMES[signum]}\n".encode())
    os._exit(143 if signum == _signal.SIGTERM else 130)


def main() -> None:
    """Run the command line, with start-up signals handled."""
    for signum in _NAMES:
        _signal.signal(signum, _exit_on_signal)
    try:
        from retap.cli import main as cli

        cli()
    finally:
        # done: a signal now would only race the interpreter's exit (which restores the
        # default handlers and would die by the signal instead of exiting with our code)
        for signum in _NAMES:
            _signal.signal(signum, _signal.SIG_IGN)


if __name__ == "__main__":
    main()
