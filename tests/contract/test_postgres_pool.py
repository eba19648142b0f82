"""The PostgreSQL state store's pool: its sizes from the URL (`pool_min`, `pool_max`, never passed to libpq), wrong
sizes refused at start-up, and connections the server closed replaced before a transaction begins on them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.adapters.postgres._options import PoolOptions
from cartrecover.bootstrap import open_database
from cartrecover.entrypoints import cli
from cartrecover.errors import ConfigError
from tests.conftest import make_settings
from tests.services import postgres_schema, service_url

URL = "postgresql://app:secret@db.internal:5432/shop"


def test_without_pool_parameters_the_url_is_unchanged_and_the_sizes_are_the_defaults() -> None:
    url = f"{URL}?sslmode=require&options=-csearch_path%3Dcartrecover"
    assert PoolOptions.from_url(url) == (url, PoolOptions(min_size=1, max_size=10))
    assert PoolOptions.from_url(URL) == (URL, PoolOptions(1, 10))


def test_the_pool_parameters_are_taken_out_and_libpqs_are_kept_as_written() -> None:
    url = f"{URL}?sslmode=require&pool_min=2&options=-csearch_path%3Dcartrecover&pool_max=20"
    libpq, options = PoolOptions.from_url(url)
    assert libpq == f"{URL}?sslmode=require&options=-csearch_path%3Dcartrecover"
    assert options == PoolOptions(2, 20)
    assert PoolOptions.from_url(f"{URL}?pool_max=4") == (URL, PoolOptions(1, 4))
    assert PoolOptions.from_url(f"{URL}?pool_min=0") == (URL, PoolOptions(0, 10))


def test_a_pool_min_above_the_default_max_raises_the_max_with_it() -> None:
    assert PoolOptions.from_url(f"{URL}?pool_min=25") == (URL, PoolOptions(25, 25))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("pool_max=ten", "pool_max must be a whole number of connections, 1 or more, not 'ten'"),
        ("pool_max=0", "pool_max must be a whole number of connections, 1 or more, not '0'"),
        ("pool_max=", "pool_max must be a whole number of connections, 1 or more, not ''"),
        ("pool_max=2.5", "pool_max must be a whole number of connections, 1 or more, not '2.5'"),
        ("pool_min=-1", "pool_min must be a whole number of connections, 0 or more, not '-1'"),
        ("pool_min=%C2%B2", "pool_min must be a whole number of connections, 0 or more, not '²'"),
        ("pool_min=5&pool_max=2", "pool_min (5) is more than pool_max (2)"),
        ("pool_max=5&pool_max=6", "pool_max is given twice"),
    ],
)
def test_a_wrong_pool_size_is_refused_with_what_is_wrong(query: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        PoolOptions.from_url(f"{URL}?{query}")
    assert refused.value.message == f"database_url: {message}"
    assert "secret" not in refused.value.message


def test_a_wrong_pool_size_stops_the_process_at_start_before_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = "postgresql://app:secret@127.0.0.1:1/shop?pool_min=3&pool_max=2"
    with pytest.raises(ConfigError, match=r"pool_min \(3\) is more than pool_max \(2\)"):
        open_database(make_settings(tmp_path, database_url=unreachable))
    monkeypatch.setenv("CARTRECOVER_DATABASE_URL", unreachable)
    assert cli.main(["migrate", "--data-dir", str(tmp_path / "data")]) == 1
    assert capsys.readouterr().err == "cartrecover: database_url: pool_min (3) is more than pool_max (2)\n"


@pytest.fixture
def named_url() -> Iterator[tuple[str, str]]:
    """A migrated schema of the test's own, and an application_name that tells this test's connections apart."""
    with postgres_schema() as url:
        name = f"cartrecover-test-{uuid.uuid4().hex[:12]}"
        yield f"{url}&application_name={name}", name


def connections_named(name: str) -> list[int]:
    """The server processes of the connections with that application_name."""
    with psycopg.connect(service_url("CARTRECOVER_TEST_POSTGRES_URL"), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchall()
    return [row[0] for row in rows]


def test_a_url_with_pool_parameters_migrates_and_connects_and_libpq_never_sees_them(
    named_url: tuple[str, str],
) -> None:
    url, name = named_url
    url += "&pool_min=2&pool_max=3"
    PostgresDatabase.migrate(url)
    database = PostgresDatabase.from_url(url)
    try:
        assert database.pool_options == PoolOptions(2, 3)
        assert len(connections_named(name)) == 2  # pool_min connections are open from the start
        with database.read() as uow:
            dsn = uow.conn.info.dsn
            search_path = uow.conn.execute("SHOW search_path").fetchone()
        assert "pool_" not in dsn and f"application_name={name}" in dsn
        assert search_path is not None and search_path[0].startswith("test_")  # libpq's `options` still apply
    finally:
        database.close()


def test_connections_the_server_closed_while_idle_are_replaced_before_a_transaction_begins(
    named_url: tuple[str, str],
) -> None:
    url, name = named_url
    PostgresDatabase.migrate(url)
    database = PostgresDatabase.from_url(url)
    try:
        with ExitStack() as stack:  # four connections, then all idle in the pool
            for _ in range(4):
                stack.enter_context(database.read())
        idle = connections_named(name)
        assert len(idle) == 4
        with psycopg.connect(service_url("CARTRECOVER_TEST_POSTGRES_URL"), autocommit=True) as admin:
            for pid in idle:  # as idle_session_timeout or a proxy would; waits until each is gone
                admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        with database.write() as uow:
            row = uow.conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None and row[0] not in idle
    finally:
        database.close()
