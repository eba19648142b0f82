"""Pieces every HTTP route shares: bodies, keys, errors, and the running engine."""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass, field

import msgspec
from litestar import Request, Response

from cartrecover.engine import Engine
from cartrecover.errors import (
    CartRecoverError,
    InvalidEvent,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
)
from cartrecover.ingest.ratelimit import RateLimiter
from cartrecover.ports.stores import Store
from cartrecover.writer import Writer

MAX_BODY = 500 * 1024
JSON = "application/json"
_ACCEPTED_TYPES = ("application/json", "text/plain", "")


@dataclass
class Runtime:
    """What the routes need at run time; built once by the app's lifespan."""

    engine: Engine
    writer: Writer
    limiter: RateLimiter
    metrics: dict[str, int] = field(default_factory=dict)


def runtime(request: Request) -> Runtime:  # type: ignore[type-arg]
    """The runtime the app was started with."""
    found: Runtime = request.app.state.runtime
    return found


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:  # type: ignore[type-arg]
    """The raw body, un-gzipped, refused when over `limit` (after decompression too)."""
    check_content_type(request.headers.get("content-type", ""))
    return unwrap_body(await request.body(), request.headers.get("content-encoding", ""), limit)


def check_content_type(header: str) -> None:
    """Refuse a Content-Type other than JSON (text/plain and none are what some clients send)."""
    content_type = header.partition(";")[0].strip().lower()
    if content_type not in _ACCEPTED_TYPES:
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {content_type!r}")


def unwrap_body(body: bytes, content_encoding: str, limit: int = MAX_BODY) -> bytes:
    """The body un-gzipped per its Content-Encoding, refused when over `limit` (after decompression too)."""
    encoding = content_encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        body = _gunzip(body, limit)
    elif encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported (use gzip)", code="unsupported_encoding"
        )
    if len(body) > limit:
        raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {limit}")
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidEvent(f"body is not valid gzip: {exc}", code="invalid_gzip") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"body is over {limit} bytes once decompressed")
    if not inflater.eof:  # cut short: what inflated so far may still parse, but the checksum was never seen
        raise InvalidEvent("body is not valid gzip: the stream is truncated", code="invalid_gzip")
    return out


def basic_username(request: Request) -> str | None:  # type: ignore[type-arg]
    """The username of HTTP Basic auth (Segment's write key, password empty), if sent."""
    return basic_auth_username(request.headers.get("authorization", ""))


def basic_auth_username(header: str) -> str | None:
    """The username in an `Authorization: Basic …` header value, if it is one."""
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("Authorization: Basic is not valid base64") from exc
    return decoded.split(":", 1)[0]


def bearer(request: Request) -> str | None:  # type: ignore[type-arg]
    """The token of `Authorization: Bearer …`."""
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None


def store_for_write_key(rt: Runtime, key: str | None) -> Store:
    """The store a write key belongs to, rate limit checked."""
    if not key:
        raise Unauthorized("no write key: send it as the Basic auth username or as writeKey in the body")
    store = rt.engine.stores.by_write_key(key)
    if store is None:
        raise Unauthorized("unknown write key")
    rt.limiter.take(store.store_id, store.name)
    return store


def admin_store(request: Request) -> Store:  # type: ignore[type-arg]
    """The store whose admin key is the bearer token."""
    token = bearer(request)
    if not token:
        raise Unauthorized("send the store's admin key as Authorization: Bearer <key>")
    store = runtime(request).engine.stores.by_admin_key(token)
    if store is None:
        raise Unauthorized("unknown admin key")
    return store


_encoder = msgspec.json.Encoder()


def json_response(content: object, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    """A JSON response encoded with msgspec."""
    return Response(_encoder.encode(content), status_code=status, media_type=JSON, headers=headers)


def error_response(exc: CartRecoverError) -> Response[bytes]:
    """`{"code": …, "message": …}`: the shape Segment's clients parse (without it they retry a 400)."""
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return json_response({"code": exc.code, "message": exc.message}, exc.status, headers)


OK = Response(b'{"success":true}', status_code=200, media_type=JSON)
