"""The state store on PostgreSQL: the same tables and transactions as SQLite's, shared by many processes."""

from __future__ import annotations

from cartrecover.adapters.migrations import Migrated
from cartrecover.adapters.postgres import schema
from cartrecover.adapters.postgres._options import PoolOptions
from cartrecover.adapters.postgres.carts import PostgresCarts, PostgresTimeline
from cartrecover.adapters.postgres.connections import READ, WRITE, Conn, Transaction, connect, open_pool
from cartrecover.adapters.postgres.decisions import PostgresDecisions, PostgresModels
from cartrecover.adapters.postgres.eventlog import PostgresCheckpoints, PostgresDeadLetters
from cartrecover.adapters.postgres.orders import PostgresOrders
from cartrecover.adapters.postgres.outbox import PostgresOutbox, PostgresSuppressions
from cartrecover.adapters.postgres.partitions import PostgresLayouts, PostgresLeases
from cartrecover.adapters.postgres.shoppers import PostgresShoppers
from cartrecover.adapters.postgres.stores import PostgresStores
from cartrecover.adapters.postgres.timers import PostgresTimers
from cartrecover.settings import redact_url

_ERASED = (
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
    "suppressions",
)


class PostgresUnitOfWork:
    """The repositories over one connection inside one transaction; `writable`: rows read to change are locked."""

    def __init__(self, conn: Conn, *, writable: bool) -> None:
        lock = " FOR UPDATE" if writable else ""
        self.conn = conn
        self.checkpoints = PostgresCheckpoints(conn, writable=writable)
        self.dead_letters = PostgresDeadLetters(conn)
        self.layouts = PostgresLayouts(conn)
        self.leases = PostgresLeases(conn)
        self.carts = PostgresCarts(conn, lock)
        self.timeline = PostgresTimeline(conn)
        self.timers = PostgresTimers(conn)
        self.shoppers = PostgresShoppers(conn, lock)
        self.orders = PostgresOrders(conn, lock)
        self.stores = PostgresStores(conn)
        self.outbox = PostgresOutbox(conn, lock)
        self.suppressions = PostgresSuppressions(conn)
        self.decisions = PostgresDecisions(conn)
        self.models = PostgresModels(conn)

    def erase_store_data(self, store_id: int) -> None:
        """Delete every row about the store's shoppers; the store and its keys stay."""
        for table in _ERASED:
            self.conn.execute(f"DELETE FROM {table} WHERE store_id=%s", (store_id,))


def _writer(conn: Conn) -> PostgresUnitOfWork:
    return PostgresUnitOfWork(conn, writable=True)


def _reader(conn: Conn) -> PostgresUnitOfWork:
    return PostgresUnitOfWork(conn, writable=False)


class PostgresDatabase:
    """A pool of connections to one database (and schema); any number of processes may open it at once.

    Opening checks the schema's version and refuses a database that is behind: run `cartrecover migrate`.
    """

    def __init__(self, url: str, *, durability: str = "full") -> None:
        self.url = redact_url(url)
        libpq_url, self.pool_options = PoolOptions.from_url(url)
        with connect(libpq_url) as conn:
            self.version = schema.check(conn, self.url)
        self._pool = open_pool(libpq_url, durability=durability, options=self.pool_options)

    @classmethod
    def from_url(cls, url: str, *, durability: str = "full") -> PostgresDatabase:
        """`postgresql://user:password@host:5432/db` (or `postgres://…`); libpq's parameters may follow, as
        `?options=-csearch_path%3Dcartrecover` to keep the tables in the schema `cartrecover`, and the pool's,
        `pool_min` and `pool_max` (`PoolOptions`); a wrong pool size is a ConfigError."""
        return cls(url, durability=durability)

    @classmethod
    def migrate(cls, url: str) -> Migrated:
        """Apply the database's pending migrations (`cartrecover migrate`)."""
        libpq_url, _ = PoolOptions.from_url(url)  # the same URL as the processes', pool parameters and all
        with connect(libpq_url) as conn:
            return schema.migrate(conn, redact_url(url))

    def write(self) -> Transaction[PostgresUnitOfWork]:
        """A read-write transaction on a pooled connection."""
        return Transaction(self._pool, WRITE, _writer)

    def read(self) -> Transaction[PostgresUnitOfWork]:
        """A read-only snapshot on a pooled connection."""
        return Transaction(self._pool, READ, _reader)

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()
