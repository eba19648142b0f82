"""The outbox and suppression list in PostgreSQL; due steps are claimed with `FOR UPDATE SKIP LOCKED`."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import msgspec

from cartrecover.adapters._time import from_us, to_us
from cartrecover.adapters.postgres.connections import Conn
from cartrecover.domain.journey import Step, StepStatus

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Step)
_COLUMNS = "store_id, step_id, cart_id, shopper_id, status, due_us, lease_us, sent_us, body"
_VALUES = "%s,%s,%s,%s,%s,%s,%s,%s,%s"
# The time a step becomes claimable: its due time while scheduled, the end of its lease while sending. The
# partial index outbox_claimable is on exactly this expression, for exactly these statuses.
_CLAIM_AT = "(CASE status WHEN 'scheduled' THEN due_us ELSE lease_us END)"


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


class PostgresOutbox:
    """One row per step: indexed columns, and the whole step as msgpack."""

    def __init__(self, conn: Conn, lock: str) -> None:
        self._conn, self._lock = conn, lock

    def add(self, steps: Sequence[Step]) -> None:
        """Schedule steps; existing ids are left alone."""
        with self._conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO outbox ({_COLUMNS}) VALUES ({_VALUES}) ON CONFLICT (store_id, step_id) DO NOTHING",
                [_row(step) for step in steps],
            )

    def due(self, now: datetime, limit: int) -> list[Step]:
        """Scheduled steps due by `now`, and sending steps whose lease ran out, earliest first.

        In a write transaction they stay locked until it ends, and steps another transaction holds are passed
        over (SKIP LOCKED): two workers claiming at once get different steps, and neither waits for the other.
        """
        lock = f"{self._lock} SKIP LOCKED" if self._lock else ""
        rows = self._conn.execute(
            f"SELECT body FROM outbox WHERE status IN ('scheduled','sending') AND {_CLAIM_AT} <= %s "
            f"ORDER BY {_CLAIM_AT}, store_id, step_id LIMIT %s{lock}",
            (to_us(now), limit),
        )
        return [_decoder.decode(body) for (body,) in rows]

    def get(self, store_id: int, step_id: str) -> Step | None:
        """The step, or None."""
        row = self._conn.execute(
            f"SELECT body FROM outbox WHERE store_id=%s AND step_id=%s{self._lock}", (store_id, step_id)
        ).fetchone()
        return _decoder.decode(row[0]) if row else None

    def save(self, step: Step) -> None:
        """Write the step's state."""
        self._conn.execute(
            f"INSERT INTO outbox ({_COLUMNS}) VALUES ({_VALUES}) ON CONFLICT (store_id, step_id) DO UPDATE SET "
            "cart_id=excluded.cart_id, shopper_id=excluded.shopper_id, status=excluded.status, "
            "due_us=excluded.due_us, lease_us=excluded.lease_us, sent_us=excluded.sent_us, body=excluded.body",
            _row(step),
        )

    def for_cart(self, store_id: int, cart_id: str) -> list[Step]:
        """The cart's steps, by due time."""
        rows = self._conn.execute(
            "SELECT body FROM outbox WHERE store_id=%s AND cart_id=%s ORDER BY due_us, step_id", (store_id, cart_id)
        )
        return [_decoder.decode(body) for (body,) in rows]

    def for_carts(self, store_id: int, cart_ids: Collection[str]) -> dict[str, list[Step]]:
        """Each cart's steps by due time, by cart, in one query."""
        rows = self._conn.execute(
            "SELECT body FROM outbox WHERE store_id=%s AND cart_id = ANY(%s) ORDER BY due_us, step_id",
            (store_id, list(cart_ids)),
        )
        found: dict[str, list[Step]] = {}
        for step in (_decoder.decode(body) for (body,) in rows):
            found.setdefault(step.cart_id, []).append(step)
        return found

    def sent_since(self, store_id: int, shopper_id: str, since: datetime) -> int:
        """Messages sent to the shopper since `since`."""
        row = self._conn.execute(
            "SELECT count(*) FROM outbox WHERE store_id=%s AND shopper_id=%s AND sent_us >= %s",
            (store_id, shopper_id, to_us(since)),
        ).fetchone()
        return int(row[0]) if row else 0

    def sent_times(self, store_id: int, shopper_id: str, since: datetime) -> list[datetime]:
        """The times of the messages `sent_since` counts, oldest first."""
        rows = self._conn.execute(
            "SELECT sent_us FROM outbox WHERE store_id=%s AND shopper_id=%s AND sent_us >= %s ORDER BY sent_us",
            (store_id, shopper_id, to_us(since)),
        )
        return [from_us(sent_us) for (sent_us,) in rows]

    def count_by_status(self) -> dict[str, int]:
        """Steps per status."""
        rows = self._conn.execute("SELECT status, count(*) FROM outbox GROUP BY status")
        return {str(status): int(count) for status, count in rows}

    def dead(self, store_id: int | None, limit: int) -> list[Step]:
        """Dead letters, newest first."""
        sql = "SELECT body FROM outbox WHERE status=%s"
        args: list[object] = [StepStatus.DEAD.value]
        if store_id is not None:
            sql += " AND store_id=%s"
            args.append(store_id)
        rows = self._conn.execute(sql + " ORDER BY due_us DESC LIMIT %s", (*args, limit))
        return [_decoder.decode(body) for (body,) in rows]


class PostgresSuppressions:
    """Suppressed addresses per store and channel."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def add(self, store_id: int, channel: str, address: str, reason: str, at: datetime) -> None:
        """Suppress; the first reason stays."""
        self._conn.execute(
            "INSERT INTO suppressions (store_id, channel, address, reason, at_us) VALUES (%s,%s,%s,%s,%s) "
            "ON CONFLICT (store_id, channel, address) DO NOTHING",
            (store_id, channel, address, reason, to_us(at)),
        )

    def reason(self, store_id: int, channel: str, address: str) -> str | None:
        """Why it is suppressed, or None."""
        row = self._conn.execute(
            "SELECT reason FROM suppressions WHERE store_id=%s AND channel=%s AND address=%s",
            (store_id, channel, address),
        ).fetchone()
        return str(row[0]) if row else None

    def remove(self, store_id: int, channel: str, address: str) -> None:
        """Lift the suppression, if any."""
        self._conn.execute(
            "DELETE FROM suppressions WHERE store_id=%s AND channel=%s AND address=%s", (store_id, channel, address)
        )
