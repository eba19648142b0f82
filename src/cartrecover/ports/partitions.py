"""How the log's consumer is split into partitions, and which worker process holds which (leases)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Layout:
    """The consumer's partitions, and what the layout before it had applied when it was replaced.

    `floors[i]` is the checkpoint the previous layout's partition i had reached: an event of a store the previous
    layout put in partition i (`store_id % len(floors)`) at or below it was applied already. Empty: nothing to skip.
    """

    partitions: int
    floors: tuple[int, ...] = ()


class PartitionLayouts(Protocol):
    """The layout each consumer runs, kept with its checkpoints."""

    def get(self, consumer: str) -> Layout | None:
        """The consumer's layout; None before any was recorded (one partition, the consumer's own checkpoint)."""
        ...

    def lock(self, consumer: str) -> Layout | None:
        """The consumer's layout, locked until the write transaction ends: workers settling it take turns."""
        ...

    def put(self, consumer: str, layout: Layout) -> None:
        """Record the layout and make one free lease per partition (dropping the previous layout's leases).

        Called in the transaction that sets the new layout's checkpoints, when no worker of another layout is alive.
        """
        ...


class PartitionLeases(Protocol):
    """Workers and the partitions they hold, until a time they renew by heartbeat (microseconds since the epoch).

    A worker that stops renewing (it died, or lost the database) loses its partitions when their leases expire,
    and the others take them. Leases spread the work; they are not what makes an event apply once (that is the
    partition's checkpoint, locked and moved in the transaction that applies its events).
    """

    def workers(self, consumer: str, now_us: int) -> dict[str, int]:
        """The workers whose heartbeat has not expired, with the partition count each runs."""
        ...

    def join(self, consumer: str, owner: str, partitions: int, until_us: int) -> None:
        """Say that `owner` (running `partitions` partitions) is alive until `until_us`: its heartbeat."""
        ...

    def renew(self, consumer: str, owner: str, now_us: int, until_us: int) -> list[int]:
        """Extend the owner's unexpired leases to `until_us`; the partitions it still holds."""
        ...

    def acquire(self, consumer: str, owner: str, count: int, now_us: int, until_us: int) -> list[int]:
        """Take up to `count` partitions no live worker holds (free, or their lease expired); those taken.

        Two workers acquiring at once never take the same partition (SKIP LOCKED on PostgreSQL).
        """
        ...

    def release(self, consumer: str, owner: str, partitions: list[int] | None = None) -> None:
        """Give partitions back at once (None: all of them, and leave: the worker is stopping)."""
        ...
