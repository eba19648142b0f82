"""Field checks every source shares: JSON bodies, amounts, quantities, ids and emails.

Each raises ValueError (or InvalidEvent for a body) naming the field, so that whatever a shop or client
sends, a bad value is a 4xx with a clear message and never a 500.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from cartrecover.domain.money import InvalidAmount, to_minor
from cartrecover.errors import InvalidEvent

MAX_INTEGER = 2**63 - 1  # the event log stores 64-bit integers; anything larger is refused, not a 500


def decode(decoder: msgspec.json.Decoder[Any], body: bytes, where: str) -> Any:
    """Decode a JSON body, turning msgspec's errors into a 400 that says where."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(f"{where}: {exc}", code="invalid_event") from exc
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"{where}: invalid JSON ({exc})", code="invalid_json") from exc


def money(amount: Any, currency: str, field: str) -> int | None:
    """A non-negative amount (number or decimal string) in minor units; None when absent or empty."""
    if amount is None or amount == "":
        return None
    if isinstance(amount, bool) or not isinstance(amount, (int, Decimal, str)):
        raise ValueError(f"{field} must be a decimal amount, not {amount!r}")
    try:
        minor = to_minor(amount, currency)
    except (ArithmeticError, InvalidAmount) as exc:  # "abc"; decimal overflow for exponents like 1e400
        raise ValueError(f"{field} is not a usable amount: {str(amount)[:40]}") from exc
    if minor > MAX_INTEGER:
        raise ValueError(f"{field} is too large: {str(amount)[:40]}")
    if minor < 0:
        raise ValueError(f"{field} must not be negative: {str(amount)[:40]}")
    return minor


def quantity(value: Any, product_id: str) -> int:
    """A whole number of items, 0 or more."""
    if type(value) is int and 0 <= value <= MAX_INTEGER:  # the common case, first (ingest's hot path)
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INTEGER:
        raise ValueError(f"line {product_id}: quantity must be a whole number ≥ 0, not {str(value)[:40]}")
    return value


def text(value: str | int | None, limit: int = 200) -> str | None:
    """An id or label as text, cut to `limit`; None when absent or empty."""
    if value is None or value == "":
        return None
    return str(value)[:limit]


def email(value: str | None) -> str | None:
    """An email address as identities compare it: trimmed and lower-case."""
    cleaned = value.strip().lower() if value else ""
    return cleaned or None
