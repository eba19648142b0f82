"""Durable timers: the lifecycle's alarms, fired when the clock passes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Timer:
    """One alarm for one cart."""

    store_id: int
    cart_id: str
    kind: str
    due: datetime


class Timers(Protocol):
    """At most one timer of each kind per cart; setting one again moves it."""

    def set(self, timer: Timer) -> None:
        """Arm or move the cart's timer of this kind."""
        ...

    def cancel(self, store_id: int, cart_id: str, kind: str) -> None:
        """Disarm the timer if it exists."""
        ...

    def pop_due(self, now: datetime, limit: int) -> list[Timer]:
        """Remove and return timers due at or before `now`, earliest first.

        Called inside the transaction that applies them: if it rolls back, they come back.
        """
        ...

    def next_due(self) -> datetime | None:
        """When the earliest timer is due."""
        ...
