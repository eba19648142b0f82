"""Privacy handlers: Shopify's mandatory redaction topics (and later the erasure API)."""

from __future__ import annotations

from cartrecover.domain.events import Event
from cartrecover.lifecycle import timeline
from cartrecover.lifecycle.context import Context
from cartrecover.ports.unit_of_work import UnitOfWork


def on_shopper_redacted(uow: UnitOfWork, event: Event, context: Context) -> None:
    """Erase the shopper: profile and identities go, their carts are suppressed, logged events are scrubbed.

    The scrub covers every identity linked to the shopper (other devices' anonymous ids too), not only the ones
    the request names.
    """
    shopper_ids = {s for kind, value in event.identities if (s := uow.shoppers.find(event.store_id, kind, value))}
    identities = set(event.identities)
    for shopper_id in shopper_ids:
        for cart in uow.carts.for_shopper(event.store_id, shopper_id):
            changes = cart.suppress(event.at, "shopper data erased")
            cart.restore_url = None
            timeline.save(uow, cart, changes, context)
        identities.update(uow.shoppers.erase(event.store_id, shopper_id))
    context.log.scrub(event.store_id, identities)


def on_store_redacted(uow: UnitOfWork, event: Event, context: Context) -> None:
    """Shopify's shop/redact, 48 hours after uninstall: delete every shopper's data of the store."""
    uow.erase_store_data(event.store_id)
    context.log.erase_store(event.store_id)
