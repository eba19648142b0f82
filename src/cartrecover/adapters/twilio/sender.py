"""The SMS channel: one form-encoded POST to Twilio's `Messages.json` per message.

Errors are translated here, and no httpx exception leaves this module:

    201                                   → the message's sid
    400 with 21610, 21211, 21614, …       → PermanentDelivery (the number is suppressed for SMS)
    401/403/404, or 400 about our sender  → RetryableDelivery: the account is misconfigured, not the shopper's
                                            number, so the step ends as a replayable dead letter instead of
                                            suppressing every shopper it was meant for
    429, 5xx, timeouts, connection errors → RetryableDelivery
    any other 4xx                         → PermanentDelivery with Twilio's code and message
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from cartrecover.errors import PermanentDelivery, RetryableDelivery
from cartrecover.ingest.twilio import TwilioAccount
from cartrecover.ports.channels import OutboundMessage

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Codes about our account or sender number: nothing the recipient did, so never a reason to suppress them.
ACCOUNT_CODES = frozenset({20003, 20404, 21212, 21603, 21606})


class TwilioSender:
    """Sends texts through one Twilio account; safe to share between threads (httpx.Client is)."""

    def __init__(self, account: TwilioAccount, client: httpx.Client | None = None) -> None:
        self.account = account
        self._client = client or httpx.Client(timeout=TIMEOUT, auth=(account.account_sid, account.auth_token))

    @classmethod
    def from_url(cls, url: str, data_dir: Path) -> TwilioSender:
        """`twilio://SID:TOKEN@api.twilio.com?from=%2B1…|messaging_service_sid=MG…&status_callback=…&scheme=…`."""
        return cls(TwilioAccount.from_url(url))

    def send(self, message: OutboundMessage) -> str:
        """POST the text; returns Twilio's message sid."""
        try:
            response = self._client.post(self.account.messages_url, data=self._form(message))
        except httpx.TimeoutException as exc:
            raise RetryableDelivery(f"twilio timed out: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:  # connection refused or reset, protocol errors
            raise RetryableDelivery(f"twilio unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code in (200, 201):
            sid = _json(response).get("sid")
            if not isinstance(sid, str) or not sid:
                raise RetryableDelivery(f"twilio answered {response.status_code} without a message sid")
            return sid
        raise _error(response)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _form(self, message: OutboundMessage) -> dict[str, str]:
        form = {"To": message.to, "Body": message.text}
        if self.account.messaging_service_sid:
            form["MessagingServiceSid"] = self.account.messaging_service_sid
        else:
            form["From"] = self.account.from_number or ""
        if self.account.status_callback:
            form["StatusCallback"] = with_store(self.account.status_callback, message.store_id)
        return form


def with_store(url: str, store_id: int) -> str:
    """The status callback URL naming the message's store (`store_id=`), so its suppressions go to that store."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "store_id"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("store_id", str(store_id))])))


def _error(response: httpx.Response) -> RetryableDelivery | PermanentDelivery:
    body = _json(response)
    code, text = body.get("code"), str(body.get("message") or response.reason_phrase)
    what = f"twilio {code or response.status_code}: {text}"
    if response.status_code == 429 or response.status_code >= 500:
        return RetryableDelivery(what)
    if response.status_code in (401, 403, 404) or code in ACCOUNT_CODES:
        return RetryableDelivery(f"{what} (check the sms channel's account settings)")
    return PermanentDelivery(what)


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
