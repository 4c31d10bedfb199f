"""The PostgreSQL server tests run against: named by ``RETAP_TEST_POSTGRES`` (``.ci/run``
sets it to the local server). Without it, tests that need the server are skipped, saying
how to run them; with it and no server answering, they fail. Each test gets a schema of
its own, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conftest import Project

ENV = "RETAP_TEST_POSTGRES"
HOW = (f"needs PostgreSQL: set {ENV}=postgresql://postgres@127.0.0.1:5432/test "
       "(.ci/run does) to run it")


def server_url() -> str:
    """The server's URL, or skip the test when none is named."""
    url = os.environ.get(ENV, "")
    if not url:
        pytest.skip(HOW)
    return url


@contextmanager
def fresh_schema(prefix: str = "t") -> Iterator[str]:
    """A store URL in a new, empty schema of the test server; the schema is dropped after."""
    from retap.store.postgres import drop_schema, with_schema

    url = with_schema(server_url(), f"retap_{prefix}_{uuid.uuid4().hex[:12]}")
    try:
        yield url
    finally:
        drop_schema(url)


@contextmanager
def on_store(project: Project, kind: str, prefix: str) -> Iterator[Project]:
    """``project`` with its runs in the default SQLite store (``kind`` "sqlite") or in a
    fresh schema of the test server (``"postgres"``, through ``RETAP_STORE``)."""
    if kind == "sqlite":
        yield project
        return
    with fresh_schema(prefix) as url:
        project.env["RETAP_STORE"] = url
        yield project
