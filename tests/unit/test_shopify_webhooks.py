"""Shopify webhooks through the real app: signed deliveries in, carts and orders out, forgeries refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from cartrecover.domain.events import EventKind
from cartrecover.engine import Engine
from tests.conftest import SAMPLES, START, Shop, add_shop, move_clock

CHECKOUT_TOKEN = "2a1ace52255252df566af0faaedfbfa7"
CART_TOKEN = "68778783ad298f1c80c3bafcddeea02f"
CUSTOMER_ID = 207119551
EMAIL = "bob.norman@mail.example.com"

Client = TestClient  # type: ignore[type-arg]


def sample(name: str) -> dict[str, Any]:
    """A saved sample payload, read from the shared folder (never copied into the repo)."""
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return loaded


def checkout(at: datetime = START, **fields: Any) -> dict[str, Any]:
    """The sample abandoned checkout (total_price "379.69"), last changed at `at`."""
    body = sample("shopify_checkout_webhook_shape_2026-07.json")
    body.update(created_at=at.isoformat(), updated_at=at.isoformat(), **fields)
    return body


def order(at: datetime, **fields: Any) -> dict[str, Any]:
    """The sample order (total_price "598.94", id 450789469), placed at `at`."""
    body = sample("shopify_order_webhook_shape_2026-07.json")
    body.update(created_at=at.isoformat(), updated_at=at.isoformat(), processed_at=at.isoformat(), **fields)
    return body


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def deliver(
    client: Client,
    shop: Shop,
    topic: str,
    payload: dict[str, Any] | bytes,
    *,
    event_id: str | None = None,
    secret: str | None = None,
    signature: str | None = None,
    store: str | None = None,
) -> httpx.Response:
    """POST one delivery the way Shopify does: raw JSON body, signed with the store's secret unless told."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "jsmith.myshopify.com",
        "X-Shopify-API-Version": "2026-07",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
    }
    if signature is None:
        headers["X-Shopify-Hmac-Sha256"] = sign(body, secret or shop.shopify_secret)
    elif signature:
        headers["X-Shopify-Hmac-Sha256"] = signature
    response: httpx.Response = client.post(
        "/webhooks/shopify", params={"store": store or shop.name}, content=body, headers=headers
    )
    return response


def logged(engine: Engine) -> int:
    return engine.log.last_offset()


def carts(client: Client, shop: Shop) -> list[dict[str, Any]]:
    response = client.get("/api/v1/carts", headers=shop.admin)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["carts"]
    return found


def cart(client: Client, shop: Shop, cart_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/carts/{cart_id}", headers=shop.admin)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def only_cart(client: Client, shop: Shop) -> dict[str, Any]:
    found = carts(client, shop)
    assert len(found) == 1, found
    return cart(client, shop, found[0]["id"])


def test_a_signed_checkout_becomes_a_cart_worth_its_total_in_minor_units(client: Client, shop: Shop) -> None:
    response = deliver(client, shop, "checkouts/create", checkout(START - timedelta(minutes=1)))
    move_clock(client, shop, START)

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    found = only_cart(client, shop)
    assert found["value"] == 37969
    assert found["value_display"] == "379.69"
    assert found["status"] == "active"
    assert found["checkout_started"] is True
    assert [(line["sku"], line["price"], line["quantity"]) for line in found["lines"]] == [
        ("IPOD2008RED", 19900, 1),
        ("IPOD2008PINK", 19900, 1),
    ]
    assert found["restore_url"] == f"https://checkout.local/548380009/checkouts/{CHECKOUT_TOKEN}/recover"


def test_a_repeated_delivery_is_stored_and_applied_once(client: Client, shop: Shop, engine: Engine) -> None:
    first = deliver(client, shop, "checkouts/update", checkout(START), event_id="evt-1")
    again = deliver(client, shop, "checkouts/update", checkout(START), event_id="evt-1")
    move_clock(client, shop, START)

    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["stored"] == 1
    assert again.json() == {"success": True, "stored": 0, "duplicates": 1}
    assert logged(engine) == 1
    events = [entry for entry in only_cart(client, shop)["timeline"] if entry["kind"] == "event"]
    assert len(events) == 1


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param({"signature": "bm90IGEgc2lnbmF0dXJl"}, id="wrong signature"),
        pytest.param({"secret": "another-stores-secret"}, id="signed with another secret"),
        pytest.param({"signature": ""}, id="no signature header"),
    ],
)
def test_a_delivery_without_a_valid_signature_is_refused_and_changes_nothing(
    client: Client, shop: Shop, engine: Engine, forge: dict[str, str]
) -> None:
    response = deliver(client, shop, "checkouts/create", checkout(START), **forge)
    move_clock(client, shop, START)

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.json()["message"]
    assert logged(engine) == 0
    assert carts(client, shop) == []


def test_a_delivery_signed_with_another_stores_secret_is_refused(client: Client, shop: Shop, engine: Engine) -> None:
    other = add_shop(engine)
    response = deliver(client, shop, "checkouts/create", checkout(START), secret=other.shopify_secret)
    move_clock(client, shop, START)

    assert response.status_code == 401
    assert logged(engine) == 0
    assert carts(client, shop) == [] and carts(client, other) == []


