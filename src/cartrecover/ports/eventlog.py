"""The event log: every accepted event, durable, in arrival order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cartrecover.domain.events import Event


class EventLog(Protocol):
    """Append-only log of normalised events, read by consumers from an offset.

    A backend of its own (a SQLite file, NATS JetStream), apart from the state store: every method is its own
    transaction. Consumers keep their offsets in the state store, committed with the state they derive.
    """

    def append(self, events: Sequence[Event]) -> list[bool]:
        """Append events durably; an event whose (store, message id) is already logged is skipped.

        Called by ingest before the client is acknowledged. Returns, per event, whether it was new.
        A failure (StoreError) means nothing of the call was appended.
        """
        ...

    def read_after(self, offset: int, limit: int) -> list[tuple[int, Event]]:
        """Events with a sequence number above `offset`, oldest first, at most `limit`."""
        ...

    def last_offset(self) -> int:
        """The sequence number of the newest event, 0 when the log is empty."""
        ...

    def scrub(self, store_id: int, identities: set[tuple[str, str]]) -> int:
        """Remove personal data from the store's logged events that name any of these identities.

        The events stay (offsets and aggregates hold); returns how many were scrubbed. Idempotent.
        """
        ...

    def erase_store(self, store_id: int) -> int:
        """Remove personal data from every logged event of the store. Idempotent."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class DeadLetters(Protocol):
    """Events a consumer could not apply, parked with the reason so the rest of the log keeps flowing."""

    def park(self, consumer: str, offset: int, reason: str) -> None:
        """Record that the event at `offset` failed in `consumer`; written with the checkpoint that skips it."""
        ...

    def parked(self, consumer: str) -> list[tuple[int, str]]:
        """The parked offsets with their reasons, oldest first."""
        ...


class Checkpoints(Protocol):
    """Where each consumer of the log has got to; written in the same transaction as its state changes."""

    def get(self, consumer: str) -> int:
        """The last offset the consumer has applied, 0 if none."""
        ...

    def put(self, consumer: str, offset: int) -> None:
        """Record that the consumer has applied everything up to `offset`."""
        ...
