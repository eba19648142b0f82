"""The lifecycle's partitions: which events each applies, its checkpoint, the layout, and the leases of a worker.

**The key is the store.** An event belongs to partition `store_id % partitions`, so every event of a store is
applied by one partition, in log order, as on a single worker. A finer key (store + anonymous id, user id or
cart) is not safe with this lifecycle, because what one event changes is found through state, not through the
event's own fields:

- identity resolution joins any of a store's identities: an `identify` naming an anonymous id and a user id
  merges two shoppers, and events keyed by either may then touch the merged shopper's carts. Applied in two
  partitions at once, two events naming the same new email would each create a shopper and the merge is lost;
- an order closes every open cart of its shopper (the order on the phone, the cart on the laptop), and whether
  it closes one depends on whether the `identify` linking them was applied first: two partitions reorder them,
  and a reminder could follow the order;
- a Shopify checkout (keyed by cart token and email) and the browser's `Product Added` (its anonymous id) update
  the same cart through its refs.

Stores share nothing (a store's keys never reach another store's data), so partitions by store apply in parallel
and the state is exactly what one worker applying the whole log in order would leave. The price: one store's
events are applied by one worker at a time; an installation of many stores (an agency) spreads, one very large
store does not. (Store ids are handed out in sequence, so `store_id % partitions` spreads stores evenly.)

**Exactly once in state.** A partition's checkpoint is read `FOR UPDATE` and moved in the transaction that applies
its events, so two workers that both believe they hold a partition (a lease that expired under a paused worker)
take turns, and the second reads where the first got to. Leases spread the work; checkpoints make it correct.

**Changing the count.** The layout (how many partitions) is recorded in the state store. A worker started with
another count, once no worker of the old count is alive, records a new layout: every new partition starts at the
oldest old checkpoint, and skips the events of a store that its old partition had applied (the old checkpoints,
kept as the layout's `floors`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from cartrecover.domain.events import Event
from cartrecover.errors import ConfigError
from cartrecover.ports.partitions import Layout
from cartrecover.ports.unit_of_work import Database, UnitOfWork

LIFECYCLE = "lifecycle"
logger = logging.getLogger("cartrecover.partitions")


def partition_of(store_id: int, partitions: int) -> int:
    """The partition that applies the store's events."""
    return store_id % partitions


def checkpoint_name(part: int, partitions: int) -> str:
    """The checkpoint of a partition; one partition keeps the consumer's own (so single workers are unchanged)."""
    return LIFECYCLE if partitions == 1 else f"{LIFECYCLE}.{part}of{partitions}"


class LayoutChanged(Exception):
    """The recorded layout is not the one this process applies with: settle it again."""


def settle_layout(uow: UnitOfWork, partitions: int, now_us: int) -> Layout:
    """The layout to apply with, recording a new one if the count changed and no worker runs the old count.

    Runs in a write transaction; the layout is locked first, so workers starting at once settle it in turn.
    """
    recorded = uow.layouts.lock(LIFECYCLE)
    if recorded is not None and recorded.partitions == partitions:
        return recorded
    current = recorded or Layout(1)
    others = {owner: n for owner, n in uow.leases.workers(LIFECYCLE, now_us).items() if n != partitions}
    if recorded is not None and others:
        raise ConfigError(
            f"the lifecycle runs {current.partitions} partitions and workers of that count are alive "
            f"({', '.join(sorted(others))}): stop them all to change [worker] partitions to {partitions}"
        )
    old = [uow.checkpoints.get(checkpoint_name(part, current.partitions)) for part in range(current.partitions)]
    if current.floors and min(old) < max(current.floors):
        raise ConfigError(
            "the previous change of [worker] partitions has not caught up yet: run the workers with "
            f"partitions = {current.partitions} until the lifecycle lag is 0, then change it"
        )
    start = min(old)
    layout = Layout(partitions, tuple(old) if max(old) > start else ())
    for part in range(partitions):
        uow.checkpoints.put(checkpoint_name(part, partitions), start)
    uow.layouts.put(LIFECYCLE, layout)
    if recorded is not None or start > 0:  # a change, not a first start
        logger.warning("lifecycle: %d partitions from now on (was %d)", partitions, current.partitions)
    return layout


