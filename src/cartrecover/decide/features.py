"""What a decision knows about an abandoned cart and its shopper, as one row of numbers.

The same function builds the row when a cart is abandoned and, because every decision stores its row, the rows
training reads are the ones serving saw: training and serving cannot disagree. A new feature goes at the end
with a new `VERSION`; a model says which version it was trained on and is used only with rows of that version.
Missing values are NaN (LightGBM learns where they go).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cartrecover.domain.cart import Cart
from cartrecover.ports.shoppers import Shopper

VERSION = "f1"
NAMES: tuple[str, ...] = (
    "cart_value",  # major units
    "lines",
    "quantity",
    "max_price",  # the dearest line's unit price, major units
    "checkout_started",
    "email_ok",  # an address and consent
    "sms_ok",
    "push_ok",
    "page_views",  # session depth while the cart was open
    "dwell_minutes",  # from the cart's first to its last activity
    "coupon_attempts",
    "device",  # 0 unknown, 1 mobile, 2 tablet, 3 desktop
    "traffic",  # see TRAFFIC
    "prior_orders",
    "days_since_order",
    "spend",  # all earlier orders, major units
    "clicks",  # links in our messages followed, ever
    "messages_30d",  # our messages in the last 30 days
    "clv",  # expected spend over the lifetime-value horizon (NaN without a model)
    "local_hour",  # at abandonment, in the shopper's time zone
    "weekday",  # 0 Monday
)
DEVICES = {"mobile": 1.0, "tablet": 2.0, "desktop": 3.0}
# Traffic source by the campaign's medium (then source): what a shop's UTM tags usually say.
TRAFFIC: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("organic", ("organic", "seo")),
    ("paid", ("cpc", "ppc", "paid", "display", "cpm", "shopping")),
    ("email", ("email", "newsletter")),
    ("social", ("social", "instagram", "facebook", "tiktok", "pinterest")),
    ("deals", ("affiliate", "coupon", "deal", "partner", "referral", "cashback")),
)
NAN = math.nan


@dataclass(frozen=True)
class Observed:
    """What the lifecycle knows beyond the cart and the shopper's profile, gathered by the caller."""

    messages_30d: int = 0
    clv: float | None = None
    timezone: str = "UTC"  # the store's, when the shopper's is unknown


def row(cart: Cart, shopper: Shopper | None, observed: Observed) -> list[float]:
    """The feature row of `cart` at its abandonment, in the order of `NAMES`."""
    at = cart.abandoned_at or cart.last_activity_at
    prices = [line.price for line in cart.items if line.price is not None]
    consent = shopper.consent if shopper else {}
    local = _local(at, (shopper.timezone if shopper else None) or observed.timezone)
    last_order = shopper.last_order_at if shopper else None
    return [
        cart.value / 100,
        float(len(cart.items)),
        float(sum(line.quantity for line in cart.items)),
        max(prices) / 100 if prices else NAN,
        float(cart.checkout_started),
        float(bool(shopper and shopper.email and consent.get("email") is True)),
        float(bool(shopper and shopper.phone and consent.get("sms") is True)),
        float(bool(shopper and shopper.traits.get("push_subscription") and consent.get("push") is True)),
        float(cart.page_views),
        max((cart.last_activity_at - cart.created_at).total_seconds(), 0.0) / 60,
        float(cart.coupon_attempts),
        DEVICES.get(cart.device or "", 0.0),
        traffic_code(cart.campaign),
        float(shopper.orders if shopper else 0),
        (at - last_order).total_seconds() / 86_400 if last_order else NAN,
        (shopper.spend if shopper else 0) / 100,
        float(shopper.clicks if shopper else 0),
        float(observed.messages_30d),
        observed.clv if observed.clv is not None else NAN,
        float(local.hour),
        float(local.weekday()),
    ]


def traffic_code(campaign: str | None) -> float:
    """0 direct or unknown, then 1 + the index of the first `TRAFFIC` kind the medium (or source) names."""
    if not campaign:
        return 0.0
    source, _, medium = campaign.partition("/")
    for text in (medium, source):
        for code, (_, words) in enumerate(TRAFFIC, start=1):
            if any(word in text for word in words):
                return float(code)
    return float(len(TRAFFIC) + 1)  # tagged, but with a medium we don't know


def _local(at: datetime, timezone: str) -> datetime:
    try:
        return at.astimezone(ZoneInfo(timezone))
    except (KeyError, ValueError):  # an unknown zone name: UTC rather than no decision
        return at
