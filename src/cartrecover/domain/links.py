"""Signed, expiring tokens for the links in messages: restore (click) and unsubscribe.

A token names the store, the step and the channel, and when it expires; an HMAC-SHA256 over it (keyed by
the engine's secret) makes it unforgeable. Nothing personal is in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec


class InvalidLink(ValueError):
    """A token that is malformed, forged, of another kind, or expired."""


@dataclass(frozen=True)
class LinkClaims:
    """What a valid token says."""

    kind: str
    store_id: int
    step_id: str
    channel: str
    expires: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Makes and reads tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token(self, kind: str, store_id: int, step_id: str, channel: str, expires: datetime) -> str:
        """A URL-safe token."""
        body = msgspec.msgpack.encode([kind, store_id, step_id, channel, int(expires.timestamp())])
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def read(self, token: str, kind: str, now: datetime) -> LinkClaims:
        """The claims of a valid, unexpired token of this kind; InvalidLink otherwise."""
        try:
            body_text, mac_text = token.split(".", 1)
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, TypeError) as exc:
            raise InvalidLink("malformed link") from exc
        if not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidLink("this link is not valid")
        try:
            found, store_id, step_id, channel, expires = msgspec.msgpack.decode(body)
            claims = LinkClaims(
                str(found), int(store_id), str(step_id), str(channel), datetime.fromtimestamp(expires, UTC)
            )
        except (ValueError, TypeError, msgspec.DecodeError) as exc:
            raise InvalidLink("malformed link") from exc
        if claims.kind != kind:
            raise InvalidLink("this link is for something else")
        if claims.expires < now:
            raise InvalidLink("this link has expired")
        return claims

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:16]
