"""Orders in PostgreSQL, indexed by the join keys they carry."""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from cartrecover.adapters.postgres.connections import Conn
from cartrecover.ports.orders import Order

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Order)


class PostgresOrders:
    """One row per order plus one per join key."""

    def __init__(self, conn: Conn, lock: str) -> None:
        self._conn, self._lock = conn, lock

    def get(self, store_id: int, order_id: str) -> Order | None:
        """The order, or None."""
        row = self._conn.execute(
            f"SELECT body FROM orders WHERE store_id=%s AND order_id=%s{self._lock}", (store_id, order_id)
        ).fetchone()
        return _decoder.decode(row[0]) if row else None

    def get_many(self, store_id: int, order_ids: Collection[str]) -> dict[str, Order]:
        """The orders that exist, by id, in one query."""
        rows = self._conn.execute(
            f"SELECT body FROM orders WHERE store_id=%s AND order_id = ANY(%s){self._lock}", (store_id, list(order_ids))
        )
        return {order.order_id: order for order in (_decoder.decode(body) for (body,) in rows)}

    def find_unjoined(self, store_id: int, refs: tuple[str, ...]) -> Order | None:
        """An order naming one of these keys that has not closed a cart yet."""
        if not refs:
            return None
        lock = f"{self._lock} OF o" if self._lock else ""
        row = self._conn.execute(
            "SELECT o.body FROM order_refs r JOIN orders o ON o.store_id=r.store_id AND o.order_id=r.order_id "
            f"WHERE r.store_id=%s AND r.ref = ANY(%s) AND NOT o.joined LIMIT 1{lock}",
            (store_id, list(refs)),
        ).fetchone()
        return _decoder.decode(row[0]) if row else None

    def save(self, order: Order) -> None:
        """Upsert the order and its keys."""
        self._conn.execute(
            "INSERT INTO orders (store_id, order_id, joined, body) VALUES (%s,%s,%s,%s) "
            "ON CONFLICT (store_id, order_id) DO UPDATE SET joined=excluded.joined, body=excluded.body",
            (order.store_id, order.order_id, order.cart_id is not None, _encoder.encode(order)),
        )
        with self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO order_refs (store_id, ref, order_id) VALUES (%s,%s,%s) ON CONFLICT DO NOTHING",
                [(order.store_id, ref, order.order_id) for ref in order.refs],
            )
