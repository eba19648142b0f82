"""`GET /dashboard` in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a real
`cartrecover serve` on the manual clock, with a store driven through the public API: carts over three days,
identifies with consent, the clock moved so that journeys send, clicks on the links in the messages, orders.
A second server's store has an active model (trained in-process on a synthetic decision log) before it starts, so
its carts are decided by the learned policy and their timelines show the decision's explanation. Every test runs on
both stacks: the servers, and the engine that stores the model, follow the module's stack.

Nothing is installed at run time: `make install` installs Chromium (as root, when missing). Without it the
browser tests skip on a workstation and fail in CI (`CI=true`), so CI cannot pass without having run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cartrecover.bootstrap import build_engine
from cartrecover.learn.train import train
from cartrecover.settings import load_settings
from tests.e2e.conftest import Keys, Server, Stack, on_both_stacks, open_stack
from tests.unit.test_learned_decisions import synthetic_log

pytestmark = [pytest.mark.slow, on_both_stacks]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
WRITE_KEY, ADMIN_KEY = "wk-dashboard-shop", "ak-dashboard-shop"
CONFIG = f"""
[[stores]]
name = "shop"
write_key = "{WRITE_KEY}"
admin_key = "{ADMIN_KEY}"
holdout_share = 0.3  # the conftest's environment turns the engine's holdout off; this store has its own
"""
DAYS = 3
CARTS_PER_DAY = 24
_LINK = re.compile(r"/r/([A-Za-z0-9._~\-]+)")


# -- a store with three days of carts ----------------------------------------------------------------------------


def _call(kind: str, n: int, seq: int, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "anonymousId": f"anon-{n}",
        "userId": f"user-{n}",
        "messageId": f"dash-{n}-{seq}",
        "timestamp": at.isoformat(),
        **fields,
    }


def _cart_calls(n: int, at: datetime) -> list[dict[str, Any]]:
    consent = {"email": True, "sms": n % 4 == 0}
    traits: dict[str, Any] = {"email": f"shopper{n}@example.com", "consent": consent}
    if consent["sms"]:
        traits["phone"] = f"+1555{n:07d}"
    line = {"cart_id": f"cart-{n:03d}", "product_id": f"p{n % 7}", "name": f"Linen {n % 7}", "quantity": 1}
    return [
        _call("identify", n, 0, at, traits=traits),
        _call("track", n, 1, at, event="Product Added", properties={**line, "price": 20 + 3 * (n % 11)}),
    ]


def _order_call(n: int, at: datetime) -> dict[str, Any]:
    value = 20 + 3 * (n % 11)
    properties = {"order_id": f"order-{n}", "cart_id": f"cart-{n:03d}", "total": value, "currency": "USD"}
    return _call("track", n, 2, at, event="Order Completed", properties=properties)


def _batch(server: Server, shop: Keys, calls: list[dict[str, Any]]) -> None:
    response = server.post("/v1/batch", json={"batch": calls}, headers=shop.basic)
    assert response.status_code == 200, response.text


def _click_links(server: Server, inbox: Path, seen: int, wanted: set[str]) -> int:
    """Follow the restore link of each new message sent to a shopper in `wanted`; returns the new offset."""
    if not inbox.exists():
        return seen
    lines = inbox.read_text().splitlines()
    for message in map(json.loads, lines[seen:]):
        link = _LINK.search(message.get("text", ""))
        if link and message.get("to") in wanted:
            assert server.get(f"/r/{link[1]}", follow_redirects=False).status_code in (200, 302)
    return len(lines)


def _drive(server: Server, shop: Keys) -> None:
    start = server.now(shop)
    inbox, seen, number = server.data_dir / "messages.jsonl", 0, 0
    for day in range(DAYS):
        at = start + timedelta(days=day)
        server.post("/api/v1/clock", json={"now": at.isoformat()}, headers=shop.admin)
        numbers = range(number, number + CARTS_PER_DAY)
        number += CARTS_PER_DAY
        _batch(server, shop, [call for n in numbers for call in _cart_calls(n, at)])
        server.advance(timedelta(hours=3), shop)  # abandoned, grouped, the first messages sent
        groups = {c["id"]: c["group"] for c in server.carts(shop)}
        clickers = {f"shopper{n}@example.com" for n in numbers if n % 2 == 0}
        clickers |= {f"+1555{n:07d}" for n in numbers if n % 2 == 0}
        seen = _click_links(server, inbox, seen, clickers)
        buyers = [
            n for n in numbers if n % (3 if groups[f"cart-{n:03d}"] == "treated" else 5) == 0 or (n % 2 == 0 and n % 7)
        ]
        _batch(server, shop, [_order_call(n, at + timedelta(hours=3, minutes=5)) for n in buyers])
        server.advance(timedelta(hours=1), shop)
    server.advance(timedelta(days=1), shop)


@pytest.fixture(scope="module")
def shop_server(tmp_path_factory: pytest.TempPathFactory, stack_name: str) -> Iterator[tuple[Server, Keys]]:
    root = tmp_path_factory.mktemp("dashboard")
    config = root / "cartrecover.toml"
    config.write_text(CONFIG)
    shop = Keys("shop", 1, WRITE_KEY, ADMIN_KEY)  # the only store: id 1
    with open_stack(stack_name, root) as stack:  # dropped after the server is gone
        server = Server(root / "data", {"shop": shop}, config, "manual", stack)
        server.data_dir.mkdir()
        server.start()
        try:
            _drive(server, server.stores["shop"])
            yield server, server.stores["shop"]
        finally:
            server.kill()


@pytest.fixture
def learned_server(tmp_path: Path, stack: Stack) -> Iterator[tuple[Server, Keys]]:
    """A store with an active model (trained on a synthetic decision log) before its server starts."""
    config = tmp_path / "cartrecover.toml"
    config.write_text(CONFIG.replace("holdout_share = 0.3", "holdout_share = 0.0"))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    engine = build_engine(load_settings(config, env={}, data_dir=data_dir, **stack.settings))  # creates the store
    try:
        store_id = engine.stores.named_or_only("shop").store_id
        bundle = train(synthetic_log(6000), []).bundle
        with engine.database.write() as uow:
            uow.models.add(store_id, datetime.now(UTC), {"examples": 6000}, bundle.to_bytes(), activate=True)
    finally:
        engine.close()
    shop = Keys("shop", store_id, WRITE_KEY, ADMIN_KEY)
    server = Server(data_dir, {"shop": shop}, config, "manual", stack)
    server.start()
    try:
        yield server, shop
    finally:
        server.kill()


# -- the browser ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        message = f"{CHROMIUM} is missing: `make install` installs it (as root)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    if _in_ci():
        from playwright import sync_api  # a dev dependency: in CI its absence is a failure
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


class Watched:
    """A page and everything that went wrong on it: console errors, page errors, failed and refused requests."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.context = browser.new_context(base_url=base_url, viewport={"width": 1360, "height": 900})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status}: {r.url}"))

    def figure(self, name: str) -> str:
        value: str = self.page.get_attribute(f'[data-figure="{name}"]', "data-value")
        return value


