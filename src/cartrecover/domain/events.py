"""The one internal event type that every source (Segment, Shopify, WooCommerce) is normalised to."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec


class EventKind(enum.StrEnum):
    """What an event means for the lifecycle, whatever its source called it."""

    CART_ACTIVITY = "cart_activity"  # items added, removed, cart or checkout viewed or updated
    BROWSED = "browsed"  # a page or screen view, or a track call that is not about the cart
    ORDER_PLACED = "order_placed"
    ORDER_CANCELLED = "order_cancelled"
    IDENTIFIED = "identified"
    ALIASED = "aliased"
    SHOPPER_REDACTED = "shopper_redacted"
    STORE_REDACTED = "store_redacted"
    DATA_REQUESTED = "data_requested"
    MESSAGE_CLICKED = "message_clicked"  # properties: step_id, channel
    UNSUBSCRIBED = "unsubscribed"  # properties: channel, reason, step_id (when from a link); phone/email: the address
    RESUBSCRIBED = "resubscribed"  # properties: channel, reason (an SMS START); phone: the address


class CartChange(enum.StrEnum):
    """How an event changes a cart's contents."""

    NONE = "none"
    ADD = "add"  # `item` is added (quantities sum)
    REMOVE = "remove"  # `item` is removed (quantity subtracted)
    REPLACE = "replace"  # `items` is the whole cart


class LineItem(msgspec.Struct, frozen=True, omit_defaults=True):
    """One product line of a cart or order; price is the unit price in minor units."""

    product_id: str
    quantity: int = 1
    price: int | None = None
    sku: str | None = None
    variant: str | None = None
    name: str | None = None
    url: str | None = None
    image_url: str | None = None


class Event(msgspec.Struct, frozen=True, omit_defaults=True, array_like=True):
    """A normalised event as kept in the event log.

    `at` is the event time (Segment's skew-corrected `timestamp`); `received_at` is the engine clock at ingest.
    `refs` are join keys between carts, checkouts and orders ("cart:…", "checkout:…", "token:…").
    The field order is the stored format (`array_like`), and `segment.normalise` passes the fields positionally
    in this order (for speed): a change here must be made there too (its tests check every field).
    """

    kind: EventKind
    store_id: int
    message_id: str
    source: str
    name: str
    at: datetime
    received_at: datetime
    anonymous_id: str | None = None
    user_id: str | None = None
    email: str | None = None
    phone: str | None = None
    cart_id: str | None = None
    refs: tuple[str, ...] = ()
    order_id: str | None = None
    change: CartChange = CartChange.NONE
    items: tuple[LineItem, ...] = ()
    currency: str | None = None
    value: int | None = None  # cart or order total in minor units, when the source states it
    checkout_started: bool = False
    restore_url: str | None = None
    timezone: str | None = None
    consent: dict[str, bool] = {}
    traits: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    coupons: tuple[str, ...] = ()  # codes an order used (for incentive cost)
    discount: int | None = None  # an order's total discount in minor units, when the source states it
    device: str | None = None  # "mobile", "tablet" or "desktop", from the browser's User-Agent
    campaign: str | None = None  # "source/medium" of the visit's campaign (its UTM parameters)

    @property
    def identities(self) -> list[tuple[str, str]]:
        """The identifiers this event names, strongest first."""
        found = [("user", self.user_id), ("email", self.email), ("anon", self.anonymous_id)]
        return [(kind, value) for kind, value in found if value]


def redacted(event: Event) -> Event:
    """The event without personal data: identities, contact, free-form properties and traits."""
    return msgspec.structs.replace(
        event,
        anonymous_id=None,
        user_id=None,
        email=None,
        phone=None,
        restore_url=None,
        traits={},
        properties={},
        name=event.name,
        timezone=None,
    )


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Event)


def encode_event(event: Event) -> bytes:
    """Serialise an event for the log."""
    return _encoder.encode(event)


def decode_event(body: bytes) -> Event:
    """Read an event back from the log."""
    return _decoder.decode(body)
