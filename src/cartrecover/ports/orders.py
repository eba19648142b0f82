"""Orders, kept so that one that arrives before its cart still closes it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass
class Order:
    """An order as the lifecycle needs it."""

    store_id: int
    order_id: str
    shopper_id: str | None
    placed_at: datetime
    value: int | None
    currency: str | None
    refs: tuple[str, ...]
    cart_id: str | None = None
    cancelled_at: datetime | None = None
    coupons: tuple[str, ...] = ()  # the codes the order used
    discount: int | None = None  # its total discount in minor units, when the source states it


class Orders(Protocol):
    """Orders by id and by the join keys they carry."""

    def get(self, store_id: int, order_id: str) -> Order | None:
        """The order, or None."""
        ...

    def get_many(self, store_id: int, order_ids: Collection[str]) -> dict[str, Order]:
        """The orders with these ids, by id; ids without an order are left out.

        Called by the report, a page of carts at a time, so that a remote store answers a page per round trip.
        """
        ...

    def find_unjoined(self, store_id: int, refs: tuple[str, ...]) -> Order | None:
        """An order that names one of these join keys and has not yet closed a cart."""
        ...

    def save(self, order: Order) -> None:
        """Insert or update the order and index its join keys."""
        ...
