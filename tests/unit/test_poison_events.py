"""One event the lifecycle cannot apply is parked as a dead letter; the rest of the log keeps flowing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cartrecover.domain.events import CartChange, Event, EventKind, LineItem
from cartrecover.engine import LIFECYCLE, Engine
from cartrecover.lifecycle import handlers
from tests.conftest import START, Shop


def _added(shop: Shop, message_id: str, cart_id: str, minutes: int) -> Event:
    return Event(
        kind=EventKind.CART_ACTIVITY,
        store_id=shop.store_id,
        message_id=message_id,
        source="test",
        name="Product Added",
        at=START + timedelta(minutes=minutes),
        received_at=START + timedelta(minutes=minutes),
        anonymous_id=f"anon-{cart_id}",
        cart_id=cart_id,
        change=CartChange.ADD,
        items=(LineItem(product_id="p1", price=500),),
    )


def test_an_event_that_fails_to_apply_is_parked_and_the_next_events_still_apply(
    engine: Engine, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = handlers.HANDLERS[EventKind.CART_ACTIVITY]

    def explode_on_poison(uow, event, context):  # type: ignore[no-untyped-def]
        if event.cart_id == "poison":
            raise KeyError("a field nobody expected")
        for handler in real:
            handler(uow, event, context)

    monkeypatch.setitem(handlers.HANDLERS, EventKind.CART_ACTIVITY, (explode_on_poison,))
    engine.append([_added(shop, "m1", "good-1", 0), _added(shop, "m2", "poison", 1), _added(shop, "m3", "good-2", 2)])

    while engine.process_pending():
        pass

    with engine.database.read() as uow:
        assert uow.carts.get(shop.store_id, "good-1") is not None
        assert uow.carts.get(shop.store_id, "good-2") is not None
        assert uow.carts.get(shop.store_id, "poison") is None
        parked = uow.dead_letters.parked(LIFECYCLE)
        assert uow.checkpoints.get(LIFECYCLE) == engine.log.last_offset()
    assert [reason for _, reason in parked] == ["KeyError: 'a field nobody expected'"]
    assert engine.lag() == 0
