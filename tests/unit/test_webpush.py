"""The web push channel against a local push service over real HTTP, with real VAPID and subscription keys."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from litestar.testing import TestClient

from cartrecover.adapters.webpush.sender import WebPushSender, link_in
from cartrecover.bootstrap import make_clock, open_database, open_event_log
from cartrecover.domain.journey import Channel, JourneyStep, StepStatus
from cartrecover.engine import Engine
from cartrecover.errors import ConfigError, PermanentDelivery, RetryableDelivery
from cartrecover.journey_settings import JourneyConfig, StepConfig
from cartrecover.ports.channels import OutboundMessage
from tests.conftest import START, Shop, add_shop, make_settings, move_clock
from tests.factories import identified, item, product_added, random_id
from tests.fakes.push_service import FakePushService, b64url

HOUR = timedelta(hours=1)
TWO_PUSHES = JourneyConfig(
    (
        StepConfig(JourneyStep("first-push", HOUR, (Channel.PUSH,), "reminder")),
        StepConfig(JourneyStep("second-push", 24 * HOUR, (Channel.PUSH,), "reminder")),
    )
)


@pytest.fixture
def vapid_key(tmp_path: Path) -> tuple[Path, str]:
    """The shop's VAPID key as `openssl ecparam -genkey` writes it, and its public key as push services see it."""
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "vapid.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return path, b64url(public)


@pytest.fixture
def push_service(vapid_key: tuple[Path, str]) -> Iterator[FakePushService]:
    with FakePushService(vapid_key[1]) as service:
        yield service


@pytest.fixture
def sender(vapid_key: tuple[Path, str], tmp_path: Path) -> WebPushSender:
    return WebPushSender.from_url(
        f"webpush://?vapid_private_key={vapid_key[0]}&subject=mailto:ops@shop.example&ttl=3600", tmp_path
    )


@pytest.fixture
def engine(tmp_path: Path, sender: WebPushSender) -> Iterator[Engine]:
    settings = make_settings(tmp_path, journey=TWO_PUSHES)
    built = Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, START),
        senders={"push": sender},
        secret=b"test-secret",
    )
    yield built
    built.close()


@pytest.fixture
def shop(engine: Engine) -> Shop:
    return add_shop(engine)


def abandon_with_push(engine: Engine, shop: Shop, subscription: dict[str, Any]) -> str:
    """A shopper who allowed push notifications leaves a cart; returns the cart id."""
    cart_id, anon = random_id("cart"), random_id("anon")
    engine.append(
        [
            identified(
                store_id=shop.store_id,
                anonymous_id=anon,
                consent={"push": True},
                traits={"push_subscription": json.dumps(subscription)},
            ),
            product_added(
                item("p1", price=2500, name="Linen shirt"),
                store_id=shop.store_id,
                anonymous_id=anon,
                cart_id=cart_id,
                at=START + timedelta(seconds=1),
            ),
        ]
    )
    return cart_id


def steps(engine: Engine, shop: Shop, cart_id: str) -> dict[str, tuple[StepStatus, int, str | None]]:
    with engine.database.read() as uow:
        return {s.name: (s.status, s.attempts, s.reason) for s in uow.outbox.for_cart(shop.store_id, cart_id)}


def test_a_push_step_reaches_the_push_service_encrypted_signed_and_with_its_ttl(
    engine: Engine, shop: Shop, push_service: FakePushService
) -> None:
    cart_id = abandon_with_push(engine, shop, push_service.subscribe())

    engine.advance_clock(START + 2 * HOUR)

    (delivery,) = push_service.deliveries
    assert delivery.problems == [] and delivery.status == 201
    assert delivery.headers["ttl"] == "3600"
    assert delivery.payload is not None
    assert delivery.payload["title"] == f"You left something in your cart at {shop.name}"
    assert "25.00 USD" in delivery.payload["body"]
    assert delivery.payload["url"].startswith("http://127.0.0.1:8080/r/")
    assert steps(engine, shop, cart_id)["first-push"][0] is StepStatus.SENT


