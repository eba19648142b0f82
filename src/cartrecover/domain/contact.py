"""Contact addresses as the engine compares and keeps them."""

from __future__ import annotations

import hashlib


def address_key(channel: str, address: str) -> str:
    """SHA-256 of the normalised address: what suppression lists keep, so they hold no address in clear."""
    normal = address.strip().lower() if channel == "email" else "".join(c for c in address if c.isdigit() or c == "+")
    return hashlib.sha256(f"{channel}:{normal}".encode()).hexdigest()


def normalise_email(email: str | None) -> str | None:
    """An email as ad platforms match it (Google Customer Match, Meta, X): trimmed and lower-cased; None if it
    is not an address.

    Nothing else: Gmail's dot-removal belongs to Google's Enhanced Conversions, and applied to Customer Match
    lists it would hash to something the platform does not match.
    """
    normal = (email or "").strip().lower()
    local, at, domain = normal.rpartition("@")
    if not at or not local or not domain:
        return None
    return normal


def normalise_phone(phone: str | None) -> str | None:
    """A phone number in E.164 (`+` and 7 to 15 digits); None when it has no country code or is not one.

    Only numbers written internationally (`+…` or `00…`) are kept: without a country code the number cannot
    be put in E.164 without guessing.
    """
    text = (phone or "").strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        return None
    digits = "".join(c for c in text if c.isdigit())
    if not 7 <= len(digits) <= 15 or digits[0] == "0":
        return None
    return f"+{digits}"


def hashed_email(email: str | None) -> str | None:
    """SHA-256 (lower-case hex) of the normalised email, for ad audiences; None when there is none."""
    normal = normalise_email(email)
    return hashlib.sha256(normal.encode()).hexdigest() if normal else None


def hashed_phone(phone: str | None) -> str | None:
    """SHA-256 (lower-case hex) of the E.164 phone number, for ad audiences; None when there is none."""
    normal = normalise_phone(phone)
    return hashlib.sha256(normal.encode()).hexdigest() if normal else None