def test_a_body_changed_after_signing_is_refused(client: Client, shop: Shop, engine: Engine) -> None:
    body = json.dumps(checkout(START)).encode()
    tampered = body.replace(b'"379.69"', b'"1.00"')
    response = deliver(client, shop, "checkouts/create", tampered, signature=sign(body, shop.shopify_secret))

    assert response.status_code == 401
    assert logged(engine) == 0


@pytest.mark.parametrize("store", ["", "no-such-store"])
def test_a_delivery_for_no_known_store_is_refused(client: Client, shop: Shop, engine: Engine, store: str) -> None:
    body = json.dumps(checkout(START)).encode()
    response = client.post(
        "/webhooks/shopify" + (f"?store={store}" if store else ""),
        content=body,
        headers={"X-Shopify-Topic": "checkouts/create", "X-Shopify-Hmac-Sha256": sign(body, shop.shopify_secret)},
    )

    assert response.status_code == 401
    assert logged(engine) == 0


def test_during_a_secret_rotation_both_secrets_are_accepted(client: Client, engine: Engine) -> None:
    shop = add_shop(engine, shopify_secrets=("old-secret", "new-secret"))
    by_old = deliver(client, shop, "checkouts/create", checkout(START), secret="old-secret")
    by_new = deliver(client, shop, "orders/create", order(START), secret="new-secret")
    move_clock(client, shop, START)

    assert (by_old.status_code, by_new.status_code) == (200, 200)
    assert logged(engine) == 2
    assert only_cart(client, shop)["status"] == "converted"


def test_an_order_that_arrives_before_its_checkout_still_closes_the_cart(client: Client, shop: Shop) -> None:
    # Shopify does not promise order: orders/create (placed at 09:55) lands before checkouts/update (09:50).
    placed = deliver(client, shop, "orders/create", order(START - timedelta(minutes=5)))
    move_clock(client, shop, START)
    updated = deliver(client, shop, "checkouts/update", checkout(START - timedelta(minutes=10)))
    move_clock(client, shop, START + timedelta(seconds=1))

    assert (placed.status_code, updated.status_code) == (200, 200)
    found = only_cart(client, shop)
    assert found["status"] == "converted"
    assert found["order_id"] == "450789469"


def test_an_abandoned_checkout_is_recovered_by_its_order(client: Client, shop: Shop) -> None:
    deliver(client, shop, "checkouts/update", checkout(START))
    move_clock(client, shop, START + timedelta(minutes=20))
    assert only_cart(client, shop)["status"] == "abandoned"

    # A guest order that names only the checkout token: the join is the checkout ref, nothing else.
    guest = order(
        START + timedelta(minutes=40),
        checkout_token=CHECKOUT_TOKEN,
        cart_token=None,
        customer=None,
        email=None,
        contact_email=None,
        phone=None,
    )
    move_clock(client, shop, START + timedelta(minutes=45))
    response = deliver(client, shop, "orders/create", guest)
    move_clock(client, shop, START + timedelta(minutes=46))

    assert response.status_code == 200, response.text
    found = only_cart(client, shop)
    assert found["status"] == "recovered"
    assert found["order_id"] == "450789469"
    states = [(e["from"], e["to"]) for e in found["timeline"] if e["kind"] == "state"]
    assert states == [("active", "abandoned"), ("abandoned", "recovered")]


def test_an_order_of_the_same_customer_closes_their_checkout_without_shared_tokens(client: Client, shop: Shop) -> None:
    # Only the Shopify customer id is shared: no email, no checkout or cart token in common.
    customer = {"id": CUSTOMER_ID}
    deliver(client, shop, "checkouts/update", checkout(START - timedelta(minutes=10), email=None, customer=customer))
    anonymous_order = order(
        START - timedelta(minutes=5),
        checkout_token="elsewhere",
        cart_token=None,
        email=None,
        contact_email=None,
        customer=customer,
    )
    deliver(client, shop, "orders/create", anonymous_order)
    move_clock(client, shop, START)

    found = only_cart(client, shop)
    assert found["status"] == "converted"
    assert found["order_id"] == "450789469"


def test_a_completed_checkout_closes_the_cart_even_without_the_order_webhook(client: Client, shop: Shop) -> None:
    done = (START - timedelta(minutes=1)).isoformat()
    response = deliver(client, shop, "checkouts/update", checkout(START - timedelta(minutes=2), completed_at=done))
    move_clock(client, shop, START)

    assert response.json()["stored"] == 2
    assert only_cart(client, shop)["status"] == "converted"


def test_a_cart_and_the_checkout_that_follows_it_are_one_cart(client: Client, shop: Shop) -> None:
    shopify_cart = sample("shopify_python_api_fixture_carts.json")["carts"][0]
    shopify_cart.update(token=CART_TOKEN, updated_at=(START - timedelta(minutes=5)).isoformat())
    deliver(client, shop, "carts/update", shopify_cart)
    move_clock(client, shop, START)
    assert only_cart(client, shop)["value"] == 100

    deliver(client, shop, "checkouts/create", checkout(START))
    move_clock(client, shop, START + timedelta(seconds=1))

    found = only_cart(client, shop)
    assert found["id"] == CART_TOKEN
    assert found["value"] == 37969


