"""A fake Shopify Admin GraphQL API on 127.0.0.1: `discountCodeBasicCreate`, as the coupon issuer uses it.

It checks the `X-Shopify-Access-Token` header, the path (`/admin/api/{version}/graphql.json`) and the
mutation's input the way Shopify validates it, keeps the discounts it created, and answers with Shopify's
shapes: `data.discountCodeBasicCreate` with `codeDiscountNode` or `userErrors` (`TAKEN` for a code that
exists), top-level `errors` with `extensions.code = "THROTTLED"` when told to throttle, and plain HTTP
statuses (401 for a bad token, 429, 5xx) when told to fail.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes._http import QuietHandler, serve

TOKEN = "shpat_fake0123456789abcdef"
API_VERSION = "2026-07"
Answer = tuple[int, dict[str, Any]]


@dataclass
class Trouble:
    """What the fake answers instead of creating a discount: `throttle`, or an HTTP status."""

    kind: str  # "throttle" (200 with a THROTTLED error), "refuse" (200 with a userError) or "status"
    status: int = 200
    code: str = ""  # the userError's code, for "refuse"
    message: str = ""
    times: int = 1_000_000  # how many requests it lasts


@dataclass
class FakeShopify:
    """The state behind the server: discounts by code, requests seen, trouble to inject."""

    token: str = TOKEN
    port: int = 0
    discounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    trouble: Trouble | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, token: str | None = None) -> str:
        """The store's `coupons` URL pointing at this fake."""
        return f"shopify://127.0.0.1:{self.port}?token={token or self.token}&api_version={API_VERSION}&scheme=http"

    def throttle(self, times: int = 1_000_000) -> None:
        """Answer the next `times` requests as Shopify does when the query cost is over the bucket."""
        self.trouble = Trouble("throttle", times=times)

    def refuse(self, code: str, message: str, times: int = 1_000_000) -> None:
        """Answer the next `times` mutations with this userError (e.g. the shop is at its discount limit)."""
        self.trouble = Trouble("refuse", code=code, message=message, times=times)

    def fail(self, status: int, times: int = 1_000_000) -> None:
        """Answer the next `times` requests with this HTTP status."""
        self.trouble = Trouble("status", status, times=times)

    def answer(self, token: str, path: str, body: dict[str, Any]) -> Answer:
        """Shopify's answer to one POST."""
        with self.lock:
            self.requests += 1
            if token != self.token:
                return 401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
            if path != f"/admin/api/{API_VERSION}/graphql.json":
                return 404, {"errors": "Not Found"}
            if self.trouble is not None and self.trouble.times > 0:
                self.trouble.times -= 1
                return self._trouble(self.trouble)
            query, variables = str(body.get("query", "")), body.get("variables") or {}
            if "discountCodeBasicCreate" not in query or "basicCodeDiscount" not in variables:
                return 200, {"errors": [{"message": "this fake knows only discountCodeBasicCreate"}]}
            return 200, {"data": {"discountCodeBasicCreate": self._create(variables["basicCodeDiscount"])}}

    def _create(self, given: dict[str, Any]) -> dict[str, Any]:
        errors = _check(given)
        if not errors and given["code"].lower() in (c.lower() for c in self.discounts):
            errors = [_user_error("code", "TAKEN", "Code must be unique. Please try a different code.")]
        if errors:
            return {"codeDiscountNode": None, "userErrors": errors}
        node_id = f"gid://shopify/DiscountCodeNode/{1000 + len(self.discounts)}"
        self.discounts[given["code"]] = {**given, "id": node_id}
        return {"codeDiscountNode": {"id": node_id}, "userErrors": []}

    def _trouble(self, trouble: Trouble) -> Answer:
        if trouble.kind == "throttle":
            cost = {"requestedQueryCost": 10, "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 0}}
            error = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
            return 200, {"errors": [error], "extensions": {"cost": cost}}
        if trouble.kind == "refuse":
            refusal = {"codeDiscountNode": None, "userErrors": [_user_error("base", trouble.code, trouble.message)]}
            return 200, {"data": {"discountCodeBasicCreate": refusal}}
        return trouble.status, {"errors": "Exceeded 2 calls per second for api client. Reduce request rates."}


def _check(given: dict[str, Any]) -> list[dict[str, Any]]:
    """The validation Shopify applies to the fields the issuer sends."""
    errors = []
    for name in ("title", "code", "startsAt"):
        if not given.get(name):
            errors.append(_user_error(name, "BLANK", f"{name} can't be blank"))
    everyone = (given.get("context") or {}).get("all") == "ALL" or (given.get("customerSelection") or {}).get("all")
    if not everyone:
        errors.append(_user_error("context", "BLANK", "Context can't be blank"))
    gets = given.get("customerGets") or {}
    percentage = (gets.get("value") or {}).get("percentage")
    if not isinstance(percentage, (int, float)) or not 0 < percentage <= 1:
        errors.append(_user_error("customerGets.value.percentage", "VALUE_OUTSIDE_RANGE", "Value must be 0..1"))
    if not (gets.get("items") or {}).get("all"):
        errors.append(_user_error("customerGets.items", "BLANK", "Items can't be blank"))
    if given.get("startsAt") and given.get("endsAt") and _when(given["endsAt"]) <= _when(given["startsAt"]):
        errors.append(_user_error("endsAt", "END_DATE_BEFORE_START_DATE", "Ends at needs to be after starts_at"))
    return errors


def _user_error(name: str, code: str, message: str) -> dict[str, Any]:
    return {"field": ["basicCodeDiscount", name], "code": code, "message": message}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _handler(fake: FakeShopify) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json" or not isinstance(body, dict):
                status, answer = 400, {"errors": "Bad Request: the body must be JSON"}
            else:
                status, answer = fake.answer(self.headers.get("X-Shopify-Access-Token", ""), self.path, body)
            self.reply(status, answer, "application/json; charset=utf-8")

    return Handler


@contextmanager
def running(fake: FakeShopify | None = None) -> Iterator[FakeShopify]:
    """Serve a fake Shopify Admin API on 127.0.0.1 (a free port) for the duration of the block."""
    fake = fake or FakeShopify()
    with serve(_handler(fake), "fake-shopify") as port:
        fake.port = port
        yield fake
