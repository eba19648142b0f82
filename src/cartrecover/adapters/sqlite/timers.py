"""Durable timers in SQLite, indexed by due time."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from cartrecover.adapters._time import from_us, to_us
from cartrecover.ports.timers import Timer


class SqliteTimers:
    """One row per (cart, kind)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def set(self, timer: Timer) -> None:
        """Arm or move a timer."""
        self._conn.execute(
            "INSERT INTO timers (store_id, cart_id, kind, due_us) VALUES (?,?,?,?) "
            "ON CONFLICT(store_id, cart_id, kind) DO UPDATE SET due_us=excluded.due_us",
            (timer.store_id, timer.cart_id, timer.kind, to_us(timer.due)),
        )

    def cancel(self, store_id: int, cart_id: str, kind: str) -> None:
        """Disarm a timer."""
        self._conn.execute("DELETE FROM timers WHERE store_id=? AND cart_id=? AND kind=?", (store_id, cart_id, kind))

    def pop_due(self, now: datetime, limit: int) -> list[Timer]:
        """Remove and return due timers, earliest first."""
        return self._pop(to_us(now), limit)

    def _pop(self, now_us: int, limit: int) -> list[Timer]:
        rows = self._conn.execute(
            "SELECT store_id, cart_id, kind, due_us FROM timers WHERE due_us <= ? ORDER BY due_us, store_id, cart_id, kind "
            "LIMIT ?",
            (now_us, limit),
        ).fetchall()
        self._conn.executemany("DELETE FROM timers WHERE store_id=? AND cart_id=? AND kind=?", [r[:3] for r in rows])
        return [Timer(store_id=s, cart_id=c, kind=k, due=from_us(d)) for s, c, k, d in rows]

    def next_due(self) -> datetime | None:
        """The earliest due time."""
        row = self._conn.execute("SELECT min(due_us) FROM timers").fetchone()
        return from_us(row[0]) if row and row[0] is not None else None
