"""What shoppers reach from our messages and the shop's pages.

- `GET /r/{token}`: a signed restore link. The click is appended to the event log (the lifecycle puts it on
  the cart's timeline), then the shopper is sent to the cart's restore URL with the step's coupon applied.
- `GET /u/{token}`: a confirmation page only; link prefetchers and mail scanners follow GETs (RFC 8058).
  `POST /u/{token}`: the unsubscribe, from the page's form or a mailbox's one-click `List-Unsubscribe=One-Click`.
- `GET /v1/nudge`: the on-site offer for the visitor (the write key is public, as in Segment's snippet), and
  `GET /v1/nudge.js`, the script a shop pastes to show it.

A link that is forged, of another kind or expired gets a small page with a 4xx and stores nothing. The
HTTP layer only appends events; what they do to consent and timelines is the lifecycle's business.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from jinja2 import DictLoader, Environment
from litestar import Request, Response, get, post, route
from litestar.enums import HttpMethod
from litestar.params import FromPath, QueryParameter

from cartrecover.domain.cart import Cart, CartStatus
from cartrecover.domain.events import Event, EventKind
from cartrecover.domain.journey import Step, StepStatus
from cartrecover.domain.links import InvalidLink, LinkClaims
from cartrecover.domain.money import to_major
from cartrecover.engine import Engine
from cartrecover.entrypoints.http.common import (
    basic_username,
    error_response,
    json_response,
    runtime,
    store_for_write_key,
)
from cartrecover.errors import CartRecoverError, InvalidEvent
from cartrecover.ports.stores import Store

OPEN = (CartStatus.ABANDONED, CartStatus.RECOVERING)
NUDGE_LINK_VALID_FOR = timedelta(days=1)  # the script asks again on every page view
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHANNELS = {"email": "emails", "sms": "text messages", "push": "notifications", "onsite": "offers on the site"}
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token must not leak to the next site
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization",
    "Access-Control-Max-Age": "600",
    "Cache-Control": "no-store",
}
_TEMPLATES = {
    "page": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{ title }}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}
button{font:inherit;padding:.5rem 1.25rem;cursor:pointer}code{font-size:1.1em}</style></head>
<body><h1>{{ title }}</h1>{% for line in lines %}<p>{{ line }}</p>{% endfor %}
{% if coupon %}<p>Your code: <code>{{ coupon }}</code></p>{% endif %}
{% if confirm %}<form method="post"><input type="hidden" name="confirm" value="yes">
<button type="submit">Unsubscribe</button></form>{% endif %}</body></html>
""",
}
_pages = Environment(loader=DictLoader(_TEMPLATES), autoescape=True)


class _Refused(Exception):
    """A link we will not act on: the page says why."""

    def __init__(self, status: int, title: str, line: str) -> None:
        super().__init__(title)
        self.status, self.title, self.line = status, title, line


