"""SMS end to end: events in, the clock moved over the API, texts out through a fake Twilio, STOP texted back in.

The engine's sms channel is the real Twilio sender pointed at the fake over HTTP; email is a recording
channel. The default journey's last chance prefers SMS; a follow-up step here is SMS only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import TestClient

from cartrecover.adapters.twilio.sender import TwilioSender
from cartrecover.bootstrap import make_clock, open_database, open_event_log
from cartrecover.domain.journey import Channel, JourneyStep, StepStatus
from cartrecover.engine import Engine
from cartrecover.entrypoints.http.app import create_app
from cartrecover.ingest.twilio import signature
from cartrecover.journey_settings import DEFAULT_CHANNELS, DEFAULT_JOURNEY_CONFIG, JourneyConfig, StepConfig
from tests.conftest import START, Shop, add_shop, make_settings, move_clock
from tests.factories import identified, item, product_added, random_id
from tests.fakes.twilio import AUTH_TOKEN, FakeTwilio, running
from tests.unit.test_journeys import Recorder

Client = TestClient  # type: ignore[type-arg]
HOUR = timedelta(hours=1)
BASE = "http://testserver.local"
NEW_YORK = ZoneInfo("America/New_York")
PHONE = "+12125550123"
FOLLOW_UP = StepConfig(JourneyStep("sms-follow-up", 96 * HOUR, (Channel.SMS,), "reminder"))


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with running() as fake:
        yield fake


@pytest.fixture
def email() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(tmp_path: Path, twilio: FakeTwilio, email: Recorder) -> Iterator[Engine]:
    url = twilio.url(callback=f"{BASE}/webhooks/twilio/status")
    settings = make_settings(
        tmp_path,
        channels={**DEFAULT_CHANNELS, "sms": url},
        journey=JourneyConfig((*DEFAULT_JOURNEY_CONFIG.steps, FOLLOW_UP)),
    )
    sms = TwilioSender.from_url(url, settings.data_dir)
    built = Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, START),
        senders={"email": email, "sms": sms},
        secret=b"test-secret",
    )
    yield built
    built.close()
    sms.close()


@pytest.fixture
def shop(engine: Engine) -> Shop:
    return add_shop(engine, timezone="America/New_York")


def abandon(engine: Engine, shop: Shop) -> str:
    """A shopper who agreed to email and SMS leaves a 150.00 cart (worth the incentive); returns the cart id."""
    cart_id, anon = random_id("cart"), random_id("anon")
    engine.append(
        [
            identified(
                store_id=shop.store_id,
                anonymous_id=anon,
                email=f"{anon}@example.com",
                phone=PHONE,
                consent={"email": True, "sms": True},
            ),
            product_added(
                item("p1", price=15000, name="Linen shirt"),
                store_id=shop.store_id,
                anonymous_id=anon,
                cart_id=cart_id,
                at=START + timedelta(seconds=1),
            ),
        ]
    )
    return cart_id


def text_back(client: Client, shop: Shop, body: str) -> None:
    """The shopper replies by SMS; Twilio posts it to us, signed."""
    url = f"{BASE}/webhooks/twilio?store={shop.name}"
    form = {"MessageSid": random_id("SM"), "From": PHONE, "To": "+15005550006", "Body": body}
    response = client.post(url, data=form, headers={"X-Twilio-Signature": signature(AUTH_TOKEN, url, form.items())})
    assert response.status_code == 200, response.text


def journey(engine: Engine, shop: Shop, cart_id: str) -> dict[str, tuple[StepStatus, str | None]]:
    with engine.database.read() as uow:
        return {
            s.name: (s.status, s.channel.value if s.channel else None)
            for s in uow.outbox.for_cart(shop.store_id, cart_id)
        }


def test_the_last_chance_text_waits_for_nine_in_the_shoppers_morning(
    engine: Engine, shop: Shop, twilio: FakeTwilio
) -> None:
    cart_id = abandon(engine, shop)
    with TestClient(create_app(engine)) as client:
        # Due 72 h after abandonment at 10:30 UTC: 05:30 in New York, before the 09:00–20:00 window.
        move_clock(client, shop, START + 76 * HOUR - timedelta(minutes=1))  # 08:59 in New York
        assert twilio.messages == []

        move_clock(client, shop, START + 80 * HOUR)

    (sent,) = twilio.messages
    assert sent["To"] == PHONE and "CR-" in sent["Body"] and "Reply STOP" in sent["Body"]
    assert sent["StatusCallback"] == f"{BASE}/webhooks/twilio/status?store_id={shop.store_id}"
    with engine.database.read() as uow:
        last = next(s for s in uow.outbox.for_cart(shop.store_id, cart_id) if s.name == "last-chance")
    assert last.provider_id == sent["sid"] and last.sent_at is not None
    assert last.sent_at.astimezone(NEW_YORK).strftime("%H:%M") == "09:00"


def test_after_a_stop_no_text_goes_but_email_still_does(
    engine: Engine, shop: Shop, twilio: FakeTwilio, email: Recorder
) -> None:
    cart_id = abandon(engine, shop)
    with TestClient(create_app(engine)) as client:
        text_back(client, shop, "Stop")
        move_clock(client, shop, START + 5 * 24 * HOUR)

    assert twilio.messages == []
    assert journey(engine, shop, cart_id) == {
        "reminder": (StepStatus.SENT, "email"),
        "second-reminder": (StepStatus.SENT, "email"),
        "last-chance": (StepStatus.SENT, "email"),  # SMS preferred, suppressed: email instead
        "sms-follow-up": (StepStatus.SKIPPED, None),
    }
    assert len(email.sent) == 3
    with engine.database.read() as uow:
        follow_up = next(s for s in uow.outbox.for_cart(shop.store_id, cart_id) if s.name == "sms-follow-up")
    assert follow_up.reason == "sms suppressed (STOP)"


def test_start_after_stop_lets_texts_go_again(engine: Engine, shop: Shop, twilio: FakeTwilio) -> None:
    cart_id = abandon(engine, shop)
    with TestClient(create_app(engine)) as client:
        text_back(client, shop, "STOP")
        move_clock(client, shop, START + HOUR)
        text_back(client, shop, "start")
        move_clock(client, shop, START + 5 * 24 * HOUR)

    assert [m["To"] for m in twilio.messages] == [PHONE, PHONE]
    assert journey(engine, shop, cart_id)["sms-follow-up"] == (StepStatus.SENT, "sms")


def test_a_number_twilio_reports_as_opted_out_is_suppressed_and_not_retried(
    engine: Engine, shop: Shop, twilio: FakeTwilio, email: Recorder
) -> None:
    cart_id = abandon(engine, shop)
    twilio.opted_out.add(PHONE)  # the shopper texted STOP to Twilio, which never told us
    with TestClient(create_app(engine)) as client:
        move_clock(client, shop, START + 80 * HOUR)  # the last chance is tried (and refused) at 09:00 there
        move_clock(client, shop, START + 5 * 24 * HOUR)

    assert twilio.messages == [] and twilio.requests == 1
    steps = journey(engine, shop, cart_id)
    assert steps["last-chance"] == (StepStatus.SKIPPED, "sms") and steps["sms-follow-up"] == (StepStatus.SKIPPED, None)
    with engine.database.read() as uow:
        reasons = {s.name: s.reason for s in uow.outbox.for_cart(shop.store_id, cart_id)}
    assert "21610" in (reasons["last-chance"] or "") and "sms suppressed (twilio 21610" in (
        reasons["sms-follow-up"] or ""
    )
