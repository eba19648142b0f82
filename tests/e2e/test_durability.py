"""A 2xx on ingest means durable, and changes state exactly once (DESIGN §6.1), checked with SIGKILL.

The server is killed with SIGKILL (no shutdown hook runs), then the event log is read directly (the SQLite file,
or the NATS stream through the port) and a new server is started on the same data dir and backends: the lifecycle
must apply what was logged but not yet applied. Every test runs on both stacks.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx

from tests.e2e.conftest import Keys, Server, on_both_stacks

pytestmark = on_both_stacks

CARTS, PER_CART = 12, 8


def product_added(cart_id: str, user: str, product: str = "sku-1", message_id: str | None = None) -> dict[str, Any]:
    """One `Product Added` of one unit at 2.50, with its own messageId."""
    return {
        "type": "track",
        "messageId": message_id or f"m-{uuid.uuid4().hex}",
        "userId": user,
        "event": "Product Added",
        "properties": {"cart_id": cart_id, "product_id": product, "price": 2.5, "quantity": 1},
    }


def journey_messages(prefix: str) -> list[dict[str, Any]]:
    """CARTS carts, each with PER_CART single-unit adds of the same product (so quantity = PER_CART)."""
    return [product_added(f"{prefix}-{c}", f"{prefix}-u{c}") for c in range(CARTS) for _ in range(PER_CART)]


def quantities(server: Server, shop: Keys) -> dict[str, int]:
    """Units per cart, as the API shows them."""
    found = {}
    for summary in server.carts(shop):
        lines = server.cart(shop, summary["id"])["lines"]
        found[summary["id"]] = sum(line["quantity"] for line in lines)
    return found


def send_concurrently(server: Server, shop: Keys, messages: list[dict[str, Any]]) -> list[str]:
    """POST each message to /v1/track from 4 threads; returns the messageIds that got a 2xx."""
    acked: list[str] = []
    lock = threading.Lock()
    local = threading.local()

    def send(message: dict[str, Any]) -> None:
        if not hasattr(local, "http"):
            local.http = server.client()
        response = local.http.post("/v1/track", json=message, headers=shop.basic)
        assert response.status_code == 200, response.text
        with lock:
            acked.append(message["messageId"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, messages))
    return acked


def test_every_acknowledged_event_survives_sigkill_and_is_applied_after_restart(server: Server) -> None:
    shop = server.stores["a"]
    messages = journey_messages("kill")
    half = len(messages) // 2
    batch = {"batch": messages[half:]}

    acked = send_concurrently(server, shop, messages[:half])
    response = server.post("/v1/batch", json=batch, headers=shop.basic)
    assert response.status_code == 200
    acked += [m["messageId"] for m in batch["batch"]]
    server.kill()  # SIGKILL right after the last 2xx: the lifecycle may not have seen these yet

    assert server.message_ids(shop) == set(acked)
    assert server.event_count() == len(messages)

    server.start()
    server.advance(timedelta(0))
    assert quantities(server, shop) == {f"kill-{c}": PER_CART for c in range(CARTS)}
    assert server.carts(shop, "active") and len(server.carts(shop, "active")) == CARTS


def test_events_acknowledged_while_the_server_is_killed_mid_stream_are_all_kept(server: Server) -> None:
    shop = server.stores["a"]
    acked: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()
    stop = threading.Event()

    def sender(worker: int) -> None:
        with server.client() as http:
            n = 0
            while not stop.is_set():
                message = product_added(f"mid-{worker}", f"mid-u{worker}")
                try:
                    response = http.post("/v1/track", json=message, headers=shop.basic)
                except httpx.HTTPError:
                    return  # the server is gone: this one was not acknowledged
                if response.status_code == 200:
                    with lock:
                        acked.append(message["messageId"])
                        if len(acked) >= 150:
                            enough.set()
                n += 1

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    enough.wait(timeout=120)
    server.kill()  # requests are in flight right now
    stop.set()
    for t in threads:
        t.join()

    assert len(acked) >= 150
    stored = server.message_ids(shop)
    assert set(acked) <= stored  # unacknowledged ones may or may not be there; acknowledged ones must

    server.start()
    server.advance(timedelta(0))
    assert sum(quantities(server, shop).values()) == len(stored)


def test_a_retried_batch_changes_state_once_even_across_a_restart(server: Server) -> None:
    shop = server.stores["a"]
    messages = journey_messages("retry")
    messages.append(dict(messages[0]))  # the same messageId twice in one batch, too
    body = {"batch": messages}

    for _attempt in range(2):
        response = server.post("/v1/batch", json=body, headers=shop.basic)
        assert response.status_code == 200, response.text
    server.advance(timedelta(0))
    expected = {f"retry-{c}": PER_CART for c in range(CARTS)}
    assert server.event_count() == CARTS * PER_CART
    assert quantities(server, shop) == expected

    server.restart()  # SIGKILL, then the same data dir
    response = server.post("/v1/batch", json=body, headers=shop.basic)
    assert response.status_code == 200, response.text
    server.advance(timedelta(0))
    assert server.event_count() == CARTS * PER_CART
    assert quantities(server, shop) == expected


def test_a_retried_single_call_changes_state_once(server: Server) -> None:
    shop = server.stores["a"]
    message = product_added("single", "u-single", message_id="m-single-1")
    for _attempt in range(3):
        response = server.post("/v1/track", json=message, headers=shop.basic)
        assert response.status_code == 200, response.text
    # The same messageId through the batch endpoint, with the key in the body instead, is the same event.
    response = server.post("/v1/batch", json={"batch": [message], "writeKey": shop.write_key})
    assert response.status_code == 200, response.text
    server.advance(timedelta(0))
    assert server.event_count() == 1
    assert quantities(server, shop) == {"single": 1}
