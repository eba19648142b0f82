"""WooCommerce order webhooks, normalised to `Event`: pure functions of (topic, raw body, time of receipt).

WooCommerce core has no cart webhook; what it has is the order, which exists from the checkout on. An order
that is not placed yet (pending or failed payment, a block checkout's draft) is cart activity with its contents;
a processing, completed or on-hold order is an order placed (on-hold waits for a bank transfer or cheque: the
shopper has ordered, and a reminder would be wrong); a cancelled or refunded one is a cancellation.

Every event of one order uses the order key as its cart id, so the unpaid order's cart is the one its payment
closes. The `cart_hash` is not the cart id: it is a hash of the cart's contents, which changes with them, and
it is empty for orders made in the admin or over the API. It is kept as the ref "token:<hash>" instead.

Signatures are checked at the HTTP edge before anything here runs.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import msgspec

from cartrecover.domain.events import CartChange, Event, EventKind, LineItem
from cartrecover.domain.money import InvalidAmount
from cartrecover.errors import InvalidEvent
from cartrecover.ingest import fields
from cartrecover.ingest.timestamps import parse_timestamp

MAX_MESSAGE_ID = 100
TOPICS = frozenset({"order.created", "order.updated", "order.deleted", "order.restored"})
CART_STATUSES = frozenset({"pending", "failed", "checkout-draft"})
PLACED_STATUSES = frozenset({"processing", "completed", "on-hold"})
CANCELLED_STATUSES = frozenset({"cancelled", "refunded"})

Id = str | int


class Contact(msgspec.Struct):
    """The billing block, as far as we read it."""

    email: str | None = None
    phone: str | None = None


class Line(msgspec.Struct):
    """An order line; `price` is a JSON number, the totals are decimal strings."""

    product_id: Id | None = None
    variation_id: Id | None = None
    id: Id | None = None
    sku: str | None = None
    name: str | None = None
    quantity: Any = 1
    price: Any = None
    subtotal: Any = None


class CouponLine(msgspec.Struct):
    """A coupon applied to an order."""

    code: str | None = None


class Order(msgspec.Struct):
    """The REST v3 order resource: the body of every order.* delivery (only `id` when an order is deleted)."""

    id: Id | None = None
    order_key: str | None = None
    status: str | None = None
    currency: str | None = None
    total: Any = None
    customer_id: Id | None = None
    billing: Contact | None = None
    line_items: list[Line] | None = None
    cart_hash: str | None = None
    payment_url: str | None = None
    date_created_gmt: str | None = None
    date_modified_gmt: str | None = None
    date_paid_gmt: str | None = None
    coupon_lines: list[CouponLine] | None = None
    discount_total: Any = None


_order = msgspec.json.Decoder(Order, float_hook=Decimal)


def is_ping(body: bytes) -> bool:
    """WooCommerce's check when a webhook is saved: a form body `webhook_id=<id>` and no topic header."""
    return body.startswith(b"webhook_id=")


def message_id(topic: str, order: Order) -> str:
    """The dedupe key: the order's version, not the delivery.

    WooCommerce never retries and makes a fresh `X-WC-Webhook-Delivery-ID` for every delivery, so that id
    never repeats and dedupes nothing. What does repeat is one order version delivered twice (order.created
    and order.updated for the same save, or two webhooks on the same topic). `date_modified_gmt` has whole
    seconds, and checkout turns a pending order into a processing one within the same second, so the status
    is part of the key: the payment must never be dropped as a repeat of the unpaid order.
    """
    key = f"woocommerce:order:{order.id}:{order.status or ''}:{order.date_modified_gmt or ''}"
    if topic == "order.deleted":
        key += ":deleted"
    return key[:MAX_MESSAGE_ID]


