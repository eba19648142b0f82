"""Identity handlers: who a shopper is across devices, and what they consented to."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cartrecover.domain.events import Event
from cartrecover.lifecycle import timeline
from cartrecover.lifecycle.context import Context
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.unit_of_work import UnitOfWork

# The identify traits a shopper's profile keeps (the rest stay in the event log only): what a channel needs.
KEPT_TRAITS = ("push_subscription",)  # the browser's Web Push subscription, as JSON


def shopper_of(uow: UnitOfWork, event: Event, context: Context, extra: tuple[tuple[str, str], ...] = ()) -> str:
    """Resolve (and link) the event's identities to one shopper; merge shoppers it proves are one person."""
    new_id = context.derived_id("s", event.store_id, event.message_id)
    identities = [*event.identities, *extra]
    if not identities:
        identities = [("message", event.message_id)]
    shopper_id, merged = uow.shoppers.resolve(event.store_id, identities, new_id)
    for old in merged:
        for cart in uow.carts.for_shopper(event.store_id, old):
            cart.shopper_id = shopper_id
            uow.carts.save(cart)
    if event.email or event.phone or event.timezone or event.consent or _kept_traits(event.traits):
        _update_profile(uow, event, shopper_id, context)
    return shopper_id


def on_identified(uow: UnitOfWork, event: Event, context: Context) -> None:
    """Link the anonymous id to the user and email; keep traits and consent."""
    shopper_of(uow, event, context)


def on_aliased(uow: UnitOfWork, event: Event, context: Context) -> None:
    """`alias`: the previous id (anonymous or an old user id) is the same person as the user id."""
    previous = str(event.properties.get("previous_id", ""))
    shopper_of(uow, event, context, extra=(("anon", previous), ("user", previous)) if previous else ())


def _update_profile(uow: UnitOfWork, event: Event, shopper_id: str, context: Context) -> None:
    shopper = uow.shoppers.get(event.store_id, shopper_id) or Shopper(store_id=event.store_id, shopper_id=shopper_id)
    shopper.email = event.email or shopper.email
    shopper.phone = event.phone or shopper.phone
    shopper.timezone = event.timezone or shopper.timezone
    shopper.consent = {**shopper.consent, **event.consent}
    shopper.traits = {**shopper.traits, **_kept_traits(event.traits)}
    uow.shoppers.save(shopper)
    if event.email or event.phone:
        for cart in uow.carts.open_for_shopper(event.store_id, shopper_id):
            if not cart.has_contact:
                cart.has_contact = True
                timeline.save(uow, cart, [], context)


def count_active_hour(shopper: Shopper, at: datetime) -> None:
    """Count the shopper's local hour of `at` (an order or a click): what send time learns from."""
    try:
        hour = at.astimezone(ZoneInfo(shopper.timezone)).hour if shopper.timezone else at.hour
    except (KeyError, ValueError):
        hour = at.hour
    shopper.active_hours[hour] = shopper.active_hours.get(hour, 0) + 1


def _kept_traits(traits: dict[str, Any]) -> dict[str, str]:
    """The traits in `KEPT_TRAITS` that are set, as strings (an object sent as a trait is kept as its JSON)."""
    return {
        name: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for name in KEPT_TRAITS
        if (value := traits.get(name))
    }
