"""Segment's HTTP Tracking API and e-commerce spec v2, normalised to `Event`.

A batch is all or nothing: one invalid event rejects the batch with a message naming it, and nothing is stored.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from cartrecover.domain.events import CartChange, Event, EventKind, LineItem
from cartrecover.domain.money import InvalidAmount
from cartrecover.errors import InvalidEvent, PayloadTooLarge
from cartrecover.ingest import fields
from cartrecover.ingest.fields import MAX_INTEGER
from cartrecover.ingest.timestamps import event_time, parse_timestamp

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2_500
MAX_MESSAGE_ID = 100
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19  # only a body with a run of 19 ASCII digits can hold an integer that large
TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})

Id = str | int


class MessageContext(msgspec.Struct, rename="camel"):
    """The fields of a call's `context` that ingest reads; the rest is skipped, not built into dicts.

    UNSET (falsy) when absent, so that a batch's `context` fills in only what the call does not send.
    `userAgent` and `campaign` (the UTM parameters) become the event's device and traffic source.
    """

    traits: Any = msgspec.UNSET
    timezone: Any = msgspec.UNSET
    user_agent: Any = msgspec.UNSET
    campaign: Any = msgspec.UNSET


class Message(msgspec.Struct, rename="camel"):
    """One Segment call, as far as we read it; unknown fields are kept in the log only via properties."""

    type: str | None = None
    message_id: str | None = None
    anonymous_id: Id | None = None
    user_id: Id | None = None
    previous_id: Id | None = None
    group_id: Id | None = None
    event: str | None = None
    name: str | None = None
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    context: MessageContext = msgspec.field(default_factory=MessageContext)
    timestamp: str | None = None
    original_timestamp: str | None = None
    sent_at: str | None = None
    write_key: str | None = None


class Batch(msgspec.Struct, rename="camel"):
    """`/v1/batch`: events stay raw until each is size-checked and decoded on its own."""

    batch: list[msgspec.Raw]
    sent_at: str | None = None
    write_key: str | None = None
    context: dict[str, Any] = {}


class WriteKeyOnly(msgspec.Struct, rename="camel"):
    """Enough of a body to find its write key."""

    write_key: str | None = None


class _WholeContext(msgspec.Struct):
    """A call's whole `context`, decoded only to look for integers too large to store."""

    context: dict[str, Any] = {}


_message = msgspec.json.Decoder(Message, float_hook=Decimal)
_whole_context = msgspec.json.Decoder(_WholeContext, float_hook=Decimal)
_batch = msgspec.json.Decoder(Batch, float_hook=Decimal)


def read_batch(body: bytes) -> tuple[list[Message], str | None, str | None]:
    """Decode a `/v1/batch` body: (messages, sentAt, writeKey), enforcing Segment's limits."""
    if len(body) > MAX_BATCH_BYTES:
        raise PayloadTooLarge(f"batch is {len(body)} bytes; the limit is {MAX_BATCH_BYTES}")
    batch: Batch = fields.decode(_batch, body, "batch")
    if len(batch.batch) > MAX_BATCH_EVENTS:
        raise PayloadTooLarge(f"batch has {len(batch.batch)} events; the limit is {MAX_BATCH_EVENTS}")
    long_numbers = has_long_number(body)  # once per body: a regex per event cost more than decoding it
    if batch.context and long_numbers:
        _check_integers([batch.context], "batch.context")
    messages = []
    for i, raw in enumerate(batch.batch):
        if len(raw) > MAX_EVENT_BYTES:
            raise PayloadTooLarge(f"batch[{i}] is {len(raw)} bytes; the limit per event is {MAX_EVENT_BYTES}")
        message: Message = fields.decode(_message, raw, f"batch[{i}]")
        if long_numbers:
            _check_integers([message.properties, message.traits, _whole_context.decode(raw).context], f"batch[{i}]")
        if batch.context:  # as {**batch.context, **message.context}, for the fields read
            context = message.context
            if context.traits is msgspec.UNSET:
                context.traits = batch.context.get("traits", msgspec.UNSET)
            if context.timezone is msgspec.UNSET:
                context.timezone = batch.context.get("timezone", msgspec.UNSET)
            if context.user_agent is msgspec.UNSET:
                context.user_agent = batch.context.get("userAgent", msgspec.UNSET)
            if context.campaign is msgspec.UNSET:
                context.campaign = batch.context.get("campaign", msgspec.UNSET)
        messages.append(message)
    return messages, batch.sent_at, batch.write_key


