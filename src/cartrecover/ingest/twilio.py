"""Twilio's protocol for SMS: the account named by the `sms` channel URL, signed callbacks, inbound keywords.

The sender (adapters/twilio) and the webhook routes (entrypoints/http/twilio.py) both read the account from
the same channel URL through `TwilioAccount.from_url`; it lives here, beside the other platforms' inbound
protocols, because the entry points may not import adapters.

    twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com?from=%2B15005550006&status_callback=https://…&scheme=https

Keywords mirror the ones Twilio itself honours on long codes (exact single word, any case): a STOP that we
ignored would still be enforced by Twilio as error 21610, so ours must be at least as wide.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote, urlsplit

from cartrecover.domain.events import Event, EventKind
from cartrecover.errors import ConfigError

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
# Delivery errors that say the number will never take our texts: opted out, not a mobile, unknown, blocked.
PERMANENT_CODES = frozenset({"21610", "21211", "21614", "30004", "30005", "30006"})


@dataclass(frozen=True)
class TwilioAccount:
    """Where and as whom to send: parsed from the `sms` channel URL. The token is never in the repr."""

    account_sid: str
    auth_token: str = field(repr=False)
    base_url: str = "https://api.twilio.com"
    from_number: str | None = None
    messaging_service_sid: str | None = None
    status_callback: str | None = None

    @classmethod
    def from_url(cls, url: str) -> TwilioAccount:
        """Read `twilio://SID:TOKEN@host[:port]?from=…|messaging_service_sid=…&status_callback=…&scheme=…`."""
        parts = urlsplit(url)
        if parts.scheme != "twilio":
            raise ConfigError("channels.sms: a Twilio URL starts with twilio://")
        if not parts.username or not parts.password:
            raise ConfigError("channels.sms: name the account as twilio://ACCOUNT_SID:AUTH_TOKEN@host")
        # Not parse_qs: it reads '+' as a space, and `from=+1500…` is the natural way to write a number.
        query = dict(_pair(part) for part in parts.query.split("&") if part)
        unknown = set(query) - {"from", "messaging_service_sid", "status_callback", "scheme"}
        if unknown:
            raise ConfigError(f"channels.sms: unknown parameters {', '.join(sorted(unknown))}")
        if bool(query.get("from")) == bool(query.get("messaging_service_sid")):
            raise ConfigError("channels.sms: give exactly one of from=<number> or messaging_service_sid=<MG…>")
        scheme = query.get("scheme", "https")
        if scheme not in ("http", "https"):
            raise ConfigError(f"channels.sms: scheme must be http or https, not {scheme!r}")
        return cls(
            account_sid=unquote(parts.username),
            auth_token=unquote(parts.password),
            base_url=f"{scheme}://{parts.hostname or 'api.twilio.com'}{f':{parts.port}' if parts.port else ''}",
            from_number=query.get("from") or None,
            messaging_service_sid=query.get("messaging_service_sid") or None,
            status_callback=query.get("status_callback") or None,
        )

    @property
    def messages_url(self) -> str:
        """The Messages resource of the account."""
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"


def _pair(part: str) -> tuple[str, str]:
    name, _, value = part.partition("=")
    return unquote(name), unquote(value).strip()


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """`X-Twilio-Signature`: base64 HMAC-SHA1 over the URL and the POST parameters sorted by name, name+value.

    A parameter repeated with the same value counts once, as in Twilio's own validators.
    """
    data = url + "".join(name + value for name, value in sorted(set(params)))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def signed(auth_token: str, urls: Iterable[str], params: Sequence[tuple[str, str]], sent: str | None) -> bool:
    """Whether `sent` is the signature of the parameters at any of the URLs the request may have been sent to.

    Several URLs because a proxy in front of us may change scheme, host or port: Twilio signs the URL it was
    configured with. Compared in constant time.
    """
    if not sent or not auth_token:
        return False
    return any(hmac.compare_digest(signature(auth_token, url, params).encode(), sent.encode()) for url in urls)


class Keyword(enum.StrEnum):
    """What an inbound text asks for."""

    STOP = "stop"
    START = "start"
    HELP = "help"
    NONE = "none"


def keyword(body: str) -> Keyword:
    """The keyword a text is, if it is exactly one (trimmed, any case); "STOP PLEASE" is not."""
    word = body.strip().upper()
    if word in STOP_WORDS:
        return Keyword.STOP
    if word in START_WORDS:
        return Keyword.START
    if word in HELP_WORDS:
        return Keyword.HELP
    return Keyword.NONE


def inbound_event(store_id: int, form: Mapping[str, str], received_at: datetime) -> Event | None:
    """The consent event an inbound text means (STOP or START from the sender's number), or None."""
    word, phone = keyword(form.get("Body", "")), form.get("From", "").strip()
    if word not in (Keyword.STOP, Keyword.START) or not phone:
        return None
    kind = EventKind.UNSUBSCRIBED if word is Keyword.STOP else EventKind.RESUBSCRIBED
    return Event(
        kind=kind,
        store_id=store_id,
        # Twilio retries a webhook with the same MessageSid: the event log keeps it once.
        message_id=f"twilio:{form.get('MessageSid') or form.get('SmsSid') or f'{phone}:{received_at.isoformat()}'}",
        source="twilio",
        name=f"sms {word.value}",
        at=received_at,
        received_at=received_at,
        phone=phone,
        properties={"channel": "sms", "reason": word.value.upper()},
    )


def status_event(store_id: int, form: Mapping[str, str], received_at: datetime) -> Event | None:
    """An opt-out of the recipient when a delivery failed for good (21610, 30006, …), or None."""
    status, code, phone = form.get("MessageStatus", ""), form.get("ErrorCode", "").strip(), form.get("To", "").strip()
    if status not in ("failed", "undelivered") or code not in PERMANENT_CODES or not phone:
        return None
    return Event(
        kind=EventKind.UNSUBSCRIBED,
        store_id=store_id,
        message_id=f"twilio:{form.get('MessageSid', phone)}:{status}",
        source="twilio",
        name="sms delivery failed",
        at=received_at,
        received_at=received_at,
        phone=phone,
        properties={"channel": "sms", "reason": f"twilio {code}"},
    )
