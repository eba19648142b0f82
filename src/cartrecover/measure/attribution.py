"""Last-touch attribution: which message (or click on it) an order is credited to, within a window per channel.

The rule, as Klaviyo's: an order is credited to the **last click** on one of our messages whose channel window
still covered the order (by default 5 days after an email click, 24 hours after an SMS, push or on-site click);
without such a click, to the **last message sent** whose window still covered it (the same windows, counted from
the send). A touch after the order, or on a channel without a window, is never credited. This is the view users
of the incumbents know; the holdout comparison in `report` is the one that says what was really earned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Touch:
    """A message sent about a cart, or a click on one: when, on which channel, and which step it belongs to."""

    at: datetime
    channel: str
    step: str  # the journey step's name
    step_id: str
    clicked: bool
    incentive: str  # "none" or e.g. "10% off"


def last_touch(placed_at: datetime, touches: Iterable[Touch], windows: Mapping[str, timedelta]) -> Touch | None:
    """The touch an order placed at `placed_at` is credited to: the last click in its window, else the last send."""
    covering = [t for t in touches if t.at <= placed_at <= t.at + windows.get(t.channel, timedelta(0))]
    clicks = [t for t in covering if t.clicked]
    chosen = clicks or covering
    return max(chosen, key=lambda t: (t.at, t.step_id)) if chosen else None
