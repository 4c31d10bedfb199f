"""The ``retap`` command (also ``python -m retap``).

SIGINT and SIGTERM are caught before anything else is imported: a signal during
start-up ends the command with 130 / 143 and one line, never a traceback. Once a run
starts, the App handles them (``retap.signals``).
"""

from __future__ import annotations

import os
import signal
from types import FrameType


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    os.write(2, f"retap: interrupted by {name}\n".encode())
    os._exit(143 if signum == signal.SIGTERM else 130)


def main() -> None:
    """Run the command line, with start-up signals handled."""
    signal.signal(signal.SIGINT, _exit_on_signal)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        from retap.cli import main as cli

        cli()
    finally:
        # done: a signal now would only race the interpreter's exit (which restores the
        # default handlers and would die by the signal instead of exiting with our code)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


if __name__ == "__main__":
    main()
