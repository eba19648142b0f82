"""The journey as the API shows it: the cart's steps and timeline, and the metrics."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from litestar.testing import TestClient

from cartrecover.engine import Engine
from tests.conftest import START, Shop, move_clock

Client = TestClient  # type: ignore[type-arg]


def call(client: Client, shop: Shop, kind: str, minutes: int, **fields: object) -> None:
    body = {"anonymousId": "anon-1", "timestamp": (START + timedelta(minutes=minutes)).isoformat(), **fields}
    response = client.post(f"/v1/{kind}", json=body, headers=shop.basic)
    assert response.status_code == 200, response.text


def test_the_cart_shows_its_decision_steps_and_messages_and_metrics_count_them(
    client: Client, shop: Shop, engine: Engine
) -> None:
    call(client, shop, "identify", 0, userId="u-1", traits={"email": "ada@example.com", "consent": {"email": True}})
    call(
        client,
        shop,
        "track",
        1,
        event="Product Added",
        properties={"cart_id": "c1", "product_id": "p1", "name": "Linen shirt", "price": 49},
    )

    move_clock(client, shop, START + timedelta(hours=2))

    cart = client.get("/api/v1/carts/c1", headers=shop.admin).json()
    assert cart["status"] == "recovering"
    assert (cart["group"], cart["experiment"], cart["variant"]) == ("treated", None, None)
    assert [(s["step"], s["status"]) for s in cart["steps"]] == [
        ("reminder", "sent"),
        ("second-reminder", "scheduled"),
        ("last-chance", "scheduled"),
    ]
    sent = cart["steps"][0]
    assert sent["channel"] == "email" and sent["message_id"].endswith("@cartrecover>")
    kinds = [entry["kind"] for entry in cart["timeline"]]
    assert kinds.index("decision") < kinds.index("message")
    metrics = client.get("/metrics").text
    assert 'cartrecover_journey_steps{status="sent"} 1.0' in metrics
    assert 'cartrecover_journey_steps{status="scheduled"} 2.0' in metrics
    outbox = Path(engine.settings.data_dir) / "messages.jsonl"
    (message,) = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert message["to"] == "ada@example.com" and message["message_id"] == sent["message_id"]