def page(status: int, title: str, *lines: str, coupon: str | None = None, confirm: bool = False) -> Response[bytes]:
    """A small self-contained HTML page (autoescaped, no external assets)."""
    body = _pages.get_template("page").render(title=title, lines=lines, coupon=coupon, confirm=confirm)
    return Response(body.encode(), status_code=status, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


def read_link(engine: Engine, token: str, kind: str) -> tuple[LinkClaims, Store]:
    """The claims of a valid link of `kind` and its store; _Refused (404 invalid, 410 expired) otherwise."""
    try:
        claims = engine.signer.read(token, kind, now=_EPOCH)  # expiry judged below, to tell 410 from 404
    except InvalidLink as exc:
        raise _Refused(404, "This link is not valid", f"{exc}. Check that it was copied whole.") from exc
    store = engine.stores.by_id(claims.store_id)
    if store is None:
        raise _Refused(404, "This link is not valid", "The shop it belongs to is no longer here.")
    if claims.expires < engine.clock.now():
        raise _Refused(410, "This link has expired", f"Links in messages from {store.name} work for a limited time.")
    return claims, store


@get("/r/{token:str}", include_in_schema=False)
async def follow_restore_link(request: Request, token: FromPath[str]) -> Response[bytes]:  # type: ignore[type-arg]
    """Record the click, then redirect to the cart's restore URL with the coupon applied."""
    rt = runtime(request)
    engine = rt.engine
    try:
        claims, store = read_link(engine, token, "restore")
    except _Refused as refused:
        return page(refused.status, refused.title, refused.line)
    now = engine.clock.now()
    with engine.database.read() as uow:
        step = uow.outbox.get(claims.store_id, claims.step_id)
        cart = uow.carts.get(claims.store_id, step.cart_id) if step else None
    if step is None or cart is None:
        return page(404, "This link is not valid", f"The cart it was for is no longer kept by {store.name}.")
    await rt.writer.append([_clicked(claims, step, now)])
    coupon = live_coupon(step, now)
    target = restore_target(cart, store, coupon)
    if target is None:
        return page(200, "Your cart is saved", f"Return to {store.name} to finish your order.", coupon=coupon)
    return Response(b"", status_code=302, headers={"Location": target, **_PAGE_HEADERS})


@get("/u/{token:str}", include_in_schema=False)
async def confirm_unsubscribe(request: Request, token: FromPath[str]) -> Response[bytes]:  # type: ignore[type-arg]
    """Ask to confirm; a GET changes nothing, because link scanners follow every link in a mail."""
    try:
        claims, store = read_link(runtime(request).engine, token, "unsubscribe")
    except _Refused as refused:
        return page(refused.status, refused.title, refused.line)
    what = _CHANNELS.get(claims.channel, "messages")
    return page(200, "Unsubscribe?", f"Stop {what} about your cart from {store.name}?", confirm=True)


@post("/u/{token:str}", status_code=200, include_in_schema=False)
async def unsubscribe(request: Request, token: FromPath[str]) -> Response[bytes]:  # type: ignore[type-arg]
    """Opt out of the link's channel (the form, or RFC 8058 one-click); doing it twice is the same as once."""
    rt = runtime(request)
    try:
        claims, store = read_link(rt.engine, token, "unsubscribe")
    except _Refused as refused:
        return page(refused.status, refused.title, refused.line)
    form = await request.form()
    one_click = form.get("List-Unsubscribe") == "One-Click"
    now = rt.engine.clock.now()
    await rt.writer.append([_unsubscribed(claims, one_click, now)])
    what = _CHANNELS.get(claims.channel, "messages")
    return page(200, "You are unsubscribed", f"{store.name} will send you no more {what}.")


def _clicked(claims: LinkClaims, step: Step, now: datetime) -> Event:
    return Event(
        kind=EventKind.MESSAGE_CLICKED,
        store_id=claims.store_id,
        message_id=f"click/{uuid.uuid4().hex}",  # every click counts, also the second one
        source="link",
        name="click",
        at=now,
        received_at=now,
        cart_id=step.cart_id,
        properties={"step_id": claims.step_id, "channel": claims.channel},
    )


def _unsubscribed(claims: LinkClaims, one_click: bool, now: datetime) -> Event:
    return Event(
        kind=EventKind.UNSUBSCRIBED,
        store_id=claims.store_id,
        # One event per step and channel: a second POST (or the form after a one-click) is a duplicate.
        message_id=f"unsubscribe/{claims.step_id}/{claims.channel}",
        source="link",
        name="one-click unsubscribe" if one_click else "unsubscribe link",
        at=now,
        received_at=now,
        properties={
            "channel": claims.channel,
            "reason": "one-click unsubscribe" if one_click else "unsubscribe link",
            "step_id": claims.step_id,
        },
    )


def live_coupon(step: Step, now: datetime) -> str | None:
    """The step's coupon while it is valid (until the expiry fixed when the code was made)."""
    if not step.coupon or step.coupon_expires is None:
        return None
    return step.coupon if now < step.coupon_expires else None


def restore_target(cart: Cart, store: Store, coupon: str | None) -> str | None:
    """Where a click goes: the cart's own restore URL, else the store's pattern; http(s) only, coupon applied."""
    pattern = store.restore_url.replace("{cart_id}", quote(cart.cart_id, safe="")) if store.restore_url else None
    base = next((url for url in (cart.restore_url, pattern) if url and is_web_url(url)), None)
    if base is None or not coupon:
        return base
    return with_coupon(base, coupon, store.coupon_style)


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL with a host and nothing that could break a header (no `javascript:`)."""
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def with_coupon(url: str, code: str, style: str) -> str:
    """The URL with the discount applied: Shopify's `/discount/CODE?redirect=…`, or a `coupon=` parameter."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if style == "shopify" or (not style and (host == "myshopify.com" or host.endswith(".myshopify.com"))):
        back = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        return urlunsplit(
            (parts.scheme, parts.netloc, f"/discount/{quote(code, safe='')}", f"redirect={quote(back, safe='/')}", "")
        )
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query + urlencode({"coupon": code}), parts.fragment))


