"""Event times as integer microseconds since the epoch, UTC: cheap to index and compare."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(at: datetime) -> int:
    """Microseconds since the epoch."""
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    """The UTC datetime for microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=us)
