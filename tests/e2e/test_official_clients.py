"""The official Python clients, unchanged and pointed at our host, drive a cart from added to recovered.

`segment-analytics-python` posts `/v1/batch` with `writeKey` in the body (and Basic auth, since 2.4);
`rudder-sdk-python` posts `/v1/batch` gzipped with Basic auth only. Both give up on a non-429 4xx only if
the error body is `{"code", "message"}`; otherwise they retry a bad request until their budget is spent.
Every test runs on both stacks (SQLite files; PostgreSQL, NATS JetStream and Redis).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import rudderstack.analytics as rudder_analytics
from prometheus_client.parser import text_string_to_metric_families
from segment.analytics import Client as SegmentClient

from tests.e2e.conftest import Server, on_both_stacks

pytestmark = on_both_stacks

IDLE_PLUS = timedelta(hours=1)  # past both idle rules (30 min, 15 min after checkout with a contact)

Send = Callable[[str, str, dict[str, Any]], None]


def journey(
    server: Server, send: Send, identify: Callable[[str, dict[str, Any]], None], page: Callable[[str], None]
) -> tuple[str, str]:
    """identify → Product Added → Checkout Started → page, a minute apart; returns (user id, cart id).

    The clients stamp events with wall time and the skew rule anchors them to the server's receivedAt, which on
    a manual clock stands still: moving the clock between steps keeps their order what the shopper did.
    """
    user, cart = f"u-{uuid.uuid4().hex[:8]}", f"cart-{uuid.uuid4().hex[:8]}"
    step = timedelta(minutes=1)
    identify(user, {"email": f"{user}@example.com"})
    server.advance(step)
    send(user, "Product Added", {"cart_id": cart, "product_id": "sku-1", "price": 19.99, "quantity": 2})
    server.advance(step)
    send(
        user,
        "Checkout Started",
        {
            "cart_id": cart,
            "currency": "USD",
            "products": [
                {"product_id": "sku-1", "price": 19.99, "quantity": 2},
                {"product_id": "sku-2", "price": 5.00, "quantity": 1},
            ],
        },
    )
    server.advance(step)
    page(user)
    return user, cart


def assert_abandoned_then_recovered(server: Server, user: str, cart_id: str, send: Send) -> None:
    """The clock moves past the idle time: abandoned at the checkout's value; an order recovers it."""
    shop = server.stores["a"]
    server.advance(timedelta(0))
    assert [c["id"] for c in server.carts(shop, "active")] == [cart_id]
    assert server.carts(shop, "abandoned") == []

    server.advance(IDLE_PLUS)
    abandoned = server.carts(shop, "abandoned")
    assert [c["id"] for c in abandoned] == [cart_id]
    assert abandoned[0]["value"] == 2 * 1999 + 500
    assert abandoned[0]["value_display"] == "44.98"
    assert abandoned[0]["currency"] == "USD"
    assert abandoned[0]["items"] == 2
    assert abandoned[0]["checkout_started"] is True

    send(user, "Order Completed", {"cart_id": cart_id, "order_id": f"o-{cart_id}", "total": 44.98, "currency": "USD"})
    server.advance(timedelta(0))
    assert server.carts(shop, "abandoned") == []
    detail = server.cart(shop, cart_id)
    assert detail["status"] == "recovered"
    assert detail["order_id"] == f"o-{cart_id}"
    assert server.event_count(shop) == 5  # identify, 2 × cart, page, order: each once


@pytest.fixture
def segment(server: Server) -> SegmentClient:
    """Segment's client, synchronous: each call is one POST /v1/batch with writeKey in the body."""
    return SegmentClient(server.stores["a"].write_key, host=server.base_url, sync_mode=True)


@pytest.fixture
def rudder(server: Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    """RudderStack's module-level client as its README configures it (dataPlaneUrl), synchronous."""
    monkeypatch.setattr(rudder_analytics, "write_key", server.stores["a"].write_key)
    monkeypatch.setattr(rudder_analytics, "dataPlaneUrl", server.base_url, raising=False)
    monkeypatch.setattr(rudder_analytics, "sync_mode", True)
    monkeypatch.setattr(rudder_analytics, "default_client", None)  # restored afterwards: no client leaks
    return rudder_analytics


def test_segment_client_cart_is_abandoned_then_recovered(server: Server, segment: SegmentClient) -> None:
    def send(user: str, event: str, props: dict[str, Any]) -> None:
        segment.track(user, event, props)

    user, cart = journey(server, send, segment.identify, lambda u: segment.page(u, "Shop", "Checkout"))
    assert_abandoned_then_recovered(server, user, cart, send)


def test_rudder_client_gzip_and_basic_auth_cart_is_abandoned_then_recovered(server: Server, rudder: Any) -> None:
    assert rudder.gzip is True  # the SDK's default: the bodies we get are gzipped

    def send(user: str, event: str, props: dict[str, Any]) -> None:
        rudder.track(user, event, props)

    user, cart = journey(server, send, rudder.identify, lambda u: rudder.page(u, "Shop", "Checkout"))
    assert rudder.default_client.host == server.base_url
    assert_abandoned_then_recovered(server, user, cart, send)


def rejected_requests(server: Server) -> float:
    """The server's count of requests refused with a 4xx, all reasons."""
    response = server.get("/metrics")
    assert response.status_code == 200
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        if family.name == "cartrecover_rejected_requests":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


BAD_PRODUCT = {"cart_id": "c-bad", "product_id": "sku-1", "price": 3, "quantity": -1}


class ErrorLog:
    """An `on_error` callback that records what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[Exception, list[dict[str, Any]]]] = []
        self.lock = threading.Lock()

    def __call__(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            self.calls.append((error, batch))


def test_segment_client_gives_up_on_an_invalid_event_after_one_request(server: Server) -> None:
    errors = ErrorLog()
    client = SegmentClient(
        server.stores["a"].write_key, host=server.base_url, on_error=errors, max_retries=3, upload_interval=0.05
    )
    try:
        client.track("u-bad", "Product Added", BAD_PRODUCT)
        client.flush()
    finally:
        client.shutdown()

    assert len(errors.calls) == 1
    error = errors.calls[0][0]
    assert getattr(error, "status", None) == 400
    assert getattr(error, "code", None) == "invalid_event"  # parsed from our body, not "unknown"
    assert rejected_requests(server) == 1  # one request: no retry
    assert server.event_count() == 0


def test_rudder_client_gives_up_on_an_invalid_event_after_one_request(server: Server) -> None:
    errors = ErrorLog()
    client = rudder_analytics.Client(
        server.stores["a"].write_key, host=server.base_url, on_error=errors, max_retries=3, upload_interval=0.05
    )
    try:
        client.track("u-bad", "Product Added", BAD_PRODUCT)
        client.flush()
    finally:
        client.shutdown()

    assert len(errors.calls) == 1
    error = errors.calls[0][0]
    assert getattr(error, "status", None) == 400
    assert getattr(error, "code", None) == "invalid_event"
    assert rejected_requests(server) == 1
    assert server.event_count() == 0
