"""The ingest fast path (served by `cartrecover serve`) answers exactly as the Litestar routes do."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from cartrecover.engine import Engine
from cartrecover.entrypoints.http.app import create_app
from cartrecover.entrypoints.http.ingest import IngestFastPath
from cartrecover.ingest import segment
from cartrecover.writer import Writer
from tests.conftest import Shop


@pytest.fixture(params=["fast-path", "litestar"])
def ingest(request: pytest.FixtureRequest, engine: Engine) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The served app (fast path in front of Litestar) and the bare Litestar app, in turn."""
    app: Any = create_app(engine)
    if request.param == "fast-path":
        app = IngestFastPath(app)
    with TestClient(app) as client:
        yield client


def _added(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Added",
        "anonymousId": "anon-1",
        "messageId": str(uuid.uuid4()),
        "timestamp": "2026-01-05T09:59:00.000Z",
        "properties": {"cart_id": "c1", "product_id": "p1", "price": 19.99, "quantity": 1},
        **overrides,
    }


def _stored(engine: Engine) -> list[str]:
    return [event.message_id for _, event in engine.log.read_after(0, 10_000)]


def test_a_batch_with_a_repeated_message_id_stores_it_once(ingest: TestClient, engine: Engine, shop: Shop) -> None:  # type: ignore[type-arg]
    twice = _added()
    batch = {"batch": [twice, _added(), twice], "writeKey": shop.write_key}
    assert ingest.post("/v1/batch", json=batch).status_code == 200
    assert ingest.post("/v1/batch", json=batch).status_code == 200  # a retried batch too
    assert sorted(_stored(engine)) == sorted({twice["messageId"], batch["batch"][1]["messageId"]})


def test_a_gzipped_batch_with_basic_auth_is_stored(ingest: TestClient, engine: Engine, shop: Shop) -> None:  # type: ignore[type-arg]
    events = [_added() for _ in range(3)]
    body = gzip.compress(json.dumps({"batch": events, "sentAt": "2026-01-05T10:00:00Z"}).encode())
    headers = {**shop.basic, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = ingest.post("/v1/batch", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    assert sorted(_stored(engine)) == sorted(e["messageId"] for e in events)


def test_an_oversize_event_rejects_the_whole_batch(ingest: TestClient, engine: Engine, shop: Shop) -> None:  # type: ignore[type-arg]
    big = _added(properties={"note": "x" * segment.MAX_EVENT_BYTES})
    response = ingest.post("/v1/batch", json={"batch": [_added(), big]}, headers=shop.basic)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert "batch[1]" in response.json()["message"]
    assert _stored(engine) == []


def test_an_invalid_event_rejects_the_whole_batch_naming_it(ingest: TestClient, engine: Engine, shop: Shop) -> None:  # type: ignore[type-arg]
    response = ingest.post("/v1/batch", json={"batch": [_added(), _added(anonymousId=None)]}, headers=shop.basic)
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message"}
    assert response.json()["code"] == "no_user_anon_id"
    assert _stored(engine) == []


def test_a_single_track_call_is_stored_and_an_oversize_one_refused(
    ingest: TestClient, engine: Engine, shop: Shop
) -> None:  # type: ignore[type-arg]
    event = _added(writeKey=shop.write_key)
    assert ingest.post("/v1/track", json=event).status_code == 200
    too_big = ingest.post("/v1/track", json=_added(properties={"n": "x" * 40_000}), headers=shop.basic)
    assert too_big.status_code == 413
    assert _stored(engine) == [event["messageId"]]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Authorization": "Basic bm9wZTo="}, b"{}", 401, "unauthorized"),
        ({"Content-Type": "application/xml"}, b"{}", 415, "unsupported_media_type"),
        ({"Content-Encoding": "gzip"}, b"not gzip", 400, "invalid_gzip"),
        ({"Content-Encoding": "br"}, b"{}", 415, "unsupported_encoding"),
        ({}, b"{not json", 400, "invalid_json"),
    ],
)
def test_refusals_are_code_and_message(
    ingest: TestClient,  # type: ignore[type-arg]
    shop: Shop,
    headers: dict[str, str],
    body: bytes,
    status: int,
    code: str,
) -> None:
    response = ingest.post("/v1/batch", content=body, headers={**shop.basic, **headers})
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert set(response.json()) == {"code", "message"}


def test_other_methods_and_routes_still_reach_the_app(ingest: TestClient) -> None:  # type: ignore[type-arg]
    assert ingest.get("/v1/track").status_code == 405
    assert ingest.get("/healthz").status_code == 200


def test_background_jobs_still_run_while_appends_keep_coming(engine: Engine, shop: Shop) -> None:
    async def scenario() -> tuple[int, int]:
        writer = Writer(engine)
        try:
            event = segment.normalise(
                segment.read_single(json.dumps(_added()).encode(), "track"),
                "track",
                store_id=shop.store_id,
                currency="USD",
                sent_at=None,
                received_at=engine.clock.now(),
            )
            appends = [writer.append([event]) for _ in range(20)]
            job = writer.call(lambda: 42)
            results = await asyncio.gather(job, *appends)
            return results[0], sum(r[0] for r in results[1:])
        finally:
            writer.close()

    assert asyncio.run(scenario()) == (42, 1)  # the job ran, and the repeated event was new exactly once
