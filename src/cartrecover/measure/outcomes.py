"""What happened to each cart abandoned in a window, read from the state store: its group, order and touches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cartrecover.domain.cart import Cart, CartStatus
from cartrecover.domain.holdout import Group
from cartrecover.domain.journey import Step, StepStatus
from cartrecover.measure.attribution import Touch
from cartrecover.ports.orders import Order
from cartrecover.ports.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class CartOutcome:
    """One abandoned cart: its group, value and touches; the order it recovered, if any, counted once."""

    cart_id: str
    group: Group
    value: int
    sends: tuple[Step, ...]  # steps sent about this cart
    clicks: tuple[Touch, ...]
    order: Order | None = None  # set on one cart per order (the first abandoned), never on two
    experiment: str | None = None  # the experiment and variant of the cart's journey, if it was in one
    variant: str | None = None
    abandoned_at: datetime | None = None  # when it was abandoned (the day the daily series counts it on)

    @property
    def revenue(self) -> int:
        """The recovered order's value in minor units, or 0."""
        return (self.order.value or 0) if self.order is not None else 0


PAGE = 1000  # carts a round trip: each page's steps, clicks and orders are read with one query apiece


def abandoned_between(uow: UnitOfWork, store_id: int, since: datetime, until: datetime) -> list[CartOutcome]:
    """The store's carts abandoned in [since, until), oldest abandonment first.

    A cart counts as recovered when its order was placed after its abandonment and has not been cancelled. An
    order that closed several carts of one shopper (it closes all their open carts) is kept on the first of them
    only, so that its revenue is counted once. A cart without a group (abandoned before holdouts existed) is
    treated: it could have been contacted. The carts are read by their abandonment time, and their steps, clicks
    and orders a page of `PAGE` carts at a time: the work grows with the window, not with the store's history.
    """
    carts = uow.carts.abandoned_between(store_id, since, until)
    seen: set[str] = set()
    outcomes = []
    for start in range(0, len(carts), PAGE):
        outcomes += _outcomes(uow, store_id, carts[start : start + PAGE], seen)
    return outcomes


def _outcomes(uow: UnitOfWork, store_id: int, carts: list[Cart], seen: set[str]) -> list[CartOutcome]:
    """One page of carts, in order; `seen` holds the orders kept on earlier carts, and gets this page's."""
    ids = [cart.cart_id for cart in carts]
    steps = uow.outbox.for_carts(store_id, ids)
    clicks = uow.timeline.for_carts(store_id, ids, "click")
    ordered = {c.order_id for c in carts if c.status is CartStatus.RECOVERED and c.order_id is not None}
    orders = uow.orders.get_many(store_id, ordered)
    outcomes = []
    for cart in carts:
        order = _recovering_order(cart, orders)
        if order is not None and order.order_id in seen:
            order = None
        if order is not None:
            seen.add(order.order_id)
        mine = steps.get(cart.cart_id, [])
        outcomes.append(
            CartOutcome(
                cart_id=cart.cart_id,
                group=Group(cart.group) if cart.group else Group.TREATED,
                value=cart.value,
                sends=tuple(s for s in mine if s.status is StepStatus.SENT and s.sent_at and s.channel),
                clicks=_clicks(mine, clicks.get(cart.cart_id, [])),
                order=order,
                experiment=cart.experiment if cart.group != Group.HOLDOUT else None,
                variant=cart.variant if cart.group != Group.HOLDOUT else None,
                abandoned_at=cart.abandoned_at,
            )
        )
    return outcomes


def incentive_of(step: Step) -> str:
    """The label of a step's incentive, for the breakdown: "none" or "10% off"."""
    return f"{step.incentive.percent}% off" if step.incentive else "none"


def _recovering_order(cart: Cart, orders: dict[str, Order]) -> Order | None:
    if cart.status is not CartStatus.RECOVERED or cart.order_id is None:
        return None
    order = orders.get(cart.order_id)
    if order is None:  # the cart knows the order but it was never kept: take the cart's copy
        assert cart.closed_at is not None
        order = Order(cart.store_id, cart.order_id, cart.shopper_id, cart.closed_at, cart.order_value, None, ())
    return None if order.cancelled_at is not None else order


def _clicks(steps: list[Step], entries: list[dict[str, Any]]) -> tuple[Touch, ...]:
    """The cart's click entries on its own messages, as touches."""
    if not entries:
        return ()  # most carts: no step's message id (a hash) needs computing
    by_message = {s.message_id: s for s in steps}
    clicks = []
    for entry in entries:
        step = by_message.get(str(entry.get("message_id")))
        if step is not None:
            channel = str(entry.get("channel") or (step.channel.value if step.channel else ""))
            clicks.append(Touch(entry["at"], channel, step.name, step.step_id, True, incentive_of(step)))
    return tuple(clicks)


def sends_as_touches(outcome: CartOutcome) -> list[Touch]:
    """The cart's sent messages as touches (their send time and channel)."""
    return [
        Touch(s.sent_at, s.channel.value, s.name, s.step_id, False, incentive_of(s))
        for s in outcome.sends
        if s.sent_at is not None and s.channel is not None
    ]