@pytest.fixture
def watched(browser: Any, shop_server: tuple[Server, Keys]) -> Iterator[Watched]:
    page = Watched(browser, shop_server[0].base_url)
    try:
        yield page
    finally:
        page.context.close()


def _sign_in(watched: Watched, shop: Keys) -> None:
    watched.page.goto("/dashboard")
    watched.page.fill("#admin-key", shop.admin_key)
    watched.page.click("#key-form button[type=submit]")
    watched.page.wait_for_selector('body[data-loaded="overview"]')


def _minor(value: str) -> int | None:
    return None if value == "" else int(value)


# -- the tests -----------------------------------------------------------------------------------------------------


def test_without_a_key_the_page_asks_for_it_loads_cleanly_and_reads_no_data(
    watched: Watched, shop_server: tuple[Server, Keys]
) -> None:
    watched.page.goto("/dashboard")
    watched.page.wait_for_load_state("load")
    assert watched.page.is_visible("#sign-in")
    assert not watched.page.is_visible("#overview")
    assert not any("/api/" in url for url in watched.requests)
    assert all(url.startswith(shop_server[0].base_url) for url in watched.requests)
    assert watched.page.evaluate("typeof window.Chart") == "function"  # the packaged library loaded
    assert watched.problems == []


def test_a_wrong_key_is_refused_and_asked_for_again(watched: Watched) -> None:
    watched.page.goto("/dashboard")
    watched.page.fill("#admin-key", "not-a-key")
    watched.page.click("#key-form button[type=submit]")
    watched.page.wait_for_selector("#key-error:not([hidden])")
    assert watched.page.is_visible("#sign-in")
    assert watched.page.evaluate("sessionStorage.length") == 0


