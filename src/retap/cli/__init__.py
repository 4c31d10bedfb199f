"""The ``retap`` command: one small module per subcommand over the public API, each imported
when its subcommand is asked for (``main.COMMANDS``)."""

from retap.cli.main import main

__all__ = ["main"]
