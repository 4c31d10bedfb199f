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
    import psycopg

    url = server_url()
    schema = f"retap_{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{url}{'&' if '?' in url else '?'}schema={schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
