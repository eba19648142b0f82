"""The outbox: scheduled journey steps, claimed by delivery workers when due."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cartrecover.domain.cart import Cart
from cartrecover.domain.journey import Step
from cartrecover.ports.shoppers import Shopper


@dataclass(frozen=True)
class Claim:
    """A step a delivery worker now holds, with what sending it needs."""

    step: Step
    address: str
    cart: Cart
    shopper: Shopper
    at: datetime  # the time the step is sent at (its due time on the manual clock)


class Outbox(Protocol):
    """Steps by id, by cart and by due time; written in the transaction that plans, claims or settles them."""

    def add(self, steps: Sequence[Step]) -> None:
        """Schedule steps; a step whose id exists is left as it is (planning twice schedules once)."""
        ...

    def due(self, now: datetime, limit: int) -> list[Step]:
        """Steps to claim: scheduled and due by `now`, or sending with a lease that ran out (a worker died).

        Called inside the transaction that claims them, so two workers never claim the same step.
        """
        ...

    def get(self, store_id: int, step_id: str) -> Step | None:
        """The step, or None."""
        ...

    def save(self, step: Step) -> None:
        """Write the step's new state."""
        ...

    def for_cart(self, store_id: int, cart_id: str) -> list[Step]:
        """The cart's steps, oldest first."""
        ...

    def for_carts(self, store_id: int, cart_ids: Collection[str]) -> dict[str, list[Step]]:
        """The steps of these carts, by cart, each cart's oldest first; carts without steps are left out.

        Called by the report, a page of carts at a time, so that a remote store answers a page per round trip.
        """
        ...

    def sent_since(self, store_id: int, shopper_id: str, since: datetime) -> int:
        """How many messages went (or are going: claimed) to the shopper at or after `since`, on any channel."""
        ...

    def sent_times(self, store_id: int, shopper_id: str, since: datetime) -> list[datetime]:
        """The times of the messages `sent_since` counts, oldest first (what the online-features cache keeps)."""
        ...

    def count_by_status(self) -> dict[str, int]:
        """How many steps each status has, over all stores (for summaries and metrics)."""
        ...

    def dead(self, store_id: int | None, limit: int) -> list[Step]:
        """Dead letters, newest first (of one store, or of all)."""
        ...


class Suppressions(Protocol):
    """Addresses that must not get a channel's messages again: bounces, complaints, STOP, unsubscribes."""

    def add(self, store_id: int, channel: str, address: str, reason: str, at: datetime) -> None:
        """Suppress the address on the channel (idempotent; the first reason stays)."""
        ...

    def reason(self, store_id: int, channel: str, address: str) -> str | None:
        """Why the address is suppressed on the channel, or None if it is not."""
        ...

    def remove(self, store_id: int, channel: str, address: str) -> None:
        """Lift the address's suppression on the channel (an SMS START); nothing if it is not suppressed.

        Called by the lifecycle in the transaction that applies the opt-in; claims after it may send again.
        """
        ...
