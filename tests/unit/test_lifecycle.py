"""The lifecycle through the engine: events in the log, carts on event time, durable timers, on SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from litestar.testing import TestClient

from cartrecover.bootstrap import build_engine
from cartrecover.domain.cart import Cart, CartStatus
from cartrecover.domain.events import Event
from cartrecover.engine import Engine
from tests.conftest import START, Shop, add_shop, make_settings, move_clock
from tests.factories import (
    MINUTE,
    checkout_started,
    identified,
    item,
    order_completed,
    page_viewed,
    product_added,
    random_id,
)

IDLE, QUICK, WINDOW = timedelta(minutes=30), timedelta(minutes=15), timedelta(days=7)


def run(engine: Engine, *events: Event, until: datetime | None = None) -> None:
    """Log the events, then move the clock (default: to the latest event time) so that all is processed."""
    engine.append(list(events))
    latest = max([engine.clock.now(), *(e.at for e in events)])
    engine.advance_clock(until or latest)


def cart_of(engine: Engine, shop: Shop, cart_id: str) -> Cart:
    """The stored cart, which must exist."""
    with engine.database.read() as uow:
        found = uow.carts.get(shop.store_id, cart_id)
    assert found is not None, f"no cart {cart_id}"
    return found


def carts_of(engine: Engine, shop: Shop) -> list[Cart]:
    """All of the store's carts, by id."""
    with engine.database.read() as uow:
        return uow.carts.page(shop.store_id, None, 1000, None)


def new_cart(engine: Engine, shop: Shop, *, anon: str | None = None, **fields: object) -> tuple[str, str]:
    """A cart with one product added at START by an anonymous shopper; returns (cart id, anonymous id)."""
    cart_id, anon = random_id("cart"), anon or random_id("anon")
    run(engine, product_added(store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id, **fields))  # type: ignore[arg-type]
    return cart_id, anon


# --- abandonment -------------------------------------------------------------------------------------------


def test_a_cart_left_idle_is_abandoned_at_the_end_of_the_idle_time(engine: Engine, shop: Shop) -> None:
    cart_id, _ = new_cart(engine, shop)

    engine.advance_clock(START + IDLE - MINUTE)
    assert cart_of(engine, shop, cart_id).status is CartStatus.ACTIVE

    engine.advance_clock(START + IDLE)
    cart = cart_of(engine, shop, cart_id)
    assert (cart.status, cart.abandoned_at) == (CartStatus.ABANDONED, START + IDLE)


def test_a_started_checkout_with_an_email_is_abandoned_sooner(engine: Engine, shop: Shop) -> None:
    cart_id = random_id("cart")
    run(engine, checkout_started(store_id=shop.store_id, cart_id=cart_id, email=f"{random_id()}@example.com"))

    engine.advance_clock(START + QUICK)

    cart = cart_of(engine, shop, cart_id)
    assert (cart.status, cart.abandoned_at) == (CartStatus.ABANDONED, START + QUICK)


def test_an_email_learnt_from_identify_makes_a_started_checkout_abandon_sooner(engine: Engine, shop: Shop) -> None:
    anon, cart_id = random_id("anon"), random_id("cart")
    run(
        engine,
        checkout_started(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon),
        identified(store_id=shop.store_id, anonymous_id=anon, email=f"{random_id()}@example.com", at=START + MINUTE),
    )

    engine.advance_clock(START + QUICK)

    assert cart_of(engine, shop, cart_id).status is CartStatus.ABANDONED


def test_activity_keeps_a_cart_active(engine: Engine, shop: Shop) -> None:
    cart_id, anon = new_cart(engine, shop)
    run(engine, product_added(store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id, at=START + 20 * MINUTE))

    engine.advance_clock(START + IDLE + MINUTE)
    assert cart_of(engine, shop, cart_id).status is CartStatus.ACTIVE

    engine.advance_clock(START + 20 * MINUTE + IDLE)
    assert cart_of(engine, shop, cart_id).status is CartStatus.ABANDONED


# --- the shopper comes back --------------------------------------------------------------------------------


def test_a_page_view_by_the_shopper_reactivates_an_abandoned_cart(engine: Engine, shop: Shop) -> None:
    cart_id, anon = new_cart(engine, shop)
    engine.advance_clock(START + IDLE)

    run(engine, page_viewed(store_id=shop.store_id, anonymous_id=anon, at=START + IDLE + 5 * MINUTE))

    cart = cart_of(engine, shop, cart_id)
    assert (cart.status, cart.last_activity_at) == (CartStatus.ACTIVE, START + IDLE + 5 * MINUTE)
    engine.advance_clock(START + 2 * IDLE + 5 * MINUTE)
    assert cart_of(engine, shop, cart_id).status is CartStatus.ABANDONED


