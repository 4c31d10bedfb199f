"""``retap graph WORKFLOW``: the nodes and joins of a workflow, before running it."""

from __future__ import annotations

import click

from retap.cli.main import main


@main.command("graph")
@click.option("--dot", "fmt", flag_value="dot", help="as a Graphviz digraph")
@click.option("--mermaid", "fmt", flag_value="mermaid", help="as a Mermaid graph")
@click.argument("words", nargs=-1, type=click.UNPROCESSED, metavar="-- WORKFLOW... | FILE")
def graph_cmd(fmt: str | None, words: tuple[str, ...]) -> None:
    """Show a workflow's nodes and joins without running it (like Snakemake's --dag): the
    same words or file `retap run` takes."""
    from retap.cli.cmd_run import build_workflow
    from retap.render import spec_dot, spec_mermaid, spec_text

    spec = build_workflow(list(words), quiet=True).spec()
    show = {"dot": spec_dot, "mermaid": spec_mermaid}.get(fmt or "", spec_text)
    click.echo(show(spec), nl=False)
