"""The event log's consumer side in the state store: checkpoints and dead letters (the log itself is elsewhere)."""

from __future__ import annotations

from cartrecover.adapters.postgres.connections import Conn


class PostgresDeadLetters:
    """Parked events by consumer and offset."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def park(self, consumer: str, offset: int, reason: str) -> None:
        """Park an event with its reason."""
        self._conn.execute(
            "INSERT INTO dead_letters (consumer, seq, reason) VALUES (%s, %s, %s) "
            "ON CONFLICT (consumer, seq) DO UPDATE SET reason=excluded.reason",
            (consumer, offset, reason),
        )

    def parked(self, consumer: str) -> list[tuple[int, str]]:
        """Parked offsets and reasons."""
        rows = self._conn.execute("SELECT seq, reason FROM dead_letters WHERE consumer=%s ORDER BY seq", (consumer,))
        return [(int(seq), str(reason)) for seq, reason in rows]


class PostgresCheckpoints:
    """Consumer offsets, committed with the consumer's state changes.

    In a write transaction, reading a consumer's offset locks it until the transaction ends: a second worker
    of the same consumer waits, then reads the offset the first one wrote, and never applies an event twice.
    """

    def __init__(self, conn: Conn, *, writable: bool) -> None:
        self._conn, self._writable = conn, writable

    def get(self, consumer: str) -> int:
        """The consumer's offset."""
        if not self._writable:
            row = self._conn.execute("SELECT seq FROM checkpoints WHERE consumer=%s", (consumer,)).fetchone()
            return int(row[0]) if row else 0
        # A row to lock, even for a consumer that has not started: a missing row cannot be locked.
        self._conn.execute(
            "INSERT INTO checkpoints (consumer, seq) VALUES (%s, 0) ON CONFLICT (consumer) DO NOTHING", (consumer,)
        )
        row = self._conn.execute("SELECT seq FROM checkpoints WHERE consumer=%s FOR UPDATE", (consumer,)).fetchone()
        return int(row[0]) if row else 0

    def put(self, consumer: str, offset: int) -> None:
        """Move the consumer's offset."""
        self._conn.execute(
            "INSERT INTO checkpoints (consumer, seq) VALUES (%s, %s) "
            "ON CONFLICT (consumer) DO UPDATE SET seq=excluded.seq",
            (consumer, offset),
        )