def test_with_the_admin_key_the_figures_shown_are_the_report_apis(
    watched: Watched, shop_server: tuple[Server, Keys], tmp_path: Path
) -> None:
    server, shop = shop_server
    _sign_in(watched, shop)
    window = {
        "since": watched.page.get_attribute("body", "data-since"),
        "until": watched.page.get_attribute("body", "data-until"),
    }
    report = server.get("/api/v1/reports/recovery", params=window, headers=shop.admin).json()
    daily = server.get("/api/v1/reports/recovery/daily", params=window, headers=shop.admin).json()
    watched.page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    assert report["abandoned"]["carts"] == DAYS * CARTS_PER_DAY  # not vacuous: every cart is in the window
    assert report["incremental"] is not None and report["channels"]
    assert _minor(watched.figure("abandoned-carts")) == report["abandoned"]["carts"]
    assert _minor(watched.figure("abandoned-value")) == report["abandoned"]["value"]
    assert _minor(watched.figure("recovered")) == report["treated"]["recovered"]
    assert _minor(watched.figure("recovered-revenue")) == report["treated"]["revenue"]
    incremental = report["incremental"]
    assert _minor(watched.figure("incremental-revenue")) == incremental["revenue"]
    interval = watched.page.locator('[data-figure="incremental-interval"]')
    assert _minor(interval.get_attribute("data-low") or "") == incremental["revenue_low"]
    assert _minor(interval.get_attribute("data-high") or "") == incremental["revenue_high"]
    shown = watched.page.inner_text('[data-figure="incremental-revenue"]')
    assert re.sub(r"[^\d.]", "", shown) == incremental["revenue_display"].lstrip("-")
    for row in report["channels"]:
        sends = watched.page.get_attribute(
            f'#channels-table tr:has(td[data-key="{row["key"]}"]) td[data-field="sends"]', "data-value"
        )
        assert sends == str(row["sends"])
    for group in ("treated", "holdout"):
        for stage in ("carts", "contacted", "clicked", "recovered"):
            shown_count = watched.page.get_attribute(f'[data-funnel="{group}-{stage}"]', "data-value")
            assert shown_count == str(daily["totals"][group][stage])
    assert watched.page.locator("#carts-table tbody tr").count() == 50  # the first page of carts
    assert watched.problems == []


def test_a_cart_link_opens_its_timeline(watched: Watched, shop_server: tuple[Server, Keys], tmp_path: Path) -> None:
    server, shop = shop_server
    _sign_in(watched, shop)
    watched.page.select_option("#cart-status", "recovered")
    watched.page.wait_for_selector("#carts-table tbody tr td a")
    link = watched.page.locator("#carts-table tbody tr td a").first
    cart_id = link.get_attribute("data-cart")
    assert cart_id
    link.click()
    watched.page.wait_for_selector('body[data-loaded="timeline"]')
    watched.page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
    cart = server.cart(shop, cart_id)
    assert watched.page.inner_text("#cart-id") == cart_id
    assert watched.page.inner_text('[data-fact="status"]') == "recovered" == cart["status"]
    assert watched.page.locator("#cart-timeline > li").count() == len(cart["timeline"])
    (decision,) = [e for e in cart["timeline"] if e["kind"] == "decision"]
    shown = watched.page.locator("#cart-timeline > li.decision .explanation")
    assert shown.locator(".policy").text_content() == decision["policy"] == "rules-v1"
    assert shown.locator(".chose").text_content() == "rules-v1 chose its configured journey"
    assert all(step["step"] in (shown.locator(".steps").text_content() or "") for step in decision["steps"])
    assert shown.locator(".reasons li").all_text_contents() == decision["reasons"]
    assert "{" not in shown.inner_text()  # read as sentences, not as JSON
    assert watched.page.locator("#cart-steps tbody tr").count() == len(cart["steps"])
    watched.page.click("#back")
    watched.page.wait_for_selector('body[data-loaded="overview"]')
    assert watched.problems == []


