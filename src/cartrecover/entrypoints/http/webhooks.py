"""Platform webhooks: `POST /webhooks/shopify` and `POST /webhooks/woocommerce`.

The store is named in the webhook URL: `/webhooks/shopify?store=<store name>` (the name given to
`cartrecover stores add`). Shopify's `X-Shopify-Shop-Domain` could find the store too once stores record their
shop domain; until then `?store=` is required, and the domain is not trusted on its own anyway, since the
signature is what proves the sender.

Each delivery is checked against the store's secrets (HMAC-SHA256 over the raw body, base64, compared in
constant time), normalised, appended to the event log, and only then acknowledged: Shopify waits 5 seconds and
WooCommerce never retries, so the lifecycle runs after the answer. Topics we do not use get a 200 that says so,
because an error would make Shopify retry and WooCommerce disable the webhook.

No rate limit here, unlike the Segment API: a 429 would lose a WooCommerce delivery for good.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Annotated

from litestar import Request, Response, post
from litestar.params import QueryParameter

from cartrecover.domain.events import Event
from cartrecover.entrypoints.http.common import Runtime, json_response, read_body, runtime
from cartrecover.errors import InvalidEvent, Unauthorized
from cartrecover.ingest import shopify, woocommerce
from cartrecover.ports.stores import Store

StoreName = Annotated[str | None, QueryParameter(name="store", description="the name of the store the webhook is for")]
_DOC = {"tags": ["webhooks"]}


@post("/webhooks/shopify", status_code=200, summary="Receive a Shopify webhook", **_DOC)  # type: ignore[arg-type]
async def shopify_webhook(request: Request, store_name: StoreName = None) -> Response[bytes]:  # type: ignore[type-arg]
    """Checkouts, carts, orders and the privacy topics; signed with `X-Shopify-Hmac-Sha256`."""
    rt = runtime(request)
    store = _store(rt, store_name)
    body = await read_body(request)
    signature = shopify.header(request.headers, "hmac-sha256")
    if not signed_by(body, signature, store.shopify_secrets):
        raise Unauthorized(_refusal("X-Shopify-Hmac-Sha256", signature, store))
    topic = shopify.header(request.headers, "topic")
    if not topic:
        raise InvalidEvent("no X-Shopify-Topic header", code="invalid_request")
    events = shopify.normalise(
        topic,
        body,
        request.headers,
        store_id=store.store_id,
        currency=store.currency,
        received_at=rt.engine.clock.now(),
    )
    return await _acknowledge(rt, topic, events, known=topic in shopify.TOPICS)


@post("/webhooks/woocommerce", status_code=200, summary="Receive a WooCommerce webhook", **_DOC)  # type: ignore[arg-type]
async def woocommerce_webhook(request: Request, store_name: StoreName = None) -> Response[bytes]:  # type: ignore[type-arg]
    """Order topics, signed with `X-WC-Webhook-Signature`; the unsigned ping sent when a webhook is saved gets 200."""
    rt = runtime(request)
    store = _store(rt, store_name)
    topic = request.headers.get("x-wc-webhook-topic")
    if not topic:
        # The ping is form-encoded, so it is read before read_body, which takes JSON only.
        if woocommerce.is_ping(await request.body()):
            return json_response({"success": True, "ping": True, "stored": 0})
        raise InvalidEvent("no X-WC-Webhook-Topic header", code="invalid_request")
    body = await read_body(request)
    signature = request.headers.get("x-wc-webhook-signature")
    secrets = (store.woocommerce_secret,) if store.woocommerce_secret else ()
    if not signed_by(body, signature, secrets):
        raise Unauthorized(_refusal("X-WC-Webhook-Signature", signature, store))
    events = woocommerce.normalise(
        topic, body, store_id=store.store_id, currency=store.currency, received_at=rt.engine.clock.now()
    )
    return await _acknowledge(rt, topic, events, known=topic in woocommerce.TOPICS)


def signed_by(body: bytes, signature: str | None, secrets: Iterable[str]) -> bool:
    """Whether `signature` is base64(HMAC-SHA256(secret, body)) for any of the secrets (two during a rotation)."""
    if not signature:
        return False
    sent = signature.strip().encode()
    return any(
        hmac.compare_digest(base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()), sent)
        for secret in secrets
        if secret
    )


def _store(rt: Runtime, name: str | None) -> Store:
    if not name:
        raise Unauthorized("name the store in the webhook URL: ?store=<store name>")
    store = rt.engine.stores.by_name(name)
    if store is None:
        raise Unauthorized(f"no store named {name!r}")
    return store


def _refusal(header: str, signature: str | None, store: Store) -> str:
    if not signature:
        return f"no {header} header"
    return f"{header} does not match the body signed with a secret of store {store.name!r}"


async def _acknowledge(rt: Runtime, topic: str, events: Sequence[Event], *, known: bool) -> Response[bytes]:
    if not events:
        why = "is not used by cartrecover" if not known else "carries nothing to store"
        return json_response({"success": True, "stored": 0, "ignored": f"topic {topic!r} {why}"})
    new = await rt.writer.append(events)
    return json_response({"success": True, "stored": sum(new), "duplicates": len(new) - sum(new)})


ROUTES = [shopify_webhook, woocommerce_webhook]
