"""Timeline entries and timers written after a cart changes."""

from __future__ import annotations

from cartrecover.domain.cart import Cart, CartStatus, StateChanged
from cartrecover.domain.events import Event
from cartrecover.lifecycle.context import Context
from cartrecover.ports.timers import Timer
from cartrecover.ports.unit_of_work import UnitOfWork

ABANDON, EXPIRE = "abandon", "expire"


def record_event(uow: UnitOfWork, cart: Cart, event: Event, note: str | None = None) -> None:
    """Put the event on the cart's timeline (no personal data: names, ids and amounts only)."""
    detail: dict[str, object] = {"name": event.name, "source": event.source, "message_id": event.message_id}
    if event.items:
        detail["items"] = len(event.items)
    if event.value is not None:
        detail["value"] = event.value
    if note:
        detail["note"] = note
    uow.timeline.add(cart.store_id, cart.cart_id, event.at, "event", detail)


def save(uow: UnitOfWork, cart: Cart, changes: list[StateChanged], context: Context) -> None:
    """Store the cart, its state changes and the timers its new state needs; tell the change hook."""
    rules = context.rules_for(cart.store_id)
    uow.carts.save(cart)
    for change in changes:
        uow.timeline.add(
            cart.store_id,
            cart.cart_id,
            change.at,
            "state",
            {"from": change.before.value, "to": change.after.value, "reason": change.reason},
        )
    if cart.status is CartStatus.ACTIVE:
        uow.timers.set(Timer(cart.store_id, cart.cart_id, ABANDON, cart.abandon_due(rules)))
        uow.timers.cancel(cart.store_id, cart.cart_id, EXPIRE)
    else:
        uow.timers.cancel(cart.store_id, cart.cart_id, ABANDON)
        due = cart.expire_due(rules)
        if cart.status.is_open and due is not None:
            uow.timers.set(Timer(cart.store_id, cart.cart_id, EXPIRE, due))
        else:
            uow.timers.cancel(cart.store_id, cart.cart_id, EXPIRE)
    for change in changes:
        context.on_change(uow, cart, change)


def fire(uow: UnitOfWork, timer: Timer, context: Context) -> None:
    """Apply a due timer at its own due time."""
    rules = context.rules_for(timer.store_id)
    cart = uow.carts.get(timer.store_id, timer.cart_id)
    if cart is None:
        return
    changes = cart.mark_abandoned(timer.due, rules) if timer.kind == ABANDON else cart.expire(timer.due, rules)
    if changes:
        save(uow, cart, changes, context)