WriteKey = Annotated[str | None, QueryParameter(name="writeKey", description="the store's write key")]
AnonymousId = Annotated[str | None, QueryParameter(name="anonymousId", description="Segment's anonymous id")]


@route(
    "/v1/nudge",
    http_method=[HttpMethod.GET, HttpMethod.OPTIONS],
    summary="The on-site offer for the current visitor",
    tags=["tracking"],
)
async def nudge(
    request: Request,  # type: ignore[type-arg]
    write_key: WriteKey = None,
    anonymous_id: AnonymousId = None,
) -> Response[bytes]:
    """The visitor's abandoned cart with its restore link and live coupon, or `{"offer": null}`.

    Only by anonymous id (random, known only to the visitor's browser): the write key is public, so a user id,
    which can be guessed, would hand anyone a shopper's restore link (on Shopify, a checkout with their details).

    OPTIONS answers the CORS preflight a browser sends when the write key goes in an Authorization header.
    """
    if request.method == HttpMethod.OPTIONS:
        return Response(b"", status_code=204, headers=_CORS)
    rt = runtime(request)
    try:
        store = store_for_write_key(rt, basic_username(request) or write_key)
        if not anonymous_id:
            raise InvalidEvent("send the visitor's anonymousId", code="invalid_request")
    except CartRecoverError as exc:
        response = error_response(exc)
        response.headers.update(_CORS)
        return response
    return json_response({"offer": offer_for(rt.engine, store, anonymous_id)}, headers=_CORS)


def offer_for(engine: Engine, store: Store, anonymous_id: str) -> dict[str, Any] | None:
    """What the nudge shows: read-only, this store's data only."""
    now = engine.clock.now()
    with engine.database.read() as uow:
        shopper_id = uow.shoppers.find(store.store_id, "anon", anonymous_id)
        carts = uow.carts.open_for_shopper(store.store_id, shopper_id) if shopper_id else []
        cart = next((c for c in carts if c.status in OPEN), None)
        steps = uow.outbox.for_cart(store.store_id, cart.cart_id) if cart else []
    if cart is None:
        return None
    sent = [s for s in steps if s.status is StepStatus.SENT and s.sent_at is not None]
    latest = max(sent, key=lambda s: s.sent_at or now, default=None)
    coupon = live_coupon(latest, now) if latest else None
    if latest is not None:
        token = engine.signer.token("restore", store.store_id, latest.step_id, "onsite", now + NUDGE_LINK_VALID_FOR)
        link: str | None = f"{engine.settings.resolved_public_url.rstrip('/')}/r/{token}"
    else:
        link = restore_target(cart, store, None)  # nothing sent yet: no step to count a click against
    if link is None:
        return None
    currency = cart.currency or store.currency
    return {
        "cart_id": cart.cart_id,
        "items": sum(item.quantity for item in cart.items),
        "value": cart.value,
        "value_display": str(to_major(cart.value, currency)),
        "currency": currency,
        "restore_url": link,
        "coupon": coupon,
        "percent": latest.incentive.percent if coupon and latest and latest.incentive else None,
        "coupon_expires_at": latest.coupon_expires if coupon and latest else None,
    }


@cache
def _script() -> bytes:
    return resources.files("cartrecover.entrypoints.http").joinpath("static/nudge.js").read_bytes()


@get("/v1/nudge.js", include_in_schema=False)
async def nudge_script() -> Response[bytes]:
    """The script a shop pastes: `<script src="…/v1/nudge.js" data-write-key="…" async></script>`."""
    headers = {"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"}
    return Response(_script(), media_type="text/javascript; charset=utf-8", headers=headers)


ROUTES = [follow_restore_link, confirm_unsubscribe, unsubscribe, nudge, nudge_script]
