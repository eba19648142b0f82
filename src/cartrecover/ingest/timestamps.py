"""ISO-8601 timestamps as real clients send them, and Segment's clock-skew rule."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from cartrecover.errors import InvalidEvent

# Lenient form: one-digit months and days (Segment's own docs send "2015-2-02T00:30:08.276Z"), space or T.
_LENIENT = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def parse_timestamp(text: str, field: str) -> datetime:
    """A timezone-aware UTC datetime; naive times are taken as UTC. Raises InvalidEvent naming the field."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _parse_lenient(text, field)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise InvalidEvent(
            f"{field} is outside the years 1 to 9999 in UTC: {text[:64]!r}", code="invalid_timestamp"
        ) from exc


def _parse_lenient(text: str, field: str) -> datetime:
    match = _LENIENT.match(text.strip())
    if not match:
        raise InvalidEvent(f"{field} is not an ISO-8601 timestamp: {text[:64]!r}", code="invalid_timestamp")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        parsed = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro)
    except ValueError as exc:
        raise InvalidEvent(f"{field} is not a valid date: {text[:64]!r} ({exc})", code="invalid_timestamp") from exc
    if zone is None:
        return parsed
    return datetime.fromisoformat(parsed.isoformat() + ("+00:00" if zone.upper() == "Z" else zone))


def event_time(original: datetime | None, sent_at: datetime | None, received_at: datetime) -> datetime:
    """Segment's rule `timestamp = receivedAt − (sentAt − originalTimestamp)`, never later than receipt."""
    if original is None:
        return received_at
    try:
        at = original if sent_at is None else received_at - (sent_at - original)
    except OverflowError as exc:  # e.g. originalTimestamp in year 1 and sentAt in 9999
        raise InvalidEvent("timestamp and sentAt are too far apart", code="invalid_timestamp") from exc
    return min(at, received_at)


def clamp_future(at: datetime, received_at: datetime, slack: timedelta = timedelta(0)) -> datetime:
    """A time in the future (a wrong device clock) is taken as the time of receipt."""
    return received_at if at > received_at + slack else at
