"""Carts, their join keys and timelines in SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import datetime
from typing import Any

import msgspec

from cartrecover.adapters._time import from_us, to_us
from cartrecover.adapters.sqlite._ids import rows_for_ids
from cartrecover.domain.cart import Cart, CartStatus

_cart_encoder = msgspec.msgpack.Encoder()
_cart_decoder = msgspec.msgpack.Decoder(Cart)
_detail_decoder = msgspec.msgpack.Decoder(dict[str, Any])


class SqliteCarts:
    """Each cart is one row: indexed columns plus the whole cart as msgpack."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, store_id: int, cart_id: str) -> Cart | None:
        """The cart, or None."""
        row = self._conn.execute(
            "SELECT body FROM carts WHERE store_id=? AND cart_id=?", (store_id, cart_id)
        ).fetchone()
        return _cart_decoder.decode(row[0]) if row else None

    def get_many(self, store_id: int, cart_ids: Collection[str]) -> dict[str, Cart]:
        """The carts that exist, by id, a chunk of ids a query."""
        sql = "SELECT body FROM carts WHERE store_id=? AND cart_id IN ({ids})"
        carts = (_cart_decoder.decode(body) for (body,) in rows_for_ids(self._conn, sql, store_id, cart_ids))
        return {cart.cart_id: cart for cart in carts}

    def find(self, store_id: int, ref: str) -> Cart | None:
        """The cart a join key points to."""
        row = self._conn.execute(
            "SELECT c.body FROM cart_refs r JOIN carts c ON c.store_id=r.store_id AND c.cart_id=r.cart_id "
            "WHERE r.store_id=? AND r.ref=?",
            (store_id, ref),
        ).fetchone()
        return _cart_decoder.decode(row[0]) if row else None

    def open_for_shopper(self, store_id: int, shopper_id: str) -> list[Cart]:
        """The shopper's open carts, newest activity first."""
        rows = self._conn.execute(
            "SELECT body FROM carts INDEXED BY carts_by_shopper WHERE store_id=? AND shopper_id=? AND status IN ('active','abandoned','recovering') "
            "ORDER BY last_activity_us DESC",
            (store_id, shopper_id),
        )
        return [_cart_decoder.decode(body) for (body,) in rows]

    def save(self, cart: Cart) -> None:
        """Upsert the cart and its join keys."""
        self._conn.execute(
            "INSERT INTO carts (store_id, cart_id, shopper_id, status, last_activity_us, abandoned_us, body) "
            "VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT(store_id, cart_id) DO UPDATE SET shopper_id=excluded.shopper_id, status=excluded.status, "
            "last_activity_us=excluded.last_activity_us, abandoned_us=excluded.abandoned_us, body=excluded.body",
            (
                cart.store_id,
                cart.cart_id,
                cart.shopper_id,
                cart.status.value,
                to_us(cart.last_activity_at),
                None if cart.abandoned_at is None else to_us(cart.abandoned_at),
                _cart_encoder.encode(cart),
            ),
        )
        is_open = int(cart.status.is_open)
        refs = [(cart.store_id, ref, cart.cart_id, is_open) for ref in (f"cart:{cart.cart_id}", *cart.refs)]
        self._conn.executemany(_SAVE_REF, refs)
        if cart.experiment is not None and cart.variant is not None:
            self._conn.execute(
                "INSERT INTO cart_variants (store_id, cart_id, experiment, variant) VALUES (?,?,?,?) "
                "ON CONFLICT(store_id, cart_id) DO UPDATE SET experiment=excluded.experiment, variant=excluded.variant",
                (cart.store_id, cart.cart_id, cart.experiment, cart.variant),
            )

    def page(self, store_id: int, status: CartStatus | None, limit: int, after: str | None) -> list[Cart]:
        """A page of carts ordered by id."""
        sql = "SELECT body FROM carts WHERE store_id=? AND cart_id > ?"
        args: list[Any] = [store_id, after or ""]
        if status is not None:
            sql += " AND status=?"
            args.append(status.value)
        rows = self._conn.execute(sql + " ORDER BY cart_id LIMIT ?", (*args, limit))
        return [_cart_decoder.decode(body) for (body,) in rows]

    def abandoned_between(
        self, store_id: int, since: datetime, until: datetime, statuses: Collection[CartStatus] | None = None
    ) -> list[Cart]:
        """By the abandonment index, named: with statuses given, the planner could take the status index and read
        every cart of the store with those statuses, whatever the window."""
        sql = (
            "SELECT body FROM carts INDEXED BY carts_by_abandonment "
            "WHERE store_id=? AND abandoned_us >= ? AND abandoned_us < ?"
        )
        args = list[Any]([store_id, to_us(since), to_us(until)])
        if statuses is not None:
            wanted = [s.value for s in statuses]
            sql += f" AND status IN ({','.join('?' * len(wanted))})"
            args += wanted
        rows = self._conn.execute(sql + " ORDER BY abandoned_us, cart_id", args)
        return [_cart_decoder.decode(body) for (body,) in rows]

    def finished_by_variant(self, store_id: int, experiment: str) -> dict[str, tuple[int, int]]:
        """Per variant: (recovered, expired) carts of the experiment."""
        rows = self._conn.execute(
            "SELECT v.variant, sum(c.status='recovered'), sum(c.status='expired') FROM cart_variants v "
            "JOIN carts c ON c.store_id=v.store_id AND c.cart_id=v.cart_id "
            "WHERE v.store_id=? AND v.experiment=? AND c.status IN ('recovered','expired') GROUP BY v.variant",
            (store_id, experiment),
        )
        return {str(variant): (int(won), int(lost)) for variant, won, lost in rows}

    def count_by_status(self) -> dict[str, int]:
        """How many carts each status has, over all stores (for metrics)."""
        return dict(self._conn.execute("SELECT status, count(*) FROM carts GROUP BY status").fetchall())

    def for_shopper(self, store_id: int, shopper_id: str) -> list[Cart]:
        """Every cart of the shopper, open or not."""
        rows = self._conn.execute(
            "SELECT body FROM carts INDEXED BY carts_by_shopper WHERE store_id=? AND shopper_id=?",
            (store_id, shopper_id),
        )
        return [_cart_decoder.decode(body) for (body,) in rows]


