"""What shoppers do with our messages: clicks, and opting out (a link, RFC 8058 one-click, an SMS STOP)."""

from __future__ import annotations

from cartrecover.domain.contact import address_key
from cartrecover.domain.events import Event
from cartrecover.lifecycle.context import Context
from cartrecover.lifecycle.identity import count_active_hour
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.unit_of_work import UnitOfWork


def on_clicked(uow: UnitOfWork, event: Event, context: Context) -> None:
    """A restore link was followed: put it on the cart's timeline (the shopper's return shows as activity)."""
    step = uow.outbox.get(event.store_id, str(event.properties.get("step_id", "")))
    if step is None:
        return
    detail = {"step": step.name, "channel": str(event.properties.get("channel", "")), "message_id": step.message_id}
    uow.timeline.add(event.store_id, step.cart_id, event.at, "click", detail)
    shopper = uow.shoppers.get(event.store_id, step.shopper_id)
    if shopper is not None:
        shopper.clicks += 1
        count_active_hour(shopper, event.at)
        uow.shoppers.save(shopper)


def on_unsubscribed(uow: UnitOfWork, event: Event, context: Context) -> None:
    """Opt the shopper out of the channel: consent withdrawn, and the address suppressed for good.

    The address comes from the event (an SMS STOP names the phone) or from the profile of the shopper the
    message went to (a link names the step). Only that channel stops: a STOP ends SMS, not email.
    """
    channel = str(event.properties.get("channel", ""))
    reason = str(event.properties.get("reason", "unsubscribed"))
    step = uow.outbox.get(event.store_id, str(event.properties.get("step_id", "")))
    shopper = uow.shoppers.get(event.store_id, step.shopper_id) if step else None
    address = event.phone if channel == "sms" else event.email
    address = address or (_address(shopper, channel) if shopper else None)
    if shopper is not None:
        shopper.consent = {**shopper.consent, channel: False}
        uow.shoppers.save(shopper)
    if address:
        uow.suppressions.add(event.store_id, channel, address_key(channel, address), reason, event.at)
    if step is not None:
        uow.timeline.add(event.store_id, step.cart_id, event.at, "consent", {"channel": channel, "opted_out": reason})


def on_resubscribed(uow: UnitOfWork, event: Event, context: Context) -> None:
    """Opt the address back in (an SMS START): its suppression on the channel is lifted.

    Consent comes back for the shopper the event names through a step; a START names only a phone, which is
    not an identity, and an SMS STOP took no profile's consent away, so lifting the suppression undoes it.
    """
    channel = str(event.properties.get("channel", ""))
    step = uow.outbox.get(event.store_id, str(event.properties.get("step_id", "")))
    shopper = uow.shoppers.get(event.store_id, step.shopper_id) if step else None
    address = (event.phone if channel == "sms" else event.email) or (_address(shopper, channel) if shopper else None)
    if shopper is not None:
        shopper.consent = {**shopper.consent, channel: True}
        uow.shoppers.save(shopper)
    if address:
        uow.suppressions.remove(event.store_id, channel, address_key(channel, address))


def _address(shopper: Shopper, channel: str) -> str | None:
    return {"email": shopper.email, "sms": shopper.phone}.get(channel)
