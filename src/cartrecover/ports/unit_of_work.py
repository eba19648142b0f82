"""One transaction over everything a handler touches."""

from __future__ import annotations

from typing import Protocol

from cartrecover.ports.carts import Carts, Timeline
from cartrecover.ports.decisions import Decisions, Models
from cartrecover.ports.eventlog import Checkpoints, DeadLetters
from cartrecover.ports.orders import Orders
from cartrecover.ports.outbox import Outbox, Suppressions
from cartrecover.ports.partitions import PartitionLayouts, PartitionLeases
from cartrecover.ports.shoppers import Shoppers
from cartrecover.ports.stores import Stores
from cartrecover.ports.timers import Timers


class UnitOfWork(Protocol):
    """The repositories of one transaction: all of its writes commit together, or none do."""

    checkpoints: Checkpoints
    dead_letters: DeadLetters
    layouts: PartitionLayouts
    leases: PartitionLeases
    carts: Carts
    timeline: Timeline
    timers: Timers
    shoppers: Shoppers
    orders: Orders
    stores: Stores
    outbox: Outbox
    suppressions: Suppressions
    decisions: Decisions
    models: Models

    def erase_store_data(self, store_id: int) -> None:
        """Delete everything the state store keeps about the store's shoppers (carts, orders, timelines, profiles)."""
        ...


class Database(Protocol):
    """Opens transactions. Writes are serialised by the caller (one writer per process)."""

    def write(self) -> TransactionContext:
        """A read-write transaction; commits on normal exit, rolls back on an exception."""
        ...

    def read(self) -> TransactionContext:
        """A read-only snapshot."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class TransactionContext(Protocol):
    """`with database.write() as uow: …`"""

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(self, *exc: object) -> None: ...
