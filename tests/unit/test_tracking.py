"""Tracking over HTTP: restore links, unsubscribe links and the on-site nudge, on the manual clock.

Journeys run with the console channel, which writes every message to `<data_dir>/messages.jsonl`; the links
followed here are the ones in those messages.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from cartrecover.bootstrap import build_engine
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.cart import Cart
from cartrecover.domain.journey import StepStatus
from cartrecover.domain.links import LinkSigner
from cartrecover.engine import Engine
from cartrecover.entrypoints.http.tracking import restore_target, with_coupon
from cartrecover.errors import ConfigError
from cartrecover.ports.stores import Store
from cartrecover.settings import load_settings
from tests.conftest import START, Shop, add_shop, move_clock
from tests.factories import identified, item, product_added, random_id

NO_EXPLORING = DecisionConfig(exploration=0.0)  # no random plans: the configured journey runs

HOUR = timedelta(hours=1)
DAY = 24 * HOUR
Client = TestClient[Litestar]


def abandon(
    engine: Engine,
    shop: Shop,
    *,
    price: int = 2500,
    consent: dict[str, bool] | None = None,
    phone: str | None = None,
    restore_url: str | None = "https://shop.example/cart/recover?key=k1",
) -> tuple[str, str]:
    """A signed-in shopper leaves a cart; returns (cart id, anonymous id)."""
    cart_id, anon = random_id("cart"), random_id("anon")
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
                restore_url=restore_url,
                at=START + timedelta(seconds=1),
            ),
        ]
    )
    return cart_id, anon


def messages(engine: Engine, cart_id: str) -> list[dict[str, Any]]:
    """What the console channel wrote for the cart's steps, oldest first."""
    path = engine.settings.data_dir / "messages.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [m for m in lines if m["step_id"].startswith(f"{cart_id}@")]


def restore_path(message: dict[str, Any]) -> str:
    found = re.search(r"https?://[^/\s]+(/r/[A-Za-z0-9_.-]+)", message["text"])
    assert found, message["text"]
    return found[1]


def unsubscribe_path(message: dict[str, Any]) -> str:
    return urlsplit(str(message["headers"]["List-Unsubscribe"]).strip("<>")).path


def step_of(engine: Engine, shop: Shop, cart_id: str, name: str) -> Any:
    with engine.database.read() as uow:
        return next(s for s in uow.outbox.for_cart(shop.store_id, cart_id) if s.name == name)


def timeline(engine: Engine, shop: Shop, cart_id: str, kind: str) -> list[dict[str, Any]]:
    with engine.database.read() as uow:
        return [e for e in uow.timeline.for_cart(shop.store_id, cart_id) if e["kind"] == kind]


def test_a_click_redirects_to_the_restore_url_with_the_coupon_and_lands_on_the_timeline(
    engine: Engine, shop: Shop, client: Client
) -> None:
    cart_id, _ = abandon(engine, shop, price=20_000)
    move_clock(client, shop, START + 4 * DAY)
    last = messages(engine, cart_id)[-1]
    coupon = step_of(engine, shop, cart_id, "last-chance").coupon
    assert coupon and coupon.startswith("CR-")

    response = client.get(restore_path(last), follow_redirects=False)

    assert response.status_code == 302
    assert response.headers["location"] == f"https://shop.example/cart/recover?key=k1&coupon={coupon}"
    move_clock(client, shop, START + 4 * DAY + HOUR)
    clicks = timeline(engine, shop, cart_id, "click")
    assert [(c["step"], c["channel"]) for c in clicks] == [("last-chance", "email")]


def test_a_coupon_past_its_validity_is_no_longer_applied_or_offered(engine: Engine, shop: Shop, client: Client) -> None:
    cart_id, anon = abandon(engine, shop, price=20_000)
    move_clock(client, shop, START + 4 * DAY)
    last = messages(engine, cart_id)[-1]
    step = step_of(engine, shop, cart_id, "last-chance")
    move_clock(client, shop, step.sent_at + step.incentive.valid_for + HOUR)  # the cart is still recovering

    response = client.get(restore_path(last), follow_redirects=False)

    assert response.headers["location"] == "https://shop.example/cart/recover?key=k1"
    assert nudge(client, writeKey=shop.write_key, anonymousId=anon)["coupon"] is None