def test_a_gone_subscription_is_suppressed_and_the_next_push_step_skips_it(
    engine: Engine, shop: Shop, push_service: FakePushService
) -> None:
    cart_id = abandon_with_push(engine, shop, push_service.subscribe())
    push_service.status = 410
    engine.advance_clock(START + 2 * HOUR)
    push_service.status = 201

    engine.advance_clock(START + 4 * 24 * HOUR)

    assert [d.status for d in push_service.deliveries] == [410]
    found = steps(engine, shop, cart_id)
    assert found["first-push"][0] is StepStatus.SKIPPED and "410" in (found["first-push"][2] or "")
    assert found["second-push"][0] is StepStatus.SKIPPED
    assert "push suppressed" in (found["second-push"][2] or "")


def test_a_push_service_error_is_retried_and_then_delivered_once(
    engine: Engine, shop: Shop, push_service: FakePushService
) -> None:
    cart_id = abandon_with_push(engine, shop, push_service.subscribe())
    push_service.status = 500
    engine.advance_clock(START + 2 * HOUR)
    assert steps(engine, shop, cart_id)["first-push"][:2] == (StepStatus.SCHEDULED, 1)
    push_service.status = 201

    engine.advance_clock(START + 3 * HOUR)

    assert [d.status for d in push_service.deliveries] == [500, 201]
    assert steps(engine, shop, cart_id)["first-push"][:2] == (StepStatus.SENT, 2)


def message_to(subscription: dict[str, Any] | str) -> OutboundMessage:
    to = subscription if isinstance(subscription, str) else json.dumps(subscription)
    return OutboundMessage("<m1@cartrecover>", "push", to, "Your cart", "Come back: https://shop.example/r/abc")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retryable(
    sender: WebPushSender, push_service: FakePushService, status: int
) -> None:
    push_service.status = status
    with pytest.raises(RetryableDelivery, match=str(status)):
        sender.send(message_to(push_service.subscribe()))


@pytest.mark.parametrize("status", [404, 410])
def test_not_found_and_gone_are_permanent(sender: WebPushSender, push_service: FakePushService, status: int) -> None:
    push_service.status = status
    with pytest.raises(PermanentDelivery, match=str(status)):
        sender.send(message_to(push_service.subscribe()))