def normalise(topic: str, body: bytes, *, store_id: int, currency: str, received_at: datetime) -> list[Event]:
    """The events one delivery means; empty for topics and statuses that say nothing about carts."""
    if topic not in TOPICS:
        return []
    order = _decode(body, topic)
    order_id = fields.text(order.id)
    if not order_id:
        raise InvalidEvent(f"{topic}: the order has no id", code="invalid_event")
    status = (order.status or "").removeprefix("wc-")
    billing = order.billing or Contact()
    customer = fields.text(order.customer_id)
    base: dict[str, Any] = {
        "store_id": store_id,
        "message_id": message_id(topic, order),
        "source": "woocommerce",
        "name": f"{topic} ({status})" if status else topic,
        "received_at": received_at,
        "user_id": customer if customer != "0" else None,  # 0 is a guest
        "email": fields.email(billing.email),
        "phone": billing.phone or None,
        "order_id": order_id,
    }
    cancelled = topic == "order.deleted" or status in CANCELLED_STATUSES
    if cancelled:
        return [
            Event(
                kind=EventKind.ORDER_CANCELLED,
                at=_at(received_at, order.date_modified_gmt, "date_modified_gmt"),
                **base,
            )
        ]
    if status not in CART_STATUSES | PLACED_STATUSES:
        return []
    cur = order.currency or currency
    try:
        return [_snapshot(order, status, base, cur, received_at)]
    except (InvalidAmount, ValueError) as exc:
        raise InvalidEvent(f"{topic}: {exc}", code="invalid_event") from exc


def _snapshot(order: Order, status: str, base: dict[str, Any], cur: str, received_at: datetime) -> Event:
    placed = status in PLACED_STATUSES
    cart_id = order.order_key or f"order-{base['order_id']}"
    refs = (f"order:{base['order_id']}", *((f"token:{order.cart_hash}",) if order.cart_hash else ()))
    # An unpaid order's time is its last change; a paid one's is when it was paid (or made, for cash on
    # delivery), not the later change that completed it.
    at = (
        _at(received_at, order.date_paid_gmt or order.date_created_gmt or order.date_modified_gmt, "date_paid_gmt")
        if placed
        else _at(received_at, order.date_modified_gmt or order.date_created_gmt, "date_modified_gmt")
    )
    return Event(
        kind=EventKind.ORDER_PLACED if placed else EventKind.CART_ACTIVITY,
        at=at,
        cart_id=cart_id,
        refs=refs,
        change=CartChange.REPLACE,
        items=tuple(_item(line, cur) for line in order.line_items or ()),
        currency=cur,
        value=fields.money(order.total, cur, "total"),
        checkout_started=True,
        restore_url=None if placed else order.payment_url,
        coupons=tuple(dict.fromkeys(c.code for c in order.coupon_lines or () if c.code)) if placed else (),
        discount=fields.money(order.discount_total, cur, "discount_total") if placed else None,
        **base,
    )


def _decode(body: bytes, topic: str) -> Order:
    order: Order = fields.decode(_order, body, topic)
    return order


def _item(line: Line, cur: str) -> LineItem:
    product_id = fields.text(line.product_id) or line.sku or fields.text(line.id)
    if not product_id:
        raise ValueError("a line item needs product_id, sku or id")
    quantity = fields.quantity(line.quantity, product_id)
    price = fields.money(line.price, cur, "price")
    subtotal = fields.money(line.subtotal, cur, "subtotal")
    if price is None and subtotal is not None and quantity:
        # No unit price: the line subtotal (before discounts) over the quantity.
        price = int((Decimal(subtotal) / quantity).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    variation = fields.text(line.variation_id)
    return LineItem(
        product_id=product_id,
        quantity=quantity,
        price=price,
        sku=line.sku or None,
        variant=variation if variation != "0" else None,
        name=line.name or None,
    )


def _at(received_at: datetime, text: str | None, field: str) -> datetime:
    """WooCommerce's *_gmt times have no zone and are UTC; never later than receipt."""
    return min(parse_timestamp(text, field), received_at) if text else received_at
