"""Builders of normalised events and carts for tests: random ids, sensible defaults, override anything."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from cartrecover.domain.cart import Cart, CartStatus
from cartrecover.domain.events import CartChange, Event, EventKind, LineItem
from cartrecover.ports.channels import OutboundMessage
from tests.conftest import START


def random_id(prefix: str = "id") -> str:
    """A fresh id, so that no two tests (or two calls) share one."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def item(product_id: str | None = None, quantity: int = 1, price: int | None = 1999, **fields: Any) -> LineItem:
    """A product line; price in minor units."""
    return LineItem(product_id=product_id or random_id("p"), quantity=quantity, price=price, **fields)


def event(
    kind: EventKind = EventKind.CART_ACTIVITY,
    *,
    store_id: int = 1,
    at: datetime = START,
    name: str | None = None,
    **fields: Any,
) -> Event:
    """Any normalised event; message id random unless given, anonymous id random unless some identity is given."""
    fields.setdefault("message_id", random_id("m"))
    if not any(fields.get(k) for k in ("anonymous_id", "user_id", "email")):
        fields["anonymous_id"] = random_id("anon")
    fields.setdefault("received_at", at)
    return Event(
        kind=kind, store_id=store_id, source=fields.pop("source", "segment"), name=name or kind.value, at=at, **fields
    )


def product_added(*items: LineItem, **fields: Any) -> Event:
    """`Product Added` with these lines (one random line if none)."""
    return event(name="Product Added", change=CartChange.ADD, items=items or (item(),), **fields)


def product_removed(*items: LineItem, **fields: Any) -> Event:
    """`Product Removed` of these lines."""
    return event(name="Product Removed", change=CartChange.REMOVE, items=items, **fields)


def cart_viewed(*items: LineItem, **fields: Any) -> Event:
    """`Cart Viewed`: a snapshot of the whole cart."""
    return event(name="Cart Viewed", change=CartChange.REPLACE, items=items, **fields)


def checkout_started(*items: LineItem, **fields: Any) -> Event:
    """`Checkout Started`: a snapshot, and the checkout has begun."""
    return event(
        name="Checkout Started", change=CartChange.REPLACE, items=items or (item(),), checkout_started=True, **fields
    )


def page_viewed(**fields: Any) -> Event:
    """A page view: the shopper is around."""
    return event(EventKind.BROWSED, name="page: Home", **fields)


def identified(**fields: Any) -> Event:
    """`identify`."""
    return event(EventKind.IDENTIFIED, name="identify", **fields)


def order_completed(*items: LineItem, **fields: Any) -> Event:
    """`Order Completed` with an order id (random unless given)."""
    fields.setdefault("order_id", random_id("o"))
    fields.setdefault("value", sum((i.price or 0) * i.quantity for i in items) or 1999)
    return event(
        EventKind.ORDER_PLACED,
        name="Order Completed",
        change=CartChange.REPLACE if items else CartChange.NONE,
        items=items,
        checkout_started=True,
        **fields,
    )


def cart(
    *,
    at: datetime = START,
    items: tuple[LineItem, ...] | None = None,
    status: CartStatus = CartStatus.ACTIVE,
    **fields: Any,
) -> Cart:
    """A cart with one line, last active at `at`."""
    return Cart(
        store_id=fields.pop("store_id", 1),
        cart_id=fields.pop("cart_id", random_id("cart")),
        shopper_id=fields.pop("shopper_id", random_id("s")),
        created_at=fields.pop("created_at", at),
        last_activity_at=at,
        status=status,
        items=(item(),) if items is None else items,
        **fields,
    )


MINUTE = timedelta(minutes=1)


class Recorder:
    """A channel that keeps what it is given, and can be told to fail."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self.fail_with: Exception | None = None

    def send(self, message: OutboundMessage) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)
        return f"provider-{len(self.sent)}"
