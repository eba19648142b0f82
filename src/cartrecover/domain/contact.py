"""Contact addresses as the engine compares and keeps them."""

from __future__ import annotations

import hashlib


def address_key(channel: str, address: str) -> str:
    """SHA-256 of the normalised address: what suppression lists keep, so they hold no address in clear."""
    normal = address.strip().lower() if channel == "email" else "".join(c for c in address if c.isdigit() or c == "+")
    return hashlib.sha256(f"{channel}:{normal}".encode()).hexdigest()
