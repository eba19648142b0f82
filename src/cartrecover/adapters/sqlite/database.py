"""Connections, pragmas and the unit of work for the SQLite backend."""

from __future__ import annotations

import sqlite3
import threading
from importlib.resources import files
from pathlib import Path
from types import TracebackType

from cartrecover.adapters.sqlite.carts import SqliteCarts, SqliteTimeline
from cartrecover.adapters.sqlite.eventlog import SqliteCheckpoints, SqliteDeadLetters, SqliteEventLog
from cartrecover.adapters.sqlite.orders import SqliteOrders
from cartrecover.adapters.sqlite.shoppers import SqliteShoppers
from cartrecover.adapters.sqlite.stores import SqliteStores
from cartrecover.adapters.sqlite.timers import SqliteTimers
from cartrecover.domain.events import decode_event, encode_event, redacted
from cartrecover.errors import StoreError


class SqliteUnitOfWork:
    """The repositories over one connection inside one transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.events = SqliteEventLog(conn)
        self.checkpoints = SqliteCheckpoints(conn)
        self.dead_letters = SqliteDeadLetters(conn)
        self.carts = SqliteCarts(conn)
        self.timeline = SqliteTimeline(conn)
        self.timers = SqliteTimers(conn)
        self.shoppers = SqliteShoppers(conn)
        self.orders = SqliteOrders(conn)
        self.stores = SqliteStores(conn)

    def erase_store_data(self, store_id: int) -> None:
        """Delete every row about the store's shoppers; the store and its keys stay."""
        for table in ("carts", "cart_refs", "timeline", "timers", "identities", "shoppers", "orders", "order_refs"):
            self.conn.execute(f"DELETE FROM {table} WHERE store_id=?", (store_id,))
        rows = self.conn.execute("SELECT seq, body FROM events WHERE store_id=?", (store_id,)).fetchall()
        self.conn.executemany(
            "UPDATE events SET body=? WHERE seq=?", [(encode_event(redacted(decode_event(b))), s) for s, b in rows]
        )


class _Transaction:
    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock | None, mode: str) -> None:
        self._conn, self._lock, self._mode = conn, lock, mode

    def __enter__(self) -> SqliteUnitOfWork:
        if self._lock:
            self._lock.acquire()
        try:
            self._conn.execute(self._mode)
        except sqlite3.Error as exc:
            if self._lock:
                self._lock.release()
            raise StoreError(f"cannot begin a transaction: {exc}") from exc
        return SqliteUnitOfWork(self._conn)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self._conn.execute("COMMIT" if kind is None else "ROLLBACK")
        except sqlite3.Error as error:
            if kind is None:
                self._conn.execute("ROLLBACK")
                raise StoreError(f"commit failed: {error}") from error
        finally:
            if self._lock:
                self._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"database error: {exc}") from exc


class SqliteDatabase:
    """One writer connection (serialised by a lock) and one reader connection per thread."""

    def __init__(self, path: str, *, durability: str = "full") -> None:
        self.path = path
        self._sync = "FULL" if durability == "full" else "NORMAL"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._memory = path == ":memory:"
        self._uri = f"file:cartrecover-{id(self)}?mode=memory&cache=shared" if self._memory else f"file:{path}"
        self._writer = self._connect()
        self._writer.executescript(files("cartrecover.adapters.sqlite").joinpath("schema.sql").read_text())
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []

    @classmethod
    def from_url(cls, url: str, *, durability: str = "full") -> SqliteDatabase:
        """`sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or `sqlite://:memory:`."""
        path = url.removeprefix("sqlite://")
        path = path[1:] if path.startswith("/") else path
        return cls(path or ":memory:", durability=durability)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        return conn

    def write(self) -> _Transaction:
        """A read-write transaction on the single writer connection."""
        return _Transaction(self._writer, self._write_lock, "BEGIN IMMEDIATE")

    def read(self) -> _Transaction:
        """A read snapshot on this thread's own connection (the writer's, for an in-memory database)."""
        if self._memory:
            return _Transaction(self._writer, self._write_lock, "BEGIN")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._readers.append(conn)
        return _Transaction(conn, None, "BEGIN")

    def close(self) -> None:
        """Close every connection."""
        for conn in [*self._readers, self._writer]:
            conn.close()
