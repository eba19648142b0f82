"""The state store: carts, timers, shoppers, orders, stores and consumer checkpoints, in one SQLite file."""

from __future__ import annotations

import sqlite3

from cartrecover.adapters.migrations import Migrated
from cartrecover.adapters.sqlite.carts import SqliteCarts, SqliteTimeline
from cartrecover.adapters.sqlite.connections import Connections, Transaction, path_of
from cartrecover.adapters.sqlite.decisions import SqliteDecisions, SqliteModels
from cartrecover.adapters.sqlite.eventlog import SqliteCheckpoints, SqliteDeadLetters
from cartrecover.adapters.sqlite.orders import SqliteOrders
from cartrecover.adapters.sqlite.outbox import SqliteOutbox, SqliteSuppressions
from cartrecover.adapters.sqlite.partitions import SqliteLayouts, SqliteLeases
from cartrecover.adapters.sqlite.schema import migrate as apply_migrations
from cartrecover.adapters.sqlite.shoppers import SqliteShoppers
from cartrecover.adapters.sqlite.stores import SqliteStores
from cartrecover.adapters.sqlite.timers import SqliteTimers


class SqliteUnitOfWork:
    """The repositories over one connection inside one transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.checkpoints = SqliteCheckpoints(conn)
        self.dead_letters = SqliteDeadLetters(conn)
        self.layouts = SqliteLayouts(conn)
        self.leases = SqliteLeases(conn)
        self.carts = SqliteCarts(conn)
        self.timeline = SqliteTimeline(conn)
        self.timers = SqliteTimers(conn)
        self.shoppers = SqliteShoppers(conn)
        self.orders = SqliteOrders(conn)
        self.stores = SqliteStores(conn)
        self.outbox = SqliteOutbox(conn)
        self.suppressions = SqliteSuppressions(conn)
        self.decisions = SqliteDecisions(conn)
        self.models = SqliteModels(conn)

    def erase_store_data(self, store_id: int) -> None:
        """Delete every row about the store's shoppers; the store and its keys stay."""
        tables = (
            "carts",
            "cart_refs",
            "cart_variants",
            "timeline",
            "timers",
            "identities",
            "shoppers",
            "orders",
            "order_refs",
            "outbox",
            "decisions",
        )
        for table in (*tables, "suppressions"):
            self.conn.execute(f"DELETE FROM {table} WHERE store_id=?", (store_id,))


class SqliteDatabase:
    """One writer connection (serialised by a lock) and one reader connection per thread.

    Opening the file applies its pending migrations (see `schema`).
    """

    def __init__(self, path: str, *, durability: str = "full") -> None:
        self._db = Connections(path, "", durability=durability)
        self.path = path
        try:
            with self._db.write_lock:
                apply_migrations(self._db.writer, path)
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def migrate(cls, url: str) -> Migrated:
        """Apply the file's pending migrations (`cartrecover migrate`); opening it would apply them too."""
        path = path_of(url)
        connections = Connections(path, "")
        try:
            return apply_migrations(connections.writer, path)
        finally:
            connections.close()

    @classmethod
    def from_url(cls, url: str, *, durability: str = "full") -> SqliteDatabase:
        """`sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or `sqlite://:memory:`."""
        return cls(path_of(url), durability=durability)

    def write(self) -> Transaction[SqliteUnitOfWork]:
        """A read-write transaction on the single writer connection."""
        return self._db.write(SqliteUnitOfWork)

    def read(self) -> Transaction[SqliteUnitOfWork]:
        """A read snapshot on this thread's own connection."""
        return self._db.read(SqliteUnitOfWork)

    def close(self) -> None:
        """Close every connection."""
        self._db.close()
