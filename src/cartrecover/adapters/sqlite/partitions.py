"""Partition layouts, live workers and partition leases in SQLite, whose write lock serialises every worker."""

from __future__ import annotations

import json
import sqlite3

from cartrecover.ports.partitions import Layout

_HOUR_US = 3_600_000_000


class SqliteLayouts:
    """One row per consumer; the floors as a JSON list."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, consumer: str) -> Layout | None:
        """The consumer's layout, or None."""
        row = self._conn.execute(
            "SELECT partitions, floors FROM partition_layouts WHERE consumer=?", (consumer,)
        ).fetchone()
        return Layout(int(row[0]), tuple(json.loads(row[1]))) if row and row[0] else None

    def lock(self, consumer: str) -> Layout | None:
        """The consumer's layout, or None (a write transaction holds the file's write lock already)."""
        return self.get(consumer)

    def put(self, consumer: str, layout: Layout) -> None:
        """Record the layout, with one free lease per partition."""
        self._conn.execute(
            "INSERT INTO partition_layouts (consumer, partitions, floors) VALUES (?, ?, ?) "
            "ON CONFLICT (consumer) DO UPDATE SET partitions=excluded.partitions, floors=excluded.floors",
            (consumer, layout.partitions, json.dumps(list(layout.floors))),
        )
        self._conn.execute("DELETE FROM partition_leases WHERE consumer=?", (consumer,))
        self._conn.executemany(
            "INSERT INTO partition_leases (consumer, part, owner, expires_us) VALUES (?, ?, '', 0)",
            [(consumer, part) for part in range(layout.partitions)],
        )


class SqliteLeases:
    """Workers' heartbeats and partition leases, shared by every worker process of the database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def workers(self, consumer: str, now_us: int) -> dict[str, int]:
        """The live workers and their partition counts."""
        rows = self._conn.execute(
            "SELECT owner, partitions FROM partition_workers WHERE consumer=? AND expires_us > ?", (consumer, now_us)
        )
        return {str(name): int(count) for name, count in rows}

    def join(self, consumer: str, owner: str, partitions: int, until_us: int) -> None:
        """Record the owner's heartbeat; forget workers silent for an hour (their rows only, not their leases)."""
        self._conn.execute(
            "DELETE FROM partition_workers WHERE consumer=? AND expires_us < ?", (consumer, until_us - _HOUR_US)
        )
        self._conn.execute(
            "INSERT INTO partition_workers (consumer, owner, partitions, expires_us) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (consumer, owner) DO UPDATE SET partitions=excluded.partitions, expires_us=excluded.expires_us",
            (consumer, owner, partitions, until_us),
        )

    def renew(self, consumer: str, owner: str, now_us: int, until_us: int) -> list[int]:
        """Extend the owner's live leases."""
        rows = self._conn.execute(
            "UPDATE partition_leases SET expires_us=? WHERE consumer=? AND owner=? AND expires_us > ? RETURNING part",
            (until_us, consumer, owner, now_us),
        )
        return sorted(int(part) for (part,) in rows)

    def acquire(self, consumer: str, owner: str, count: int, now_us: int, until_us: int) -> list[int]:
        """Take free or expired partitions."""
        if count <= 0:
            return []
        rows = self._conn.execute(
            "UPDATE partition_leases SET owner=?, expires_us=? WHERE consumer=? AND part IN ("
            "SELECT part FROM partition_leases WHERE consumer=? AND expires_us <= ? "
            "ORDER BY part LIMIT ?) RETURNING part",
            (owner, until_us, consumer, consumer, now_us, count),
        )
        return sorted(int(part) for (part,) in rows)

    def release(self, consumer: str, owner: str, partitions: list[int] | None = None) -> None:
        """Free these partitions (None: all, and forget the worker)."""
        if partitions is None:
            self._conn.execute(
                "UPDATE partition_leases SET owner='', expires_us=0 WHERE consumer=? AND owner=?", (consumer, owner)
            )
            self._conn.execute("DELETE FROM partition_workers WHERE consumer=? AND owner=?", (consumer, owner))
            return
        self._conn.executemany(
            "UPDATE partition_leases SET owner='', expires_us=0 WHERE consumer=? AND owner=? AND part=?",
            [(consumer, owner, part) for part in partitions],
        )
