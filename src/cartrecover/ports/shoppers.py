"""Shoppers and the identities (anonymous ids, user ids, emails) that point to them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass
class Shopper:
    """What the engine keeps about a shopper: only what recovery needs."""

    store_id: int
    shopper_id: str
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    consent: dict[str, bool] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    group: str | None = None  # "treated" or "holdout", fixed at the shopper's first abandonment
    experiments: dict[str, str] = field(default_factory=dict)  # experiment → variant, for fixed splits
    # Purchase and response history, for decisions (decide.features) and lifetime value:
    orders: int = 0
    spend: int = 0  # the orders' totals, minor units
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    clicks: int = 0  # links in our messages followed
    active_hours: dict[int, int] = field(default_factory=dict)  # local hour → orders and clicks then (send time)


class Shoppers(Protocol):
    """Identity resolution; every method is scoped to one store."""

    def resolve(self, store_id: int, identities: Sequence[tuple[str, str]], new_id: str) -> tuple[str, list[str]]:
        """The shopper these identities belong to, linking them all to it.

        When they point to several shoppers, those merge into the oldest; returns (shopper id, merged-away ids).
        When they point to none, `new_id` is created.
        """
        ...

    def get(self, store_id: int, shopper_id: str) -> Shopper | None:
        """The shopper's profile, or None."""
        ...

    def save(self, shopper: Shopper) -> None:
        """Insert or update the profile."""
        ...

    def find(self, store_id: int, kind: str, value: str) -> str | None:
        """The shopper an identity ("user", "email", "anon") points to."""
        ...

    def all(self, store_id: int) -> list[Shopper]:
        """Every profile of the store, oldest first (training reads purchase histories from them)."""
        ...

    def erase(self, store_id: int, shopper_id: str) -> list[tuple[str, str]]:
        """Delete the profile and every identity pointing to it; return those identities. Idempotent."""
        ...
