"""The holdout: a deterministic share of each store's shoppers who are tracked but never contacted.

All lift figures come from comparing them with the treated shoppers. The assignment hashes (store, shopper):
it needs no state to compute, but it is kept on the shopper once made, so that it stays the same when the
shopper's identities merge across devices (the surviving shopper's group wins).
"""

from __future__ import annotations

import enum
import hashlib


class Group(enum.StrEnum):
    """Whether a shopper's abandoned carts get journeys."""

    TREATED = "treated"
    HOLDOUT = "holdout"


def assign(store_id: int, shopper_id: str, share: float) -> Group:
    """HOLDOUT for a `share` (0–1) of shoppers, chosen by a hash of (store, shopper); TREATED for the rest."""
    digest = hashlib.sha256(f"holdout/{store_id}/{shopper_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return Group.HOLDOUT if position < share else Group.TREATED
