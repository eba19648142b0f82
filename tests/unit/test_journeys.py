"""Journeys through the engine on the manual clock: planned at abandonment, sent when due, stopped by an order.

A recording sender stands in for the channel here (the channels have their own tests against real servers).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cartrecover.bootstrap import make_clock, open_database, open_event_log
from cartrecover.domain.events import Event, EventKind
from cartrecover.domain.journey import Guardrails, StepStatus
from cartrecover.engine import Engine
from cartrecover.errors import PermanentDelivery, RetryableDelivery
from tests.conftest import START, Shop, add_shop, make_settings
from tests.factories import Recorder, identified, item, order_completed, page_viewed, product_added, random_id

HOUR = timedelta(hours=1)


@pytest.fixture
def email() -> Recorder:
    return Recorder()


@pytest.fixture
def sms() -> Recorder:
    return Recorder()


def build(tmp_path: Path, email: Recorder, sms: Recorder, **overrides: Any) -> Engine:
    settings = make_settings(tmp_path, **overrides)
    return Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, START),
        senders={"email": email, "sms": sms},
        secret=b"test-secret",
    )


@pytest.fixture
def engine(tmp_path: Path, email: Recorder, sms: Recorder) -> Iterator[Engine]:
    built = build(tmp_path, email, sms)
    yield built
    built.close()


@pytest.fixture
def shop(engine: Engine) -> Shop:
    return add_shop(engine, timezone="Europe/Berlin")


def abandon(
    engine: Engine,
    shop: Shop,
    *,
    consent: dict[str, bool] | None = None,
    price: int = 2500,
    phone: str | None = None,
    cart_id: str | None = None,
) -> tuple[str, str]:
    """A signed-in shopper with a cart, left idle; returns (cart id, anonymous id)."""
    cart_id, anon = cart_id or random_id("cart"), random_id("anon")
    engine.append(
        [
            identified(
                store_id=shop.store_id,
                anonymous_id=anon,
                user_id=random_id("u"),
                email=f"{anon}@example.com",
                phone=phone,
                consent={"email": True} if consent is None else consent,
            ),
            product_added(
                item("p1", price=price, name="Linen shirt"),
                store_id=shop.store_id,
                anonymous_id=anon,
                cart_id=cart_id,
                at=START + timedelta(seconds=1),
            ),
        ]
    )
    return cart_id, anon


def steps(engine: Engine, shop: Shop, cart_id: str) -> dict[str, StepStatus]:
    with engine.database.read() as uow:
        return {s.name: s.status for s in uow.outbox.for_cart(shop.store_id, cart_id)}


def status(engine: Engine, shop: Shop, cart_id: str) -> str:
    with engine.database.read() as uow:
        cart = uow.carts.get(shop.store_id, cart_id)
    assert cart is not None
    return cart.status.value


def test_an_abandoned_cart_gets_its_reminder_an_hour_later_and_starts_recovering(
    engine: Engine, shop: Shop, email: Recorder
) -> None:
    cart_id, anon = abandon(engine, shop)

    engine.advance_clock(START + 50 * timedelta(minutes=1))
    assert email.sent == [] and status(engine, shop, cart_id) == "abandoned"
    engine.advance_clock(START + 2 * HOUR)

    (message,) = email.sent
    assert message.to == f"{anon}@example.com"
    assert message.headers["Message-ID"] == message.message_id
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8080/u/")
    assert "/r/" in message.text and "Linen shirt" in message.text and "25.00 USD" in message.text
    assert message.html is not None and "Linen shirt" in message.html
    assert status(engine, shop, cart_id) == "recovering"
    assert steps(engine, shop, cart_id) == {
        "reminder": StepStatus.SENT,
        "second-reminder": StepStatus.SCHEDULED,
        "last-chance": StepStatus.SCHEDULED,
    }


def test_an_order_stops_the_journey_and_nothing_is_sent_after_it(engine: Engine, shop: Shop, email: Recorder) -> None:
    cart_id, anon = abandon(engine, shop)
    engine.advance_clock(START + 2 * HOUR)
    engine.append([order_completed(store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id, at=START + 3 * HOUR)])

    engine.advance_clock(START + 5 * 24 * HOUR)

    assert len(email.sent) == 1
    assert status(engine, shop, cart_id) == "recovered"
    assert steps(engine, shop, cart_id) == {
        "reminder": StepStatus.SENT,
        "second-reminder": StepStatus.CANCELLED,
        "last-chance": StepStatus.CANCELLED,
    }


def test_an_order_recorded_before_a_due_step_is_claimed_cancels_it_even_in_one_clock_jump(
    engine: Engine, shop: Shop, email: Recorder
) -> None:
    cart_id, anon = abandon(engine, shop)
    engine.append(
        [
            order_completed(
                store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id, at=START + 50 * timedelta(minutes=1)
            )
        ]
    )

    engine.advance_clock(START + 5 * 24 * HOUR)

    assert email.sent == []
    assert set(steps(engine, shop, cart_id).values()) == {StepStatus.CANCELLED}


def test_without_consent_the_steps_are_skipped_with_the_reason(engine: Engine, shop: Shop, email: Recorder) -> None:
    cart_id, _ = abandon(engine, shop, consent={})

    engine.advance_clock(START + 4 * 24 * HOUR)

    assert email.sent == []
    assert set(steps(engine, shop, cart_id).values()) == {StepStatus.SKIPPED}
    with engine.database.read() as uow:
        reasons = [e["reason"] for e in uow.timeline.for_cart(shop.store_id, cart_id) if e["kind"] == "step"]
    assert "no consent for email" in reasons[0]
    assert status(engine, shop, cart_id) == "abandoned"


def test_a_shopper_who_comes_back_stops_the_journey_and_a_new_abandonment_starts_a_new_one(
    engine: Engine, shop: Shop, email: Recorder
) -> None:
    cart_id, anon = abandon(engine, shop)
    engine.advance_clock(START + 40 * timedelta(minutes=1))
    engine.append([page_viewed(store_id=shop.store_id, anonymous_id=anon, at=START + 45 * timedelta(minutes=1))])

    engine.advance_clock(START + 3 * HOUR)

    assert len(email.sent) == 1  # only the second abandonment's first reminder
    with engine.database.read() as uow:
        all_steps = uow.outbox.for_cart(shop.store_id, cart_id)
    assert sorted(s.status.value for s in all_steps) == ["cancelled"] * 3 + ["scheduled"] * 2 + ["sent"]
    assert email.sent[0].message_id == next(s.message_id for s in all_steps if s.status is StepStatus.SENT)


def test_sms_waits_for_the_shoppers_morning(tmp_path: Path, email: Recorder, sms: Recorder) -> None:
    engine = build(tmp_path, email, sms)
    shop = add_shop(engine, timezone="America/New_York")
    # Abandoned at 10:00 UTC; the last chance (SMS) falls due 72 h later at 10:00 UTC = 05:00 in New York.
    cart_id, _ = abandon(engine, shop, consent={"sms": True}, phone="+12125550123", price=15000)

    engine.advance_clock(START + 73 * HOUR)
    assert sms.sent == []
    engine.advance_clock(START + 80 * HOUR)

    (message,) = sms.sent
    assert message.to == "+12125550123" and "CR-" in message.text and "10%" in message.text
    with engine.database.read() as uow:
        last = next(s for s in uow.outbox.for_cart(shop.store_id, cart_id) if s.name == "last-chance")
    # Abandoned at 10:30 UTC; due 72 h later at 05:30 in New York; sent at 09:00 there, 14:00 UTC.
    assert last.sent_at is not None
    assert (last.sent_at - START).total_seconds() / 3600 == pytest.approx(72 + 4, abs=0.001)
    engine.close()


def test_a_frequency_cap_skips_what_would_exceed_it(tmp_path: Path, email: Recorder, sms: Recorder) -> None:
    engine = build(tmp_path, email, sms, guardrails=Guardrails(caps=((1, timedelta(days=7)),)))
    shop = add_shop(engine)
    cart_id, _ = abandon(engine, shop)

    engine.advance_clock(START + 4 * 24 * HOUR)

    assert len(email.sent) == 1
    assert steps(engine, shop, cart_id) == {
        "reminder": StepStatus.SENT,
        "second-reminder": StepStatus.SKIPPED,
        "last-chance": StepStatus.SKIPPED,
    }
    engine.close()


def test_the_incentive_goes_only_to_carts_worth_it_with_a_code_unique_to_the_message(
    engine: Engine, shop: Shop, email: Recorder
) -> None:
    small, _ = abandon(engine, shop, price=2500)
    big, _ = abandon(engine, shop, price=25000)
    other_big, _ = abandon(engine, shop, price=30000)

    engine.advance_clock(START + 4 * 24 * HOUR)

    last = {m.step_id.split("@")[0]: m for m in email.sent if "#2" in m.step_id}
    assert "CR-" not in last[small].text
    codes = {cart: m.text.split("code ")[1].split()[0] for cart, m in last.items() if cart != small}
    assert set(codes) == {big, other_big} and len(set(codes.values())) == 2
    assert all(code.startswith("CR-") for code in codes.values())


def test_a_provider_that_is_down_delays_the_step_with_backoff_and_then_it_goes_once(
    engine: Engine, shop: Shop, email: Recorder
) -> None:
    cart_id, _ = abandon(engine, shop)
    email.fail_with = RetryableDelivery("connection refused")
    engine.advance_clock(START + 2 * HOUR)
    engine.advance_clock(START + 2 * HOUR + timedelta(minutes=6))
    assert email.sent == []

    email.fail_with = None
    engine.advance_clock(START + 3 * HOUR)

    assert len(email.sent) == 1
    with engine.database.read() as uow:
        first = uow.outbox.for_cart(shop.store_id, cart_id)[0]
        notes = [e["status"] for e in uow.timeline.for_cart(shop.store_id, cart_id) if e["kind"] == "message"]
    assert first.status is StepStatus.SENT and first.attempts == 3
    assert notes == ["retrying", "retrying", "sent"]


def test_retries_run_out_into_a_dead_letter_with_the_reason(tmp_path: Path, email: Recorder, sms: Recorder) -> None:
    engine = build(tmp_path, email, sms, guardrails=Guardrails(max_attempts=2))
    shop = add_shop(engine)
    abandon(engine, shop)
    email.fail_with = RetryableDelivery("451 try again later")

    engine.advance_clock(START + 2 * HOUR)
    engine.advance_clock(START + 3 * HOUR)

    with engine.database.read() as uow:
        dead = uow.outbox.dead(shop.store_id, 10)
    assert [(s.name, s.reason, s.attempts) for s in dead] == [("reminder", "451 try again later", 2)]
    engine.close()


def test_a_hard_bounce_suppresses_the_address_and_later_steps_skip_it(
    engine: Engine, shop: Shop, email: Recorder
) -> None:
    cart_id, _ = abandon(engine, shop)
    email.fail_with = PermanentDelivery("550 no such user")
    engine.advance_clock(START + 2 * HOUR)
    email.fail_with = None

    engine.advance_clock(START + 4 * 24 * HOUR)

    assert email.sent == []
    assert set(steps(engine, shop, cart_id).values()) == {StepStatus.SKIPPED}
    with engine.database.read() as uow:
        reasons = [e.get("reason", "") for e in uow.timeline.for_cart(shop.store_id, cart_id) if e["kind"] == "step"]
    assert any("suppressed (550 no such user)" in r for r in reasons)


def test_the_timeline_shows_the_decision_each_message_and_each_skip(engine: Engine, shop: Shop) -> None:
    cart_id, _ = abandon(engine, shop, consent={"email": True}, price=2500)

    engine.advance_clock(START + 4 * 24 * HOUR)

    with engine.database.read() as uow:
        kinds = [e["kind"] for e in uow.timeline.for_cart(shop.store_id, cart_id)]
        decision = next(e for e in uow.timeline.for_cart(shop.store_id, cart_id) if e["kind"] == "decision")
    assert kinds.count("message") == 3 and "decision" in kinds
    assert decision["policy"] == "rules-v1" and [s["step"] for s in decision["steps"]] == [
        "reminder",
        "second-reminder",
        "last-chance",
    ]
    assert any("no incentive" in reason for reason in decision["reasons"])


def test_a_dead_letter_replayed_once_the_provider_is_back_is_sent_once(
    tmp_path: Path, email: Recorder, sms: Recorder
) -> None:
    engine = build(tmp_path, email, sms, guardrails=Guardrails(max_attempts=1))
    shop = add_shop(engine)
    cart_id, _ = abandon(engine, shop)
    email.fail_with = RetryableDelivery("connection refused")
    engine.advance_clock(START + 2 * HOUR)
    (dead,) = engine.journeys.dead_letters(shop.store_id)
    email.fail_with = None

    assert engine.journeys.replay_dead(shop.store_id, [dead.step_id], engine.clock.now()) == 1
    assert engine.journeys.replay_dead(shop.store_id, [dead.step_id], engine.clock.now()) == 0
    engine.advance_clock(START + 2 * HOUR + timedelta(minutes=1))

    assert [m.message_id for m in email.sent] == [dead.message_id]
    assert engine.journeys.dead_letters(shop.store_id) == []
    assert steps(engine, shop, cart_id)["reminder"] is StepStatus.SENT
    engine.close()


def test_unsubscribing_from_email_stops_email_only(tmp_path: Path, email: Recorder, sms: Recorder) -> None:
    engine = build(tmp_path, email, sms, guardrails=Guardrails(quiet_hours={}))
    shop = add_shop(engine)
    cart_id, _ = abandon(engine, shop, consent={"email": True, "sms": True}, phone="+4915112345678", price=20000)
    engine.advance_clock(START + 2 * HOUR)
    (first,) = email.sent
    step_id = first.step_id

    engine.append(
        [
            Event(
                kind=EventKind.UNSUBSCRIBED,
                store_id=shop.store_id,
                message_id="unsub-1",
                source="link",
                name="unsubscribe",
                at=START + 3 * HOUR,
                received_at=START + 3 * HOUR,
                properties={"channel": "email", "reason": "one-click unsubscribe", "step_id": step_id},
            )
        ]
    )
    engine.advance_clock(START + 4 * 24 * HOUR)

    assert len(email.sent) == 1  # the second reminder (email only) is skipped
    assert len(sms.sent) == 1  # the last chance prefers SMS, still allowed
    assert steps(engine, shop, cart_id) == {
        "reminder": StepStatus.SENT,
        "second-reminder": StepStatus.SKIPPED,
        "last-chance": StepStatus.SENT,
    }
    engine.close()


def test_a_click_on_a_restore_link_goes_on_the_timeline(engine: Engine, shop: Shop, email: Recorder) -> None:
    cart_id, _ = abandon(engine, shop)
    engine.advance_clock(START + 2 * HOUR)
    step_id = email.sent[0].step_id

    engine.append(
        [
            Event(
                kind=EventKind.MESSAGE_CLICKED,
                store_id=shop.store_id,
                message_id="click-1",
                source="link",
                name="click",
                at=START + 2 * HOUR + timedelta(minutes=5),
                received_at=START + 2 * HOUR + timedelta(minutes=5),
                properties={"step_id": step_id, "channel": "email"},
            )
        ]
    )
    engine.advance_clock(START + 3 * HOUR)

    with engine.database.read() as uow:
        clicks = [e for e in uow.timeline.for_cart(shop.store_id, cart_id) if e["kind"] == "click"]
    assert [(c["step"], c["channel"]) for c in clicks] == [("reminder", "email")]


def test_an_erased_shopper_gets_no_further_message(engine: Engine, shop: Shop, email: Recorder) -> None:
    cart_id, anon = abandon(engine, shop)
    engine.advance_clock(START + 2 * HOUR)
    assert len(email.sent) == 1

    engine.append(
        [
            Event(
                kind=EventKind.SHOPPER_REDACTED,
                store_id=shop.store_id,
                message_id="redact-1",
                source="shopify",
                name="customers/redact",
                at=START + 3 * HOUR,
                received_at=START + 3 * HOUR,
                email=f"{anon}@example.com",
            )
        ]
    )
    engine.advance_clock(START + 5 * 24 * HOUR)

    assert len(email.sent) == 1
    assert status(engine, shop, cart_id) == "suppressed"
    assert steps(engine, shop, cart_id) == {
        "reminder": StepStatus.SENT,
        "second-reminder": StepStatus.CANCELLED,
        "last-chance": StepStatus.CANCELLED,
    }