# A key moves to the cart saved last, except that a closed cart never takes it from an open one: a shop that
# reuses a cart id after an order points it at the new cart, and re-saving the old one must not point it back.
_SAVE_REF = (
    "INSERT INTO cart_refs (store_id, ref, cart_id) VALUES (?1,?2,?3) "
    "ON CONFLICT(store_id, ref) DO UPDATE SET cart_id=excluded.cart_id WHERE ?4 OR NOT EXISTS ("
    "SELECT 1 FROM carts c WHERE c.store_id=cart_refs.store_id AND c.cart_id=cart_refs.cart_id "
    "AND c.cart_id<>excluded.cart_id AND c.status IN ('active','abandoned','recovering'))"
)


class SqliteTimeline:
    """Timeline entries, one row each."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, store_id: int, cart_id: str, at: Any, kind: str, detail: dict[str, Any]) -> None:
        """Append an entry."""
        self._conn.execute(
            "INSERT INTO timeline (store_id, cart_id, at_us, kind, detail) VALUES (?,?,?,?,?)",
            (store_id, cart_id, to_us(at), kind, _cart_encoder.encode(detail)),
        )

    def for_cart(self, store_id: int, cart_id: str) -> list[dict[str, Any]]:
        """Entries in event-time order (insertion order among equal times)."""
        rows = self._conn.execute(
            "SELECT at_us, kind, detail FROM timeline WHERE store_id=? AND cart_id=? ORDER BY at_us, id",
            (store_id, cart_id),
        )
        return [{"at": from_us(at), "kind": kind, **_detail_decoder.decode(detail)} for at, kind, detail in rows]

    def for_carts(self, store_id: int, cart_ids: Collection[str], kind: str) -> dict[str, list[dict[str, Any]]]:
        """Entries of one kind by cart, each cart's in event-time order; a chunk of ids a query."""
        sql = (
            "SELECT cart_id, at_us, detail FROM timeline INDEXED BY timeline_by_cart "
            "WHERE store_id=? AND cart_id IN ({ids}) AND kind=? ORDER BY at_us, id"
        )
        found: dict[str, list[dict[str, Any]]] = {}
        for cart_id, at, detail in rows_for_ids(self._conn, sql, store_id, cart_ids, kind):
            found.setdefault(cart_id, []).append({"at": from_us(at), "kind": kind, **_detail_decoder.decode(detail)})
        return found


def add_abandoned(conn: sqlite3.Connection) -> None:
    """Migration 0003's step: the abandonment time column (unless there), filled from the stored carts a page at
    a time."""
    if "abandoned_us" not in {row[1] for row in conn.execute("PRAGMA table_info(carts)")}:
        conn.execute("ALTER TABLE carts ADD COLUMN abandoned_us INTEGER")
    after: tuple[int, str] = (-(2**63), "")
    while rows := conn.execute(
        "SELECT store_id, cart_id, body FROM carts WHERE (store_id, cart_id) > (?, ?) ORDER BY store_id, cart_id "
        "LIMIT 1000",
        after,
    ).fetchall():
        after = rows[-1][0], rows[-1][1]
        abandoned = [(sid, cid, _cart_decoder.decode(body).abandoned_at) for sid, cid, body in rows]
        conn.executemany(
            "UPDATE carts SET abandoned_us=? WHERE store_id=? AND cart_id=?",
            [(to_us(at), sid, cid) for sid, cid, at in abandoned if at is not None],
        )
