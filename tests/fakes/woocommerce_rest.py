"""A fake WooCommerce REST API on 127.0.0.1: `POST /wp-json/wc/v3/coupons`, as the coupon issuer uses it.

It checks HTTP Basic auth with the consumer key and secret and the JSON body the way WooCommerce validates
it, keeps the coupons it created (codes compared without case, like WooCommerce), and answers with
WooCommerce's shapes: 201 with the coupon, errors as `{"code", "message", "data": {"status"}}` —
`woocommerce_rest_coupon_code_already_exists` for a code that exists, `woocommerce_rest_cannot_create` (401)
for bad keys — and any status and error code it is told to fail with.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes._http import QuietHandler, serve

KEY = "ck_" + "a1" * 20
SECRET = "cs_" + "b2" * 20
DISCOUNT_TYPES = ("percent", "fixed_cart", "fixed_product")
Answer = tuple[int, dict[str, Any]]


@dataclass
class Failure:
    """What the fake answers instead of creating a coupon."""

    status: int
    code: str = "failure_injected"
    message: str = "failure injected by the test"
    times: int = 1_000_000  # how many requests fail before it accepts again


@dataclass
class FakeWooCommerce:
    """The state behind the server: coupons by code, requests seen, failures to inject."""

    key: str = KEY
    secret: str = SECRET
    port: int = 0
    coupons: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    failure: Failure | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, secret: str | None = None) -> str:
        """The store's `coupons` URL pointing at this fake."""
        return f"woocommerce://127.0.0.1:{self.port}?key={self.key}&secret={secret or self.secret}&scheme=http"

    def fail(
        self, status: int, code: str = "failure_injected", message: str = "failure", times: int = 1_000_000
    ) -> None:
        """Answer the next `times` requests with this error."""
        self.failure = Failure(status, code, message, times)

    def answer(self, authorization: str, path: str, body: dict[str, Any]) -> Answer:
        """WooCommerce's answer to one POST."""
        with self.lock:
            self.requests += 1
            expected = "Basic " + base64.b64encode(f"{self.key}:{self.secret}".encode()).decode()
            if authorization != expected:
                return _error(401, "woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources.")
            if path != "/wp-json/wc/v3/coupons":
                return _error(404, "rest_no_route", "No route was found matching the URL and request method.")
            if self.failure is not None and self.failure.times > 0:
                self.failure.times -= 1
                return _error(self.failure.status, self.failure.code, self.failure.message)
            problem = _check(body)
            if problem is not None:
                return problem
            if body["code"].lower() in (c.lower() for c in self.coupons):
                return _error(400, "woocommerce_rest_coupon_code_already_exists", "The coupon code already exists")
            coupon = {
                "id": 100 + len(self.coupons),
                "code": body["code"].lower(),
                "amount": f"{float(body.get('amount', '0')):.2f}",
                "discount_type": body.get("discount_type", "fixed_cart"),
                "date_expires": body.get("date_expires"),
                "usage_limit": body.get("usage_limit"),
                "individual_use": bool(body.get("individual_use", False)),
                "usage_count": 0,
            }
            self.coupons[body["code"]] = coupon
            return 201, coupon


def _check(body: dict[str, Any]) -> Answer | None:
    """The validation WordPress's REST schema applies to the fields the issuer sends."""
    if not body.get("code"):
        return _error(400, "rest_missing_callback_param", "Missing parameter(s): code")
    if body.get("discount_type", "fixed_cart") not in DISCOUNT_TYPES:
        return _invalid("discount_type", f"discount_type is not one of {', '.join(DISCOUNT_TYPES)}.")
    if not isinstance(body.get("amount", "0"), str):
        return _invalid("amount", "amount is not of type string.")
    limit = body.get("usage_limit")
    if limit is not None and not isinstance(limit, int):
        return _invalid("usage_limit", "usage_limit is not of type integer.")
    expires = body.get("date_expires")
    if expires is not None:
        try:
            datetime.fromisoformat(expires)
        except (TypeError, ValueError):
            return _invalid("date_expires", "Invalid date.")
    return None


def _invalid(param: str, message: str) -> Answer:
    status, body = _error(400, "rest_invalid_param", f"Invalid parameter(s): {param}")
    body["data"]["params"] = {param: message}
    return status, body


def _error(status: int, code: str, message: str) -> Answer:
    return status, {"code": code, "message": message, "data": {"status": status}}


def _handler(fake: FakeWooCommerce) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json" or not isinstance(body, dict):
                status, answer = _error(400, "rest_invalid_json", "Invalid JSON body passed.")
            else:
                status, answer = fake.answer(self.headers.get("Authorization", ""), self.path, body)
            self.reply(status, answer, "application/json; charset=UTF-8")

    return Handler


@contextmanager
def running(fake: FakeWooCommerce | None = None) -> Iterator[FakeWooCommerce]:
    """Serve a fake WooCommerce REST API on 127.0.0.1 (a free port) for the duration of the block."""
    fake = fake or FakeWooCommerce()
    with serve(_handler(fake), "fake-woocommerce") as port:
        fake.port = port
        yield fake