def test_every_click_is_recorded_and_a_step_without_coupon_links_plainly(
    engine: Engine, shop: Shop, client: Client
) -> None:
    cart_id, _ = abandon(engine, shop)
    move_clock(client, shop, START + 2 * HOUR)
    (first,) = messages(engine, cart_id)

    for _ in range(2):
        response = client.get(restore_path(first), follow_redirects=False)
        assert response.headers["location"] == "https://shop.example/cart/recover?key=k1"
    move_clock(client, shop, START + 3 * HOUR)

    assert len(timeline(engine, shop, cart_id, "click")) == 2


def test_a_cart_without_its_own_restore_url_uses_the_stores_pattern(engine: Engine, client: Client) -> None:
    shop = add_shop(engine, restore_url="https://shop.example/cart?cart_id={cart_id}")
    cart_id, _ = abandon(engine, shop, restore_url=None)
    move_clock(client, shop, START + 2 * HOUR)

    response = client.get(restore_path(messages(engine, cart_id)[0]), follow_redirects=False)

    assert response.status_code == 302
    assert response.headers["location"] == f"https://shop.example/cart?cart_id={cart_id}"


def test_a_restore_url_that_is_not_http_is_never_a_redirect_target(engine: Engine, shop: Shop, client: Client) -> None:
    cart_id, _ = abandon(engine, shop, restore_url="javascript:alert(document.cookie)")
    move_clock(client, shop, START + 2 * HOUR)

    response = client.get(restore_path(messages(engine, cart_id)[0]), follow_redirects=False)

    assert response.status_code == 200
    assert "location" not in response.headers
    assert "javascript" not in response.text and "Your cart is saved" in response.text


def _forged(token: str) -> str:
    body, mac = token.split(".")
    return f"{body}.{('B' if mac[0] == 'A' else 'A')}{mac[1:]}"


def test_forged_expired_and_other_kind_links_get_a_page_and_store_nothing(
    engine: Engine, shop: Shop, client: Client
) -> None:
    cart_id, _ = abandon(engine, shop)
    move_clock(client, shop, START + 2 * HOUR)
    (first,) = messages(engine, cart_id)
    restore, unsubscribe = restore_path(first), unsubscribe_path(first)
    step_id = first["step_id"]
    stranger = LinkSigner(b"not the engine's secret").token("restore", shop.store_id, step_id, "email", START + DAY)
    expired = engine.signer.token("restore", shop.store_id, step_id, "email", START + HOUR)
    before = engine.log.last_offset()

    refused = {
        "forged mac": client.get(f"/r/{_forged(restore[3:])}", follow_redirects=False),
        "another secret": client.get(f"/r/{stranger}", follow_redirects=False),
        "garbage": client.get("/r/not-a-token", follow_redirects=False),
        "unsubscribe token on /r": client.get(f"/r/{unsubscribe[3:]}", follow_redirects=False),
        "restore token on /u": client.post(f"/u/{restore[3:]}", data={"List-Unsubscribe": "One-Click"}),
        "expired": client.get(f"/r/{expired}", follow_redirects=False),
    }

    assert {name: r.status_code for name, r in refused.items()} == {
        **dict.fromkeys(refused, 404),
        "expired": 410,
    }
    assert all(r.headers["content-type"].startswith("text/html") for r in refused.values())
    assert all("location" not in r.headers for r in refused.values())
    assert engine.log.last_offset() == before
    assert timeline(engine, shop, cart_id, "click") == timeline(engine, shop, cart_id, "consent") == []


