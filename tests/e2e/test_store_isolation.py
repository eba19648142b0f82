"""A store's keys never read or write another store's data (DESIGN §6.5).

Two stores use the same cart ids, user ids and message ids; everything one does is checked on the other's state.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Keys, Server, ServerFactory, on_both_stacks

pytestmark = on_both_stacks


def added(cart_id: str, user: str, product: str, price: float, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    """One `Product Added`."""
    return {
        "type": "track",
        "messageId": extra.pop("messageId", f"m-{uuid.uuid4().hex}"),
        "userId": user,
        "event": "Product Added",
        "properties": {"cart_id": cart_id, "product_id": product, "price": price, "quantity": quantity},
        **extra,
    }


def send(server: Server, shop: Keys, *messages: dict[str, Any]) -> None:
    """POST a batch with the store's write key; it must be accepted."""
    response = server.post("/v1/batch", json={"batch": list(messages)}, headers=shop.basic)
    assert response.status_code == 200, response.text


def snapshot(server: Server, shop: Keys) -> dict[str, Any]:
    """Everything the admin API and the event log show of a store."""
    carts = {c["id"]: server.cart(shop, c["id"]) for c in server.carts(shop)}
    return {"carts": carts, "events": server.event_count(shop), "message_ids": server.message_ids(shop)}


@pytest.fixture
def two_shops(server_factory: ServerFactory) -> tuple[Server, Keys, Keys]:
    """Stores a and b, each with carts "cart-1" and "cart-2" of shopper "u-1"; b also has "b-only"."""
    server = server_factory(stores=("a", "b"))
    a, b = server.stores["a"], server.stores["b"]
    send(server, a, added("cart-1", "u-1", "a-sku", 10), added("cart-2", "u-2", "a-sku", 11))
    send(server, b, added("cart-1", "u-1", "b-sku", 70, 2), added("cart-2", "u-2", "b-sku", 80))
    send(server, b, added("b-only", "u-3", "b-sku", 90))
    server.advance(timedelta(minutes=1))
    return server, a, b


def test_each_store_lists_and_reads_only_its_own_carts(two_shops: tuple[Server, Keys, Keys]) -> None:
    server, a, b = two_shops
    assert sorted(c["id"] for c in server.carts(a)) == ["cart-1", "cart-2"]
    assert sorted(c["id"] for c in server.carts(b)) == ["b-only", "cart-1", "cart-2"]
    assert server.cart(a, "cart-1")["value"] == 1000
    assert server.cart(b, "cart-1")["value"] == 14000
    assert [line["product_id"] for line in server.cart(a, "cart-1")["lines"]] == ["a-sku"]
    timeline_a = server.cart(a, "cart-1")["timeline"]
    assert timeline_a and "b-sku" not in str(timeline_a)

    response = server.get("/api/v1/carts/b-only", headers=a.admin)
    assert response.status_code == 404
    assert "b-sku" not in response.text

    for status in ("active", "abandoned", "recovered", "converted"):
        assert all(c["id"] != "b-only" for c in server.carts(a, status))


def test_store_as_write_key_never_changes_store_bs_carts(two_shops: tuple[Server, Keys, Keys]) -> None:
    server, a, b = two_shops
    before = snapshot(server, b)
    send(
        server,
        a,
        added("cart-1", "u-1", "b-sku", 70, 5),  # B's cart id, user id and product
        added("b-only", "u-3", "b-sku", 1),
        {"type": "identify", "userId": "u-1", "traits": {"email": "u1@example.com"}},
        {"type": "alias", "userId": "u-9", "previousId": "u-1"},
        {
            "type": "track",
            "userId": "u-2",
            "event": "Order Completed",
            "properties": {"cart_id": "cart-2", "order_id": "o-1", "total": 80},
        },
    )
    server.advance(timedelta(hours=2))  # past the idle time: both stores' timers fire
    after = snapshot(server, b)

    assert after["events"] == before["events"]
    assert after["message_ids"] == before["message_ids"]
    for cart_id, cart in after["carts"].items():
        was = before["carts"][cart_id]
        assert cart["lines"] == was["lines"]
        assert cart["value"] == was["value"]
        assert cart["order_id"] is None
        assert cart["status"] == "abandoned"  # B's own clock-driven change, nothing of A's order
    assert server.cart(a, "cart-2")["status"] == "converted"
    lines_a = {line["product_id"]: line["quantity"] for line in server.cart(a, "cart-1")["lines"]}
    assert lines_a == {"a-sku": 1, "b-sku": 5}  # what A sent landed in A's own cart
    assert sorted(c["id"] for c in server.carts(a)) == ["b-only", "cart-1", "cart-2"]  # A got its own "b-only"


def test_a_write_key_in_basic_auth_wins_over_another_stores_key_in_the_body(
    two_shops: tuple[Server, Keys, Keys],
) -> None:
    server, a, b = two_shops
    before = snapshot(server, b)
    response = server.post(
        "/v1/batch", json={"batch": [added("cart-1", "u-1", "b-sku", 1)], "writeKey": b.write_key}, headers=a.basic
    )
    assert response.status_code == 200, response.text
    server.advance()
    assert snapshot(server, b) == before
    assert {line["product_id"] for line in server.cart(a, "cart-1")["lines"]} == {"a-sku", "b-sku"}


def test_message_ids_are_deduplicated_per_store_so_one_store_cannot_shadow_anothers_events(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(stores=("a", "b"))
    a, b = server.stores["a"], server.stores["b"]
    shared = f"m-{uuid.uuid4().hex}"
    send(server, a, added("cart-x", "u-1", "a-sku", 1, messageId=shared))
    send(server, b, added("cart-x", "u-1", "b-sku", 2, messageId=shared))
    server.advance()
    assert server.message_ids(a) == server.message_ids(b) == {shared}
    assert server.cart(b, "cart-x")["lines"][0]["product_id"] == "b-sku"
    assert server.cart(a, "cart-x")["lines"][0]["product_id"] == "a-sku"


def test_one_stores_admin_key_cannot_use_the_other_stores_keys_or_routes(two_shops: tuple[Server, Keys, Keys]) -> None:
    server, a, b = two_shops
    before = snapshot(server, b)
    with server.client() as http:
        # An admin key is not a write key, for its own store or another.
        for key in (a.admin_key, b.admin_key):
            response = http.post("/v1/track", json=added("cart-1", "u-1", "x", 1, writeKey=key))
            assert response.status_code == 401
        # A write key is not an admin key.
        response = http.get("/api/v1/carts", headers={"Authorization": f"Bearer {b.write_key}"})
        assert response.status_code == 401
    assert snapshot(server, b) == before
