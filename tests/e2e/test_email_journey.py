"""Recovery emails end to end: the engine (configured with an smtp:// channel URL, on the manual clock) sends to a
real SMTP server (aiosmtpd on 127.0.0.1) that can be stopped, or told to refuse a recipient. On both stacks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dkim
import pytest

from cartrecover.bootstrap import build_engine
from cartrecover.domain.events import LineItem
from cartrecover.domain.journey import Step, StepStatus
from cartrecover.engine import Engine
from tests.conftest import START, Shop, add_shop, make_settings
from tests.e2e.conftest import Stack, on_both_stacks
from tests.factories import identified, item, product_added, random_id
from tests.smtp_server import DkimKeyPair, MailServer, Received, dkim_key_pair, running

pytestmark = on_both_stacks

HOUR = timedelta(hours=1)
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    with running(MailServer()) as server:
        yield server


@pytest.fixture
def keys(tmp_path: Path) -> DkimKeyPair:
    return dkim_key_pair(tmp_path / "keys")


@pytest.fixture
def engine(tmp_path: Path, smtp: MailServer, keys: DkimKeyPair, stack: Stack) -> Iterator[Engine]:
    url = (
        f"smtp://127.0.0.1:{smtp.port}?from=Linen%20%26%20Co%20<carts@shop.example>&timeout=5"
        f"&dkim_domain=shop.example&dkim_selector=s1&dkim_key={keys.key_file}"
    )
    built = build_engine(make_settings(tmp_path, channels={"email": url}, **stack.settings), start=START)
    yield built
    built.close()


@pytest.fixture
def shop(engine: Engine) -> Shop:
    return add_shop(engine)


def abandon(engine: Engine, shop: Shop, *lines: LineItem) -> tuple[str, str]:
    """A signed-in shopper who consented to email puts lines in a cart and leaves; returns (cart id, email)."""
    cart_id, anon = random_id("cart"), random_id("anon")
    address = f"{anon}@example.com"
    engine.append(
        [
            identified(
                store_id=shop.store_id,
                anonymous_id=anon,
                user_id=random_id("u"),
                email=address,
                consent={"email": True},
            ),
            product_added(
                *(lines or (item("p1", price=2500, name="Linen shirt"),)),
                store_id=shop.store_id,
                anonymous_id=anon,
                cart_id=cart_id,
                at=START + timedelta(seconds=1),
            ),
        ]
    )
    return cart_id, address


def steps(engine: Engine, shop: Shop, cart_id: str) -> dict[str, Step]:
    with engine.database.read() as uow:
        return {s.name: s for s in uow.outbox.for_cart(shop.store_id, cart_id)}


def sent_to(smtp: MailServer, address: str) -> list[Received]:
    return [m for m in smtp.received if m.rcpt_tos == [address]]


def test_an_abandoned_carts_reminder_arrives_once_signed_with_the_cart_and_one_click_unsubscribe(
    engine: Engine, shop: Shop, smtp: MailServer, keys: DkimKeyPair
) -> None:
    cart_id, address = abandon(
        engine,
        shop,
        item("p1", quantity=2, price=2500, name="Linen shirt", image_url="https://cdn.shop.example/shirt.jpg"),
        item("p2", price=1250, name="Canvas tote", image_url="https://cdn.shop.example/tote.jpg"),
    )

    engine.advance_clock(START + 2 * HOUR)
    engine.advance_clock(START + 3 * HOUR)

    (got,) = smtp.received
    reminder = steps(engine, shop, cart_id)["reminder"]
    mail = got.message
    assert got.rcpt_tos == [address] and got.mail_from == "carts@shop.example"
    assert mail["Message-ID"] == reminder.message_id and reminder.status is StepStatus.SENT
    assert mail["From"] == "Linen & Co <carts@shop.example>" and mail["To"] == address
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith("http://127.0.0.1:8080/u/")
    assert dkim.verify(got.raw, dnsfunc=keys.dns("shop.example", "s1"))

    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    body, page = text.get_content(), html.get_content()
    for part in (body, page):
        assert "Linen shirt" in part and "Canvas tote" in part
        assert "25.00 USD" in part and "12.50 USD" in part and "62.50 USD" in part  # prices and the total
        assert "http://127.0.0.1:8080/r/" in part and unsubscribe in part
    assert 'src="https://cdn.shop.example/shirt.jpg"' in page and 'src="https://cdn.shop.example/tote.jpg"' in page
    assert "2 × Linen shirt" in body and '<span class="quantity">2</span>' in page


def test_each_step_of_the_journey_arrives_once_under_its_own_message_id(
    engine: Engine, shop: Shop, smtp: MailServer
) -> None:
    cart_id, address = abandon(engine, shop, item("p1", price=25000, name="Wool coat"))

    for hours in (2, 3, 30, 50, 80, 100):
        engine.advance_clock(START + hours * HOUR)

    planned = steps(engine, shop, cart_id)
    received = sent_to(smtp, address)
    assert [m.message["Message-ID"] for m in received] == [
        planned[name].message_id for name in ("reminder", "second-reminder", "last-chance")
    ]
    last = received[-1].message
    coupon = planned["last-chance"].coupon
    assert coupon is not None and coupon.startswith("CR-")
    assert last["Subject"].startswith("10 % off your cart")
    for kind in ("plain", "html"):
        part = last.get_body((kind,))
        assert part is not None and coupon in part.get_content() and "Valid until" in part.get_content()


def test_a_product_name_with_markup_is_escaped_in_the_html(engine: Engine, shop: Shop, smtp: MailServer) -> None:
    abandon(
        engine,
        shop,
        item("p1", price=999, name=SCRIPT, image_url='https://cdn.example/x.jpg" onerror="alert(2)'),
        item("p2", price=999, name="Pixel", image_url="javascript:alert(3)"),
    )

    engine.advance_clock(START + 2 * HOUR)

    (got,) = smtp.received
    html, text = got.message.get_body(("html",)), got.message.get_body(("plain",))
    assert html is not None and text is not None
    page = html.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert 'onerror="alert(2)' not in page and "&#34; onerror=&#34;alert(2)" in page
    assert "javascript:" not in page
    assert SCRIPT in text.get_content()  # plain text is not HTML: shown as it is


def test_with_the_server_refusing_connections_the_step_is_retried_with_backoff_and_arrives_once_when_it_is_back(
    engine: Engine, shop: Shop, smtp: MailServer
) -> None:
    cart_id, address = abandon(engine, shop)
    smtp.stop()

    engine.advance_clock(START + 2 * HOUR)
    first = steps(engine, shop, cart_id)["reminder"]
    engine.advance_clock(START + 2 * HOUR + timedelta(minutes=6))
    second = steps(engine, shop, cart_id)["reminder"]
    assert (first.status, first.attempts) == (StepStatus.SCHEDULED, 1)
    assert (second.status, second.attempts) == (StepStatus.SCHEDULED, 2)
    assert second.due_at - START - 2 * HOUR > first.due_at - START - 2 * HOUR  # the wait grows
    assert first.reason is not None and "refused" in first.reason.lower()

    smtp.start()
    engine.advance_clock(START + 3 * HOUR)
    engine.advance_clock(START + 20 * HOUR)

    (got,) = sent_to(smtp, address)
    reminder = steps(engine, shop, cart_id)["reminder"]
    assert (reminder.status, reminder.attempts) == (StepStatus.SENT, 3)
    assert got.message["Message-ID"] == reminder.message_id == first.message_id
    with engine.database.read() as uow:
        notes = [e["status"] for e in uow.timeline.for_cart(shop.store_id, cart_id) if e["kind"] == "message"]
    assert notes == ["retrying", "retrying", "sent"]


def test_a_550_suppresses_the_address_and_later_steps_to_it_are_skipped(
    engine: Engine, shop: Shop, smtp: MailServer
) -> None:
    bounced_cart, bounced = abandon(engine, shop)
    other_cart, other = abandon(engine, shop)
    smtp.mailbox.refused[bounced] = "550 5.1.1 No such user"
    engine.advance_clock(START + 2 * HOUR)
    del smtp.mailbox.refused[bounced]  # the server would take it now: only the suppression stops what follows

    engine.advance_clock(START + 4 * 24 * HOUR)

    assert sent_to(smtp, bounced) == []
    bounced_steps = steps(engine, shop, bounced_cart)
    assert {s.status for s in bounced_steps.values()} == {StepStatus.SKIPPED}
    assert bounced_steps["reminder"].attempts == 1 and "550 5.1.1 No such user" in (
        bounced_steps["reminder"].reason or ""
    )
    with engine.database.read() as uow:
        reasons = [
            e.get("reason", "") for e in uow.timeline.for_cart(shop.store_id, bounced_cart) if e["kind"] == "step"
        ]
    assert len([r for r in reasons if "suppressed" in r and "550" in r]) == 2  # the second reminder and last chance
    # Suppression is per address: the other shopper gets every step.
    assert len(sent_to(smtp, other)) == 3
    assert {s.status for s in steps(engine, shop, other_cart).values()} == {StepStatus.SENT}