def test_customers_redact_suppresses_the_shoppers_carts_and_erases_their_identities(
    client: Client, shop: Shop, engine: Engine
) -> None:
    deliver(client, shop, "checkouts/update", checkout(START))
    move_clock(client, shop, START)
    request = {
        "shop_id": 954889,
        "shop_domain": "jsmith.myshopify.com",
        "customer": {"id": CUSTOMER_ID, "email": EMAIL, "phone": "+16136120707"},
        "orders_to_redact": [],
    }
    response = deliver(client, shop, "customers/redact", request)
    move_clock(client, shop, START + timedelta(minutes=1))

    assert response.status_code == 200, response.text
    found = only_cart(client, shop)
    assert found["status"] == "suppressed"
    assert found["restore_url"] is None
    with engine.database.read() as uow:
        assert uow.shoppers.find(shop.store_id, "email", EMAIL) is None
        assert uow.shoppers.find(shop.store_id, "user", str(CUSTOMER_ID)) is None
        events = [e for _, e in engine.log.read_after(0, 100)]
    assert [e.kind for e in events] == [EventKind.CART_ACTIVITY, EventKind.SHOPPER_REDACTED]
    assert events[0].email is None and events[0].user_id is None


def test_the_other_privacy_topics_are_logged_as_requests(client: Client, shop: Shop, engine: Engine) -> None:
    asked = deliver(
        client,
        shop,
        "customers/data_request",
        {"shop_id": 954889, "customer": {"id": CUSTOMER_ID, "email": EMAIL}, "data_request": {"id": 9999}},
    )
    redact_shop = deliver(client, shop, "shop/redact", {"shop_id": 954889, "shop_domain": "jsmith.myshopify.com"})

    assert (asked.status_code, redact_shop.status_code) == (200, 200)
    kinds = [e.kind for _, e in engine.log.read_after(0, 100)]
    assert kinds == [EventKind.DATA_REQUESTED, EventKind.STORE_REDACTED]


@pytest.mark.parametrize("topic", ["products/update", "checkouts/delete"])
def test_a_topic_we_do_not_use_is_acknowledged_and_stores_nothing(
    client: Client, shop: Shop, engine: Engine, topic: str
) -> None:
    response = deliver(client, shop, topic, {"id": 1, "token": CHECKOUT_TOKEN})

    assert response.status_code == 200
    assert response.json()["stored"] == 0
    assert topic in response.json()["ignored"]
    assert logged(engine) == 0


def test_a_signed_body_that_is_not_json_is_refused_and_changes_nothing(
    client: Client, shop: Shop, engine: Engine
) -> None:
    response = deliver(client, shop, "checkouts/create", b'{"token": "abc", ')

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert logged(engine) == 0


def test_a_checkout_time_in_the_future_is_taken_as_the_time_of_receipt(client: Client, shop: Shop) -> None:
    deliver(client, shop, "checkouts/create", checkout(START + timedelta(days=3)))
    move_clock(client, shop, START)

    assert only_cart(client, shop)["last_activity_at"].startswith("2026-01-05T10:00:00")


@pytest.mark.parametrize(
    ("total", "quantity", "named"),
    [
        ("1e400", 1, "total_price"),  # a decimal that overflows
        ("-5.00", 1, "total_price"),
        ("10.00", 2**70, "quantity"),  # more than the log's 64-bit integers hold
        ("10.00", -1, "quantity"),
    ],
)
def test_an_absurd_amount_or_quantity_is_refused_naming_it_and_stores_nothing(
    client: Client, shop: Shop, engine: Engine, total: str, quantity: int, named: str
) -> None:
    body = checkout(START)
    body["total_price"] = total
    body["line_items"][0]["quantity"] = quantity

    response = deliver(client, shop, "checkouts/update", body)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_event" and named in response.json()["message"]
    assert logged(engine) == 0


def test_an_order_keeps_its_discount_codes_and_total_discounts_for_incentive_cost(
    client: Client, shop: Shop, engine: Engine
) -> None:
    body = order(START, discount_codes=[{"code": "CR-AB12"}, {"code": ""}], total_discounts="12.50")

    assert deliver(client, shop, "orders/create", body).status_code == 200
    move_clock(client, shop, START + timedelta(minutes=1))

    with engine.database.read() as uow:
        kept = uow.orders.get(shop.store_id, "450789469")
    assert kept is not None and (kept.coupons, kept.discount) == (("CR-AB12",), 1250)


def test_the_sample_order_s_code_and_discount_are_read() -> None:
    from cartrecover.ingest import shopify

    body = json.dumps(order(START)).encode()
    (event,) = shopify.normalise("orders/create", body, {}, store_id=1, currency="USD", received_at=START)

    assert (event.coupons, event.discount) == (("TENOFF",), 1000)
