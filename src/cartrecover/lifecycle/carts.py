"""Cart handlers: activity, presence and orders."""

from __future__ import annotations

from datetime import datetime

from cartrecover.domain.cart import Cart
from cartrecover.domain.events import Event
from cartrecover.lifecycle import timeline
from cartrecover.lifecycle.context import Context
from cartrecover.lifecycle.identity import count_active_hour, shopper_of
from cartrecover.ports.orders import Order
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.unit_of_work import UnitOfWork


def on_cart_activity(uow: UnitOfWork, event: Event, context: Context) -> None:
    """Items added or removed, cart viewed, checkout progress: create or update the cart."""
    rules = context.rules_for(event.store_id)
    shopper_id = shopper_of(uow, event, context)
    cart = _find_cart(uow, event, shopper_id)
    if cart is None or (not cart.status.is_open and cart.closed_at is not None and event.at > cart.closed_at):
        cart = _new_cart(uow, event, shopper_id, context, reused=cart)
    changes = cart.catch_up(event.at, rules)
    if not cart.status.is_open:
        timeline.record_event(uow, cart, event, note=f"cart already {cart.status.value}")
        timeline.save(uow, cart, changes, context)
        return
    changes += cart.record_activity(event)
    timeline.record_event(uow, cart, event)
    order = uow.orders.find_unjoined(event.store_id, (f"cart:{cart.cart_id}", *cart.refs))
    if order is not None:
        changes += cart.catch_up(order.placed_at, rules)
        changes += cart.mark_ordered(order.order_id, order.value, order.placed_at, "order arrived before the cart")
        order.cart_id = cart.cart_id
        uow.orders.save(order)
    timeline.save(uow, cart, changes, context)


def on_presence(uow: UnitOfWork, event: Event, context: Context) -> None:
    """A page view or other call: the shopper is around, so their open carts are not idle."""
    rules = context.rules_for(event.store_id)
    shopper_id = shopper_of(uow, event, context)
    for cart in uow.carts.open_for_shopper(event.store_id, shopper_id):
        changes = cart.catch_up(event.at, rules)
        if cart.status.is_open:
            cart.observe(event)
        changes += cart.record_presence(event.at, event.name)
        timeline.save(uow, cart, changes, context)


def on_order_placed(uow: UnitOfWork, event: Event, context: Context) -> None:
    """An order closes its cart (joined by cart id, checkout or cart token) and the shopper's other open carts."""
    rules = context.rules_for(event.store_id)
    shopper_id = shopper_of(uow, event, context)
    order_id = event.order_id or event.message_id
    existing = uow.orders.get(event.store_id, order_id)
    refs = tuple(
        dict.fromkeys((*([f"cart:{event.cart_id}"] if event.cart_id else []), *event.refs, f"order:{order_id}"))
    )
    order = existing or Order(
        store_id=event.store_id,
        order_id=order_id,
        shopper_id=shopper_id,
        placed_at=event.at,
        value=event.value,
        currency=event.currency,
        refs=refs,
        coupons=event.coupons,
        discount=event.discount,
    )
    carts = _carts_closed_by(uow, event, shopper_id, refs)
    for cart in carts:
        changes = cart.catch_up(event.at, rules)
        timeline.record_event(uow, cart, event)
        why = "order placed" if cart is carts[0] else "order placed by the same shopper"
        changes += cart.mark_ordered(order_id, event.value, event.at, why)
        timeline.save(uow, cart, changes, context)
    if carts and order.cart_id is None:
        order.cart_id = carts[0].cart_id
    uow.orders.save(order)
    if existing is None:
        _count_order(uow, order, shopper_id)


def _count_order(uow: UnitOfWork, order: Order, shopper_id: str) -> None:
    """The shopper's purchase history (orders, first and last, spend), for decisions and lifetime value."""
    shopper = uow.shoppers.get(order.store_id, shopper_id) or Shopper(order.store_id, shopper_id)
    shopper.orders += 1
    shopper.spend += order.value or 0
    shopper.first_order_at = min(shopper.first_order_at or order.placed_at, order.placed_at)
    shopper.last_order_at = max(shopper.last_order_at or order.placed_at, order.placed_at)
    count_active_hour(shopper, order.placed_at)
    uow.shoppers.save(shopper)


def on_order_cancelled(uow: UnitOfWork, event: Event, context: Context) -> None:
    """Record the cancellation; the cart stays closed, so no recovery message follows a cancelled order."""
    order = uow.orders.get(event.store_id, event.order_id or "")
    if order is None:
        return
    order.cancelled_at = event.at
    uow.orders.save(order)
    if order.cart_id:
        cart = uow.carts.get(event.store_id, order.cart_id)
        if cart is not None:
            timeline.record_event(uow, cart, event)


def _find_cart(uow: UnitOfWork, event: Event, shopper_id: str) -> Cart | None:
    if event.cart_id:
        return _by_cart_id(uow, event.store_id, event.cart_id, event.at) or _by_refs(uow, event.store_id, event.refs)
    found = _by_refs(uow, event.store_id, event.refs)
    if found is not None:
        return found
    open_carts = uow.carts.open_for_shopper(event.store_id, shopper_id)
    return open_carts[0] if open_carts else None


def _by_cart_id(uow: UnitOfWork, store_id: int, cart_id: str, at: datetime) -> Cart | None:
    # A shop may reuse a cart id after an order: "cart:<id>" then points to the newer cart, which an event
    # takes unless it is older than that cart (a late event of the first one).
    first = uow.carts.get(store_id, cart_id)
    newest = uow.carts.find(store_id, f"cart:{cart_id}")
    if newest is None or (first is not None and newest.created_at > at):
        return first
    return newest


def _by_refs(uow: UnitOfWork, store_id: int, refs: tuple[str, ...]) -> Cart | None:
    for ref in refs:
        found = uow.carts.find(store_id, ref)
        if found is not None:
            return found
    return None


def _new_cart(uow: UnitOfWork, event: Event, shopper_id: str, context: Context, reused: Cart | None) -> Cart:
    cart_id = event.cart_id or context.derived_id("c", event.store_id, event.message_id)
    if reused is not None or uow.carts.get(event.store_id, cart_id) is not None:
        # The shop reuses a cart id after an order: this is a new cart that answers to the old id.
        cart_id = context.derived_id(f"{cart_id}~", event.store_id, event.message_id)
    refs = (f"cart:{event.cart_id}",) if event.cart_id else ()
    return Cart(
        store_id=event.store_id,
        cart_id=cart_id,
        shopper_id=shopper_id,
        created_at=event.at,
        last_activity_at=event.at,
        refs=refs,
    )


def _carts_closed_by(uow: UnitOfWork, event: Event, shopper_id: str, refs: tuple[str, ...]) -> list[Cart]:
    joined = _by_cart_id(uow, event.store_id, event.cart_id, event.at) if event.cart_id else None
    joined = joined or _by_refs(uow, event.store_id, refs)
    others = [c for c in uow.carts.open_for_shopper(event.store_id, shopper_id) if c.created_at <= event.at]
    carts = [joined] if joined is not None else []
    return carts + [c for c in others if joined is None or c.cart_id != joined.cart_id]
