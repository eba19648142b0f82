"""Coupon codes are created in the shop before a message names them: each issuer against a local fake of its
platform over real HTTP, then through the engine on the manual clock with a store whose `coupons` URL points
at the fake Shopify.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cartrecover.adapters.shopify.coupons import ShopifyCoupons
from cartrecover.adapters.woocommerce.coupons import WooCommerceCoupons
from cartrecover.bootstrap import make_clock, open_coupon_issuers, open_database, open_event_log
from cartrecover.domain.contact import address_key
from cartrecover.domain.journey import StepStatus
from cartrecover.engine import Engine
from cartrecover.errors import ConfigError, PermanentDelivery, RetryableDelivery
from cartrecover.ports.channels import OutboundMessage
from cartrecover.settings import Settings, StoreConfig
from tests.conftest import START, Shop, make_settings
from tests.factories import random_id
from tests.fakes import shopify_admin, woocommerce_rest
from tests.unit.test_journeys import Recorder, abandon, steps

HOUR = timedelta(hours=1)
EXPIRES = datetime(2026, 1, 8, 10, 0, tzinfo=UTC)
LAST_CHANCE_DUE_BY = START + 4 * 24 * HOUR


@pytest.fixture
def shopify() -> Iterator[shopify_admin.FakeShopify]:
    with shopify_admin.running() as fake:
        yield fake


@pytest.fixture
def woocommerce() -> Iterator[woocommerce_rest.FakeWooCommerce]:
    with woocommerce_rest.running() as fake:
        yield fake


# Shopify, against its fake


def test_shopify_creates_a_one_use_percentage_code_that_ends_when_the_message_says(
    shopify: shopify_admin.FakeShopify,
) -> None:
    ShopifyCoupons.from_url(shopify.url()).issue(1, "CR-ABC", 10, EXPIRES, starts_at=EXPIRES - 72 * HOUR)

    created = shopify.discounts["CR-ABC"]
    assert created["customerGets"] == {"value": {"percentage": 0.1}, "items": {"all": True}}
    assert created["usageLimit"] == 1 and created["appliesOncePerCustomer"] is True
    assert datetime.fromisoformat(created["endsAt"]) == EXPIRES
    assert datetime.fromisoformat(created["startsAt"]) == EXPIRES - 72 * HOUR
    assert created["context"] == {"all": "ALL"}


def test_shopify_takes_a_code_that_exists_as_issued(shopify: shopify_admin.FakeShopify) -> None:
    issuer = ShopifyCoupons.from_url(shopify.url())
    issuer.issue(1, "CR-TWICE", 10, EXPIRES, starts_at=START)
    issuer.issue(1, "CR-TWICE", 10, EXPIRES, starts_at=START)

    assert list(shopify.discounts) == ["CR-TWICE"] and shopify.requests == 2


@pytest.mark.parametrize("trouble", ["throttled", "429", "503"])
def test_shopify_throttled_or_down_is_retryable(shopify: shopify_admin.FakeShopify, trouble: str) -> None:
    shopify.throttle() if trouble == "throttled" else shopify.fail(int(trouble))

    with pytest.raises(RetryableDelivery):
        ShopifyCoupons.from_url(shopify.url()).issue(1, "CR-LATER", 10, EXPIRES, starts_at=START)
    assert shopify.discounts == {}


def test_shopify_rejecting_the_token_is_retryable_because_it_is_our_configuration(
    shopify: shopify_admin.FakeShopify,
) -> None:
    with pytest.raises(RetryableDelivery, match="401"):
        ShopifyCoupons.from_url(shopify.url(token="shpat_wrong")).issue(1, "CR-X", 10, EXPIRES, starts_at=START)


def test_shopify_refusing_the_code_is_permanent(shopify: shopify_admin.FakeShopify) -> None:
    issuer = ShopifyCoupons.from_url(shopify.url())
    with pytest.raises(PermanentDelivery, match=r"Value must be 0\.\.1"):
        issuer.issue(1, "CR-TOO-MUCH", 150, EXPIRES, starts_at=START)
    shopify.refuse("EXCEEDED_MAX", "The shop has too many discount codes")
    with pytest.raises(PermanentDelivery, match="too many discount codes"):
        issuer.issue(1, "CR-FULL", 10, EXPIRES, starts_at=START)
    assert shopify.discounts == {}


def test_shopify_unreachable_is_retryable(shopify: shopify_admin.FakeShopify) -> None:
    with shopify_admin.running() as gone:
        url = gone.url()
    with pytest.raises(RetryableDelivery, match="unreachable"):
        ShopifyCoupons.from_url(url).issue(1, "CR-X", 10, EXPIRES, starts_at=START)


# WooCommerce, against its fake


def test_woocommerce_creates_a_one_use_percent_coupon_that_expires_when_the_message_says(
    woocommerce: woocommerce_rest.FakeWooCommerce,
) -> None:
    WooCommerceCoupons.from_url(woocommerce.url()).issue(1, "CR-ABC", 10, EXPIRES)

    created = woocommerce.coupons["CR-ABC"]
    assert (created["discount_type"], created["amount"]) == ("percent", "10.00")
    assert created["usage_limit"] == 1 and created["individual_use"] is True
    assert datetime.fromisoformat(created["date_expires"]) == EXPIRES


def test_woocommerce_takes_a_code_that_exists_as_issued(woocommerce: woocommerce_rest.FakeWooCommerce) -> None:
    issuer = WooCommerceCoupons.from_url(woocommerce.url())
    issuer.issue(1, "CR-TWICE", 10, EXPIRES)
    issuer.issue(1, "CR-TWICE", 10, EXPIRES)

    assert list(woocommerce.coupons) == ["CR-TWICE"] and woocommerce.requests == 2


@pytest.mark.parametrize("status", [429, 500, 503])
def test_woocommerce_throttled_or_down_is_retryable(woocommerce: woocommerce_rest.FakeWooCommerce, status: int) -> None:
    woocommerce.fail(status)
    with pytest.raises(RetryableDelivery):
        WooCommerceCoupons.from_url(woocommerce.url()).issue(1, "CR-LATER", 10, EXPIRES)


def test_woocommerce_rejecting_the_keys_is_retryable(woocommerce: woocommerce_rest.FakeWooCommerce) -> None:
    with pytest.raises(RetryableDelivery, match="woocommerce_rest_cannot_create"):
        WooCommerceCoupons.from_url(woocommerce.url(secret="cs_wrong")).issue(1, "CR-X", 10, EXPIRES)


def test_woocommerce_refusing_the_coupon_is_permanent(woocommerce: woocommerce_rest.FakeWooCommerce) -> None:
    woocommerce.fail(400, "rest_invalid_param", "Invalid parameter(s): amount")
    with pytest.raises(PermanentDelivery, match="rest_invalid_param"):
        WooCommerceCoupons.from_url(woocommerce.url()).issue(1, "CR-X", 10, EXPIRES)


def test_coupons_urls_are_checked_at_start_up(tmp_path: Path) -> None:
    def settings(url: str) -> Settings:
        return make_settings(tmp_path, stores=(StoreConfig(name="s", coupons=url),))

    with pytest.raises(ConfigError, match=r"stores\.s\.coupons: no issuer for 'magento'"):
        open_coupon_issuers(settings("magento://shop.example"))
    with pytest.raises(ConfigError, match="token"):
        open_coupon_issuers(settings("shopify://x.myshopify.com"))
    with pytest.raises(ConfigError, match="secret"):
        open_coupon_issuers(settings("woocommerce://shop.example?key=ck_1"))
    assert "shpat_secret" not in repr(StoreConfig(name="s", coupons="shopify://x.myshopify.com?token=shpat_secret"))


# Through the engine, on the manual clock


class Checkout(Recorder):
    """A channel that also notes which codes the shop knew at the moment each message went out."""

    def __init__(self, shop: shopify_admin.FakeShopify) -> None:
        super().__init__()
        self.shop = shop
        self.known_at_send: list[set[str]] = []

    def send(self, message: OutboundMessage) -> str:
        self.known_at_send.append(set(self.shop.discounts))
        return super().send(message)


@pytest.fixture
def email(shopify: shopify_admin.FakeShopify) -> Checkout:
    return Checkout(shopify)


@pytest.fixture
def engine(tmp_path: Path, shopify: shopify_admin.FakeShopify, email: Checkout) -> Iterator[Engine]:
    store = StoreConfig(name="linen", write_key=random_id("wk"), admin_key=random_id("ak"), coupons=shopify.url())
    settings = make_settings(tmp_path, stores=(store,))
    built = Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, START),
        senders={"email": email},
        coupon_issuers=open_coupon_issuers(settings),
        secret=b"test-secret",
    )
    built.sync_configured_stores()
    yield built
    built.close()


@pytest.fixture
def shop(engine: Engine) -> Shop:
    store = engine.stores.by_name("linen")
    assert store is not None
    return Shop(store.name, store.store_id, store.write_key, "", "", "")


def last_chance(email: Recorder) -> tuple[int, OutboundMessage]:
    (found,) = [(i, m) for i, m in enumerate(email.sent) if m.step_id.endswith("#2")]
    return found


def test_the_last_chance_code_exists_in_the_shop_before_the_message_that_names_it_goes_out(
    engine: Engine, shop: Shop, email: Checkout, shopify: shopify_admin.FakeShopify
) -> None:
    cart_id, _ = abandon(engine, shop, price=25000)

    engine.advance_clock(LAST_CHANCE_DUE_BY)

    index, message = last_chance(email)
    code = message.text.split("code ")[1].split()[0]
    assert list(shopify.discounts) == [code] and code in email.known_at_send[index]
    with engine.database.read() as uow:
        step = next(s for s in uow.outbox.for_cart(shop.store_id, cart_id) if s.name == "last-chance")
    assert step.status is StepStatus.SENT and step.coupon == code and step.sent_at is not None
    created = shopify.discounts[code]
    assert created["customerGets"]["value"]["percentage"] == 0.1 and created["usageLimit"] == 1
    assert datetime.fromisoformat(created["endsAt"]) == step.sent_at + 72 * HOUR  # what the restore link honours
    assert len(email.sent) == 3 and shopify.requests == 1  # the reminders carry no code and ask for none


def test_a_throttled_shop_delays_the_step_and_it_goes_with_its_code_once_the_shop_answers(
    engine: Engine, shop: Shop, email: Checkout, shopify: shopify_admin.FakeShopify
) -> None:
    cart_id, _ = abandon(engine, shop, price=25000)
    engine.advance_clock(START + 48 * HOUR)
    shopify.throttle()

    engine.advance_clock(LAST_CHANCE_DUE_BY)

    assert [m.step_id[-2:] for m in email.sent] == ["#0", "#1"]
    assert steps(engine, shop, cart_id)["last-chance"] is StepStatus.SCHEDULED
    with engine.database.read() as uow:
        notes = [e for e in uow.timeline.for_cart(shop.store_id, cart_id) if e["kind"] == "message"]
    assert notes[-1]["status"] == "retrying" and "throttled" in notes[-1]["reason"]

    shopify.trouble = None
    engine.advance_clock(LAST_CHANCE_DUE_BY + 2 * timedelta(minutes=1))

    index, message = last_chance(email)
    assert list(shopify.discounts) == [message.text.split("code ")[1].split()[0]]
    assert set(shopify.discounts) <= email.known_at_send[index]
    assert steps(engine, shop, cart_id)["last-chance"] is StepStatus.SENT
    # The expiry was fixed at the first claim: the shop, the step (what the restore link honours) and the
    # message agree, though the message went out later.
    with engine.database.read() as uow:
        step = next(s for s in uow.outbox.for_cart(shop.store_id, cart_id) if s.name == "last-chance")
    (created,) = shopify.discounts.values()
    assert step.sent_at is not None and step.coupon_expires is not None
    assert datetime.fromisoformat(created["endsAt"]) == step.coupon_expires < step.sent_at + 72 * HOUR
    assert f"{step.coupon_expires.day} {step.coupon_expires:%B %Y, %H:%M} UTC" in message.text


def test_a_resent_step_does_not_create_its_code_twice(
    engine: Engine, shop: Shop, email: Checkout, shopify: shopify_admin.FakeShopify
) -> None:
    cart_id, _ = abandon(engine, shop, price=25000)
    engine.advance_clock(START + 48 * HOUR)
    email.fail_with = RetryableDelivery("421 try again later")
    engine.advance_clock(LAST_CHANCE_DUE_BY)
    assert len(shopify.discounts) == 1 and steps(engine, shop, cart_id)["last-chance"] is StepStatus.SCHEDULED

    email.fail_with = None
    engine.advance_clock(LAST_CHANCE_DUE_BY + 2 * timedelta(minutes=1))

    _, message = last_chance(email)
    assert list(shopify.discounts) == [message.text.split("code ")[1].split()[0]]
    assert shopify.requests == 2  # asked again, told the code is taken, and went on
    assert steps(engine, shop, cart_id)["last-chance"] is StepStatus.SENT


def test_a_shop_that_refuses_the_code_skips_the_step_without_suppressing_the_shopper(
    engine: Engine, shop: Shop, email: Checkout, shopify: shopify_admin.FakeShopify
) -> None:
    cart_id, anon = abandon(engine, shop, price=25000)
    engine.advance_clock(START + 48 * HOUR)
    shopify.refuse("EXCEEDED_MAX", "The shop has too many discount codes")

    engine.advance_clock(LAST_CHANCE_DUE_BY)

    assert [m.step_id[-2:] for m in email.sent] == ["#0", "#1"]
    with engine.database.read() as uow:
        step = next(s for s in uow.outbox.for_cart(shop.store_id, cart_id) if s.name == "last-chance")
        suppressed = uow.suppressions.reason(shop.store_id, "email", address_key("email", f"{anon}@example.com"))
    assert step.status is StepStatus.SKIPPED and "too many discount codes" in (step.reason or "")
    assert suppressed is None
