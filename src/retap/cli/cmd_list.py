"""``retap list``: the tasks that can be used here, with their summaries."""

from __future__ import annotations

import click

from retap.cli.main import main


@main.command("list")
def list_cmd() -> None:
    """List the tasks found in retapfile.py, entry points and built-ins."""
    from retap.discovery import Registry
    from retap.help import task_list

    click.echo(task_list(Registry().all()), nl=False)
