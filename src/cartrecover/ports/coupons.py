"""The coupon port: creates a step's unique code in the store's platform, so its checkout accepts it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class CouponIssuer(Protocol):
    """Creates discount codes in one store's platform (Shopify, WooCommerce, …).

    Called by the delivery worker, outside any transaction, just before a step whose incentive carries a code
    is sent: the message never names a code the shop does not know. Called again on every retry and re-send
    of the step with the same code, so a code that already exists counts as issued.

    Raises RetryableDelivery when trying again later may work (throttled, 5xx, unreachable, and a rejected
    token: that is our configuration, so the step ends as a replayable dead letter) and PermanentDelivery
    when the platform will never take this code: the step is skipped, the shopper's address is not suppressed.
    """

    def issue(
        self, store_id: int, code: str, percent: int, expires_at: datetime, starts_at: datetime | None = None
    ) -> None:
        """Create `code`: `percent` off the whole order, for anyone, one use, valid until `expires_at`.

        `starts_at` is the engine's time of the send (on the manual clock it is not the wall clock's); None: now.
        """
        ...
