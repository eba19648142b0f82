"""One SQLite file: a writer connection serialised by a lock, a reader connection per thread, transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

from cartrecover.errors import StoreError

T = TypeVar("T")


class Transaction(Generic[T]):
    """`with …:` BEGIN on entry; COMMIT on normal exit, ROLLBACK on an exception; sqlite3 errors become StoreError."""

    def __init__(
        self, conn: sqlite3.Connection, lock: threading.Lock | None, mode: str, wrap: Callable[[sqlite3.Connection], T]
    ) -> None:
        self._conn, self._lock, self._mode, self._wrap = conn, lock, mode, wrap

    def __enter__(self) -> T:
        if self._lock:
            self._lock.acquire()
        try:
            self._conn.execute(self._mode)
        except sqlite3.Error as exc:
            if self._lock:
                self._lock.release()
            raise StoreError(f"cannot begin a transaction: {exc}") from exc
        return self._wrap(self._conn)

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


def path_of(url: str) -> str:
    """`sqlite:///relative.db` → `relative.db`, `sqlite:////abs.db` → `/abs.db`, `sqlite://:memory:` → `:memory:`."""
    path = url.removeprefix("sqlite://")
    path = path[1:] if path.startswith("/") else path
    return path or ":memory:"


class Connections:
    """The connections to one file, created with its schema. WAL, so readers never wait for the writer."""

    def __init__(self, path: str, schema: str, *, durability: str = "full") -> None:
        self.path = path
        self._sync = "FULL" if durability == "full" else "NORMAL"
        self.memory = path == ":memory:"
        if not self.memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._uri = f"file:cartrecover-{id(self)}?mode=memory&cache=shared" if self.memory else f"file:{path}"
        self.writer = self._connect()
        self.writer.executescript(schema)
        self.write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA busy_timeout=30000")
            # Checkpoint every ~40 MB of WAL rather than SQLite's 4 MB: the committing thread pays for each
            # checkpoint, and with random message ids nearly every event dirties its own index page (bench/).
            conn.execute("PRAGMA wal_autocheckpoint=10000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        return conn

    def write(self, wrap: Callable[[sqlite3.Connection], T]) -> Transaction[T]:
        """A read-write transaction on the writer connection."""
        return Transaction(self.writer, self.write_lock, "BEGIN IMMEDIATE", wrap)

    def read(self, wrap: Callable[[sqlite3.Connection], T]) -> Transaction[T]:
        """A read snapshot on this thread's own connection (the writer's, for an in-memory database)."""
        if self.memory:
            return Transaction(self.writer, self.write_lock, "BEGIN", wrap)
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._readers.append(conn)
        return Transaction(conn, None, "BEGIN", wrap)

    def close(self) -> None:
        """Close every connection."""
        for conn in [*self._readers, self.writer]:
            conn.close()