def test_a_cart_event_reactivates_an_abandoned_cart(engine: Engine, shop: Shop) -> None:
    cart_id, anon = new_cart(engine, shop)
    engine.advance_clock(START + IDLE)

    run(engine, product_added(store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id, at=START + IDLE + MINUTE))

    cart = cart_of(engine, shop, cart_id)
    assert cart.status is CartStatus.ACTIVE
    assert sum(i.quantity for i in cart.items) == 2


def test_another_shoppers_page_view_does_not_reactivate_the_cart(engine: Engine, shop: Shop) -> None:
    cart_id, _ = new_cart(engine, shop)
    engine.advance_clock(START + IDLE)

    run(engine, page_viewed(store_id=shop.store_id, at=START + IDLE + MINUTE))

    assert cart_of(engine, shop, cart_id).status is CartStatus.ABANDONED


# --- orders ------------------------------------------------------------------------------------------------


def test_an_order_naming_the_cart_id_recovers_the_abandoned_cart(engine: Engine, shop: Shop) -> None:
    cart_id, _ = new_cart(engine, shop)
    engine.advance_clock(START + IDLE)
    order_id = random_id("o")

    run(engine, order_completed(store_id=shop.store_id, cart_id=cart_id, order_id=order_id, at=START + 2 * IDLE))

    cart = cart_of(engine, shop, cart_id)
    assert (cart.status, cart.order_id, cart.closed_at) == (CartStatus.RECOVERED, order_id, START + 2 * IDLE)


def test_an_order_before_abandonment_is_a_conversion(engine: Engine, shop: Shop) -> None:
    cart_id, anon = new_cart(engine, shop)

    run(engine, order_completed(store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id, at=START + 5 * MINUTE))
    engine.advance_clock(START + WINDOW * 2)

    assert cart_of(engine, shop, cart_id).status is CartStatus.CONVERTED


def test_an_order_naming_the_checkout_id_recovers_the_cart_of_that_checkout(engine: Engine, shop: Shop) -> None:
    cart_id, checkout = random_id("cart"), random_id("chk")
    run(engine, checkout_started(store_id=shop.store_id, cart_id=cart_id, refs=(f"checkout:{checkout}",)))
    engine.advance_clock(START + IDLE)

    # From another device and identity: only the checkout id joins them.
    run(engine, order_completed(store_id=shop.store_id, refs=(f"checkout:{checkout}",), at=START + 2 * IDLE))

    assert cart_of(engine, shop, cart_id).status is CartStatus.RECOVERED


def test_an_order_naming_the_order_id_of_a_checkout_recovers_its_cart(engine: Engine, shop: Shop) -> None:
    cart_id, order_id = random_id("cart"), random_id("o")
    run(
        engine,
        checkout_started(store_id=shop.store_id, cart_id=cart_id, order_id=order_id, refs=(f"order:{order_id}",)),
    )
    engine.advance_clock(START + IDLE)

    run(engine, order_completed(store_id=shop.store_id, order_id=order_id, at=START + 2 * IDLE))

    cart = cart_of(engine, shop, cart_id)
    assert (cart.status, cart.order_id) == (CartStatus.RECOVERED, order_id)


def test_an_order_on_a_second_device_after_identify_closes_the_cart_of_the_first(engine: Engine, shop: Shop) -> None:
    user = random_id("u")
    cart_id, phone_anon = new_cart(engine, shop)
    run(engine, identified(store_id=shop.store_id, anonymous_id=phone_anon, user_id=user, at=START + MINUTE))
    engine.advance_clock(START + IDLE + MINUTE)
    laptop_anon = random_id("anon")
    run(engine, page_viewed(store_id=shop.store_id, anonymous_id=laptop_anon, at=START + 2 * IDLE))
    assert cart_of(engine, shop, cart_id).status is CartStatus.ABANDONED

    run(
        engine,
        order_completed(store_id=shop.store_id, anonymous_id=laptop_anon, user_id=user, at=START + 2 * IDLE + MINUTE),
    )

    cart = cart_of(engine, shop, cart_id)
    assert cart.status is CartStatus.RECOVERED
    with engine.database.read() as uow:
        phone, laptop = (uow.shoppers.find(shop.store_id, "anon", a) for a in (phone_anon, laptop_anon))
    assert phone == laptop == cart.shopper_id


