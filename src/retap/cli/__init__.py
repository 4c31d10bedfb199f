"""The ``retap`` command: one small module per subcommand over the public API."""

from retap.cli import (  # noqa: F401 - registers the subcommands
    cmd_graph,
    cmd_inspect,
    cmd_list,
    cmd_logs,
    cmd_recover,
    cmd_run,
    cmd_schema,
    cmd_store,
    cmd_ui,
)
from retap.cli.main import main

__all__ = ["main"]
