"""Carts, the join keys that find them, and their timelines."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from cartrecover.domain.cart import Cart, CartStatus


class Carts(Protocol):
    """The lifecycle's view of carts; every method is scoped to one store."""

    def get(self, store_id: int, cart_id: str) -> Cart | None:
        """The cart with this id, or None."""
        ...

    def get_many(self, store_id: int, cart_ids: Collection[str]) -> dict[str, Cart]:
        """The carts with these ids, by id; ids without a cart are left out.

        Called by training, a page of decisions at a time, so that a remote store answers a page per round trip.
        """
        ...

    def find(self, store_id: int, ref: str) -> Cart | None:
        """The cart that a join key ("cart:…", "checkout:…", "token:…") points to, or None."""
        ...

    def open_for_shopper(self, store_id: int, shopper_id: str) -> list[Cart]:
        """The shopper's carts that are still open, newest activity first."""
        ...

    def count_by_status(self) -> dict[str, int]:
        """How many carts each status has, over all stores (for metrics)."""
        ...

    def for_shopper(self, store_id: int, shopper_id: str) -> list[Cart]:
        """Every cart of the shopper, open or closed."""
        ...

    def save(self, cart: Cart) -> None:
        """Insert or update the cart and index its join keys."""
        ...

    def page(self, store_id: int, status: CartStatus | None, limit: int, after: str | None) -> list[Cart]:
        """A page of the store's carts, by cart id, optionally with one status."""
        ...

    def abandoned_between(
        self, store_id: int, since: datetime, until: datetime, statuses: Collection[CartStatus] | None = None
    ) -> list[Cart]:
        """The store's carts abandoned in [since, until) (with one of `statuses`, if given), by abandonment time."""
        ...

    def finished_by_variant(self, store_id: int, experiment: str) -> dict[str, tuple[int, int]]:
        """Per variant of the experiment, how many of its carts were recovered and how many expired.

        Called when a bandit assigns a variant, in the transaction that plans the journey.
        """
        ...


class Timeline(Protocol):
    """What happened to each cart, for people to read."""

    def add(self, store_id: int, cart_id: str, at: datetime, kind: str, detail: dict[str, Any]) -> None:
        """Append an entry (an event, a state change, later a decision or message)."""
        ...

    def for_cart(self, store_id: int, cart_id: str) -> list[dict[str, Any]]:
        """The cart's entries in event-time order."""
        ...

    def for_carts(self, store_id: int, cart_ids: Collection[str], kind: str) -> dict[str, list[dict[str, Any]]]:
        """The entries of one kind ("click", …) of these carts, by cart, each cart's in event-time order; carts
        without such entries are left out.

        Called by the report, a page of carts at a time, so that a remote store answers a page per round trip.
        """
        ...
