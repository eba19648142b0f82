"""The read and admin API: carts, their timelines, and the manual clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, Parameter

from cartrecover.domain.cart import Cart, CartStatus
from cartrecover.domain.events import LineItem
from cartrecover.domain.money import to_major
from cartrecover.entrypoints.http.common import admin_store, json_response, read_body, runtime
from cartrecover.errors import ClockError, InvalidEvent, NotFound
from cartrecover.ingest.timestamps import parse_timestamp

_DOC = {"tags": ["api"], "security": [{"adminKey": []}]}


def cart_summary(cart: Cart, currency: str) -> dict[str, Any]:
    """A cart as the API shows it; money in minor units and as a decimal string."""
    cur = cart.currency or currency
    return {
        "id": cart.cart_id,
        "status": cart.status.value,
        "shopper_id": cart.shopper_id,
        "currency": cur,
        "value": cart.value,
        "value_display": str(to_major(cart.value, cur)),
        "items": len(cart.items),
        "created_at": cart.created_at,
        "last_activity_at": cart.last_activity_at,
        "abandoned_at": cart.abandoned_at,
        "closed_at": cart.closed_at,
        "group": cart.group,
        "experiment": cart.experiment,
        "variant": cart.variant,
        "order_id": cart.order_id,
        "checkout_started": cart.checkout_started,
    }


def line_of(item: LineItem) -> dict[str, Any]:
    """A cart line as the API shows it: every field that is set, and always the quantity.

    `LineItem` omits defaults when it is stored, which would drop `quantity: 1` from the answer.
    """
    return {name: value for name in item.__struct_fields__ if (value := getattr(item, name)) is not None}


@get("/api/v1/carts", summary="List the store's carts", **_DOC)  # type: ignore[arg-type]
async def list_carts(
    request: Request,  # type: ignore[type-arg]
    status: str | None = Parameter(default=None, description="one of " + ", ".join(s.value for s in CartStatus)),
    limit: int = Parameter(default=100, ge=1, le=1000),
    after: str | None = Parameter(default=None, description="cursor: the last cart id of the previous page"),
) -> Response[bytes]:
    """Carts by id, optionally with one status; pass `next` back as `after` for the next page."""
    store = admin_store(request)
    try:
        wanted = CartStatus(status) if status else None
    except ValueError as exc:
        raise InvalidEvent(
            f"status must be one of {', '.join(s.value for s in CartStatus)}", code="invalid_query"
        ) from exc
    rt = runtime(request)
    with rt.engine.database.read() as uow:
        carts = uow.carts.page(store.store_id, wanted, limit, after)
    page = [cart_summary(c, store.currency) for c in carts]
    return json_response({"carts": page, "next": carts[-1].cart_id if len(carts) == limit else None})


@get("/api/v1/carts/{cart_id:str}", summary="One cart with its timeline", **_DOC)  # type: ignore[arg-type]
async def show_cart(request: Request, cart_id: FromPath[str]) -> Response[bytes]:  # type: ignore[type-arg]
    """The cart, its lines, its journey's steps, and its timeline of events, state changes, decisions and messages."""
    store = admin_store(request)
    rt = runtime(request)
    with rt.engine.database.read() as uow:
        cart = uow.carts.get(store.store_id, cart_id)
        if cart is None:
            raise NotFound(f"no cart {cart_id!r} in this store")
        entries = uow.timeline.for_cart(store.store_id, cart_id)
        steps = uow.outbox.for_cart(store.store_id, cart_id)
    detail = cart_summary(cart, store.currency)
    detail["lines"] = [line_of(item) for item in cart.items]
    detail["restore_url"] = cart.restore_url
    detail["timeline"] = entries
    detail["steps"] = [
        {
            "step": s.name,
            "status": s.status.value,
            "due_at": s.due_at,
            "channel": s.channel.value if s.channel else None,
            "attempts": s.attempts,
            "sent_at": s.sent_at,
            "message_id": s.message_id,
            "coupon": s.coupon,
            "reason": s.reason,
        }
        for s in steps
    ]
    return json_response(detail)


class ClockRequest(msgspec.Struct):
    """Where to move the manual clock."""

    now: str


@get("/api/v1/clock", summary="The engine's time", **_DOC)  # type: ignore[arg-type]
async def read_clock(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """The engine clock and whether it is manual."""
    admin_store(request)
    clock = runtime(request).engine.clock
    return json_response({"now": clock.now(), "manual": clock.manual})


@post("/api/v1/clock", status_code=200, summary="Move the manual clock", **_DOC)  # type: ignore[arg-type]
async def move_clock(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """Returns once every event and timer due by `now` has been processed (manual clock only)."""
    admin_store(request)
    rt = runtime(request)
    if not rt.engine.clock.manual:
        raise ClockError("the clock can only be moved when the engine runs with --clock manual")
    try:
        wanted = msgspec.json.decode(await read_body(request), type=ClockRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidEvent(f'expected {{"now": "<ISO-8601>"}}: {exc}', code="invalid_request") from exc
    when: datetime = parse_timestamp(wanted.now, "now")
    processed = await rt.writer.call(lambda: rt.engine.advance_clock(when))
    return json_response({"now": rt.engine.clock.now(), "processed": processed})


ROUTES = [list_carts, show_cart, read_clock, move_clock]