def read_single(body: bytes, kind: str) -> Message:
    """Decode a `/v1/<type>` body; the path gives the type."""
    if len(body) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"event is {len(body)} bytes; the limit is {MAX_EVENT_BYTES}")
    message: Message = fields.decode(_message, body, kind)
    if has_long_number(body):
        _check_integers([message.properties, message.traits, _whole_context.decode(body).context], kind)
    if message.type not in (None, kind):
        raise InvalidEvent(f"type {message.type!r} posted to /v1/{kind}", code="invalid_event")
    message.type = kind
    return message


def has_long_number(body: bytes) -> bool:
    """Whether `body` has a run of 19 or more ASCII digits (as `re.search(rb"\\d{19}")`, about 14 times faster)."""
    return _LONG_RUN in body.translate(_DIGITS_AS_ZERO)


def _check_integers(values: list[Any], where: str) -> None:
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, int) and not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
            raise InvalidEvent(f"{where}: the number {value} is too large (send it as a string)", code="invalid_event")


def normalise(
    message: Message, where: str, *, store_id: int, currency: str, sent_at: str | None, received_at: datetime
) -> Event:
    """Validate one message and turn it into an `Event`.

    This runs once per event ingested, so it builds the `Event` positionally (a msgspec Struct takes positional
    arguments about five times faster than keywords), in `Event`'s field order.
    """
    kind = message.type
    if kind not in TYPES:
        raise InvalidEvent(
            f"{where}: type must be one of {', '.join(sorted(TYPES))}, not {kind!r}", code="invalid_event"
        )
    anonymous_id, user_id = _id(message.anonymous_id), _id(message.user_id)
    if not anonymous_id and not user_id:
        raise InvalidEvent(f"{where}: needs userId or anonymousId", code="no_user_anon_id")
    message_id = message.message_id or str(uuid.uuid4())
    if len(message_id) > MAX_MESSAGE_ID:
        raise InvalidEvent(f"{where}: messageId is over {MAX_MESSAGE_ID} characters", code="invalid_event")
    original = message.original_timestamp or message.timestamp
    sent = message.sent_at or sent_at
    at = event_time(
        parse_timestamp(original, f"{where}.timestamp") if original else None,
        parse_timestamp(sent, f"{where}.sentAt") if sent else None,
        received_at,
    )
    context = message.context
    traits = message.traits or context.traits or {}
    if not isinstance(traits, dict):
        raise InvalidEvent(f"{where}: traits must be an object", code="invalid_event")
    email = _text(traits.get("email"))
    if email:
        email = email.strip().lower()
    phone = _text(traits.get("phone"))
    timezone = context.timezone
    timezone = None if timezone is msgspec.UNSET else _text(timezone)
    device = device_of(context.user_agent) if context.user_agent else None
    campaign = campaign_of(context.campaign) if context.campaign else None
    if kind == "track":
        name = message.event
        if not name or not isinstance(name, str):
            raise InvalidEvent(f"{where}: a track call needs an event name", code="invalid_event")
        props = message.properties
        spec = _TRACKED.get(name.lower())
        if spec is None:
            return Event(
                EventKind.BROWSED, store_id, message_id, "segment", name[:200], at, received_at,
                anonymous_id, user_id, email, phone, timezone=timezone, properties=props, device=device, campaign=campaign,
            )  # fmt: skip
        event_kind, change, checkout = spec
        cur = _text(props.get("currency")) or currency
        try:
            cart_id, refs, order_id, change, items, value, restore = _cart_fields(props, change, cur)
        except (InvalidAmount, TypeError, ValueError) as exc:
            raise InvalidEvent(f"{where}: {exc}", code="invalid_event") from exc
        # only orders say which codes they used: the other events skip reading them
        coupons, discount = _order_discount(props, cur, where) if event_kind is _ORDER else _NO_DISCOUNT
        return Event(
            event_kind, store_id, message_id, "segment", name[:200], at, received_at,
            anonymous_id, user_id, email, phone, cart_id, refs, order_id, change, items, cur, value, checkout,
            restore, timezone, {}, {}, props, coupons, discount, device, campaign,
        )  # fmt: skip
    if kind == "identify":
        return Event(
            EventKind.IDENTIFIED, store_id, message_id, "segment", "identify", at, received_at,
            anonymous_id, user_id, email, phone, timezone=timezone, consent=consent_of(traits), traits=traits,
            device=device, campaign=campaign,
        )  # fmt: skip
    if kind == "alias":
        previous = _id(message.previous_id)
        if not previous:
            raise InvalidEvent(f"{where}: alias needs previousId", code="invalid_event")
        return Event(
            EventKind.ALIASED, store_id, message_id, "segment", "alias", at, received_at,
            anonymous_id, user_id, email, phone, timezone=timezone, properties={"previous_id": previous},
        )  # fmt: skip
    return Event(
        EventKind.BROWSED, store_id, message_id, "segment", f"{kind}: {message.name or kind}"[:200], at, received_at,
        anonymous_id, user_id, email, phone, timezone=timezone, properties=message.properties, device=device,
        campaign=campaign,
    )  # fmt: skip


