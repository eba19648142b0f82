"""Erasure removes a shopper's personal data everywhere it was logged, across every device linked to them."""

from __future__ import annotations

from datetime import timedelta

from litestar.testing import TestClient

from cartrecover.domain.events import Event, EventKind
from cartrecover.engine import Engine
from tests.conftest import START, Shop, add_shop, move_clock

Client = TestClient  # type: ignore[type-arg]


def track(client: Client, shop: Shop, anonymous_id: str, minutes: int, **fields: object) -> None:
    call = {"anonymousId": anonymous_id, "timestamp": (START + timedelta(minutes=minutes)).isoformat(), **fields}
    kind = "identify" if "traits" in call else "track"
    response = client.post(f"/v1/{kind}", json=call, headers=shop.basic)
    assert response.status_code == 200, response.text


def redact_by_email(engine: Engine, shop: Shop, email: str, minutes: int) -> None:
    at = START + timedelta(minutes=minutes)
    engine.append(
        [
            Event(
                kind=EventKind.SHOPPER_REDACTED,
                store_id=shop.store_id,
                message_id=f"redact-{email}",
                source="shopify",
                name="customers/redact",
                at=at,
                received_at=at,
                email=email,
            )
        ]
    )


def logged_identities(engine: Engine, store_id: int) -> set[str]:
    events = [event for _, event in engine.log.read_after(0, 1000) if event.store_id == store_id]
    return {value for event in events for _, value in event.identities}


def test_erasure_by_email_scrubs_the_events_of_every_device_linked_to_the_shopper(
    client: Client, shop: Shop, engine: Engine
) -> None:
    bystander = add_shop(engine)
    cart = {"cart_id": "c1", "product_id": "p1", "price": 10}
    track(client, shop, "laptop-anon", 0, event="Product Added", properties=cart)
    track(client, shop, "laptop-anon", 1, userId="u-7", traits={"email": "ada@example.com"})
    track(client, shop, "phone-anon", 5, event="Page Viewed", userId="u-7")
    track(client, bystander, "laptop-anon", 2, event="Product Added", properties=cart)
    move_clock(client, shop, START + timedelta(minutes=6))

    redact_by_email(engine, shop, "ada@example.com", minutes=7)
    move_clock(client, shop, START + timedelta(minutes=8))

    assert logged_identities(engine, shop.store_id) == set()
    assert logged_identities(engine, bystander.store_id) == {"laptop-anon"}
    with engine.database.read() as uow:
        for kind, value in (("anon", "laptop-anon"), ("anon", "phone-anon"), ("user", "u-7")):
            assert uow.shoppers.find(shop.store_id, kind, value) is None
        assert uow.shoppers.find(bystander.store_id, "anon", "laptop-anon") is not None
        erased_cart = uow.carts.get(shop.store_id, "c1")
    assert erased_cart is not None and erased_cart.status.value == "suppressed"


def test_erasing_twice_is_harmless(client: Client, shop: Shop, engine: Engine) -> None:
    track(client, shop, "a1", 0, userId="u-1", traits={"email": "bo@example.com"})
    redact_by_email(engine, shop, "bo@example.com", minutes=1)
    move_clock(client, shop, START + timedelta(minutes=2))
    engine.append(
        [
            Event(
                kind=EventKind.SHOPPER_REDACTED,
                store_id=shop.store_id,
                message_id="redact-again",
                source="shopify",
                name="customers/redact",
                at=START + timedelta(minutes=3),
                received_at=START + timedelta(minutes=3),
                email="bo@example.com",
            )
        ]
    )

    move_clock(client, shop, START + timedelta(minutes=4))

    assert logged_identities(engine, shop.store_id) == set()
    assert engine.lag() == 0
