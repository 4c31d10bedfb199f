"""``retap ui``: a local web view of the store's runs."""

from __future__ import annotations

import os
import secrets
import socket

import click

from retap.cli.main import echo_err, main, store_location, store_option
from retap.errors import UsageError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@main.command("ui")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="the port to listen on (0: any free one)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="the address to listen on; anything but loopback lets other machines "
                   "in (with the token)")
@store_option
@click.pass_context
def ui_cmd(ctx: click.Context, port: int, host: str, store: str | None) -> None:
    """A web view of the store's runs: statuses, each run's workflow and dispatch graph,
    every dispatch's inputs, value, attempts, output and traceback, live while runs run;
    resume and replay from the page. Prints the URL to open (it holds a token that
    changes every start); Ctrl-C stops it."""
    import uvicorn

    from retap.ui.server import make_app

    location = store_location(ctx, store)
    if location == ":memory:":
        raise UsageError("--store :memory: keeps no runs to show")
    if "://" not in location:
        location = os.path.abspath(location)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})"
                         ) from None
    token = secrets.token_urlsafe(24)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"http://{shown}:{bound}/?token={token}")
    if host not in LOOPBACK:
        echo_err(f"warning: listening on {host}: other machines can reach this view")
    echo_err(f"the web view of {location}; Ctrl-C stops it")
    app = make_app(location, os.getcwd(), token)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="on"))
    server.run(sockets=[sock])
