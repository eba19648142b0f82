"""`POST /v1/push/subscriptions`: a shop's page hands over the browser's Web Push subscription.

The browser's permission prompt is the shopper's consent, so the subscription arrives as an `identify` would:
an IDENTIFIED event with the trait `push_subscription` (the subscription's JSON) and consent `{"push": true}`,
appended to the event log like any ingest. A retried POST of the same subscription is deduplicated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request, Response, post

from cartrecover.domain.events import Event, EventKind
from cartrecover.entrypoints.http.common import OK, basic_username, read_body, runtime, store_for_write_key
from cartrecover.errors import InvalidEvent

MAX_BODY = 8 * 1024
MAX_ENDPOINT = 1024
_DOC = {"tags": ["ingest"], "security": [{"writeKeyBasic": []}]}


class Registration(msgspec.Struct, rename="camel"):
    """The body: who the shopper is, and `PushSubscription.toJSON()`."""

    subscription: dict[str, Any]
    anonymous_id: str | int | None = None
    user_id: str | int | None = None
    write_key: str | None = None


@post("/v1/push/subscriptions", status_code=200, summary="Register a browser's push subscription", **_DOC)  # type: ignore[arg-type]
async def register_subscription(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """Keep the subscription on the shopper (consent for push included); 4xx and nothing stored if it is not one."""
    rt = runtime(request)
    header_key = basic_username(request)
    store = store_for_write_key(rt, header_key) if header_key is not None else None
    body = await read_body(request, MAX_BODY)
    try:
        registration = msgspec.json.decode(body, type=Registration)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidEvent(f"expected {{anonymousId|userId, subscription}}: {exc}", code="invalid_request") from exc
    store = store or store_for_write_key(rt, registration.write_key)
    anonymous_id, user_id = _id(registration.anonymous_id), _id(registration.user_id)
    if not anonymous_id and not user_id:
        raise InvalidEvent("needs userId or anonymousId", code="no_user_anon_id")
    subscription = json.dumps(valid_subscription(registration.subscription), separators=(",", ":"), sort_keys=True)
    now = rt.engine.clock.now()
    digest = hashlib.sha256(f"{anonymous_id}\n{user_id}\n{subscription}".encode()).hexdigest()[:32]
    event = Event(
        kind=EventKind.IDENTIFIED,
        store_id=store.store_id,
        message_id=f"push-{digest}",
        source="push",
        name="push subscription",
        at=now,
        received_at=now,
        anonymous_id=anonymous_id,
        user_id=user_id,
        consent={"push": True},
        traits={"push_subscription": subscription},
    )
    await rt.writer.append([event])
    return OK


def valid_subscription(raw: dict[str, Any]) -> dict[str, Any]:
    """The subscription's endpoint and keys, checked: an https endpoint, a P-256 public key, a 16-byte secret.

    Only https endpoints are taken (every browser's push service is https): the write key is public, and a
    plain-http URL would let anyone point the engine's requests at services inside the shop's network.
    """
    endpoint, keys = raw.get("endpoint"), raw.get("keys")
    if not isinstance(endpoint, str) or len(endpoint) > MAX_ENDPOINT:
        raise InvalidEvent("subscription.endpoint must be a URL", code="invalid_subscription")
    url = urlsplit(endpoint)
    if url.scheme != "https" or not url.hostname:
        raise InvalidEvent("subscription.endpoint must be an https:// URL", code="invalid_subscription")
    if not isinstance(keys, dict):
        raise InvalidEvent("subscription.keys must hold p256dh and auth", code="invalid_subscription")
    p256dh, auth = _key(keys, "p256dh"), _key(keys, "auth")
    if len(p256dh) != 65 or p256dh[0] != 4:
        raise InvalidEvent("subscription.keys.p256dh is not an uncompressed P-256 key", code="invalid_subscription")
    if len(auth) != 16:
        raise InvalidEvent("subscription.keys.auth must be 16 bytes", code="invalid_subscription")
    return {"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}}


def _key(keys: dict[str, Any], name: str) -> bytes:
    value = keys.get(name)
    if not isinstance(value, str) or len(value) > 200:
        raise InvalidEvent(f"subscription.keys.{name} must be base64url text", code="invalid_subscription")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidEvent(f"subscription.keys.{name} is not base64url", code="invalid_subscription") from exc


def _id(value: str | int | None) -> str | None:
    return str(value)[:200] if value not in (None, "") else None


ROUTES = [register_subscription]
