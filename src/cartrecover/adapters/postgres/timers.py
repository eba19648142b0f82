"""Durable timers in PostgreSQL, indexed by due time; due ones are taken with `FOR UPDATE SKIP LOCKED`."""

from __future__ import annotations

from datetime import datetime

from cartrecover.adapters._time import from_us, to_us
from cartrecover.adapters.postgres.connections import Conn
from cartrecover.ports.timers import Timer


class PostgresTimers:
    """One row per (cart, kind)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def set(self, timer: Timer) -> None:
        """Arm or move a timer."""
        self._conn.execute(
            "INSERT INTO timers (store_id, cart_id, kind, due_us) VALUES (%s,%s,%s,%s) "
            "ON CONFLICT (store_id, cart_id, kind) DO UPDATE SET due_us=excluded.due_us",
            (timer.store_id, timer.cart_id, timer.kind, to_us(timer.due)),
        )

    def cancel(self, store_id: int, cart_id: str, kind: str) -> None:
        """Disarm a timer."""
        self._conn.execute("DELETE FROM timers WHERE store_id=%s AND cart_id=%s AND kind=%s", (store_id, cart_id, kind))

    def pop_due(self, now: datetime, limit: int) -> list[Timer]:
        """Remove and return due timers, earliest first.

        Timers another transaction is firing (or moving) are passed over, so workers firing at once take
        different ones; the deletion is undone if the transaction rolls back.
        """
        rows = self._conn.execute(
            "DELETE FROM timers WHERE (store_id, cart_id, kind) IN ("
            "SELECT store_id, cart_id, kind FROM timers WHERE due_us <= %s "
            "ORDER BY due_us, store_id, cart_id, kind LIMIT %s FOR UPDATE SKIP LOCKED) "
            "RETURNING store_id, cart_id, kind, due_us",
            (to_us(now), limit),
        ).fetchall()
        rows.sort(key=lambda row: (row[3], row[0], row[1], row[2]))
        return [Timer(store_id=s, cart_id=c, kind=k, due=from_us(d)) for s, c, k, d in rows]

    def next_due(self) -> datetime | None:
        """The earliest due time."""
        row = self._conn.execute("SELECT min(due_us) FROM timers").fetchone()
        return from_us(row[0]) if row and row[0] is not None else None