def device_of(user_agent: object) -> str | None:
    """The device class of a browser's User-Agent: mobile, tablet or desktop (the usual tokens; enough for a feature)."""
    if not isinstance(user_agent, str):
        return None
    if "iPad" in user_agent or "Tablet" in user_agent:
        return "tablet"
    if "Mobi" in user_agent or "iPhone" in user_agent or "Android" in user_agent:
        return "mobile"
    return "desktop"


def campaign_of(campaign: object) -> str | None:
    """Segment's `context.campaign` (its UTM parameters) as "source/medium", lower-cased and bounded."""
    if not isinstance(campaign, dict):
        return None
    source, medium = _text(campaign.get("source")) or "", _text(campaign.get("medium")) or ""
    return f"{source}/{medium}".lower()[:100] if source or medium else None


_CartFields = tuple[str | None, tuple[str, ...], str | None, CartChange, tuple[LineItem, ...], int | None, str | None]


def _cart_fields(props: dict[str, Any], change: CartChange, cur: str) -> _CartFields:
    """(cart_id, refs, order_id, change, items, value, restore_url) of a cart or order event."""
    get = props.get
    products = get("products")
    if products is not None and not isinstance(products, list):
        raise ValueError("properties.products must be a list")
    if change is CartChange.ADD or change is CartChange.REMOVE:
        items = tuple([_item(p, cur) for p in products]) if products else (_item(props, cur),)
    elif products is not None:
        items = tuple([_item(p, cur) for p in products])
    else:
        items, change = (), CartChange.NONE if change is CartChange.REPLACE else change
    cart_id, checkout_id, order_id = _text(get("cart_id")), _text(get("checkout_id")), _text(get("order_id"))
    if checkout_id:
        refs: tuple[str, ...] = (
            (f"checkout:{checkout_id}", f"order:{order_id}") if order_id else (f"checkout:{checkout_id}",)
        )
    else:
        refs = (f"order:{order_id}",) if order_id else ()
    total = get("total")
    if total is None:
        total = get("revenue")
        if total is None:
            total = get("value")
    value = fields.money(total, cur, "total")
    restore = get("restore_url") or get("cart_url") or get("checkout_url")
    return cart_id, refs, order_id, change, items, value, _text(restore) if restore else None


