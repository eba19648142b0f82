"""Connections to one PostgreSQL database: a pool shared by the process's threads, and transactions.

Writes run at READ COMMITTED and lock what they read for changing (`FOR UPDATE`): the lifecycle's checkpoint
row, so two workers apply the log one after the other as they would on SQLite; the carts and shoppers a
handler reads, so a timer firing and an event on the same cart never overwrite each other's change; and due
steps and timers with `SKIP LOCKED`, so workers claim different ones without waiting. Reads are REPEATABLE
READ snapshots, like SQLite's. A deadlock or a connection lost mid-transaction fails the transaction (StoreError):
nothing of it is committed, and the worker tries again. A connection found closed at BEGIN (the server restarted
since it was last used) is replaced before the transaction starts, so a restart costs no transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from cartrecover.adapters.postgres._options import PoolOptions
from cartrecover.errors import StoreError
from cartrecover.settings import redact_url

T = TypeVar("T")
Conn = psycopg.Connection[TupleRow]

WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED"
READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


def connect(url: str) -> Conn:
    """One connection of its own, autocommit (migrations and the schema check at start-up)."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to {redact_url(url)}: {exc}") from exc


class Transaction(Generic[T]):
    """`with …:` BEGIN on a pooled connection; COMMIT on normal exit, ROLLBACK on an exception.

    psycopg errors become StoreError. A transaction in which a statement failed is never committed, even if
    the caller caught the error (PostgreSQL would roll it back and report success).
    """

    def __init__(self, pool: ConnectionPool[Conn], begin: str, wrap: Callable[[Conn], T]) -> None:
        self._pool, self._begin, self._wrap = pool, begin, wrap
        self._conn: Conn | None = None

    def __enter__(self) -> T:
        self._conn = conn = self._begun()
        return self._wrap(conn)

    def _begun(self) -> Conn:
        """A pooled connection with the transaction begun.

        BEGIN is the health check, at no cost: on a connection the server has closed (a restart, a failover,
        `idle_session_timeout`) it fails before anything is done. That connection is discarded, the pool's idle
        ones are checked at once (`pool.check()`: after a restart they are all stale), and BEGIN is tried on
        another. The pool's own `check=` callback would add a round trip to every transaction, and backs off
        between failed checks (0, 1, 2, 4… s): after a restart with six stale connections a checkout timed out
        (bench/postgres_pool.py).
        """
        failure: psycopg.Error | None = None
        for _ in range(self._pool.max_size + 1):  # each stale connection fails once; fresh ones follow
            conn = self._checkout()
            try:
                conn.execute(self._begin)
            except psycopg.Error as exc:
                self._pool.putconn(conn)  # a closed one is discarded, and replaced in the background
                if not conn.closed:
                    raise StoreError(f"cannot begin a transaction: {exc}") from exc
                failure = exc
                self._pool.check()
            else:
                return conn
        raise StoreError(f"cannot begin a transaction: {failure}") from failure

    def _checkout(self) -> Conn:
        try:
            return self._pool.getconn()
        except psycopg.Error as exc:
            raise StoreError(f"no connection to the state store: {exc}") from exc

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        conn = self._conn
        assert conn is not None, "exit before enter"
        try:
            self._finish(conn, commit=kind is None)
        finally:
            self._pool.putconn(conn)  # the pool discards a broken connection
        if isinstance(exc, psycopg.Error):
            raise StoreError(f"database error: {exc}") from exc

    @staticmethod
    def _finish(conn: Conn, *, commit: bool) -> None:
        if commit and conn.info.transaction_status == TransactionStatus.INERROR:
            conn.execute("ROLLBACK")
            raise StoreError("a statement of the transaction failed: rolled back")
        try:
            conn.execute("COMMIT" if commit else "ROLLBACK")
        except psycopg.Error as error:
            if commit:
                raise StoreError(f"commit failed: {error}") from error
            # A failed rollback leaves nothing to undo: the connection is gone, and the server ended the
            # transaction with it. The caller's own exception is what to report.


def open_pool(url: str, *, durability: str, options: PoolOptions) -> ConnectionPool[Conn]:
    """A pool of autocommit connections (transactions are begun by hand), opened and ready.

    `url` is libpq's, without the pool's parameters (`PoolOptions.from_url`).
    """

    def configure(conn: Conn) -> None:
        if durability != "full":
            # Commits return before the WAL reaches the disk: a server crash may lose the last moments' work,
            # as SQLite's synchronous=NORMAL may on a power cut; a crash of ours loses nothing.
            conn.execute("SET synchronous_commit = off")

    kwargs: dict[str, Any] = {"autocommit": True}
    pool = ConnectionPool(
        url,
        min_size=options.min_size,
        max_size=options.max_size,
        kwargs=kwargs,
        configure=configure,
        open=False,
        name="cartrecover",
    )
    try:
        pool.open(wait=True, timeout=30)
    except psycopg.Error as exc:
        pool.close()
        raise StoreError(f"cannot connect to {redact_url(url)}: {exc}") from exc
    return pool
