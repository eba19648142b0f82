"""Segment-compatible ingest: `/v1/track|identify|page|screen|group|alias|batch`.

The routes are declared to Litestar (so the OpenAPI document describes them), and served in production by
`IngestFastPath`, a thin ASGI layer in front of the app: Litestar's routing, request and response objects cost
about 30 µs per request, three times the work of accepting one event (see docs/benchmarks.md). Both paths call
`accept`, so they answer alike.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, post

from cartrecover.entrypoints.http.common import (
    OK,
    Runtime,
    basic_auth_username,
    check_content_type,
    runtime,
    store_for_write_key,
    unwrap_body,
)
from cartrecover.errors import CartRecoverError, PayloadTooLarge, RateLimited
from cartrecover.ingest import segment

log = logging.getLogger("cartrecover")

_DOC = {"tags": ["ingest"], "security": [{"writeKeyBasic": []}]}
SINGLE_KINDS = ("track", "identify", "page", "screen", "group", "alias")
MAX_REQUEST = 2 * 1024 * 1024
"""Bytes read off the wire at most (as the app's request_max_body_size); the real limits apply after gunzip."""


async def accept(rt: Runtime, kind: str, body: bytes, *, authorization: str, content_type: str, encoding: str) -> None:
    """Authenticate, decode, validate and durably append one ingest request; raises CartRecoverError if refused."""
    header_key = basic_auth_username(authorization)
    store = store_for_write_key(rt, header_key) if header_key is not None else None
    check_content_type(content_type)
    now = rt.engine.clock.now()
    if kind == "batch":
        messages, sent_at, body_key = segment.read_batch(unwrap_body(body, encoding))
        store = store or store_for_write_key(rt, body_key)
        store_id, currency = store.store_id, store.currency
        events = [
            segment.normalise(m, f"batch[{i}]", store_id=store_id, currency=currency, sent_at=sent_at, received_at=now)
            for i, m in enumerate(messages)
        ]
    else:
        message = segment.read_single(unwrap_body(body, encoding, segment.MAX_EVENT_BYTES), kind)
        store = store or store_for_write_key(rt, message.write_key)
        events = [
            segment.normalise(
                message, kind, store_id=store.store_id, currency=store.currency, sent_at=None, received_at=now
            )
        ]
    if events:
        await rt.writer.append(events)


async def _accept_request(request: Request, kind: str) -> Response[bytes]:  # type: ignore[type-arg]
    headers = request.headers
    await accept(
        runtime(request),
        kind,
        await request.body(),
        authorization=headers.get("authorization", ""),
        content_type=headers.get("content-type", ""),
        encoding=headers.get("content-encoding", ""),
    )
    return OK


@post("/v1/batch", status_code=200, summary="Send a batch of Segment calls", **_DOC)  # type: ignore[arg-type]
async def batch(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """Up to 2,500 events and 500 KB; all are stored, or none (a 4xx names the bad one)."""
    return await _accept_request(request, "batch")


def _single(kind: str) -> Any:
    async def handler(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
        return await _accept_request(request, kind)

    handler.__name__ = handler.__qualname__ = f"ingest_{kind}"
    handler.__doc__ = f"One Segment `{kind}` call (32 KB at most)."
    return post(f"/v1/{kind}", status_code=200, summary=f"Send one {kind} call", **_DOC)(handler)  # type: ignore[arg-type]


ROUTES = [batch, *(_single(kind) for kind in SINGLE_KINDS)]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_PATHS = {f"/v1/{kind}": kind for kind in ("batch", *SINGLE_KINDS)}
_JSON_HEADERS = [(b"content-type", b"application/json")]
_OK_BODY = bytes(OK.content)
_INTERNAL = msgspec.json.encode({"code": "internal", "message": "internal error; it has been logged"})


class IngestFastPath:
    """ASGI: `POST /v1/<kind>` answered here, everything else (and the lifespan) passed to the Litestar app."""

    def __init__(self, app: Litestar) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection event."""
        kind = _PATHS.get(scope.get("path", "")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if kind is None:
            await self.app(scope, receive, send)  # type: ignore[arg-type]
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of repeated headers, as Litestar's Headers.get
        status, body, extra = 200, _OK_BODY, []
        try:
            payload = await _read(receive)
            if payload is None:
                return  # the client went away: nothing was stored, nobody to answer
            await accept(
                self.app.state.runtime,
                kind,
                payload,
                authorization=headers.get(b"authorization", b"").decode("latin-1"),
                content_type=headers.get(b"content-type", b"").decode("latin-1"),
                encoding=headers.get(b"content-encoding", b"").decode("latin-1"),
            )
        except CartRecoverError as exc:
            if exc.status < 500:
                self.app.state.metrics.rejected.labels(code=exc.code).inc()
            status, body = exc.status, msgspec.json.encode({"code": exc.code, "message": exc.message})
            if isinstance(exc, RateLimited):
                extra = [(b"retry-after", str(exc.retry_after).encode())]
        except Exception:
            log.exception("unexpected error on POST %s", scope.get("path"))
            status, body = 500, _INTERNAL
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *extra],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _read(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST:
            raise PayloadTooLarge(f"request body is over {MAX_REQUEST} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
