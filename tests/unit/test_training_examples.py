"""`learn.train.examples` reads a page of decisions' carts at once and labels them as it did one cart at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from cartrecover.adapters.sqlite import SqliteDatabase
from cartrecover.decide import features
from cartrecover.domain.cart import Cart, CartStatus
from cartrecover.domain.journey import Channel, Step, StepStatus
from cartrecover.learn import train
from cartrecover.learn.train import Example, examples
from cartrecover.ports.decisions import DecisionRecord
from cartrecover.ports.orders import Order
from cartrecover.ports.unit_of_work import Database, UnitOfWork
from tests.conftest import START
from tests.factories import cart, item

WINDOW = timedelta(days=7)
HOUR = timedelta(hours=1)
UNTIL = START + timedelta(days=30)


def one_by_one(uow: UnitOfWork, store_id: int, until: datetime, window: timedelta) -> list[Example]:
    """The read before it was paged (commit 714f07c): each decision's cart, order and steps by its own query."""
    found = []
    for record in uow.decisions.between(store_id, datetime.fromtimestamp(0, until.tzinfo), until - window):
        c = uow.carts.get(store_id, record.cart_id)
        if c is None or record.feature_version != features.VERSION:
            continue
        ordered = c.status in (CartStatus.RECOVERED, CartStatus.CONVERTED) and c.closed_at is not None
        ordered = ordered and record.at <= c.closed_at <= record.at + window  # type: ignore[operator]
        value = (c.order_value if ordered and c.order_value else c.value) / 100
        order = uow.orders.get(store_id, c.order_id) if ordered and c.order_id else None
        used = {code.strip().upper() for code in order.coupons} if order else set()
        steps = uow.outbox.for_cart(store_id, c.cart_id) if used else []
        found.append(Example(record, ordered, value, any(s.coupon and s.coupon.upper() in used for s in steps)))
    return found


def decision(c: Cart, at: datetime, group: str = "treated", version: str = features.VERSION) -> DecisionRecord:
    """The decision logged when `c` was abandoned at `at`."""
    plan = "none" if group == "holdout" else "email 1h"
    return DecisionRecord(c.store_id, c.cart_id, c.shopper_id, at, group, "rules-v1", plan, [0.0], [1.0], version)


def sent(c: Cart, at: datetime, number: int, coupon: str | None = None) -> Step:
    """A sent step of the cart's journey."""
    return Step(
        f"{c.cart_id}#{number}", c.store_id, c.cart_id, c.shopper_id, number, "reminder", "reminder",
        (Channel.EMAIL,), at + number * HOUR, status=StepStatus.SENT, channel=Channel.EMAIL, coupon=coupon,
        sent_at=at + number * HOUR,
    )  # fmt: skip


def ordered(c: Cart, at: datetime, coupons: tuple[str, ...] = (), value: int | None = 2500) -> tuple[Cart, Order]:
    """The cart recovered by an order at `at`, and the order."""
    order = Order(c.store_id, f"o-{c.cart_id}", c.shopper_id, at, value, "EUR", (), c.cart_id, coupons=coupons)
    closed = replace(c, status=CartStatus.RECOVERED, closed_at=at, order_id=order.order_id, order_value=value)
    return closed, order


@pytest.fixture
def database() -> Iterator[Database]:
    """A state store with a decision for each way a cart can end, around page boundaries of 3 decisions."""
    with closing(SqliteDatabase.from_url("sqlite://:memory:")) as db:
        with db.write() as uow:
            for n in range(4):  # every case four times, so that pages of 3 cut through them
                _log_every_case(uow, START + n * timedelta(days=3), f"{n}")
        yield db


def _log_every_case(uow: UnitOfWork, at: datetime, tag: str) -> None:
    def new(name: str, status: CartStatus = CartStatus.EXPIRED) -> Cart:
        closed = at + WINDOW if status is CartStatus.EXPIRED else None
        return cart(at=at, cart_id=f"{name}-{tag}", items=(item(price=1999),), status=status, closed_at=closed)

    our_code, our_order = ordered(new("our-code"), at + 5 * HOUR, coupons=(" save10-x ",))
    steps = [sent(our_code, at, 1), sent(our_code, at, 2, coupon="SAVE10-X")]
    other_code, other_order = ordered(new("other-code"), at + 5 * HOUR, coupons=("WELCOME5",))
    no_code, no_code_order = ordered(new("no-code"), at + 5 * HOUR, value=None)
    late = replace(new("late", CartStatus.EXPIRED), order_id=None)
    holdout, holdout_order = ordered(new("holdout"), at + 30 * HOUR)
    twice, twice_order = ordered(new("twice"), at + 3 * 24 * HOUR)
    open_cart = new("open", CartStatus.RECOVERING)
    for c, order in [
        (our_code, our_order),
        (other_code, other_order),
        (no_code, no_code_order),
        (late, None),
        (holdout, holdout_order),
        (twice, twice_order),
        (new("expired"), None),
        (open_cart, None),
    ]:
        uow.carts.save(c)
        if order is not None:
            uow.orders.save(order)
        uow.decisions.add(decision(c, at, "holdout" if c is holdout else "treated"))
    uow.outbox.add([*steps, sent(other_code, at, 1, coupon="OURS-1"), sent(no_code, at, 1, coupon="OURS-2")])
    uow.decisions.add(decision(twice, at - 5 * 24 * HOUR))  # an earlier abandonment: its window missed the order
    uow.decisions.add(decision(new("old-features"), at, version="0"))
    uow.decisions.add(decision(cart(at=at, cart_id=f"erased-{tag}"), at))  # its cart is gone
    uow.decisions.add(decision(open_cart, UNTIL - WINDOW + HOUR))  # its window is still open


def test_paged_read_labels_every_decision_as_the_one_by_one_read_did(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train, "PAGE", 3)
    with database.read() as uow:
        expected = one_by_one(uow, 1, UNTIL, WINDOW)
        found = examples(uow, 1, UNTIL, WINDOW)

    assert found == expected
    labels = {(e.record.cart_id.rsplit("-", 1)[0], e.ordered, e.discounted) for e in found}
    assert labels == {
        ("our-code", True, True),
        ("other-code", True, False),
        ("no-code", True, False),
        ("late", False, False),
        ("holdout", True, False),
        ("twice", True, False),
        ("twice", False, False),
        ("expired", False, False),
        ("open", False, False),
    }
    assert len(found) == 4 * 9  # not the old features, the erased cart nor the open window
