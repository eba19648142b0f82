"""The holdout: a stable share of shoppers who are tracked but never contacted, on any channel."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from cartrecover.bootstrap import make_clock, open_database, open_event_log
from cartrecover.domain.holdout import Group, assign
from cartrecover.engine import Engine
from cartrecover.errors import ConfigError
from cartrecover.ports.channels import OutboundMessage
from cartrecover.settings import load_settings
from tests.conftest import START, add_shop, make_settings
from tests.factories import identified, item, product_added, random_id


class Inbox:
    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> str:
        self.sent.append(message)
        return message.message_id


def engine_with(tmp_path: Path, share: float, inbox: Inbox) -> Engine:
    settings = make_settings(tmp_path, holdout_share=share)
    return Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, START),
        senders={"email": inbox, "sms": inbox, "push": inbox},
        secret=b"k",
    )


def test_the_assignment_is_deterministic_and_close_to_the_share() -> None:
    groups = [assign(1, f"s{n}", 0.1) for n in range(10_000)]

    assert groups == [assign(1, f"s{n}", 0.1) for n in range(10_000)]
    assert 900 <= Counter(groups)[Group.HOLDOUT] <= 1100
    assert all(g is Group.TREATED for g in (assign(1, f"s{n}", 0.0) for n in range(1000)))
    assert any(assign(1, f"s{n}", 0.5) != assign(2, f"s{n}", 0.5) for n in range(100))  # stores hash apart


def test_holdout_shoppers_get_nothing_on_any_channel_and_their_carts_say_why(tmp_path: Path) -> None:
    inbox = Inbox()
    engine = engine_with(tmp_path, 0.5, inbox)
    shop = add_shop(engine)
    for n in range(60):
        anon = f"anon-{n}"
        engine.append(
            [
                identified(
                    store_id=shop.store_id,
                    anonymous_id=anon,
                    email=f"{anon}@example.com",
                    phone="+4915112345678",
                    consent={"email": True, "sms": True, "push": True},
                ),
                product_added(item("p1", price=20000), store_id=shop.store_id, anonymous_id=anon, cart_id=f"c{n}"),
            ]
        )

    engine.advance_clock(START + timedelta(days=4))

    with engine.database.read() as uow:
        carts = uow.carts.page(shop.store_id, None, 1000, None)
        held = [c for c in carts if c.group == Group.HOLDOUT]
        treated = [c for c in carts if c.group == Group.TREATED]
        decisions = {
            c.cart_id: [e for e in uow.timeline.for_cart(shop.store_id, c.cart_id) if e["kind"] == "decision"]
            for c in held
        }
        held_steps = sum(len(uow.outbox.for_cart(shop.store_id, c.cart_id)) for c in held)
    assert len(held) + len(treated) == 60 and 15 <= len(held) <= 45
    recipients = {m.to for m in inbox.sent}
    for cart in held:
        assert f"anon-{cart.cart_id[1:]}@example.com" not in recipients
        assert [d["policy"] for d in decisions[cart.cart_id]] == ["holdout"]
        assert cart.status.value == "abandoned"
    assert held_steps == 0
    assert {f"anon-{c.cart_id[1:]}@example.com" for c in treated} <= recipients
    engine.close()


def test_the_group_stays_with_the_shopper_across_devices(tmp_path: Path) -> None:
    inbox = Inbox()
    engine = engine_with(tmp_path, 0.5, inbox)
    shop = add_shop(engine)
    user = random_id("u")
    engine.append(
        [
            identified(
                store_id=shop.store_id,
                anonymous_id="laptop",
                user_id=user,
                email="x@example.com",
                consent={"email": True},
            ),
            product_added(item("p1"), store_id=shop.store_id, anonymous_id="laptop", cart_id="first"),
        ]
    )
    engine.advance_clock(START + timedelta(hours=1))
    engine.append(
        [
            product_added(
                item("p2"),
                store_id=shop.store_id,
                anonymous_id="phone",
                cart_id="second",
                at=START + timedelta(hours=2),
            ),
            identified(
                store_id=shop.store_id, anonymous_id="phone", user_id=user, at=START + timedelta(hours=2, minutes=1)
            ),
        ]
    )

    engine.advance_clock(START + timedelta(hours=4))

    with engine.database.read() as uow:
        first, second = uow.carts.get(shop.store_id, "first"), uow.carts.get(shop.store_id, "second")
    assert first is not None and second is not None
    assert first.group is not None and second.group == first.group


@pytest.mark.parametrize("share", [-0.1, 1.0])
def test_a_holdout_share_outside_0_to_1_is_refused_when_the_settings_are_read(tmp_path: Path, share: float) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(tmp_path, holdout_share=share)

    assert "holdout_share" in refused.value.message
    config = tmp_path / "cartrecover.toml"
    config.write_text(f'[[stores]]\nname = "x"\nholdout_share = {share}\n')
    with pytest.raises(ConfigError):
        load_settings(config, env={})
