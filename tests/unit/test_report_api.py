"""The recovery report end to end: a few hundred carts through the engine on the manual clock, with outcomes
chosen by the test, and the API's and the CLI's figures equal to what the test computes by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from cartrecover.bootstrap import make_clock, open_database, open_event_log
from cartrecover.domain.events import EventKind
from cartrecover.engine import Engine
from cartrecover.entrypoints import cli
from cartrecover.entrypoints.http import reports
from cartrecover.entrypoints.http.app import create_app
from cartrecover.journey_settings import MeasureConfig
from cartrecover.ports.channels import OutboundMessage
from tests.conftest import START, Shop, add_shop, make_settings
from tests.factories import event, identified, item, order_completed, product_added

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CARTS = 240
EMAIL_COST = Decimal("0.001")


class Inbox:
    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> str:
        self.sent.append(message)
        return message.message_id


@dataclass
class Expected:
    """What the test decided happened to each cart in the window: (group, revenue) per cart."""

    carts: dict[str, tuple[str, int]]


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def engine(tmp_path: Path, inbox: Inbox) -> Iterator[Engine]:
    settings = make_settings(tmp_path, holdout_share=0.3, measure=MeasureConfig(channel_cost={"email": EMAIL_COST}))
    built = Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, START),
        senders={"email": inbox, "sms": inbox, "push": inbox},
        secret=b"k",
    )
    yield built
    built.close()


def add_cart(engine: Engine, shop: Shop, anon: str, cart_id: str, price: int, at: timedelta = timedelta(0)) -> None:
    engine.append(
        [
            identified(
                store_id=shop.store_id, anonymous_id=anon, user_id=f"u-{anon}", email=f"{anon}@example.com",
                consent={"email": True}, at=START + at,
            ),
            product_added(
                item("p1", price=price), store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id,
                at=START + at + timedelta(seconds=1),
            ),
        ]
    )  # fmt: skip


def order(engine: Engine, shop: Shop, anon: str, cart_id: str | None, order_id: str, value: int) -> None:
    engine.append(
        [
            order_completed(
                store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id, order_id=order_id, value=value,
                at=START + 3 * HOUR,
            )
        ]
    )  # fmt: skip


def groups(engine: Engine, shop: Shop) -> dict[str, str]:
    with engine.database.read() as uow:
        return {c.cart_id: str(c.group) for c in uow.carts.page(shop.store_id, None, 10_000, None)}


def reminder_of(engine: Engine, shop: Shop, cart_id: str) -> str:
    with engine.database.read() as uow:
        (step,) = [s for s in uow.outbox.for_cart(shop.store_id, cart_id) if s.name == "reminder"]
    return step.step_id


@pytest.fixture
def world(engine: Engine, inbox: Inbox) -> tuple[Shop, Expected]:
    """240 one-cart shoppers, one shopper with two carts, a cancelled order, a conversion before abandonment,
    and another store with the same order ids; orders at 3 h (after the 1 h reminder), some after a click."""
    shop, other = add_shop(engine), add_shop(engine)
    anons = {f"cart-{n:03d}": f"anon-{n:03d}" for n in range(CARTS)}
    for n, (cart_id, anon) in enumerate(anons.items()):
        add_cart(engine, shop, anon, cart_id, 1000 + 7 * n)
        add_cart(engine, other, anon, cart_id, 1000)
    add_cart(engine, shop, "twice", "two-a", 4000)
    add_cart(engine, shop, "twice", "two-b", 6000, at=timedelta(minutes=1))
    add_cart(engine, shop, "early", "converted", 3000)
    engine.append(
        [
            order_completed(
                store_id=shop.store_id,
                anonymous_id="early",
                cart_id="converted",
                at=START + timedelta(minutes=10),
            )
        ]
    )
    engine.advance_clock(START + 2 * HOUR)  # abandoned at 0:30, groups given, reminders sent at 1:30

    group_of = groups(engine, shop)
    revenue = dict.fromkeys([*anons, "two-a", "two-b"], 0)
    for n, (cart_id, anon) in enumerate(anons.items()):
        treated = group_of[cart_id] == "treated"
        if (treated and n % 3 == 0) or (not treated and n % 5 == 0):
            if treated and n % 6 == 0:  # clicked the reminder first
                step_id = reminder_of(engine, shop, cart_id)
                engine.append(
                    [
                        event(
                            EventKind.MESSAGE_CLICKED,
                            store_id=shop.store_id,
                            anonymous_id=anon,
                            at=START + timedelta(minutes=150),
                            properties={"step_id": step_id, "channel": "email"},
                        )
                    ]
                )
            order(engine, shop, anon, cart_id, f"o-{n}", 1000 + 7 * n + 500)
            order(engine, other, anon, cart_id, f"o-{n}", 99_999)  # same id, other store: never in shop's report
            revenue[cart_id] = 1000 + 7 * n + 500
    order(engine, shop, "twice", "two-b", "o-twice", 10_000)  # closes both of the shopper's carts: counted once
    revenue["two-a"] = 10_000  # on the first abandoned of the two
    engine.append(
        [
            order_completed(
                store_id=shop.store_id,
                anonymous_id="anon-001",
                cart_id="cart-001",
                order_id="o-cancelled",
                value=5000,
                at=START + 3 * HOUR,
            )
        ]
    )
    engine.append(
        [
            event(
                EventKind.ORDER_CANCELLED,
                store_id=shop.store_id,
                anonymous_id="anon-001",
                order_id="o-cancelled",
                at=START + 3 * HOUR + timedelta(minutes=1),
            )
        ]
    )
    engine.advance_clock(START + 4 * HOUR)
    return shop, Expected({c: (group_of[c] if group_of[c] != "None" else "treated", r) for c, r in revenue.items()})


def test_the_report_s_counts_revenue_and_incremental_figures_are_those_computed_by_hand(
    engine: Engine, inbox: Inbox, world: tuple[Shop, Expected]
) -> None:
    shop, expected = world
    with TestClient(create_app(engine, background=False)) as client:
        response = client.get(
            "/api/v1/reports/recovery",
            params={"since": START.isoformat(), "until": (START + DAY).isoformat()},
            headers=shop.admin,
        )
    assert response.status_code == 200, response.text
    report = response.json()

    by_group: dict[str, list[int]] = {"treated": [], "holdout": []}
    for group, revenue in expected.carts.values():
        by_group[group].append(revenue)
    t, h = by_group["treated"], by_group["holdout"]
    assert len(h) > 30 and len(t) > 100  # the holdout share gave both groups
    assert report["abandoned"]["carts"] == CARTS + 2  # the converted cart was never abandoned
    assert report["abandoned"]["value"] == sum(1000 + 7 * n for n in range(CARTS)) + 4000 + 6000
    for name, values in by_group.items():
        recovered = [v for v in values if v]
        assert report[name]["carts"] == len(values)
        assert report[name]["recovered"] == len(recovered)
        assert report[name]["revenue"] == sum(recovered)
        assert report[name]["recovery_rate"] == pytest.approx(len(recovered) / len(values))
    incremental = report["incremental"]
    rate = sum(1 for v in t if v) / len(t) - sum(1 for v in h if v) / len(h)
    assert incremental["recovery_rate"]["estimate"] == pytest.approx(rate)
    assert incremental["recovery_rate"]["low"] < rate < incremental["recovery_rate"]["high"]
    exact = round((Fraction(sum(t), len(t)) - Fraction(sum(h), len(h))) * len(t))
    assert incremental["revenue"] == exact
    assert incremental["revenue_low"] < exact < incremental["revenue_high"]
    emails = [m for m in inbox.sent if m.store_id == shop.store_id]  # the other store got its own
    channel_cost = round(len(emails) * EMAIL_COST * 100)  # USD cents, one email per treated cart
    assert len(emails) == len(t)
    assert (report["channel_cost"], report["incentive_cost"]) == (channel_cost, 0)
    assert report["net_incremental_revenue"] == exact - channel_cost
    assert report["last_touch"] == {
        "orders": sum(1 for v in t if v),
        "revenue": sum(t),
        "revenue_display": f"{sum(t) // 100}.{sum(t) % 100:02d}",
    }
    (email,) = report["channels"]
    clicks = sum(1 for n in range(0, CARTS, 6) if expected.carts[f"cart-{n:03d}"][0] == "treated")
    assert (email["key"], email["sends"], email["clicks"], email["revenue"]) == ("email", len(t), clicks, sum(t))


def test_the_report_needs_the_admin_key_and_sensible_times_and_defaults_to_the_last_30_days(
    engine: Engine, world: tuple[Shop, Expected]
) -> None:
    shop, expected = world
    with TestClient(create_app(engine, background=False)) as client:
        default = client.get("/api/v1/reports/recovery", headers=shop.admin)
        bad = client.get("/api/v1/reports/recovery", params={"since": "yesterday"}, headers=shop.admin)
        backwards = client.get(
            "/api/v1/reports/recovery",
            params={"since": (START + DAY).isoformat(), "until": START.isoformat()},
            headers=shop.admin,
        )
        anonymous = client.get("/api/v1/reports/recovery")
        later = client.get("/api/v1/reports/recovery", params={"since": (START + HOUR).isoformat()}, headers=shop.admin)

    assert default.status_code == 200 and default.json()["abandoned"]["carts"] == len(expected.carts)
    assert default.json()["until"] == (START + 4 * HOUR).isoformat()  # the engine clock
    assert (bad.status_code, backwards.status_code, anonymous.status_code) == (400, 400, 401)
    assert set(bad.json()) == {"code", "message"} and "since" in bad.json()["message"]
    empty = later.json()
    assert (empty["abandoned"]["carts"], empty["incremental"]) == (0, None)
    assert empty["not_enough_data"].startswith("not enough data")


def test_the_cli_prints_the_same_report_as_json_and_as_a_table(
    engine: Engine, world: tuple[Shop, Expected], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop, _ = world
    with TestClient(create_app(engine, background=False)) as client:
        api = client.get(
            "/api/v1/reports/recovery",
            params={"since": START.isoformat(), "until": (START + DAY).isoformat()},
            headers=shop.admin,
        ).json()
    config = tmp_path / "cartrecover.toml"
    config.write_text('[measure]\nchannel_cost = { email = "0.001" }\n')
    window = ["--since", START.isoformat(), "--until", (START + DAY).isoformat()]
    common = ["--config", str(config), "--data-dir", str(tmp_path / "data"), "--store", shop.name]

    assert cli.main(["report", *common, *window, "--json"]) == 0
    printed: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert printed == api

    assert cli.main(["report", *common, *window]) == 0
    table = capsys.readouterr().out
    treated = api["treated"]
    assert f"treated{treated['carts']:>11}{treated['recovered']:>11}" in table
    assert "Incremental recovery rate:" in table and "Net incremental revenue:" in table
    assert cli.main(["report", *common, "--since", "nonsense"]) == 1


def test_both_reports_are_computed_off_the_server_s_event_loop(
    engine: Engine, world: tuple[Shop, Expected], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A month's report takes about a second on a big store: computed on the event loop, it would hold up every
    event the server acknowledges meanwhile."""
    shop, _ = world
    on_the_loop: dict[str, bool] = {}

    def noting(name: str, compute: Callable[..., Any]) -> Callable[..., Any]:
        def noted(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                on_the_loop[name] = True
            except RuntimeError:
                on_the_loop[name] = False
            return compute(*args, **kwargs)

        return noted

    monkeypatch.setattr(engine, "recovery_report", noting("report", engine.recovery_report))
    monkeypatch.setattr(reports, "daily", noting("daily", reports.daily))
    with TestClient(create_app(engine, background=False)) as client:
        whole = client.get("/api/v1/reports/recovery", headers=shop.admin)
        daily = client.get("/api/v1/reports/recovery/daily", headers=shop.admin)

    assert (whole.status_code, daily.status_code) == (200, 200)
    assert whole.json()["abandoned"]["carts"] > 0 and daily.json()["days"]
    assert on_the_loop == {"report": False, "daily": False}