def test_a_learned_decision_shows_its_scores_its_runner_up_and_its_feature_contributions(
    browser: Any, learned_server: tuple[Server, Keys], tmp_path: Path
) -> None:
    server, shop = learned_server
    calls = _cart_calls(1, server.now(shop))
    calls[1]["context"] = {"campaign": {"source": "CouponFollow", "medium": "Affiliate"}}  # deal traffic
    _batch(server, shop, calls)
    server.advance(timedelta(hours=3), shop)  # abandoned and decided
    (decision,) = [e for e in server.cart(shop, "cart-001")["timeline"] if e["kind"] == "decision"]
    scores, contributions = decision["scores"], decision["contributions"]
    assert decision["policy"] == f"learned:v{decision['model_version']}" and not decision["explored"]
    assert scores["runner_up"] and contributions  # not vacuous: there is a runner-up and features to show

    watched = Watched(browser, server.base_url)
    try:
        _sign_in(watched, shop)
        watched.page.evaluate("location.hash = '#cart/cart-001'")
        watched.page.wait_for_selector('body[data-loaded="timeline"]')
        watched.page.screenshot(path=str(tmp_path / "decision.png"), full_page=True)
        shown = watched.page.locator("#cart-timeline > li.decision .explanation")
        assert shown.locator(".policy").text_content() == decision["policy"]
        assert shown.locator('[data-score="chosen"] .plan').text_content() == scores["chosen"]["plan"]
        assert scores["chosen"]["plan"] == decision["plan"]
        assert shown.locator('[data-score="runner-up"] .plan').text_content() == scores["runner_up"]["plan"]
        assert shown.locator('[data-score="candidates"]').text_content() == f"{scores['candidates']} candidate plans"
        assert shown.locator('[data-score="model"]').text_content() == f"v{decision['model_version']}"
        rows = shown.locator(".contributions li")
        assert rows.locator(".feature").all_text_contents() == [name for name, _ in contributions]
        assert rows.locator(".bar").count() == len(contributions)
        signs = rows.locator(".value").all_text_contents()
        assert [text[0] for text in signs] == ["+" if value >= 0 else "−" for _, value in contributions]
        widths = [box["width"] for box in (bar.bounding_box() for bar in rows.locator(".bar").all()) if box]
        largest = max(abs(value) for _, value in contributions)
        for width, (_, value) in zip(widths, contributions, strict=True):  # a bar's width is proportional to |value|
            assert width == pytest.approx(widths[0] * abs(value) / largest, abs=1.5)
        caption = shown.locator(".contributions figcaption").text_content() or ""
        assert "P(order) with no contact" in caption and "log-odds" in caption
        assert watched.problems == []
    finally:
        watched.context.close()


# -- the page over plain HTTP, and the daily series ----------------------------------------------------------------


def test_the_page_forbids_every_other_origin_and_carries_no_inline_script(shop_server: tuple[Server, Keys]) -> None:
    server, _ = shop_server
    page = server.get("/dashboard")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # every script is a file of ours
    assert not re.search(r"\son[a-z]+=", page.text)  # no inline event handlers
    for asset in re.findall(r'(?:src|href)="(/dashboard/assets/[^"]+)"', page.text):
        assert server.get(asset).status_code == 200, asset
    assert server.get("/dashboard/assets/..%2Fapi.py").status_code == 404


def test_the_daily_series_adds_up_to_the_report_and_ends_at_its_incremental_revenue(
    shop_server: tuple[Server, Keys],
) -> None:
    server, shop = shop_server
    now = server.now(shop)
    window = {"since": (now - timedelta(days=30)).isoformat(), "until": now.isoformat()}
    report = server.get("/api/v1/reports/recovery", params=window, headers=shop.admin).json()
    daily = server.get("/api/v1/reports/recovery/daily", params=window, headers=shop.admin).json()
    assert len(daily["days"]) == 31  # every calendar day the window touches, empty ones too
    for group in ("treated", "holdout"):
        assert (
            sum(d[group]["carts"] for d in daily["days"]) == report[group]["carts"] == daily["totals"][group]["carts"]
        )
        assert sum(d[group]["recovered"] for d in daily["days"]) == report[group]["recovered"]
        assert sum(d[group]["revenue"] for d in daily["days"]) == report[group]["revenue"]
    assert daily["totals"]["holdout"]["contacted"] == 0 < daily["totals"]["treated"]["contacted"]
    assert sum(1 for d in daily["days"] if d["treated"]["carts"]) == DAYS
    last = daily["days"][-1]["cumulative_incremental"]
    assert (last["revenue"], last["revenue_low"], last["revenue_high"]) == (
        report["incremental"]["revenue"],
        report["incremental"]["revenue_low"],
        report["incremental"]["revenue_high"],
    )


def test_the_daily_series_needs_the_admin_key_and_a_bounded_window(shop_server: tuple[Server, Keys]) -> None:
    server, shop = shop_server
    assert server.get("/api/v1/reports/recovery/daily").status_code == 401
    assert server.get("/api/v1/reports/recovery/daily", headers=shop.basic).status_code == 401
    too_long = {"since": "2000-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"}
    refused = server.get("/api/v1/reports/recovery/daily", params=too_long, headers=shop.admin)
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_query"
