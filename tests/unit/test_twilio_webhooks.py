"""Twilio webhooks through the real app: signed STOP/START/HELP texts and status callbacks; forgeries refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from cartrecover.bootstrap import build_engine
from cartrecover.domain.contact import address_key
from cartrecover.domain.events import EventKind
from cartrecover.engine import Engine
from cartrecover.ingest.twilio import signature
from cartrecover.journey_settings import DEFAULT_CHANNELS
from tests.conftest import START, Shop, make_settings, move_clock
from tests.factories import random_id
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

Client = TestClient  # type: ignore[type-arg]
BASE = "http://testserver.local"
PHONE = "+12125550123"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine whose sms channel is a Twilio account (the webhooks verify with its token)."""
    channels = {**DEFAULT_CHANNELS, "email": "console:quiet", "sms": FakeTwilio(port=9).url()}
    built = build_engine(make_settings(tmp_path, channels=channels), start=START)
    yield built
    built.close()


def text(
    client: Client,
    shop: Shop,
    body: str,
    *,
    phone: str = PHONE,
    token: str = AUTH_TOKEN,
    signed: bool = True,
    store: str | None = None,
) -> httpx.Response:
    """An inbound SMS as Twilio posts it: form-encoded, signed over the URL and the sorted parameters."""
    url = f"{BASE}/webhooks/twilio?store={store or shop.name}"
    form = {
        "MessageSid": "SM" + random_id("x")[2:],
        "AccountSid": ACCOUNT_SID,
        "From": phone,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }
    headers = {"X-Twilio-Signature": signature(token, url, form.items())} if signed else {}
    response: httpx.Response = client.post(url, data=form, headers=headers)
    return response


def suppressed(engine: Engine, shop: Shop, channel: str, address: str) -> str | None:
    with engine.database.read() as uow:
        return uow.suppressions.reason(shop.store_id, channel, address_key(channel, address))


def logged(engine: Engine) -> int:
    return engine.log.last_offset()


def test_the_signature_is_twilios_documented_one() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]

    assert signature("12345", url, params.items()) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize("word", ["STOP", "stop", "  Unsubscribe ", "Cancel", "END", "quit", "STOPALL"])
def test_a_stop_word_suppresses_sms_for_the_number_and_is_confirmed(
    client: Client, engine: Engine, shop: Shop, word: str
) -> None:
    response = text(client, shop, word)
    move_clock(client, shop, START + timedelta(minutes=1))

    assert response.status_code == 200 and response.headers["content-type"].startswith("application/xml")
    assert "<Message>" in response.text and "unsubscribed" in response.text
    assert suppressed(engine, shop, "sms", PHONE) == "STOP"
    ((_, event),) = engine.log.read_after(0, 10)
    assert event.kind is EventKind.UNSUBSCRIBED and event.phone == PHONE
    assert event.properties == {"channel": "sms", "reason": "STOP"}


def test_a_stop_suppresses_sms_only(client: Client, engine: Engine, shop: Shop) -> None:
    text(client, shop, "STOP", phone=PHONE)
    move_clock(client, shop, START + timedelta(minutes=1))

    assert suppressed(engine, shop, "sms", PHONE) == "STOP"
    assert suppressed(engine, shop, "email", PHONE) is None
    assert suppressed(engine, shop, "sms", "+12125550999") is None


def test_start_lifts_the_stop(client: Client, engine: Engine, shop: Shop) -> None:
    text(client, shop, "STOP")
    move_clock(client, shop, START + timedelta(minutes=1))

    response = text(client, shop, "start")
    move_clock(client, shop, START + timedelta(minutes=2))

    assert response.status_code == 200 and "resubscribed" in response.text
    assert suppressed(engine, shop, "sms", PHONE) is None
    assert [e.kind for _, e in engine.log.read_after(0, 10)] == [EventKind.UNSUBSCRIBED, EventKind.RESUBSCRIBED]


def test_help_answers_with_the_store_name_and_stores_nothing(client: Client, engine: Engine, shop: Shop) -> None:
    response = text(client, shop, "help")

    assert response.status_code == 200
    assert shop.name in response.text and "STOP" in response.text
    assert logged(engine) == 0


def test_any_other_text_gets_an_empty_answer_and_stores_nothing(client: Client, engine: Engine, shop: Shop) -> None:
    response = text(client, shop, "stop please, not today")

    assert response.status_code == 200
    assert response.text.endswith("<Response></Response>")
    assert logged(engine) == 0


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ({"token": "not-the-token"}, "does not match"),
        ({"signed": False}, "no X-Twilio-Signature"),
    ],
)
def test_a_text_without_a_valid_signature_is_refused_and_nothing_is_stored(
    client: Client, engine: Engine, shop: Shop, how: dict[str, object], expected: str
) -> None:
    response = text(client, shop, "STOP", **how)  # type: ignore[arg-type]
    move_clock(client, shop, START + timedelta(minutes=1))

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden" and expected in response.json()["message"]
    assert logged(engine) == 0
    assert suppressed(engine, shop, "sms", PHONE) is None


def test_a_signature_for_another_store_url_does_not_verify_this_one(client: Client, engine: Engine, shop: Shop) -> None:
    url = f"{BASE}/webhooks/twilio?store=someone-else"
    form = {"MessageSid": "SM1", "From": PHONE, "Body": "STOP"}
    forged = signature(AUTH_TOKEN, url, form.items())

    response = client.post(
        f"{BASE}/webhooks/twilio?store={shop.name}", data=form, headers={"X-Twilio-Signature": forged}
    )

    assert response.status_code == 403 and logged(engine) == 0


def test_a_delivery_that_failed_for_good_suppresses_the_number(client: Client, engine: Engine, shop: Shop) -> None:
    fake = FakeTwilio()
    message = {
        "sid": "SM" + "a" * 32,
        "To": PHONE,
        "StatusCallback": f"{BASE}/webhooks/twilio/status?store_id={shop.store_id}",
    }

    delivered = fake.status_callback(message, "delivered", post=client.post)
    failed = fake.status_callback(message, "undelivered", "30006", post=client.post)
    move_clock(client, shop, START + timedelta(minutes=1))

    assert delivered.status_code == 200 and delivered.json()["stored"] == 0
    assert failed.status_code == 200 and failed.json()["stored"] == 1
    assert suppressed(engine, shop, "sms", PHONE) == "twilio 30006"


def test_a_temporary_failure_or_a_forged_status_changes_nothing(client: Client, engine: Engine, shop: Shop) -> None:
    message = {
        "sid": "SM" + "b" * 32,
        "To": PHONE,
        "StatusCallback": f"{BASE}/webhooks/twilio/status?store_id={shop.store_id}",
    }

    temporary = FakeTwilio().status_callback(message, "failed", "30003", post=client.post)
    forged = FakeTwilio(auth_token="other").status_callback(message, "failed", "21610", post=client.post)
    move_clock(client, shop, START + timedelta(minutes=1))

    assert temporary.status_code == 200 and temporary.json()["stored"] == 0
    assert forged.status_code == 403
    assert logged(engine) == 0 and suppressed(engine, shop, "sms", PHONE) is None
