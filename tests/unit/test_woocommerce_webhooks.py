"""WooCommerce order webhooks through the real app: unpaid orders are carts, paid ones close them."""

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

from cartrecover.engine import Engine
from tests.conftest import SAMPLES, START, Shop, add_shop, move_clock

ORDER_KEY = "wc_order_58d2d042d1d"

Client = TestClient  # type: ignore[type-arg]


def gmt(at: datetime) -> str:
    """WooCommerce's *_gmt form: UTC without a zone."""
    return at.strftime("%Y-%m-%dT%H:%M:%S")


def woo_order(status: str, modified: datetime, **fields: Any) -> dict[str, Any]:
    """The sample REST v3 order (id 727, total "29.35") with this status, last changed at `modified`."""
    body: dict[str, Any] = json.loads((SAMPLES / "woocommerce_order_v3_retrieve_example.json").read_text())
    paid = gmt(modified) if status in ("processing", "completed") else None
    body.update(
        status=status,
        date_created_gmt=gmt(START - timedelta(hours=1)),
        date_modified_gmt=gmt(modified),
        date_paid_gmt=paid,
        **fields,
    )
    return body


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def deliver(
    client: Client,
    shop: Shop,
    topic: str,
    payload: dict[str, Any] | bytes,
    *,
    secret: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """POST one delivery as WooCommerce does: a fresh delivery id every time, signed unless told."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    resource, _, event = topic.partition(".")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.0.0 Hookshot (WordPress/6.5)",
        "X-WC-Webhook-Source": "https://example.com/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
    }
    if signature is None:
        headers["X-WC-Webhook-Signature"] = sign(body, secret or shop.woocommerce_secret)
    elif signature:
        headers["X-WC-Webhook-Signature"] = signature
    response: httpx.Response = client.post(
        "/webhooks/woocommerce", params={"store": shop.name}, content=body, headers=headers
    )
    return response


def logged(engine: Engine) -> int:
    return engine.log.last_offset()


def carts(client: Client, shop: Shop) -> list[dict[str, Any]]:
    response = client.get("/api/v1/carts", headers=shop.admin)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["carts"]
    return found


def only_cart(client: Client, shop: Shop) -> dict[str, Any]:
    found = carts(client, shop)
    assert len(found) == 1, found
    response = client.get(f"/api/v1/carts/{found[0]['id']}", headers=shop.admin)
    assert response.status_code == 200, response.text
    detail: dict[str, Any] = response.json()
    return detail


def test_the_ping_sent_when_a_webhook_is_saved_gets_200_and_stores_nothing(
    client: Client, shop: Shop, engine: Engine
) -> None:
    response = client.post(
        "/webhooks/woocommerce",
        params={"store": shop.name},
        content=b"webhook_id=12",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert response.json()["stored"] == 0
    assert logged(engine) == 0


def test_a_ping_for_an_unknown_store_fails_so_the_shop_owner_sees_the_wrong_url(client: Client) -> None:
    response = client.post(
        "/webhooks/woocommerce",
        params={"store": "nobody"},
        content=b"webhook_id=12",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 401


def test_an_unpaid_order_is_a_cart_worth_its_total_in_minor_units(client: Client, shop: Shop) -> None:
    response = deliver(client, shop, "order.created", woo_order("pending", START - timedelta(minutes=1)))
    move_clock(client, shop, START)

    assert response.status_code == 200, response.text
    found = only_cart(client, shop)
    assert found["id"] == ORDER_KEY
    assert found["status"] == "active"
    assert found["value"] == 2935
    assert found["checkout_started"] is True
    assert sorted((line["product_id"], line["price"], line["quantity"]) for line in found["lines"]) == [
        ("22", 1200, 1),
        ("93", 300, 2),
    ]


def test_payment_in_the_same_second_as_the_unpaid_order_still_closes_the_cart(client: Client, shop: Shop) -> None:
    # date_modified_gmt has whole seconds: pending then processing within one must not look like one version.
    second = START - timedelta(minutes=1)
    deliver(client, shop, "order.created", woo_order("pending", second))
    paid = deliver(client, shop, "order.updated", woo_order("processing", second))
    move_clock(client, shop, START)

    assert paid.json()["stored"] == 1
    found = only_cart(client, shop)
    assert found["status"] == "converted"
    assert found["order_id"] == "727"


def test_the_same_order_version_delivered_twice_is_stored_once(client: Client, shop: Shop, engine: Engine) -> None:
    version = woo_order("pending", START - timedelta(minutes=1))
    first = deliver(client, shop, "order.created", version)
    again = deliver(client, shop, "order.updated", version)  # new delivery id, same order version
    move_clock(client, shop, START)

    assert first.json()["stored"] == 1
    assert again.json() == {"success": True, "stored": 0, "duplicates": 1}
    assert logged(engine) == 1
    events = [entry for entry in only_cart(client, shop)["timeline"] if entry["kind"] == "event"]
    assert len(events) == 1


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param({"signature": "bm90IGEgc2lnbmF0dXJl"}, id="wrong signature"),
        pytest.param({"secret": "some-other-secret"}, id="signed with another secret"),
        pytest.param({"signature": ""}, id="no signature header"),
    ],
)
def test_a_delivery_without_a_valid_signature_is_refused_and_changes_nothing(
    client: Client, shop: Shop, engine: Engine, forge: dict[str, str]
) -> None:
    response = deliver(client, shop, "order.created", woo_order("pending", START), **forge)
    move_clock(client, shop, START)

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert logged(engine) == 0
    assert carts(client, shop) == []


def test_a_delivery_signed_with_another_stores_secret_is_refused(client: Client, shop: Shop, engine: Engine) -> None:
    other = add_shop(engine)
    response = deliver(client, shop, "order.created", woo_order("pending", START), secret=other.woocommerce_secret)
    move_clock(client, shop, START)

    assert response.status_code == 401
    assert logged(engine) == 0
    assert carts(client, shop) == [] and carts(client, other) == []


def test_an_unpaid_order_left_idle_is_abandoned_then_recovered_by_its_payment(client: Client, shop: Shop) -> None:
    deliver(client, shop, "order.created", woo_order("pending", START))
    move_clock(client, shop, START + timedelta(minutes=20))
    assert only_cart(client, shop)["status"] == "abandoned"

    move_clock(client, shop, START + timedelta(hours=2))
    deliver(client, shop, "order.updated", woo_order("processing", START + timedelta(hours=1)))
    move_clock(client, shop, START + timedelta(hours=2, seconds=1))

    found = only_cart(client, shop)
    assert found["status"] == "recovered"
    assert found["order_id"] == "727"


def test_a_cancelled_order_is_recorded_and_its_cart_stays_closed(client: Client, shop: Shop, engine: Engine) -> None:
    deliver(client, shop, "order.created", woo_order("pending", START - timedelta(minutes=12)))
    deliver(client, shop, "order.updated", woo_order("processing", START - timedelta(minutes=10)))
    cancelled = deliver(client, shop, "order.updated", woo_order("cancelled", START - timedelta(minutes=5)))
    move_clock(client, shop, START)

    assert cancelled.json()["stored"] == 1
    assert only_cart(client, shop)["status"] == "converted"
    with engine.database.read() as uow:
        order = uow.orders.get(shop.store_id, "727")
    assert order is not None and order.cancelled_at is not None


@pytest.mark.parametrize("topic", ["product.updated", "customer.created", "action.woocommerce_add_to_cart"])
def test_a_topic_we_do_not_use_is_acknowledged_and_stores_nothing(
    client: Client, shop: Shop, engine: Engine, topic: str
) -> None:
    response = deliver(client, shop, topic, {"id": 93, "name": "Woo Single #1"})

    assert response.status_code == 200
    assert topic in response.json()["ignored"]
    assert logged(engine) == 0


def test_a_signed_body_that_is_not_json_is_refused_and_changes_nothing(
    client: Client, shop: Shop, engine: Engine
) -> None:
    response = deliver(client, shop, "order.updated", b"<html>not json</html>")

    assert response.status_code == 400
    assert logged(engine) == 0


def test_an_order_on_hold_for_a_bank_transfer_is_an_order_so_its_cart_is_never_abandoned(
    client: Client, shop: Shop
) -> None:
    deliver(client, shop, "order.created", woo_order("pending", START - timedelta(minutes=5)))
    deliver(client, shop, "order.updated", woo_order("on-hold", START - timedelta(minutes=4)))
    move_clock(client, shop, START + timedelta(hours=3))

    found = only_cart(client, shop)
    assert found["status"] == "converted"
    assert found["order_id"] == "727"
    assert found["abandoned_at"] is None


@pytest.mark.parametrize(("field", "value"), [("total", "1e400"), ("total", "-29.35"), ("total", "9" * 30)])
def test_an_absurd_total_is_refused_naming_it_and_stores_nothing(
    client: Client, shop: Shop, engine: Engine, field: str, value: str
) -> None:
    response = deliver(client, shop, "order.created", woo_order("pending", START, **{field: value}))

    assert response.status_code == 400, response.text
    assert field in response.json()["message"]
    assert logged(engine) == 0


def test_an_absurd_quantity_is_refused_and_stores_nothing(client: Client, shop: Shop, engine: Engine) -> None:
    order = woo_order("pending", START)
    order["line_items"][0]["quantity"] = 2**70

    response = deliver(client, shop, "order.created", order)

    assert response.status_code == 400, response.text
    assert "quantity" in response.json()["message"]
    assert logged(engine) == 0


def test_a_paid_order_keeps_its_coupon_codes_and_discount_total_for_incentive_cost(
    client: Client, shop: Shop, engine: Engine
) -> None:
    body = woo_order("processing", START, coupon_lines=[{"id": 1, "code": "cr-ab12"}], discount_total="4.40")

    assert deliver(client, shop, "order.updated", body).status_code == 200
    move_clock(client, shop, START + timedelta(minutes=1))

    with engine.database.read() as uow:
        kept = uow.orders.get(shop.store_id, "727")
    assert kept is not None and (kept.coupons, kept.discount) == (("cr-ab12",), 440)


def test_an_unpaid_order_is_a_cart_and_carries_no_coupons_yet() -> None:
    from cartrecover.ingest import woocommerce

    body = json.dumps(woo_order("pending", START, coupon_lines=[{"code": "X"}], discount_total="1.00")).encode()
    (event,) = woocommerce.normalise("order.created", body, store_id=1, currency="USD", received_at=START)

    assert (event.coupons, event.discount) == ((), None)
