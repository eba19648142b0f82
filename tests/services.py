"""The real servers of the connected tests, named by `CARTRECOVER_TEST_*` variables.

A test whose server is not named is skipped on a developer's machine and fails under CI (`CI` set), which
must run every connected test. The servers outlive the run: each test works in a schema of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest


def service_url(variable: str) -> str:
    """The server URL in `variable`; skips the test when it is unset, or fails it under CI."""
    url = os.environ.get(variable, "")
    if url:
        return url
    message = f"{variable} is not set: this test needs its server"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI runs every connected test)")
    pytest.skip(message)


def with_search_path(url: str, schema: str) -> str:
    """The PostgreSQL URL with libpq's `options` set so that the connection's tables live in `schema`."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A new, empty schema on the test server, dropped with everything in it afterwards; yields its URL."""
    import psycopg
    from psycopg import sql

    base = service_url("CARTRECOVER_TEST_POSTGRES_URL")
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield with_search_path(base, name)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A Redis cache URL on the test server under a key prefix of its own; its keys are deleted afterwards."""
    from cartrecover.adapters.redis import RedisCache

    base = service_url("CARTRECOVER_TEST_REDIS_URL")
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "prefix"]
    url = urlunsplit(parts._replace(query=urlencode([*query, ("prefix", f"test:{uuid.uuid4().hex[:16]}:")])))
    try:
        yield url
    finally:
        RedisCache.from_url(url).delete_prefix()
