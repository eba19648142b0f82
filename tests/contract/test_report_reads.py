"""The recovery report read set-wise (the window's carts by their abandonment time, then a page of carts' steps,
clicks and orders per query) gives exactly the report of the old reads: every cart of the store, then each
cart's order, steps and timeline one by one. On every state store backend, with every kind of cart the report
distinguishes; and on SQLite, the reads do not grow in number with the window's carts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cartrecover import measure
from cartrecover.adapters.sqlite import SqliteDatabase
from cartrecover.domain.cart import Cart, CartStatus
from cartrecover.domain.holdout import Group
from cartrecover.domain.journey import Channel, Incentive, Step, StepStatus
from cartrecover.journey_settings import MeasureConfig
from cartrecover.measure import outcomes as outcomes_module
from cartrecover.measure.attribution import Touch
from cartrecover.measure.daily import build_series, daily, series_as_json
from cartrecover.measure.outcomes import incentive_of
from cartrecover.ports.orders import Order
from cartrecover.ports.unit_of_work import Database, UnitOfWork
from tests.conftest import START
from tests.contract.test_sqlite_ports import BACKENDS
from tests.factories import item, random_id

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
SINCE, UNTIL = START, START + 7 * DAY
COSTS = {"email": Decimal("0.002"), "sms": Decimal("0.0075")}


@pytest.fixture(params=sorted(BACKENDS))
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, empty state store of each backend."""
    with BACKENDS[request.param](tmp_path) as db:
        yield db


def fill(db: Database, store_id: int, carts: int, seed: int) -> None:
    """`carts` carts of every kind the report tells apart, inside the window and around it, with their steps,
    timelines and orders; and a cart of another store in the window."""
    rng = random.Random(seed)
    shared = random_id("o")  # one order that closed two carts of a shopper: counted on the first only
    with db.write() as uow:
        for n in range(carts):
            _one_cart(uow, rng, store_id, n, shared)
        other = Cart(store_id + 1, random_id("c"), "s", START, START, CartStatus.ABANDONED, (item(),))
        uow.carts.save(replace(other, abandoned_at=START + HOUR, group="treated"))


