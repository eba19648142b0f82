"""A shop's platforms and its shoppers' rights through a real server, on both stacks: Shopify and WooCommerce
webhooks in, a journey an order stops, the report that counts it, one-click unsubscribe, and erasure.

Messages go to the console channel, whose file (`messages.jsonl` in the data dir) plays the shopper's inbox.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cartrecover.domain.events import EventKind
from tests.conftest import SAMPLES
from tests.e2e.conftest import Keys, Server, ServerFactory, on_both_stacks
from tests.unit.test_shopify_webhooks import CHECKOUT_TOKEN, CUSTOMER_ID, EMAIL, checkout, order, sign

pytestmark = on_both_stacks

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
LATER_STEPS = {"second-reminder", "last-chance"}  # the default journey's steps after the first reminder


def shopify(server: Server, shop: Keys, topic: str, payload: dict[str, Any]) -> None:
    """POST one delivery as Shopify does (raw JSON signed with the store's secret); it must be accepted."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "jsmith.myshopify.com",
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Hmac-Sha256": sign(body, shop.shopify_secret),
    }
    response = server.post("/webhooks/shopify", params={"store": shop.name}, content=body, headers=headers)
    assert response.status_code == 200, response.text


def woocommerce(server: Server, shop: Keys, status: str, created: datetime, modified: datetime) -> None:
    """POST the sample order (id 727, total 29.35) with this status as WooCommerce's `order.updated` does."""
    gmt = "%Y-%m-%dT%H:%M:%S"  # WooCommerce's *_gmt form: UTC without a zone
    paid = modified.strftime(gmt) if status == "processing" else None
    sample = json.loads((SAMPLES / "woocommerce_order_v3_retrieve_example.json").read_text())
    sample |= {"status": status, "date_created_gmt": created.strftime(gmt), "date_modified_gmt": modified.strftime(gmt)}
    body = json.dumps(sample | {"date_paid_gmt": paid}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "updated",
        "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
        "X-WC-Webhook-Signature": sign(body, shop.woocommerce_secret),
    }
    response = server.post("/webhooks/woocommerce", params={"store": shop.name}, content=body, headers=headers)
    assert response.status_code == 200, response.text


def inbox(server: Server, address: str) -> list[dict[str, Any]]:
    """The messages the console channel delivered to `address`, oldest first."""
    path = server.data_dir / "messages.jsonl"
    sent = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [message for message in sent if message["to"] == address]


def only_cart(server: Server, shop: Keys) -> dict[str, Any]:
    (summary,) = server.carts(shop)
    return server.cart(shop, summary["id"])