def test_a_push_service_that_refuses_connections_is_retryable(sender: WebPushSender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subscription = {"endpoint": f"http://127.0.0.1:{port}/push/x", "keys": _keys()}
    with pytest.raises(RetryableDelivery, match="unreachable"):
        sender.send(message_to(subscription))


def test_an_address_that_is_not_a_subscription_is_permanent(sender: WebPushSender) -> None:
    with pytest.raises(PermanentDelivery):
        sender.send(message_to("not json"))
    with pytest.raises(PermanentDelivery):
        sender.send(message_to({"endpoint": "https://push.example/x", "keys": {"p256dh": "abc"}}))


def test_the_sender_needs_a_key_and_a_subject(tmp_path: Path, vapid_key: tuple[Path, str]) -> None:
    with pytest.raises(ConfigError, match="vapid_private_key"):
        WebPushSender.from_url("webpush://?subject=mailto:ops@shop.example", tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        WebPushSender.from_url("webpush://?vapid_private_key=missing.pem&subject=mailto:a@b.example", tmp_path)
    with pytest.raises(ConfigError, match="subject"):
        WebPushSender.from_url(f"webpush://?vapid_private_key={vapid_key[0]}&subject=ops", tmp_path)


def test_the_notification_links_to_the_restore_link() -> None:
    text = "Shop: your cart (25.00 USD) is waiting: https://shop.example/r/tok.en Reply STOP to opt out."
    assert link_in(text) == "https://shop.example/r/tok.en"
    assert link_in("no link here") is None


def _keys() -> dict[str, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {"p256dh": b64url(public), "auth": b64url(b"0123456789abcdef")}


def _register(client: TestClient, shop: Shop, body: dict[str, Any], auth: bool = True) -> Any:  # type: ignore[type-arg]
    return client.post("/v1/push/subscriptions", json=body, headers=shop.basic if auth else {})


def test_a_registered_subscription_is_kept_on_the_shopper_with_consent_for_push(
    client: TestClient,  # type: ignore[type-arg]
    engine_from_conftest: Engine,
    shop_from_conftest: Shop,
) -> None:
    shop, anon = shop_from_conftest, random_id("anon")
    subscription = {"endpoint": "https://push.example.net/wpush/v2/abc", "keys": _keys(), "expirationTime": None}

    response = _register(client, shop, {"anonymousId": anon, "subscription": subscription})
    assert response.status_code == 200, response.text
    move_clock(client, shop, START + timedelta(minutes=1))

    with engine_from_conftest.database.read() as uow:
        shopper_id = uow.shoppers.find(shop.store_id, "anon", anon)
        assert shopper_id is not None
        shopper = uow.shoppers.get(shop.store_id, shopper_id)
    assert shopper is not None and shopper.consent == {"push": True}
    kept = json.loads(shopper.traits["push_subscription"])
    assert kept == {"endpoint": subscription["endpoint"], "keys": subscription["keys"]}


def test_the_write_key_may_come_in_the_body(client: TestClient, shop_from_conftest: Shop) -> None:  # type: ignore[type-arg]
    shop = shop_from_conftest
    body = {
        "writeKey": shop.write_key,
        "userId": "u1",
        "subscription": {"endpoint": "https://p.example/1", "keys": _keys()},
    }
    assert _register(client, shop, body, auth=False).status_code == 200


@pytest.mark.parametrize(
    ("subscription", "why"),
    [
        ({"endpoint": "http://10.0.0.5/internal", "keys": "K"}, "https"),
        ({"endpoint": "https://p.example/1", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}, "P-256"),
        ({"endpoint": "https://p.example/1", "keys": {"auth": "AAAA"}}, "p256dh"),
        ({"keys": "K"}, "endpoint"),
    ],
)
def test_what_is_not_a_subscription_gets_a_400(
    client: TestClient,  # type: ignore[type-arg]
    shop_from_conftest: Shop,
    subscription: dict[str, Any],
    why: str,
) -> None:
    keys = _keys()
    subscription = {k: (keys if v == "K" else v) for k, v in subscription.items()}
    response = _register(client, shop_from_conftest, {"anonymousId": "a1", "subscription": subscription})
    assert response.status_code == 400 and why in response.json()["message"]


def test_a_registration_without_a_write_key_gets_a_401(client: TestClient, shop_from_conftest: Shop) -> None:  # type: ignore[type-arg]
    body = {"anonymousId": "a1", "subscription": {"endpoint": "https://p.example/1", "keys": _keys()}}
    assert _register(client, shop_from_conftest, body, auth=False).status_code == 401


@pytest.fixture
def engine_from_conftest(tmp_path: Path) -> Iterator[Engine]:
    from cartrecover.bootstrap import build_engine

    built = build_engine(make_settings(tmp_path / "api"), start=START)
    yield built
    built.close()


@pytest.fixture
def shop_from_conftest(engine_from_conftest: Engine) -> Shop:
    return add_shop(engine_from_conftest)


@pytest.fixture
def client(engine_from_conftest: Engine) -> Iterator[TestClient]:  # type: ignore[type-arg]
    from cartrecover.entrypoints.http.app import create_app

    with TestClient(create_app(engine_from_conftest)) as test_client:
        yield test_client


def test_base64url_helper_round_trips() -> None:
    assert base64.urlsafe_b64decode(b64url(b"\xff\xfe") + "==") == b"\xff\xfe"