def test_a_restore_link_expires_after_30_days_with_a_410_but_its_unsubscribe_link_still_works(
    engine: Engine, shop: Shop, client: Client
) -> None:
    cart_id, _ = abandon(engine, shop)
    move_clock(client, shop, START + 2 * HOUR)
    (first,) = messages(engine, cart_id)
    move_clock(client, shop, START + 60 * DAY)
    before = engine.log.last_offset()

    assert client.get(restore_path(first), follow_redirects=False).status_code == 410
    assert engine.log.last_offset() == before
    assert client.post(unsubscribe_path(first), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert engine.log.last_offset() == before + 1


def test_an_unsubscribe_link_expires_a_year_after_the_offer(engine: Engine, shop: Shop, client: Client) -> None:
    cart_id, _ = abandon(engine, shop)
    move_clock(client, shop, START + 2 * HOUR)
    (first,) = messages(engine, cart_id)
    move_clock(client, shop, START + 400 * DAY)
    before = engine.log.last_offset()

    assert client.post(unsubscribe_path(first), data={"List-Unsubscribe": "One-Click"}).status_code == 410
    assert engine.log.last_offset() == before


def test_get_on_an_unsubscribe_link_shows_a_form_and_changes_nothing(
    engine: Engine, shop: Shop, client: Client
) -> None:
    cart_id, _ = abandon(engine, shop)
    move_clock(client, shop, START + 2 * HOUR)
    (first,) = messages(engine, cart_id)
    before = engine.log.last_offset()

    page = client.get(unsubscribe_path(first))
    move_clock(client, shop, START + 2 * DAY)

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text and "<script" not in page.text and "http" not in page.text
    assert engine.log.last_offset() == before
    assert step_of(engine, shop, cart_id, "second-reminder").status is StepStatus.SENT


@pytest.mark.parametrize(
    ("body", "reason"),
    [({"confirm": "yes"}, "unsubscribe link"), ({"List-Unsubscribe": "One-Click"}, "one-click unsubscribe")],
)
def test_posting_to_an_unsubscribe_link_stops_that_channel_only_and_twice_is_once(
    engine: Engine, shop: Shop, client: Client, body: dict[str, str], reason: str
) -> None:
    consent = {"email": True, "sms": True}
    cart_id, _ = abandon(engine, shop, price=20_000, consent=consent, phone="+4915112345678")
    move_clock(client, shop, START + 2 * HOUR)
    (first,) = messages(engine, cart_id)
    before = engine.log.last_offset()

    answers = [client.post(unsubscribe_path(first), data=body) for _ in range(2)]
    move_clock(client, shop, START + 5 * DAY)

    assert [a.status_code for a in answers] == [200, 200]
    assert "unsubscribed" in answers[1].text
    assert engine.log.last_offset() == before + 1
    second = step_of(engine, shop, cart_id, "second-reminder")
    assert (second.status, second.reason) == (StepStatus.SKIPPED, "no consent for email")
    last = step_of(engine, shop, cart_id, "last-chance")
    assert (last.status, last.channel.value) == (StepStatus.SENT, "sms")
    assert [m["channel"] for m in messages(engine, cart_id)] == ["email", "sms"]
    assert [e["opted_out"] for e in timeline(engine, shop, cart_id, "consent")] == [reason]


def nudge(client: Client, **params: str) -> Any:
    response = client.get("/v1/nudge", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    return response.json()["offer"]


def test_the_nudge_offers_the_visitors_own_cart_with_its_coupon_and_no_one_elses(
    engine: Engine, shop: Shop, client: Client
) -> None:
    other_shop = add_shop(engine)
    cart_id, anon = abandon(engine, shop, price=20_000)
    _, bystander = abandon(engine, shop, restore_url=None)
    move_clock(client, shop, START + 4 * DAY)
    coupon = step_of(engine, shop, cart_id, "last-chance").coupon

    offer = nudge(client, writeKey=shop.write_key, anonymousId=anon)

    assert (offer["cart_id"], offer["items"], offer["value"]) == (cart_id, 1, 20_000)
    assert (offer["coupon"], offer["percent"]) == (coupon, 10)
    followed = client.get(urlsplit(offer["restore_url"]).path, follow_redirects=False)
    assert followed.headers["location"] == f"https://shop.example/cart/recover?key=k1&coupon={coupon}"
    assert nudge(client, writeKey=other_shop.write_key, anonymousId=anon) is None
    assert nudge(client, writeKey=shop.write_key, anonymousId=random_id("anon")) is None
    assert nudge(client, writeKey=shop.write_key, anonymousId=bystander)["cart_id"] != cart_id


def test_the_nudge_takes_the_write_key_as_basic_auth_and_answers_errors_with_cors(
    engine: Engine, shop: Shop, client: Client
) -> None:
    cart_id, anon = abandon(engine, shop)
    move_clock(client, shop, START + 10 * timedelta(minutes=1))
    assert nudge(client, writeKey=shop.write_key, anonymousId=anon) is None  # still shopping: no offer
    move_clock(client, shop, START + 45 * timedelta(minutes=1))  # abandoned, nothing sent yet

    offer = client.get("/v1/nudge", params={"anonymousId": anon}, headers=shop.basic).json()["offer"]
    unknown = client.get("/v1/nudge", params={"writeKey": "nope", "anonymousId": anon})
    nameless = client.get("/v1/nudge", params={"writeKey": shop.write_key})
    preflight = client.options("/v1/nudge")

    assert (offer["cart_id"], offer["coupon"], offer["restore_url"]) == (
        cart_id,
        None,
        "https://shop.example/cart/recover?key=k1",
    )
    assert (unknown.status_code, unknown.json()["code"]) == (401, "unauthorized")
    assert (nameless.status_code, nameless.json()["code"]) == (400, "invalid_request")
    assert unknown.headers["access-control-allow-origin"] == nameless.headers["access-control-allow-origin"] == "*"
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["access-control-allow-headers"]


def test_the_nudge_script_is_served_as_javascript(client: Client) -> None:
    response = client.get("/v1/nudge.js")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "ajs_anonymous_id" in response.text and "/v1/nudge?writeKey=" in response.text


def _store(**settings: Any) -> Store:
    return Store(store_id=1, name="s", write_key="w", admin_key_hash="h", **settings)


def _cart(restore_url: str | None) -> Cart:
    return Cart(
        store_id=1, cart_id="c/1 2", shopper_id="s", created_at=START, last_activity_at=START, restore_url=restore_url
    )


def test_coupons_join_shopify_urls_as_a_discount_link_and_others_as_a_parameter() -> None:
    recover = "https://demo.myshopify.com/1/checkouts/abc/recover?key=k1"

    assert with_coupon(recover, "CR-1", "") == (
        "https://demo.myshopify.com/discount/CR-1?redirect=/1/checkouts/abc/recover%3Fkey%3Dk1"
    )
    assert with_coupon("https://shop.example/cart", "CR-1", "shopify") == (
        "https://shop.example/discount/CR-1?redirect=/cart"
    )
    assert (
        with_coupon("https://shop.example/cart?a=1#top", "CR-1", "") == "https://shop.example/cart?a=1&coupon=CR-1#top"
    )
    assert with_coupon("https://notmyshopify.com/cart", "CR-1", "") == "https://notmyshopify.com/cart?coupon=CR-1"
    assert with_coupon(recover, "CR-1", "query") == f"{recover}&coupon=CR-1"


def test_the_restore_target_falls_back_to_the_pattern_and_refuses_what_is_not_a_web_url() -> None:
    pattern = _store(restore_url="https://shop.example/cart?id={cart_id}")

    assert restore_target(_cart(None), pattern, None) == "https://shop.example/cart?id=c%2F1%202"
    assert (
        restore_target(_cart("javascript:alert(1)"), pattern, "X") == "https://shop.example/cart?id=c%2F1%202&coupon=X"
    )
    assert restore_target(_cart("https://a.example/\r\nSet-Cookie: x"), _store(), None) is None
    assert restore_target(_cart("//a.example/cart"), _store(), None) is None
    assert restore_target(_cart(None), _store(), "X") is None


def test_stores_take_their_restore_pattern_and_coupon_style_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "cartrecover.toml"
    config.write_text(
        '[[stores]]\nname = "s"\nwrite_key = "wk_s"\nadmin_key = "ak_s"\n'
        'restore_url = "https://s.example/cart/{cart_id}"\ncoupon_style = "shopify"\n'
    )
    engine = build_engine(
        load_settings(
            config, env={}, data_dir=tmp_path / "data", clock="manual", holdout_share=0.0, decisions=NO_EXPLORING
        ),
        start=START,
    )
    store = engine.stores.by_name("s")
    engine.close()

    assert store is not None and (store.restore_url, store.coupon_style) == (
        "https://s.example/cart/{cart_id}",
        "shopify",
    )
    config.write_text('[[stores]]\nname = "s"\ncoupon_style = "percent"\n')
    with pytest.raises(ConfigError, match="coupon_style"):
        load_settings(config, env={})
