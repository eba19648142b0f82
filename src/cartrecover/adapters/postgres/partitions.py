"""Partition layouts, live workers and partition leases in PostgreSQL; free partitions are taken SKIP LOCKED."""

from __future__ import annotations

import json

from cartrecover.adapters.postgres.connections import Conn
from cartrecover.ports.partitions import Layout

_HOUR_US = 3_600_000_000


class PostgresLayouts:
    """One row per consumer; the floors as a JSON list. A row of 0 partitions: none recorded yet."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def get(self, consumer: str) -> Layout | None:
        """The consumer's layout, or None."""
        row = self._conn.execute(
            "SELECT partitions, floors FROM partition_layouts WHERE consumer=%s", (consumer,)
        ).fetchone()
        return Layout(int(row[0]), tuple(json.loads(row[1]))) if row and row[0] else None

    def lock(self, consumer: str) -> Layout | None:
        """The consumer's layout, or None, locked."""
        # A row to lock, even before the first layout is recorded: a missing row cannot be locked.
        self._conn.execute(
            "INSERT INTO partition_layouts (consumer, partitions, floors) VALUES (%s, 0, '[]') "
            "ON CONFLICT (consumer) DO NOTHING",
            (consumer,),
        )
        row = self._conn.execute(
            "SELECT partitions, floors FROM partition_layouts WHERE consumer=%s FOR UPDATE", (consumer,)
        ).fetchone()
        return Layout(int(row[0]), tuple(json.loads(row[1]))) if row and row[0] else None

    def put(self, consumer: str, layout: Layout) -> None:
        """Record the layout, with one free lease per partition."""
        self._conn.execute(
            "INSERT INTO partition_layouts (consumer, partitions, floors) VALUES (%s, %s, %s) "
            "ON CONFLICT (consumer) DO UPDATE SET partitions=excluded.partitions, floors=excluded.floors",
            (consumer, layout.partitions, json.dumps(list(layout.floors))),
        )
        self._conn.execute("DELETE FROM partition_leases WHERE consumer=%s", (consumer,))
        with self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO partition_leases (consumer, part, owner, expires_us) VALUES (%s, %s, '', 0)",
                [(consumer, part) for part in range(layout.partitions)],
            )


class PostgresLeases:
    """Workers' heartbeats and partition leases, shared by every worker process of the database."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def workers(self, consumer: str, now_us: int) -> dict[str, int]:
        """The live workers and their partition counts."""
        rows = self._conn.execute(
            "SELECT owner, partitions FROM partition_workers WHERE consumer=%s AND expires_us > %s", (consumer, now_us)
        )
        return {str(name): int(count) for name, count in rows}

    def join(self, consumer: str, owner: str, partitions: int, until_us: int) -> None:
        """Record the owner's heartbeat; forget workers silent for an hour (their rows only, not their leases)."""
        self._conn.execute(
            "DELETE FROM partition_workers WHERE consumer=%s AND expires_us < %s", (consumer, until_us - _HOUR_US)
        )
        self._conn.execute(
            "INSERT INTO partition_workers (consumer, owner, partitions, expires_us) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (consumer, owner) DO UPDATE SET partitions=excluded.partitions, expires_us=excluded.expires_us",
            (consumer, owner, partitions, until_us),
        )

    def renew(self, consumer: str, owner: str, now_us: int, until_us: int) -> list[int]:
        """Extend the owner's live leases."""
        rows = self._conn.execute(
            "UPDATE partition_leases SET expires_us=%s WHERE consumer=%s AND owner=%s AND expires_us > %s RETURNING part",
            (until_us, consumer, owner, now_us),
        )
        return sorted(int(part) for (part,) in rows)

    def acquire(self, consumer: str, owner: str, count: int, now_us: int, until_us: int) -> list[int]:
        """Take free or expired partitions; those another transaction is taking are passed over."""
        if count <= 0:
            return []
        rows = self._conn.execute(
            "UPDATE partition_leases SET owner=%s, expires_us=%s WHERE consumer=%s AND part IN ("
            "SELECT part FROM partition_leases WHERE consumer=%s AND expires_us <= %s "
            "ORDER BY part LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING part",
            (owner, until_us, consumer, consumer, now_us, count),
        )
        return sorted(int(part) for (part,) in rows)

    def release(self, consumer: str, owner: str, partitions: list[int] | None = None) -> None:
        """Free these partitions (None: all, and forget the worker)."""
        if partitions is None:
            self._conn.execute(
                "UPDATE partition_leases SET owner='', expires_us=0 WHERE consumer=%s AND owner=%s", (consumer, owner)
            )
            self._conn.execute("DELETE FROM partition_workers WHERE consumer=%s AND owner=%s", (consumer, owner))
            return
        self._conn.execute(
            "UPDATE partition_leases SET owner='', expires_us=0 WHERE consumer=%s AND owner=%s AND part = ANY(%s)",
            (consumer, owner, partitions),
        )
