"""The flow on one screen: which handler each kind of event goes to."""

from __future__ import annotations

from collections.abc import Callable

from cartrecover.domain.events import Event, EventKind
from cartrecover.lifecycle import carts, consent, identity, privacy
from cartrecover.lifecycle.context import Context
from cartrecover.ports.unit_of_work import UnitOfWork

Handler = Callable[[UnitOfWork, Event, Context], None]

HANDLERS: dict[EventKind, tuple[Handler, ...]] = {
    EventKind.CART_ACTIVITY: (carts.on_cart_activity,),
    EventKind.BROWSED: (carts.on_presence,),
    EventKind.ORDER_PLACED: (carts.on_order_placed,),
    EventKind.ORDER_CANCELLED: (carts.on_order_cancelled,),
    EventKind.IDENTIFIED: (identity.on_identified,),
    EventKind.ALIASED: (identity.on_aliased,),
    EventKind.SHOPPER_REDACTED: (privacy.on_shopper_redacted,),
    EventKind.STORE_REDACTED: (privacy.on_store_redacted,),
    EventKind.DATA_REQUESTED: (),  # kept in the event log as the record of the request
    EventKind.MESSAGE_CLICKED: (consent.on_clicked,),
    EventKind.UNSUBSCRIBED: (consent.on_unsubscribed,),
    EventKind.RESUBSCRIBED: (consent.on_resubscribed,),
}


def handle(uow: UnitOfWork, event: Event, context: Context) -> None:
    """Apply one event with every handler of its kind."""
    for handler in HANDLERS[event.kind]:
        handler(uow, event, context)
