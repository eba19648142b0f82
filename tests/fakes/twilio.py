"""A fake Twilio on 127.0.0.1: the Messages API as the sender uses it, and signed callbacks back to us.

It checks HTTP Basic auth and the form fields the way Twilio does, keeps the messages it accepted, answers
with Twilio's JSON shapes (201 with `sid` and `status`; errors as `{"code", "message", "more_info", "status"}`),
refuses numbers that texted STOP with 21610 like Twilio, can be told to fail, and can POST status callbacks
signed with the account's token.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote

import httpx

from cartrecover.ingest.twilio import signature
from tests.fakes._http import QuietHandler, serve

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "fake-auth-token-0123456789abcdef"
FROM = "+15005550006"
Post = Callable[..., httpx.Response]


@dataclass
class Failure:
    """What the fake answers instead of accepting a message."""

    status: int
    code: int | None = None
    message: str = "failure injected by the test"
    times: int = 1_000_000  # how many requests fail before it accepts again


@dataclass
class FakeTwilio:
    """The state behind the server: accepted messages, requests seen, failures to inject, opted-out numbers."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    port: int = 0
    messages: list[dict[str, str]] = field(default_factory=list)
    requests: int = 0
    failure: Failure | None = None
    opted_out: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, *, callback: str | None = None, service: str | None = None) -> str:
        """The `sms` channel URL pointing at this fake."""
        sender = f"messaging_service_sid={service}" if service else f"from={quote(FROM)}"
        extra = f"&status_callback={quote(callback, safe='')}" if callback else ""
        return f"twilio://{self.account_sid}:{self.auth_token}@127.0.0.1:{self.port}?{sender}{extra}&scheme=http"

    def fail(
        self, status: int, code: int | None = None, message: str = "failure injected", times: int = 1_000_000
    ) -> None:
        """Answer the next `times` requests with this error."""
        self.failure = Failure(status, code, message, times)

    def sign(self, url: str, params: dict[str, str]) -> str:
        """The `X-Twilio-Signature` Twilio would send with these parameters to this URL."""
        return signature(self.auth_token, url, params.items())

    def status_params(self, message: dict[str, str], status: str, error_code: str | None = None) -> dict[str, str]:
        """The form of a status callback for an accepted message, as Twilio posts it."""
        params = {
            "AccountSid": self.account_sid,
            "MessageSid": message["sid"],
            "SmsSid": message["sid"],
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message["To"],
            "From": message.get("From", FROM),
            "ApiVersion": "2010-04-01",
        }
        if error_code:
            params["ErrorCode"] = error_code
        return params

    def status_callback(
        self, message: dict[str, str], status: str, error_code: str | None = None, *, post: Post = httpx.post
    ) -> httpx.Response:
        """POST a signed status callback to the message's StatusCallback, as Twilio does when its status changes.

        `post` is httpx.post (a server on a port) or a test client's post (the app in process).
        """
        url, params = message["StatusCallback"], self.status_params(message, status, error_code)
        return post(url, data=params, headers={"X-Twilio-Signature": self.sign(url, params)})

    def answer(self, authorization: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Twilio's answer to one POST."""
        with self.lock:
            self.requests += 1
            expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
            if authorization != expected:
                return _error(401, 20003, "Authenticate")
            if path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
                return _error(404, 20404, f"The requested resource {path} was not found")
            if self.failure is not None and self.failure.times > 0:
                self.failure.times -= 1
                return _error(self.failure.status, self.failure.code, self.failure.message)
            problem = _check(form)
            if problem is not None:
                return problem
            if form["To"] in self.opted_out:
                return _error(400, 21610, "Attempt to send to unsubscribed recipient")
            message = {**form, "sid": "SM" + uuid.uuid4().hex, "status": "queued"}
            self.messages.append(message)
            return 201, {
                "sid": message["sid"],
                "account_sid": self.account_sid,
                "to": form["To"],
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form["Body"],
                "status": "queued",
                "num_segments": str(1 + len(form["Body"]) // 153),
                "error_code": None,
                "error_message": None,
                "api_version": "2010-04-01",
            }


def _check(form: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
    if not form.get("To"):
        return _error(400, 21604, "A 'To' phone number is required.")
    if not form["To"].startswith("+") or not form["To"][1:].isdigit():
        return _error(400, 21211, f"The 'To' number {form['To']} is not a valid phone number.")
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.")
    if not form.get("Body"):
        return _error(400, 21602, "Message body is required.")
    if len(form["Body"]) > 1600:
        return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    return None


def _error(status: int, code: int | None, message: str) -> tuple[int, dict[str, Any]]:
    more = f"https://www.twilio.com/docs/errors/{code}" if code else None
    return status, {"code": code, "message": message, "more_info": more, "status": status}


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length).decode()
            if self.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
                status, body = _error(400, 20001, "the body must be form-encoded")
            else:
                form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                status, body = fake.answer(self.headers.get("Authorization", ""), self.path, form)
            self.reply(status, body)

    return Handler


@contextmanager
def running(fake: FakeTwilio | None = None) -> Iterator[FakeTwilio]:
    """Serve a fake Twilio on 127.0.0.1 (a free port) for the duration of the block."""
    fake = fake or FakeTwilio()
    with serve(_handler(fake), "fake-twilio") as port:
        fake.port = port
        yield fake
