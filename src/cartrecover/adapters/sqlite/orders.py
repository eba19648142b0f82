"""Orders in SQLite, indexed by the join keys they carry."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

import msgspec

from cartrecover.adapters.sqlite._ids import rows_for_ids
from cartrecover.ports.orders import Order

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Order)


class SqliteOrders:
    """One row per order plus one per join key."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, store_id: int, order_id: str) -> Order | None:
        """The order, or None."""
        row = self._conn.execute(
            "SELECT body FROM orders WHERE store_id=? AND order_id=?", (store_id, order_id)
        ).fetchone()
        return _decoder.decode(row[0]) if row else None

    def get_many(self, store_id: int, order_ids: Collection[str]) -> dict[str, Order]:
        """The orders that exist, by id, a chunk of ids a query."""
        sql = "SELECT body FROM orders WHERE store_id=? AND order_id IN ({ids})"
        orders = (_decoder.decode(body) for (body,) in rows_for_ids(self._conn, sql, store_id, order_ids))
        return {order.order_id: order for order in orders}

    def find_unjoined(self, store_id: int, refs: tuple[str, ...]) -> Order | None:
        """An order naming one of these keys that has not closed a cart yet."""
        if not refs:
            return None
        marks = ",".join("?" * len(refs))
        row = self._conn.execute(
            f"SELECT o.body FROM order_refs r JOIN orders o ON o.store_id=r.store_id AND o.order_id=r.order_id "
            f"WHERE r.store_id=? AND r.ref IN ({marks}) AND o.joined=0 LIMIT 1",
            (store_id, *refs),
        ).fetchone()
        return _decoder.decode(row[0]) if row else None

    def save(self, order: Order) -> None:
        """Upsert the order and its keys."""
        self._conn.execute(
            "INSERT INTO orders (store_id, order_id, joined, body) VALUES (?,?,?,?) "
            "ON CONFLICT(store_id, order_id) DO UPDATE SET joined=excluded.joined, body=excluded.body",
            (order.store_id, order.order_id, int(order.cart_id is not None), _encoder.encode(order)),
        )
        self._conn.executemany(
            "INSERT OR IGNORE INTO order_refs (store_id, ref, order_id) VALUES (?,?,?)",
            [(order.store_id, ref, order.order_id) for ref in order.refs],
        )
