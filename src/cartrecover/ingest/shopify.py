"""Shopify webhooks, normalised to `Event`: pure functions of (topic, raw body, headers, time of receipt).

Checkouts, carts and orders share their field names, so one `Resource` struct reads all three. Join keys:
a checkout's `token` is the ref "checkout:<token>" and its `cart_token` the ref "token:<cart_token>"; an order
names both (`checkout_token`, `cart_token`) and "order:<id>", so an order joins its checkout whichever arrives
first. The cart token is also the event's anonymous id (it is the browser's cart cookie), which links a cart,
the checkout that follows it and the customer who fills it in to one shopper; the Shopify customer id is the
user id, so every checkout and order of a customer joins.

Signatures are checked at the HTTP edge before anything here runs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from cartrecover.domain.events import CartChange, Event, EventKind, LineItem
from cartrecover.domain.money import InvalidAmount
from cartrecover.errors import InvalidEvent
from cartrecover.ingest import fields
from cartrecover.ingest.segment import consent_of
from cartrecover.ingest.timestamps import parse_timestamp

log = logging.getLogger("cartrecover.ingest.shopify")

MAX_MESSAGE_ID = 100
CHECKOUT_TOPICS = frozenset({"checkouts/create", "checkouts/update"})
CART_TOPICS = frozenset({"carts/create", "carts/update"})
ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/paid"})
# Accepted and acknowledged but not stored: a deleted checkout says nothing about the shopper.
LOG_ONLY_TOPICS = frozenset({"checkouts/delete"})
PRIVACY_TOPICS = {
    "customers/redact": EventKind.SHOPPER_REDACTED,
    "customers/data_request": EventKind.DATA_REQUESTED,
    "shop/redact": EventKind.STORE_REDACTED,
}
TOPICS = frozenset(
    {*CHECKOUT_TOPICS, *CART_TOPICS, *ORDER_TOPICS, *LOG_ONLY_TOPICS, "orders/cancelled", *PRIVACY_TOPICS}
)

Id = str | int


class Line(msgspec.Struct):
    """A line item of a checkout, cart or order; prices are decimal strings."""

    product_id: Id | None = None
    variant_id: Id | None = None
    id: Id | None = None
    key: str | None = None
    sku: str | None = None
    title: str | None = None
    variant_title: str | None = None
    quantity: Any = 1
    price: Any = None


class Customer(msgspec.Struct):
    """The customer object of a checkout, order or privacy request."""

    id: Id | None = None
    email: str | None = None
    phone: str | None = None
    email_marketing_consent: dict[str, Any] | None = None
    sms_marketing_consent: dict[str, Any] | None = None


class DiscountCode(msgspec.Struct):
    """A code applied to a checkout or order."""

    code: str | None = None


class Resource(msgspec.Struct):
    """The fields we read of a checkout, cart or order webhook body."""

    id: Id | None = None
    token: str | None = None
    cart_token: str | None = None
    checkout_token: str | None = None
    email: str | None = None
    contact_email: str | None = None
    phone: str | None = None
    sms_marketing_phone: str | None = None
    currency: str | None = None
    total_price: Any = None
    line_items: list[Line] | None = None
    customer: Customer | None = None
    abandoned_checkout_url: str | None = None
    buyer_accepts_marketing: bool | None = None
    buyer_accepts_sms_marketing: bool | None = None
    created_at: str | None = None
    updated_at: str | None = None
    completed_at: str | None = None
    cancelled_at: str | None = None
    discount_codes: list[DiscountCode] | None = None
    total_discounts: Any = None


class PrivacyRequest(msgspec.Struct):
    """`customers/redact`, `customers/data_request` and `shop/redact` bodies."""

    shop_id: Id | None = None
    shop_domain: str | None = None
    customer: Customer | None = None


_resource = msgspec.json.Decoder(Resource, float_hook=Decimal)
_privacy = msgspec.json.Decoder(PrivacyRequest, float_hook=Decimal)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A Shopify header in either style: `X-Shopify-<name>` (classic) or `shopify-<name>` (newer deliveries)."""
    return headers.get(f"x-shopify-{name}") or headers.get(f"shopify-{name}") or None