def unsent(cart: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Step name → (status, reason) of the steps the cart's timeline says were cancelled or skipped."""
    return {e["step"]: (e["status"], e.get("reason") or "") for e in cart["timeline"] if e["kind"] == "step"}


def test_a_shopify_checkout_left_gets_a_reminder_then_its_order_stops_the_journey_and_the_report_counts_it(
    server: Server,
) -> None:
    shop = server.stores["a"]
    t0 = server.now()
    shopify(server, shop, "checkouts/create", checkout(t0 - MINUTE, buyer_accepts_marketing=True))

    server.advance(2 * HOUR)  # abandoned 15 minutes after the checkout (it has an email), reminded after an hour
    (reminder,) = inbox(server, EMAIL)
    assert "379.69 USD" in reminder["text"] and "/r/" in reminder["text"]

    shopify(server, shop, "orders/create", order(t0 + 2 * HOUR, checkout_token=CHECKOUT_TOKEN))
    server.advance(MINUTE)
    server.advance(4 * DAY)  # past every step of the journey

    cart = only_cart(server, shop)
    assert (cart["status"], cart["order_id"]) == ("recovered", "450789469")
    assert inbox(server, EMAIL) == [reminder]
    stopped = unsent(cart)
    assert set(stopped) == LATER_STEPS and {status for status, _ in stopped.values()} == {"cancelled"}, stopped

    window = {"since": (t0 - DAY).isoformat(), "until": (t0 + DAY).isoformat()}
    report = server.get("/api/v1/reports/recovery", params=window, headers=shop.admin)
    assert report.status_code == 200, report.text
    treated, holdout = report.json()["treated"], report.json()["holdout"]
    assert (treated["carts"], treated["recovered"], treated["revenue"]) == (1, 1, 59894)
    assert holdout["carts"] == 0


def test_a_woocommerce_order_left_unpaid_is_abandoned_then_recovered_by_its_payment(server: Server) -> None:
    shop = server.stores["a"]
    t0 = server.now().replace(microsecond=0)
    woocommerce(server, shop, "pending", created=t0 - HOUR, modified=t0 - MINUTE)
    server.advance(30 * MINUTE)
    assert only_cart(server, shop)["status"] == "abandoned"

    woocommerce(server, shop, "processing", created=t0 - HOUR, modified=t0 + 40 * MINUTE)
    server.advance(15 * MINUTE)

    cart = only_cart(server, shop)
    assert (cart["status"], cart["order_id"], cart["value"]) == ("recovered", "727", 2935)


def test_one_click_unsubscribe_stops_the_rest_of_the_journey_on_that_channel(server: Server) -> None:
    shop = server.stores["a"]
    address, user = f"{uuid.uuid4().hex[:10]}@example.com", f"u-{uuid.uuid4().hex[:8]}"
    calls = [
        {"type": "identify", "userId": user, "traits": {"email": address, "consent": {"email": True}}},
        {
            "type": "track",
            "userId": user,
            "event": "Product Added",
            "properties": {"cart_id": "c-unsub", "product_id": "p1", "price": 40, "quantity": 1},
        },
    ]
    assert server.post("/v1/batch", json={"batch": calls}, headers=shop.basic).status_code == 200
    server.advance(2 * HOUR)
    (reminder,) = inbox(server, address)
    assert reminder["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = urlsplit(reminder["headers"]["List-Unsubscribe"].strip("<>")).path  # the server's, on another port

    confirm = server.get(link)  # what a mail client's link scanner does: changes nothing
    assert confirm.status_code == 200 and "Unsubscribe?" in confirm.text
    one_click = server.post(link, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200 and "unsubscribed" in one_click.text
    server.advance(4 * DAY)

    assert inbox(server, address) == [reminder]
    skipped = unsent(server.cart(shop, "c-unsub"))
    assert set(skipped) == LATER_STEPS
    assert all(status == "skipped" and "consent" in reason for status, reason in skipped.values()), skipped


def test_customers_redact_erases_the_shopper_from_the_log_and_the_state_of_that_store_only(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(stores=("a", "b"))
    a, b = server.stores["a"], server.stores["b"]
    t0 = server.now()
    for shop in (a, b):
        shopify(server, shop, "checkouts/create", checkout(t0 - MINUTE, buyer_accepts_marketing=True))
    server.advance(MINUTE)
    assert all(event.email == EMAIL for event in server.logged_events())  # not vacuous: the log holds the email

    request = {"shop_id": 954889, "customer": {"id": CUSTOMER_ID, "email": EMAIL, "phone": "+16136120707"}}
    shopify(server, a, "customers/redact", {**request, "orders_to_redact": []})
    server.advance(MINUTE)

    logged = {shop.name: [e for e in server.logged_events() if e.store_id == shop.store_id] for shop in (a, b)}
    assert [e.kind for e in logged["a"]] == [EventKind.CART_ACTIVITY, EventKind.SHOPPER_REDACTED]
    assert all(not e.identities and e.email is None and e.phone is None for e in logged["a"]), logged["a"]
    assert [e.email for e in logged["b"]] == [EMAIL]
    erased = only_cart(server, a)
    assert erased["status"] == "suppressed" and EMAIL not in str(erased) and str(CUSTOMER_ID) not in str(erased)
    assert only_cart(server, b)["status"] == "active"