@dataclass
class Positions:
    """Where each partition of a batch got to, read and locked in the transaction that applies the batch."""

    layout: Layout
    offsets: dict[int, int]

    @classmethod
    def locked(cls, uow: UnitOfWork, layout: Layout, parts: Iterable[int]) -> Positions:
        """Lock the partitions' checkpoints (in order: no two workers wait for each other), then check the layout."""
        offsets = {part: uow.checkpoints.get(checkpoint_name(part, layout.partitions)) for part in sorted(parts)}
        if uow.layouts.get(LIFECYCLE) != layout:
            raise LayoutChanged(f"the lifecycle's layout changed from {layout}")
        return cls(layout, offsets)

    @property
    def start(self) -> int:
        """The offset to read the log after."""
        return min(self.offsets.values())

    def pending(self, seq: int, event: Event) -> bool:
        """Whether the event is one of these partitions' and not applied yet."""
        offset = self.offsets.get(event.store_id % self.layout.partitions)
        if offset is None or seq <= offset:
            return False
        floors = self.layout.floors
        return not floors or seq > floors[event.store_id % len(floors)]

    def advance(self, uow: UnitOfWork, seq: int, part: int | None = None) -> None:
        """Move the checkpoints (or one partition's) to `seq`: every event up to it is applied or not theirs."""
        for each, offset in self.offsets.items():
            if seq > offset and part in (None, each):
                uow.checkpoints.put(checkpoint_name(each, self.layout.partitions), seq)
                self.offsets[each] = seq


class Membership:
    """A worker process's partitions: heartbeat, its share of the partitions, takeover of expired ones, release.

    Every `lease / 3` the worker renews the leases it holds and counts the live workers of its layout; it holds
    `ceil(partitions / workers)`, giving back extra ones and taking free or expired ones. A worker that dies stops
    renewing: after `lease` the others count one worker fewer and take its partitions over.
    """

    def __init__(self, database: Database, partitions: int, lease: timedelta, owner: str) -> None:
        self.database, self.partitions, self.owner = database, partitions, owner
        self.lease_us = int(lease.total_seconds() * 1_000_000)
        self.held: tuple[int, ...] = ()
        self._next_us = 0

    def heartbeat_if_due(self) -> bool:
        """Heartbeat if a third of the lease has passed since the last one; whether the partitions held changed."""
        if _now_us() < self._next_us:
            return False
        return self.heartbeat()

    def heartbeat(self) -> bool:
        """Renew, rebalance and take over; whether the partitions held changed."""
        now = _now_us()
        until = now + self.lease_us
        with self.database.write() as uow:
            settle_layout(uow, self.partitions, now)
            uow.leases.join(LIFECYCLE, self.owner, self.partitions, until)
            held = uow.leases.renew(LIFECYCLE, self.owner, now, until)
            alive = sum(1 for n in uow.leases.workers(LIFECYCLE, now).values() if n == self.partitions)
            share = math.ceil(self.partitions / max(alive, 1))
            if len(held) > share:
                uow.leases.release(LIFECYCLE, self.owner, held[share:])
                held = held[:share]
            elif len(held) < share:
                held += uow.leases.acquire(LIFECYCLE, self.owner, share - len(held), now, until)
        self._next_us = now + self.lease_us // 3
        changed = tuple(sorted(held)) != self.held
        if changed:
            logger.info("lifecycle: %s holds partitions %s of %d", self.owner, sorted(held), self.partitions)
        self.held = tuple(sorted(held))
        return changed

    def leave(self) -> None:
        """Give every partition back at once (a clean stop), so the others need not wait for the leases."""
        with self.database.write() as uow:
            uow.leases.release(LIFECYCLE, self.owner)
        self.held = ()


def _now_us() -> int:
    # Leases are wall-clock time, whatever clock the engine runs on.
    return time.time_ns() // 1000