def message_id(topic: str, headers: Mapping[str, str], body: bytes) -> str:
    """The dedupe key of a delivery: the event id, else the webhook id (both stay the same across retries).

    The topic is part of the key so that one shop event fanned out to two topics is never taken for a duplicate;
    two subscriptions to the same topic still collapse to one. Without either header, retries carry the
    original payload, so a hash of topic and body is the next best key.
    """
    delivery = header(headers, "event-id") or header(headers, "webhook-id")
    key = f"shopify:{topic}:{delivery}" if delivery else None
    if key is None or len(key) > MAX_MESSAGE_ID:
        digest = hashlib.sha256(topic.encode() + b"\n" + (delivery.encode() if delivery else body)).hexdigest()
        key = f"shopify:{digest}"
    return key


def normalise(
    topic: str, body: bytes, headers: Mapping[str, str], *, store_id: int, currency: str, received_at: datetime
) -> list[Event]:
    """The events one delivery means; empty for topics that are acknowledged and not stored."""
    if topic not in TOPICS:
        return []
    if topic in LOG_ONLY_TOPICS:
        log.info("store %s: %s acknowledged, nothing to store", store_id, topic)
        return []
    base: dict[str, Any] = {
        "store_id": store_id,
        "message_id": message_id(topic, headers, body),
        "source": "shopify",
        "name": topic,
        "received_at": received_at,
    }
    if topic in PRIVACY_TOPICS:
        return [_privacy_event(topic, fields.decode(_privacy, body, topic), base)]
    resource: Resource = fields.decode(_resource, body, topic)
    base.update(_identity(resource))
    cur = resource.currency or currency
    try:
        if topic in CHECKOUT_TOPICS:
            return _checkout(resource, base, cur)
        if topic in CART_TOPICS:
            return [_cart(resource, base, cur)]
        return [_order(topic, resource, base, cur)]
    except (InvalidAmount, ValueError) as exc:
        raise InvalidEvent(f"{topic}: {exc}", code="invalid_event") from exc


def _checkout(r: Resource, base: dict[str, Any], cur: str) -> list[Event]:
    refs = _refs(("checkout", r.token), ("token", r.cart_token))
    at = _at(base, r.updated_at, r.created_at)
    value = fields.money(r.total_price, cur, "total_price")
    snapshot = Event(
        kind=EventKind.CART_ACTIVITY,
        at=at,
        refs=refs,
        change=CartChange.REPLACE,
        items=_items(r.line_items, cur),
        currency=cur,
        value=value,
        checkout_started=True,
        restore_url=r.abandoned_checkout_url,
        consent=_consent(r),
        **base,
    )
    if not r.completed_at:
        return [snapshot]
    # A completed checkout is an order even if orders/create is late or never subscribed to. Its order id is
    # the checkout's: the real order later finds the cart already converted and changes nothing.
    completed = msgspec.structs.replace(
        snapshot,
        kind=EventKind.ORDER_PLACED,
        message_id=f"{base['message_id']}:completed"[:MAX_MESSAGE_ID],
        name=f"{base['name']} (completed)",
        at=_at(base, r.completed_at, None),
        order_id=f"checkout:{r.token}" if r.token else None,
        **_discount(r, cur),
    )
    return [snapshot, completed]


def _cart(r: Resource, base: dict[str, Any], cur: str) -> Event:
    token = r.token or fields.text(r.id)
    if not token:
        raise ValueError("a cart needs a token or an id")
    # Carts carry no total: the value is the sum of the lines.
    return Event(
        kind=EventKind.CART_ACTIVITY,
        at=_at(base, r.updated_at, r.created_at),
        cart_id=token,
        refs=(f"token:{token}",),
        change=CartChange.REPLACE,
        items=_items(r.line_items, cur),
        currency=cur,
        **{**base, "anonymous_id": base.get("anonymous_id") or token},
    )


