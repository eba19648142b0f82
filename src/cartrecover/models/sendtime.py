"""When to send a follow-up: the local hour a shopper is most active, shrunk toward the store's pattern.

A shopper with few recorded visits gets the store's busiest hours; one with many gets their own. The shares
are (their count in the hour + strength × the store's share) / (their total + strength): a Dirichlet prior
with `strength` pseudo-visits spread like the store's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

HOURS = 24


@dataclass(frozen=True)
class SendTime:
    """The store's share of activity by local hour (24 numbers summing to 1) and the prior's strength."""

    store: tuple[float, ...] = (1 / HOURS,) * HOURS
    strength: float = 4.0

    def __post_init__(self) -> None:
        if len(self.store) != HOURS or self.strength < 0:
            raise ValueError("a send-time profile has 24 hourly shares and a strength of 0 or more")

    def shares(self, counts: Mapping[int, int]) -> list[float]:
        """The shopper's activity share for each local hour."""
        total = sum(counts.values())
        return [(counts.get(h, 0) + self.strength * self.store[h]) / (total + self.strength) for h in range(HOURS)]

    def best(self, due: datetime, window: timedelta, counts: Mapping[int, int], timezone: str) -> datetime:
        """The whole-hour shift of `due` within ±`window` that lands in the shopper's most active hour.

        Ties go to the smallest shift, so a shopper with no pattern keeps the planned time.
        """
        span = int(window.total_seconds() // 3600)
        if span <= 0:
            return due
        shares = self.shares(counts)
        zone = ZoneInfo(timezone)
        shifts = sorted(range(-span, span + 1), key=abs)
        best = max(shifts, key=lambda k: (shares[(due + timedelta(hours=k)).astimezone(zone).hour], -abs(k)))
        return due + timedelta(hours=best)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the registry."""
        return {"store": list(self.store), "strength": self.strength}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SendTime:
        """The inverse of `to_dict`."""
        return cls(tuple(float(v) for v in data["store"]), float(data["strength"]))


def store_pattern(hours: Sequence[int], smoothing: float = 1.0) -> tuple[float, ...]:
    """The store's share of activity by hour from observed local hours (add-`smoothing` per hour)."""
    counts = [smoothing] * HOURS
    for hour in hours:
        counts[hour % HOURS] += 1
    total = sum(counts)
    return tuple(c / total for c in counts)