def test_an_order_that_arrives_before_the_carts_events_closes_the_cart_when_they_arrive(
    engine: Engine, shop: Shop
) -> None:
    cart_id, checkout, order_id = random_id("cart"), random_id("chk"), random_id("o")
    run(
        engine,
        order_completed(
            store_id=shop.store_id, order_id=order_id, refs=(f"checkout:{checkout}",), at=START + 10 * MINUTE
        ),
    )

    run(engine, checkout_started(store_id=shop.store_id, cart_id=cart_id, refs=(f"checkout:{checkout}",), at=START))

    cart = cart_of(engine, shop, cart_id)
    assert (cart.status, cart.order_id, cart.closed_at) == (CartStatus.CONVERTED, order_id, START + 10 * MINUTE)
    engine.advance_clock(START + WINDOW)
    assert cart_of(engine, shop, cart_id).status is CartStatus.CONVERTED
    with engine.database.read() as uow:
        order = uow.orders.get(shop.store_id, order_id)
    assert order is not None and order.cart_id == cart_id


def test_a_late_cart_event_for_a_converted_cart_does_not_reopen_it(engine: Engine, shop: Shop) -> None:
    cart_id, anon = new_cart(engine, shop)
    run(engine, order_completed(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=START + 10 * MINUTE))

    run(engine, product_added(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=START + 5 * MINUTE))

    assert [c.status for c in carts_of(engine, shop)] == [CartStatus.CONVERTED]


def test_a_cart_id_reused_after_an_order_starts_one_new_cart(engine: Engine, shop: Shop) -> None:
    cart_id, anon = new_cart(engine, shop)
    run(engine, order_completed(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=START + 10 * MINUTE))

    later = START + 2 * IDLE
    run(
        engine,
        product_added(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=later),
        product_added(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=later + MINUTE),
    )

    carts = carts_of(engine, shop)
    assert sorted(c.status for c in carts) == [CartStatus.ACTIVE, CartStatus.CONVERTED]
    new = next(c for c in carts if c.status is CartStatus.ACTIVE)
    assert sum(i.quantity for i in new.items) == 2


# --- late events -------------------------------------------------------------------------------------------


def test_a_cart_event_processed_late_is_abandoned_at_its_own_time(engine: Engine, shop: Shop) -> None:
    engine.advance_clock(START + 3 * IDLE)
    cart_id = random_id("cart")

    run(engine, product_added(store_id=shop.store_id, cart_id=cart_id, at=START))

    cart = cart_of(engine, shop, cart_id)
    assert (cart.status, cart.abandoned_at) == (CartStatus.ABANDONED, START + IDLE)


def test_a_late_page_view_from_before_abandonment_does_not_reactivate(engine: Engine, shop: Shop) -> None:
    cart_id, anon = new_cart(engine, shop)
    engine.advance_clock(START + 3 * IDLE)

    run(engine, page_viewed(store_id=shop.store_id, anonymous_id=anon, at=START + 10 * MINUTE))

    assert cart_of(engine, shop, cart_id).status is CartStatus.ABANDONED


def test_a_late_order_from_before_abandonment_is_a_conversion(engine: Engine, shop: Shop) -> None:
    cart_id, anon = new_cart(engine, shop)
    engine.advance_clock(START + 3 * IDLE)

    run(engine, order_completed(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=START + 20 * MINUTE))

    cart = cart_of(engine, shop, cart_id)
    assert (cart.status, cart.closed_at) == (CartStatus.CONVERTED, START + 20 * MINUTE)


def test_events_processed_in_one_go_long_after_give_each_cart_the_state_of_its_time(engine: Engine, shop: Shop) -> None:
    kept, left = random_id("cart"), random_id("cart")
    engine.append(
        [
            product_added(store_id=shop.store_id, cart_id=kept, at=START),
            product_added(store_id=shop.store_id, cart_id=left, at=START),
            order_completed(store_id=shop.store_id, cart_id=kept, at=START + 2 * IDLE),
        ]
    )

    engine.advance_clock(START + WINDOW + 2 * IDLE)

    assert cart_of(engine, shop, kept).status is CartStatus.RECOVERED
    assert cart_of(engine, shop, left).status is CartStatus.EXPIRED


# --- expiry ------------------------------------------------------------------------------------------------


def test_an_abandoned_cart_expires_when_the_recovery_window_is_over(engine: Engine, shop: Shop) -> None:
    cart_id, anon = new_cart(engine, shop)

    engine.advance_clock(START + IDLE + WINDOW - MINUTE)
    assert cart_of(engine, shop, cart_id).status is CartStatus.ABANDONED
    engine.advance_clock(START + IDLE + WINDOW)

    cart = cart_of(engine, shop, cart_id)
    assert (cart.status, cart.closed_at) == (CartStatus.EXPIRED, START + IDLE + WINDOW)
    too_late = START + IDLE + WINDOW + MINUTE
    run(engine, order_completed(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=too_late))
    assert cart_of(engine, shop, cart_id).status is CartStatus.EXPIRED


# --- exactly once, replay, stores --------------------------------------------------------------------------