_NO_DISCOUNT: tuple[tuple[str, ...], int | None] = ((), None)


def _order_discount(props: dict[str, Any], cur: str, where: str) -> tuple[tuple[str, ...], int | None]:
    """(coupons, discount) of an order: `coupon` is a code (or a list of codes), `discount` the total taken off."""
    coupon = props.get("coupon")
    codes = coupon if isinstance(coupon, list) else [coupon]
    coupons = tuple(dict.fromkeys(text for code in codes if (text := _text(code))))
    try:
        return coupons, fields.money(props.get("discount"), cur, "discount")
    except ValueError as exc:
        raise InvalidEvent(f"{where}: {exc}", code="invalid_event") from exc


_ACTIVITY, _ORDER = EventKind.CART_ACTIVITY, EventKind.ORDER_PLACED
_TRACKED: dict[str, tuple[EventKind, CartChange, bool]] = {
    "product added": (_ACTIVITY, CartChange.ADD, False),
    "wishlist product added to cart": (_ACTIVITY, CartChange.ADD, False),
    "product removed": (_ACTIVITY, CartChange.REMOVE, False),
    "cart viewed": (_ACTIVITY, CartChange.REPLACE, False),
    "checkout started": (_ACTIVITY, CartChange.REPLACE, True),
    "checkout step viewed": (_ACTIVITY, CartChange.NONE, True),
    "checkout step completed": (_ACTIVITY, CartChange.NONE, True),
    "payment info entered": (_ACTIVITY, CartChange.NONE, True),
    "coupon entered": (_ACTIVITY, CartChange.NONE, False),
    "coupon applied": (_ACTIVITY, CartChange.NONE, False),
    "coupon denied": (_ACTIVITY, CartChange.NONE, False),
    "coupon removed": (_ACTIVITY, CartChange.NONE, False),
    "order completed": (_ORDER, CartChange.REPLACE, True),
    "completed order": (_ORDER, CartChange.REPLACE, True),  # e-commerce spec v1
    "order cancelled": (EventKind.ORDER_CANCELLED, CartChange.NONE, False),
}


def _item(props: Any, currency: str) -> LineItem:
    if not isinstance(props, dict):
        raise ValueError("each product must be an object")
    get = props.get
    sku = _text(get("sku"))
    product_id = _text(get("product_id")) or sku or _text(get("id"))
    if not product_id:
        raise ValueError("a product needs product_id or sku")
    quantity = fields.quantity(get("quantity", 1), product_id)
    price = get("price")
    return LineItem(
        product_id,
        quantity,
        fields.money(price, currency, "price"),
        sku,
        _text(get("variant")),
        _text(get("name")),
        _text(get("url")),
        _text(get("image_url")),
    )


def _id(value: Id | None) -> str | None:
    if value is None or value == "":
        return None
    return str(value)[:200]


def _text(value: Any) -> str | None:
    if type(value) is str:  # the common case, first: this runs about ten times per event
        return value[:2000] if value else None
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value)
    return text[:2000] if text else None


def consent_of(traits: dict[str, Any]) -> dict[str, bool]:
    """Marketing consent per channel from identify traits.

    Reads `consent: {"email": true, "sms": false}`, Shopify-style `email_marketing_consent.state`,
    and `accepts_marketing` / `accepts_sms_marketing` booleans.
    """
    found: dict[str, bool] = {}
    explicit = traits.get("consent")
    if isinstance(explicit, dict):
        found.update({str(k): v for k, v in explicit.items() if isinstance(v, bool)})
    for channel in ("email", "sms"):
        shopify = traits.get(f"{channel}_marketing_consent")
        if isinstance(shopify, dict) and isinstance(shopify.get("state"), str):
            found[channel] = shopify["state"] == "subscribed"
    for key, channel in (("accepts_marketing", "email"), ("accepts_sms_marketing", "sms")):
        if isinstance(traits.get(key), bool):
            found.setdefault(channel, traits[key])
    return found
