"""The outbox and suppression list in SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime

import msgspec

from cartrecover.adapters._time import from_us, to_us
from cartrecover.adapters.sqlite._ids import rows_for_ids
from cartrecover.domain.journey import Step, StepStatus

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Step)
_COLUMNS = "store_id, step_id, cart_id, shopper_id, status, due_us, lease_us, sent_us, body"


def _row(step: Step) -> tuple[object, ...]:
    return (
        step.store_id,
        step.step_id,
        step.cart_id,
        step.shopper_id,
        step.status.value,
        to_us(step.due_at),
        to_us(step.lease_until) if step.lease_until else None,
        to_us(step.sent_at) if step.sent_at else None,
        _encoder.encode(step),
    )


class SqliteOutbox:
    """One row per step: indexed columns, and the whole step as msgpack."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, steps: Sequence[Step]) -> None:
        """Schedule steps; existing ids are left alone."""
        self._conn.executemany(
            f"INSERT OR IGNORE INTO outbox ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", map(_row, steps)
        )

    def due(self, now: datetime, limit: int) -> list[Step]:
        """Scheduled steps due by `now`, and sending steps whose lease ran out, earliest first."""
        now_us = to_us(now)
        rows = self._conn.execute(
            "SELECT body, due_us FROM outbox INDEXED BY outbox_due WHERE status='scheduled' AND due_us <= ? "
            "ORDER BY due_us LIMIT ?",
            (now_us, limit),
        ).fetchall()
        stale = self._conn.execute(
            "SELECT body, lease_us FROM outbox INDEXED BY outbox_leases WHERE status='sending' AND lease_us <= ? "
            "ORDER BY lease_us LIMIT ?",
            (now_us, limit),
        ).fetchall()
        ordered = sorted(rows + stale, key=lambda row: row[1])[:limit]
        return [_decoder.decode(body) for body, _ in ordered]

    def get(self, store_id: int, step_id: str) -> Step | None:
        """The step, or None."""
        row = self._conn.execute(
            "SELECT body FROM outbox WHERE store_id=? AND step_id=?", (store_id, step_id)
        ).fetchone()
        return _decoder.decode(row[0]) if row else None

    def save(self, step: Step) -> None:
        """Write the step's state."""
        self._conn.execute(f"INSERT OR REPLACE INTO outbox ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", _row(step))

    def for_cart(self, store_id: int, cart_id: str) -> list[Step]:
        """The cart's steps, by due time.

        By the cart index by name: SQLite 3.40's planner prefers the primary key's first column (store_id), which
        reads every step of the store for each cart (1.2 M rows per call in a store of a million carts).
        """
        rows = self._conn.execute(
            "SELECT body FROM outbox INDEXED BY outbox_by_cart WHERE store_id=? AND cart_id=? ORDER BY due_us, step_id",
            (store_id, cart_id),
        )
        return [_decoder.decode(body) for (body,) in rows]

    def for_carts(self, store_id: int, cart_ids: Collection[str]) -> dict[str, list[Step]]:
        """Each cart's steps by due time, by cart; a chunk of ids a query, by the cart index as `for_cart` reads."""
        sql = (
            "SELECT body FROM outbox INDEXED BY outbox_by_cart "
            "WHERE store_id=? AND cart_id IN ({ids}) ORDER BY due_us, step_id"
        )
        found: dict[str, list[Step]] = {}
        for (body,) in rows_for_ids(self._conn, sql, store_id, cart_ids):
            step = _decoder.decode(body)
            found.setdefault(step.cart_id, []).append(step)
        return found

    def sent_since(self, store_id: int, shopper_id: str, since: datetime) -> int:
        """Messages sent to the shopper since `since`."""
        row = self._conn.execute(
            "SELECT count(*) FROM outbox WHERE store_id=? AND shopper_id=? AND sent_us >= ?",
            (store_id, shopper_id, to_us(since)),
        ).fetchone()
        return int(row[0])

    def sent_times(self, store_id: int, shopper_id: str, since: datetime) -> list[datetime]:
        """The times of the messages `sent_since` counts, oldest first."""
        rows = self._conn.execute(
            "SELECT sent_us FROM outbox WHERE store_id=? AND shopper_id=? AND sent_us >= ? ORDER BY sent_us",
            (store_id, shopper_id, to_us(since)),
        )
        return [from_us(sent_us) for (sent_us,) in rows]

    def count_by_status(self) -> dict[str, int]:
        """Steps per status."""
        return dict(self._conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())

    def dead(self, store_id: int | None, limit: int) -> list[Step]:
        """Dead letters, newest first."""
        sql = "SELECT body FROM outbox WHERE status=?"
        args: list[object] = [StepStatus.DEAD.value]
        if store_id is not None:
            sql += " AND store_id=?"
            args.append(store_id)
        rows = self._conn.execute(sql + " ORDER BY due_us DESC LIMIT ?", (*args, limit))
        return [_decoder.decode(body) for (body,) in rows]


class SqliteSuppressions:
    """Suppressed addresses per store and channel."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, store_id: int, channel: str, address: str, reason: str, at: datetime) -> None:
        """Suppress; the first reason stays."""
        self._conn.execute(
            "INSERT OR IGNORE INTO suppressions (store_id, channel, address, reason, at_us) VALUES (?,?,?,?,?)",
            (store_id, channel, address, reason, to_us(at)),
        )

    def reason(self, store_id: int, channel: str, address: str) -> str | None:
        """Why it is suppressed, or None."""
        row = self._conn.execute(
            "SELECT reason FROM suppressions WHERE store_id=? AND channel=? AND address=?", (store_id, channel, address)
        ).fetchone()
        return str(row[0]) if row else None

    def remove(self, store_id: int, channel: str, address: str) -> None:
        """Lift the suppression, if any."""
        self._conn.execute(
            "DELETE FROM suppressions WHERE store_id=? AND channel=? AND address=?", (store_id, channel, address)
        )
