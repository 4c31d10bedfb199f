"""``retap schema``: the JSON Schema of a workflow file, for editors that check YAML."""

from __future__ import annotations

import json

import click

from retap.cli.main import main


@main.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of a workflow file (point your editor's YAML support at it,
    e.g. `# yaml-language-server: $schema=retap-workflow.json`)."""
    from retap.workfile import workflow_file_schema

    click.echo(json.dumps(workflow_file_schema(), indent=2))
