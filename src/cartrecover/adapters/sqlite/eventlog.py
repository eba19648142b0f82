"""The event log in its own SQLite file: the sequence number is the offset.

Its own file, so that ingest appending to it never waits for the lifecycle writing state (and the other way
round): the two are separate backends, as NATS JetStream and PostgreSQL are at scale.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from importlib.resources import files

from cartrecover.adapters.sqlite.connections import Connections, path_of
from cartrecover.domain.events import Event, decode_event, encode_event, redacted


class SqliteEventLog:
    """Append with INSERT OR IGNORE on (store, message id): a retried event is logged once."""

    def __init__(self, path: str, *, durability: str = "full") -> None:
        schema = files("cartrecover.adapters.sqlite").joinpath("log.sql").read_text()
        self._db = Connections(path, schema, durability=durability)
        self.path = path

    @classmethod
    def from_url(cls, url: str, *, durability: str = "full") -> SqliteEventLog:
        """`sqlite:///events.db` (relative), `sqlite:////abs/events.db` or `sqlite://:memory:`."""
        return cls(path_of(url), durability=durability)

    def append(self, events: Sequence[Event]) -> list[bool]:
        """Append new events in one transaction, durable on return; report which were new."""
        with self._db.write(_Rows) as rows:
            return rows.append(events)

    def read_after(self, offset: int, limit: int) -> list[tuple[int, Event]]:
        """Events after `offset`, oldest first."""
        with self._db.read(_Rows) as rows:
            return rows.read_after(offset, limit)

    def last_offset(self) -> int:
        """The newest sequence number."""
        with self._db.read(_Rows) as rows:
            return rows.last_offset()

    def scrub(self, store_id: int, identities: set[tuple[str, str]]) -> int:
        """Rewrite the store's events that name these identities without personal data."""
        if not identities:
            return 0
        with self._db.write(_Rows) as rows:
            return rows.scrub(store_id, lambda event: bool(identities.intersection(event.identities)))

    def erase_store(self, store_id: int) -> int:
        """Rewrite every event of the store without personal data."""
        with self._db.write(_Rows) as rows:
            return rows.scrub(store_id, lambda event: True)

    def close(self) -> None:
        """Close the connections."""
        self._db.close()


class _Rows:
    """The events table within one transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def append(self, events: Sequence[Event]) -> list[bool]:
        conn = self._conn
        before = conn.total_changes
        if len(events) == 1:
            e = events[0]
            conn.execute(_INSERT, (e.store_id, e.message_id, encode_event(e)))
            return [conn.total_changes > before]
        top = self.last_offset()
        conn.executemany(_INSERT, [(e.store_id, e.message_id, encode_event(e)) for e in events])
        if conn.total_changes - before == len(events):
            return [True] * len(events)
        return self._which_are_new(events, top)

    def _which_are_new(self, events: Sequence[Event], top: int) -> list[bool]:
        # Rare path (a retried batch): an event is new if its row was written by this call, and only once.
        seen: set[tuple[int, str]] = set()
        result = []
        for e in events:
            key = (e.store_id, e.message_id)
            row = self._conn.execute("SELECT seq FROM events WHERE store_id=? AND message_id=?", key).fetchone()
            result.append(key not in seen and row[0] > top)
            seen.add(key)
        return result

    def read_after(self, offset: int, limit: int) -> list[tuple[int, Event]]:
        rows = self._conn.execute("SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (offset, limit))
        return [(seq, decode_event(body)) for seq, body in rows]

    def last_offset(self) -> int:
        row = self._conn.execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def scrub(self, store_id: int, matches: Callable[[Event], bool]) -> int:
        # A scan of the store's events (through the unique index's store_id prefix): erasure is rare.
        rows = self._conn.execute("SELECT seq, body FROM events WHERE store_id=?", (store_id,)).fetchall()
        scrubbed = [(encode_event(redacted(event)), seq) for seq, body in rows if matches(event := decode_event(body))]
        self._conn.executemany("UPDATE events SET body=? WHERE seq=?", scrubbed)
        return len(scrubbed)


_INSERT = "INSERT OR IGNORE INTO events (store_id, message_id, body) VALUES (?, ?, ?)"


class SqliteDeadLetters:
    """Parked events by consumer and offset."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def park(self, consumer: str, offset: int, reason: str) -> None:
        """Park an event with its reason."""
        self._conn.execute(
            "INSERT OR REPLACE INTO dead_letters (consumer, seq, reason) VALUES (?, ?, ?)", (consumer, offset, reason)
        )

    def parked(self, consumer: str) -> list[tuple[int, str]]:
        """Parked offsets and reasons."""
        rows = self._conn.execute("SELECT seq, reason FROM dead_letters WHERE consumer=? ORDER BY seq", (consumer,))
        return [(int(seq), str(reason)) for seq, reason in rows]


class SqliteCheckpoints:
    """Consumer offsets, committed with the consumer's state changes."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, consumer: str) -> int:
        """The consumer's offset."""
        row = self._conn.execute("SELECT seq FROM checkpoints WHERE consumer=?", (consumer,)).fetchone()
        return int(row[0]) if row else 0

    def put(self, consumer: str, offset: int) -> None:
        """Move the consumer's offset."""
        self._conn.execute(
            "INSERT INTO checkpoints (consumer, seq) VALUES (?, ?) ON CONFLICT(consumer) DO UPDATE SET seq=excluded.seq",
            (consumer, offset),
        )