def _order(topic: str, r: Resource, base: dict[str, Any], cur: str) -> Event:
    order_id = fields.text(r.id)
    if not order_id:
        raise ValueError("an order needs an id")
    if topic == "orders/cancelled" or r.cancelled_at:
        return Event(
            kind=EventKind.ORDER_CANCELLED,
            at=_at(base, r.cancelled_at, r.updated_at),
            order_id=order_id,
            refs=(f"order:{order_id}",),
            **base,
        )
    # The order's own creation time, not updated_at: orders/updated arrives for fulfilment days later, and an
    # order closes the shopper's carts that existed when it was placed, not the ones started since.
    return Event(
        kind=EventKind.ORDER_PLACED,
        at=_at(base, r.created_at, r.updated_at),
        order_id=order_id,
        refs=_refs(("checkout", r.checkout_token), ("token", r.cart_token), ("order", order_id)),
        change=CartChange.REPLACE,
        items=_items(r.line_items, cur),
        currency=cur,
        value=fields.money(r.total_price, cur, "total_price"),
        checkout_started=True,
        consent=_consent(r),
        **_discount(r, cur),
        **base,
    )


def _discount(r: Resource, cur: str) -> dict[str, Any]:
    """The codes an order used (`discount_codes[].code`) and what they took off (`total_discounts`)."""
    codes = tuple(dict.fromkeys(code.code for code in r.discount_codes or () if code.code))
    return {"coupons": codes, "discount": fields.money(r.total_discounts, cur, "total_discounts")}


def _privacy_event(topic: str, request: PrivacyRequest, base: dict[str, Any]) -> Event:
    kind = PRIVACY_TOPICS[topic]
    customer = request.customer or Customer()
    if kind is EventKind.SHOPPER_REDACTED and not (customer.id or customer.email):
        raise InvalidEvent(f"{topic}: the customer has neither id nor email", code="invalid_event")
    return Event(
        kind=kind,
        at=base["received_at"],
        user_id=fields.text(customer.id),
        email=fields.email(customer.email),
        phone=fields.text(customer.phone),
        **base,
    )


def _identity(r: Resource) -> dict[str, Any]:
    customer = r.customer or Customer()
    return {
        "user_id": fields.text(customer.id),
        "anonymous_id": fields.text(r.cart_token),
        "email": fields.email(r.email or r.contact_email or customer.email),
        "phone": fields.text(r.phone or r.sms_marketing_phone or customer.phone),
    }


def _consent(r: Resource) -> dict[str, bool]:
    """The customer's recorded consent states win over this checkout's tick boxes."""
    customer = r.customer or Customer()
    return consent_of(
        {
            "email_marketing_consent": customer.email_marketing_consent,
            "sms_marketing_consent": customer.sms_marketing_consent,
            "accepts_marketing": r.buyer_accepts_marketing,
            "accepts_sms_marketing": r.buyer_accepts_sms_marketing,
        }
    )


def _items(lines: list[Line] | None, cur: str) -> tuple[LineItem, ...]:
    return tuple(_item(line, cur) for line in lines or ())


def _item(line: Line, cur: str) -> LineItem:
    product_id = (
        fields.text(line.product_id) or fields.text(line.variant_id) or line.sku or fields.text(line.id) or line.key
    )
    if not product_id:
        raise ValueError("a line item needs product_id, variant_id, sku or id")
    quantity = fields.quantity(line.quantity, product_id)
    return LineItem(
        product_id=product_id,
        quantity=quantity,
        price=fields.money(line.price, cur, "price"),
        sku=line.sku or None,
        variant=fields.text(line.variant_id),
        name=line.title or None,
    )


def _at(base: dict[str, Any], first: str | None, second: str | None) -> datetime:
    """Event time from the resource's own timestamps, never later than receipt (a wrong clock or a replay)."""
    received: datetime = base["received_at"]
    text = first or second
    return min(parse_timestamp(text, base["name"]), received) if text else received


def _refs(*pairs: tuple[str, str | None]) -> tuple[str, ...]:
    return tuple(f"{kind}:{value}" for kind, value in pairs if value)
