"""The two clocks: the system's, and a manual one that only moves forward when told."""

from __future__ import annotations

from datetime import UTC, datetime

from cartrecover.errors import ClockError


class SystemClock:
    """Wall time."""

    manual = False

    def now(self) -> datetime:
        """Now, UTC."""
        return datetime.now(UTC)


class ManualClock:
    """Time that moves only through `advance_to`; starts at the given time (default: now)."""

    manual = True

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        """The time it was last set to."""
        return self._now

    def advance_to(self, when: datetime) -> None:
        """Move forward; moving back is refused, because timers already fired cannot un-fire."""
        if when.tzinfo is None:
            raise ClockError("the time needs a timezone (e.g. 2026-01-01T12:00:00Z)")
        if when < self._now:
            raise ClockError(f"the clock is at {self._now.isoformat()} and cannot move back to {when.isoformat()}")
        self._now = when.astimezone(UTC)
