"""The engine on a PostgreSQL state store: a journey end to end, and two engines (as two machines' workers)
delivering from the same outbox at once, each message sent once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.bootstrap import make_clock, open_database, open_event_log
from cartrecover.domain.journey import StepStatus
from cartrecover.engine import Engine
from cartrecover.settings import Settings
from tests.conftest import START, Shop, add_shop, make_settings
from tests.factories import Recorder, identified, item, order_completed, product_added, random_id
from tests.services import postgres_schema

HOUR = timedelta(hours=1)


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings whose state store is a migrated PostgreSQL schema of its own (the event log: a SQLite file)."""
    with postgres_schema() as url:
        PostgresDatabase.migrate(url)
        yield make_settings(tmp_path, database_url=url)


def engine_on(settings: Settings, email: Recorder) -> Engine:
    return Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, START),
        senders={"email": email},
        secret=b"test-secret",
    )


def abandon(engine: Engine, shop: Shop, at: datetime = START) -> tuple[str, str]:
    """A signed-in shopper who consents to email puts something in a cart and leaves; (cart id, anonymous id)."""
    cart_id, anon = random_id("cart"), random_id("anon")
    engine.append(
        [
            identified(
                store_id=shop.store_id,
                anonymous_id=anon,
                user_id=random_id("u"),
                email=f"{anon}@example.com",
                consent={"email": True},
                at=at,
            ),
            product_added(item(price=2500), store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id, at=at),
        ]
    )
    return cart_id, anon


def test_a_journey_runs_on_postgres_and_an_order_stops_it(settings: Settings) -> None:
    email = Recorder()
    engine = engine_on(settings, email)
    try:
        shop = add_shop(engine)
        cart_id, anon = abandon(engine, shop)
        engine.advance_clock(START + 2 * HOUR)
        engine.append(
            [order_completed(store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id, at=START + 3 * HOUR)]
        )
        engine.advance_clock(START + 5 * 24 * HOUR)

        with engine.database.read() as uow:
            cart = uow.carts.get(shop.store_id, cart_id)
            steps = {s.name: s.status for s in uow.outbox.for_cart(shop.store_id, cart_id)}
    finally:
        engine.close()

    assert [m.to for m in email.sent] == [f"{anon}@example.com"]
    assert cart is not None and cart.status.value == "recovered"
    assert steps == {
        "reminder": StepStatus.SENT,
        "second-reminder": StepStatus.CANCELLED,
        "last-chance": StepStatus.CANCELLED,
    }


def test_two_engines_delivering_from_one_postgres_outbox_at_once_send_each_message_once(settings: Settings) -> None:
    first_email, second_email = Recorder(), Recorder()
    first = engine_on(settings, first_email)
    shop = add_shop(first)
    second = engine_on(settings, second_email)  # made after the store, so it knows it
    try:
        carts = [abandon(first, shop, START + i * timedelta(seconds=1))[0] for i in range(30)]
        first.advance_clock(START + 50 * timedelta(minutes=1))  # abandoned; reminders not due yet
        now = START + 2 * HOUR

        def deliver_until_done(engine: Engine) -> None:
            while engine.deliver_due(now):
                pass

        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(deliver_until_done, e) for e in (first, second)]:
                done.result(timeout=120)
    finally:
        first.close()
        second.close()

    sent = first_email.sent + second_email.sent
    assert len(sent) == len(carts)
    assert len({m.message_id for m in sent}) == len(carts)