def _one_cart(uow: UnitOfWork, rng: random.Random, store_id: int, n: int, shared: str) -> None:
    abandoned = SINCE + timedelta(minutes=rng.randrange(-2 * 24 * 60, 9 * 24 * 60))
    if n % 3 == 0:
        abandoned = SINCE + (n // 3) * 7 * HOUR  # abandoned at once as another cart: ordered by cart id
    status = rng.choice(list(CartStatus))
    group = rng.choice(["treated", "treated", "holdout", None])
    experiment = rng.choice([None, "subject", "timing"])
    cart = Cart(
        store_id=store_id,
        cart_id=f"{rng.choice('aAbB_é')}-{random_id('cart')}",
        shopper_id=random_id("s"),
        created_at=abandoned - HOUR,
        last_activity_at=abandoned - HOUR,
        status=status,
        items=tuple(
            item(price=rng.randrange(500, 30_000), quantity=rng.randint(1, 3)) for _ in range(rng.randint(0, 3))
        ),
        stated_value=rng.choice([None, None, rng.randrange(1_000, 50_000)]),
        abandoned_at=None if status is CartStatus.ACTIVE and rng.random() < 0.7 else abandoned,
        group=group,
        experiment=experiment,
        variant=rng.choice(["a", "b", "c"]) if experiment else None,
    )
    steps = [_step(rng, cart, number) for number in range(1, rng.randint(1, 4))] if group != "holdout" else []
    uow.outbox.add(steps)
    for step in steps:
        _timeline(uow, rng, cart, step)
    uow.timeline.add(store_id, cart.cart_id, abandoned, "event", {"name": "Product Added", "message_id": "m"})
    if status is CartStatus.RECOVERED:
        cart.order_id = shared if n in (4, 5) else random_id("o")
        cart.closed_at = abandoned + timedelta(minutes=rng.randrange(1, 5 * 24 * 60))
        cart.order_value = rng.randrange(1_000, 40_000)
        kept = rng.random()
        if kept < 0.8 or n in (4, 5):  # else the order was never kept: the report takes the cart's copy
            coupons = tuple(s.coupon.lower() for s in steps if s.coupon and rng.random() < 0.9)
            uow.orders.save(
                Order(
                    store_id,
                    cart.order_id,
                    cart.shopper_id,
                    cart.closed_at,
                    rng.choice([cart.order_value, None]),
                    "USD",
                    (),
                    cart_id=cart.cart_id,
                    cancelled_at=cart.closed_at + DAY if kept < 0.1 else None,
                    coupons=(*coupons, "OTHER") if rng.random() < 0.2 else coupons,
                    discount=rng.choice([None, 0, *[rng.randrange(100, 3_000)] * 4]),
                )
            )
    uow.carts.save(cart)


def _step(rng: random.Random, cart: Cart, number: int) -> Step:
    assert cart.abandoned_at is not None or cart.status is CartStatus.ACTIVE
    due = (cart.abandoned_at or cart.created_at) + number * rng.choice([HOUR, DAY])
    status = rng.choice([StepStatus.SENT, StepStatus.SENT, StepStatus.SENT, StepStatus.SCHEDULED, StepStatus.CANCELLED])
    incentive = rng.choice([None, Incentive(10), Incentive(15)])
    sent = status is StepStatus.SENT
    return Step(
        step_id=f"{cart.cart_id}#{number}",
        store_id=cart.store_id,
        cart_id=cart.cart_id,
        shopper_id=cart.shopper_id,
        number=number,
        name=rng.choice(["reminder", "second-reminder", "last-chance"]),
        template="reminder",
        channels=(Channel.EMAIL, Channel.SMS),
        due_at=due,
        incentive=incentive,
        status=status,
        channel=rng.choice([Channel.EMAIL, Channel.SMS]) if sent else None,
        coupon=f"SAVE-{random_id('c')}".upper() if incentive else None,
        sent_at=due + timedelta(minutes=rng.randrange(0, 90)) if sent else None,
    )


def _timeline(uow: UnitOfWork, rng: random.Random, cart: Cart, step: Step) -> None:
    """Clicks on the step (some naming their channel), a click on no known message, and a message entry."""
    at = step.due_at + timedelta(minutes=rng.randrange(1, 3 * 24 * 60))
    for _ in range(rng.choice([0, 0, 1, 2])):
        channel = rng.choice(["email", "sms", ""])
        uow.timeline.add(cart.store_id, cart.cart_id, at, "click", {"message_id": step.message_id, "channel": channel})
        at += timedelta(minutes=rng.randrange(0, 120))
    if rng.random() < 0.2:
        uow.timeline.add(cart.store_id, cart.cart_id, at, "click", {"message_id": "<unknown@cartrecover>"})
    uow.timeline.add(cart.store_id, cart.cart_id, at, "message", {"message_id": step.message_id, "status": "sent"})


def outcomes_read_one_by_one(uow: UnitOfWork, store_id: int) -> list[measure.CartOutcome]:
    """The report's carts as it read them before: every cart of the store, then each cart's order, steps and
    timeline one by one (the computation of commit 7cdd363, through the ports' single-cart reads)."""
    every = uow.carts.page(store_id, None, 10**9, None)
    inside = sorted(
        (c for c in every if c.abandoned_at is not None and SINCE <= c.abandoned_at < UNTIL),
        key=lambda c: (c.abandoned_at or SINCE, c.cart_id),
    )
    seen: set[str] = set()
    found = []
    for cart in inside:
        order = None
        if cart.status is CartStatus.RECOVERED and cart.order_id is not None:
            order = uow.orders.get(store_id, cart.order_id)
            if order is None:
                assert cart.closed_at is not None
                order = Order(store_id, cart.order_id, cart.shopper_id, cart.closed_at, cart.order_value, None, ())
            order = None if order.cancelled_at is not None or order.order_id in seen else order
        if order is not None:
            seen.add(order.order_id)
        steps = uow.outbox.for_cart(store_id, cart.cart_id)
        by_message = {s.message_id: s for s in steps}
        clicks = []
        for entry in uow.timeline.for_cart(store_id, cart.cart_id):
            step = by_message.get(str(entry.get("message_id"))) if entry.get("kind") == "click" else None
            if step is not None:
                channel = str(entry.get("channel") or (step.channel.value if step.channel else ""))
                clicks.append(Touch(entry["at"], channel, step.name, step.step_id, True, incentive_of(step)))
        found.append(
            measure.CartOutcome(
                cart_id=cart.cart_id,
                group=Group(cart.group) if cart.group else Group.TREATED,
                value=cart.value,
                sends=tuple(s for s in steps if s.status is StepStatus.SENT and s.sent_at and s.channel),
                clicks=tuple(clicks),
                order=order,
                experiment=cart.experiment if cart.group != Group.HOLDOUT else None,
                variant=cart.variant if cart.group != Group.HOLDOUT else None,
                abandoned_at=cart.abandoned_at,
            )
        )
    return found


def reports(db: Database, store_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the report as computed now, the report of the old reads), as the API's JSON."""
    windows = MeasureConfig().attribution_windows
    with db.read() as uow:
        now = measure.recovery(uow, store_id, "USD", SINCE, UNTIL, windows=windows, channel_cost=COSTS)
        old = outcomes_read_one_by_one(uow, store_id)
    before = measure.build(
        old, store_id=store_id, currency="USD", since=SINCE, until=UNTIL, windows=windows, channel_cost=COSTS
    )
    return measure.as_json(now), measure.as_json(before)


def series(db: Database, store_id: int, timezone: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the daily series as computed now, the series of the old reads), as the API's JSON."""
    with db.read() as uow:
        now = daily(uow, store_id, "USD", timezone=timezone, since=SINCE, until=UNTIL)
        old = outcomes_read_one_by_one(uow, store_id)
    at: dict[str, datetime] = {o.cart_id: o.abandoned_at for o in old if o.abandoned_at is not None}
    before = build_series(old, at, currency="USD", timezone=timezone, since=SINCE, until=UNTIL)
    return series_as_json(now), series_as_json(before)


@pytest.mark.parametrize("page", [7, outcomes_module.PAGE])
def test_the_report_read_a_page_of_carts_at_a_time_equals_the_report_read_cart_by_cart(
    database: Database, page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outcomes_module, "PAGE", page)  # 7: an order shared by carts on two pages, counted once
    store_id = random.randint(1, 2**30)
    fill(database, store_id, carts=150, seed=page)

    now, before = reports(database, store_id)

    assert now == before
    assert now["abandoned"]["carts"] > 50 and now["treated"]["recovered"] > 5 and now["holdout"]["carts"] > 5
    assert now["last_touch"]["orders"] > 0 and now["incentive_cost"] > 0 and now["variants"]
    assert any(row["clicks"] for row in now["channels"])


def test_the_daily_series_read_a_page_of_carts_at_a_time_equals_the_series_read_cart_by_cart(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outcomes_module, "PAGE", 7)
    store_id = random.randint(1, 2**30)
    fill(database, store_id, carts=150, seed=3)

    for timezone in ("UTC", "America/Los_Angeles"):
        now, before = series(database, store_id, timezone)
        assert now == before
        assert sum(d["treated"]["carts"] + d["holdout"]["carts"] for d in now["days"]) > 50


def test_sqlite_reads_the_report_in_a_few_queries_whatever_the_number_of_carts(tmp_path: Path) -> None:
    # Counted in statements run, not timed: a query per page of carts and table, not three per cart.
    def statements(carts: int) -> int:
        run: list[str] = []
        with closing(SqliteDatabase.from_url(f"sqlite:///{tmp_path / f'report-{carts}.db'}")) as db:
            fill(db, 1, carts=carts, seed=carts)
            with db.read() as uow:
                uow.conn.set_trace_callback(run.append)
                measure.recovery(uow, 1, "USD", SINCE, UNTIL, windows={}, channel_cost={})
                uow.conn.set_trace_callback(None)
        return len(run)

    assert statements(400) == statements(20) <= 4
