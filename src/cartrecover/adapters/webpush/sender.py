"""The web push channel: a message encrypted to the browser's subscription, posted to its push service.

The message's `to` is the subscription as the browser gave it (`{"endpoint": …, "keys": {"p256dh": …,
"auth": …}}`, JSON). 404 and 410 mean the subscription is gone: PermanentDelivery, so the engine suppresses
it. Everything else that fails (429, 5xx, connection errors, and 400/401/403, which are our VAPID setup and
not the subscription's fault) is RetryableDelivery: it is retried and ends as a replayable dead letter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from cartrecover.errors import ConfigError, PermanentDelivery, RetryableDelivery
from cartrecover.ports.channels import OutboundMessage

DEFAULT_TTL = 86_400  # pywebpush's default is 0: a browser that is offline at that moment would never see it
GONE = (404, 410)
_RESTORE_LINK = re.compile(r"https?://\S+/r/\S+")
_ANY_LINK = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class PushOptions:
    """How to sign and how long push services keep a message for an offline browser."""

    subject: str
    ttl: int = DEFAULT_TTL
    timeout: float = 10.0
    urgency: str = "normal"


class WebPushSender:
    """Sends push notifications signed with the shop's VAPID key."""

    def __init__(self, vapid: Vapid, options: PushOptions) -> None:
        self._vapid, self._options = vapid, options

    @classmethod
    def from_url(cls, url: str, data_dir: Path) -> WebPushSender:
        """`webpush://?vapid_private_key=/path/key.pem&subject=mailto:ops@shop.example&ttl=86400`.

        A relative key path is taken from the data directory. Optional: `timeout` (seconds), `urgency`.
        """
        query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
        key_path, subject = query.get("vapid_private_key"), query.get("subject")
        if not key_path or not subject:
            raise ConfigError("channels.push: webpush:// needs vapid_private_key=<PEM file> and subject=mailto:…")
        if not subject.startswith(("mailto:", "https://")):
            raise ConfigError("channels.push: subject must be a mailto: or https: URL (RFC 8292)")
        path = Path(key_path) if Path(key_path).is_absolute() else data_dir / key_path
        try:
            ttl = int(query.get("ttl", DEFAULT_TTL))
            timeout = float(query.get("timeout", 10))
        except ValueError as exc:
            raise ConfigError(f"channels.push: {exc}") from exc
        vapid = _read_key(path)
        if ttl < 0:
            raise ConfigError("channels.push: ttl must be 0 or more seconds")
        return cls(vapid, PushOptions(subject, ttl, timeout, query.get("urgency", "normal")))

    def send(self, message: OutboundMessage) -> str:
        """Encrypt and post one notification; returns the push service's message location (or our id)."""
        subscription = subscription_of(message.to)
        payload = json.dumps({"title": message.subject, "body": message.text, "url": link_in(message.text)})
        try:
            response: Any = webpush(
                subscription,
                data=payload,
                vapid_private_key=self._vapid,
                vapid_claims={"sub": self._options.subject},  # a new dict each time: webpush mutates it
                ttl=self._options.ttl,
                timeout=self._options.timeout,
                headers={"Urgency": self._options.urgency, "Topic": _topic(message.message_id)},
            )
        except WebPushException as exc:
            status = getattr(exc.response, "status_code", None)
            reason = f"push service answered {status}" if status else f"push failed: {exc.message}"
            if status in GONE:
                raise PermanentDelivery(f"{reason}: the subscription is gone") from exc
            raise RetryableDelivery(reason) from exc
        except requests.RequestException as exc:
            raise RetryableDelivery(f"push service unreachable: {type(exc).__name__}") from exc
        except (ValueError, TypeError) as exc:  # keys that do not decode to a P-256 point and a 16-byte secret
            raise PermanentDelivery(f"the push subscription's keys are invalid: {exc}") from exc
        return str(response.headers.get("Location") or message.message_id)


def _read_key(path: Path) -> Vapid:
    # Not Vapid.from_file: given a path that does not exist, it generates a new key there and carries on.
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"channels.push: cannot read the VAPID key {path}: {exc}") from exc
    try:
        return Vapid.from_pem(text.encode()) if "-----BEGIN" in text else Vapid.from_string(text.strip())
    except Exception as exc:  # py_vapid raises its own VapidException or whatever cryptography raised
        raise ConfigError(f"channels.push: {path} is not a VAPID private key (PEM or base64 DER)") from exc


def subscription_of(to: str) -> dict[str, Any]:
    """The subscription a message is addressed to; PermanentDelivery when it is not one."""
    try:
        found = json.loads(to)
    except ValueError as exc:
        raise PermanentDelivery("the push address is not a subscription (invalid JSON)") from exc
    keys = found.get("keys") if isinstance(found, dict) else None
    endpoint = found.get("endpoint") if isinstance(found, dict) else None
    if not isinstance(endpoint, str) or not isinstance(keys, dict) or not keys.get("p256dh") or not keys.get("auth"):
        raise PermanentDelivery("the push address is not a subscription (needs endpoint, keys.p256dh, keys.auth)")
    return {"endpoint": endpoint, "keys": {"p256dh": str(keys["p256dh"]), "auth": str(keys["auth"])}}


def link_in(text: str) -> str | None:
    """The restore link in a rendered message (the first link if none is a restore link)."""
    found = _RESTORE_LINK.search(text) or _ANY_LINK.search(text)
    return found.group(0).rstrip(".,;)") if found else None


def _topic(message_id: str) -> str:
    """RFC 8030 Topic (at most 32 URL-safe characters): a retry replaces an undelivered earlier attempt."""
    return re.sub(r"[^A-Za-z0-9_-]", "", message_id)[:32]