def test_a_retried_event_changes_the_cart_once(engine: Engine, shop: Shop) -> None:
    cart_id = random_id("cart")
    added = product_added(item(quantity=1), store_id=shop.store_id, cart_id=cart_id)

    assert engine.append([added, added]) == [True, False]
    assert engine.append([added]) == [False]
    engine.advance_clock(START + MINUTE)

    assert [i.quantity for i in cart_of(engine, shop, cart_id).items] == [1]


def test_replaying_the_log_into_another_engine_builds_the_same_carts(
    engine: Engine, shop: Shop, tmp_path: Path
) -> None:
    user, anon = random_id("u"), random_id("anon")
    run(
        engine,
        product_added(store_id=shop.store_id, anonymous_id=anon),  # no cart id: the id is derived
        identified(store_id=shop.store_id, anonymous_id=anon, user_id=user, at=START + MINUTE),
        product_added(store_id=shop.store_id, cart_id=random_id("cart"), at=START + MINUTE),
        order_completed(store_id=shop.store_id, user_id=user, at=START + 2 * IDLE),
    )
    engine.advance_clock(START + WINDOW + IDLE)
    logged = [e for _, e in engine.log.read_after(0, 10_000)]

    other = build_engine(make_settings(tmp_path / "replay"), start=START)
    try:
        twin = add_shop(other, name=shop.name)
        assert twin.store_id == shop.store_id
        other.append(logged)
        other.advance_clock(START + WINDOW + IDLE)

        assert carts_of(other, twin) == carts_of(engine, shop)
        assert len(carts_of(engine, shop)) == 2
    finally:
        other.close()


def test_two_stores_never_see_each_others_carts(engine: Engine, shop: Shop) -> None:
    other = add_shop(engine)
    cart_id, anon, user = random_id("cart"), random_id("anon"), random_id("u")
    for s in (shop, other):
        run(engine, product_added(store_id=s.store_id, cart_id=cart_id, anonymous_id=anon, user_id=user))

    run(engine, order_completed(store_id=shop.store_id, cart_id=cart_id, user_id=user, at=START + MINUTE))
    engine.advance_clock(START + IDLE + MINUTE)

    assert cart_of(engine, shop, cart_id).status is CartStatus.CONVERTED
    assert cart_of(engine, other, cart_id).status is CartStatus.ABANDONED
    assert cart_of(engine, shop, cart_id).shopper_id != cart_of(engine, other, cart_id).shopper_id


# --- the same through HTTP ---------------------------------------------------------------------------------


def test_through_http_a_tracked_cart_is_abandoned_and_then_recovered(client: TestClient, shop: Shop) -> None:  # type: ignore[type-arg]
    cart_id, anon = random_id("cart"), random_id("anon")
    added = {
        "anonymousId": anon,
        "event": "Product Added",
        "timestamp": START.isoformat(),
        "properties": {"cart_id": cart_id, "product_id": "p1", "price": 19.99, "quantity": 2},
    }
    assert client.post("/v1/track", json=added, headers=shop.basic).status_code == 200

    move_clock(client, shop, START + IDLE)
    abandoned = client.get(f"/api/v1/carts/{cart_id}", headers=shop.admin).json()

    order = {
        "anonymousId": anon,
        "event": "Order Completed",
        "timestamp": (START + IDLE + MINUTE).isoformat(),
        "properties": {"order_id": random_id("o"), "cart_id": cart_id, "total": 39.98},
    }
    move_clock(client, shop, START + IDLE + MINUTE)
    assert client.post("/v1/track", json=order, headers=shop.basic).status_code == 200
    move_clock(client, shop, START + IDLE + 2 * MINUTE)
    recovered = client.get(f"/api/v1/carts/{cart_id}", headers=shop.admin).json()

    assert (abandoned["status"], abandoned["value"]) == ("abandoned", 3998)
    assert recovered["status"] == "recovered"


def test_a_late_event_for_the_closed_cart_does_not_take_a_reused_cart_id_from_the_new_cart(
    engine: Engine, shop: Shop
) -> None:
    cart_id, anon = new_cart(engine, shop)
    run(engine, order_completed(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=START + 10 * MINUTE))
    later = START + 2 * IDLE
    run(engine, product_added(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=later))

    run(
        engine,
        product_added(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=START + 5 * MINUTE),  # late
        product_added(store_id=shop.store_id, cart_id=cart_id, anonymous_id=anon, at=later + MINUTE),
    )

    carts = carts_of(engine, shop)
    assert sorted(c.status for c in carts) == [CartStatus.ACTIVE, CartStatus.CONVERTED]
    new = next(c for c in carts if c.status is CartStatus.ACTIVE)
    assert sum(i.quantity for i in new.items) == 2
