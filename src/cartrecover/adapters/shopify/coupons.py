"""Discount codes in Shopify: one `discountCodeBasicCreate` mutation of the Admin GraphQL API per code.

    shopify://SHOP.myshopify.com?token=ADMIN_API_TOKEN&api_version=2026-07[&scheme=http]

The app behind the token needs the `write_discounts` scope. Answers are translated here, and no httpx
exception leaves this module:

    200, codeDiscountNode                 → issued
    200, userError TAKEN on the code      → issued: a retry or re-send of the step made it before
    200, any other userError              → PermanentDelivery: this code will never be accepted
    200, top-level error THROTTLED; 429   → RetryableDelivery (the cost budget refills within seconds)
    401/403/404, other top-level errors   → RetryableDelivery: the token, scope, shop or version is wrong,
                                            which is our configuration; the step ends as a replayable dead letter
    5xx, timeouts, connection errors      → RetryableDelivery
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from cartrecover.errors import ConfigError, PermanentDelivery, RetryableDelivery

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_API_VERSION = "2026-07"
CREATE = """
mutation CreateRecoveryCode($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}
"""


class ShopifyCoupons:
    """Creates one-use percentage codes in one Shopify shop; safe to share between threads (httpx.Client is)."""

    def __init__(self, endpoint: str, token: str, client: httpx.Client | None = None) -> None:
        self.endpoint = endpoint
        self._client = client or httpx.Client(timeout=TIMEOUT, headers={"X-Shopify-Access-Token": token})

    @classmethod
    def from_url(cls, url: str, where: str = "coupons") -> ShopifyCoupons:
        """Read `shopify://SHOP.myshopify.com?token=…&api_version=…&scheme=…`."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(query) - {"token", "api_version", "scheme"}
        if parts.scheme != "shopify" or not parts.netloc or unknown:
            raise ConfigError(f"{where}: expected shopify://SHOP.myshopify.com?token=…&api_version=…")
        if not query.get("token"):
            raise ConfigError(f"{where}: give the Admin API access token as token=…")
        scheme = query.get("scheme", "https")
        if scheme not in ("http", "https"):
            raise ConfigError(f"{where}: scheme must be http or https, not {scheme!r}")
        version = query.get("api_version") or DEFAULT_API_VERSION
        return cls(f"{scheme}://{parts.netloc}/admin/api/{version}/graphql.json", query["token"])

    def issue(
        self, store_id: int, code: str, percent: int, expires_at: datetime, starts_at: datetime | None = None
    ) -> None:
        """Create the code: `percent` off every item, for all buyers, one use, from `starts_at` to `expires_at`."""
        variables = {"basicCodeDiscount": _discount(code, percent, starts_at or datetime.now(UTC), expires_at)}
        try:
            response = self._client.post(self.endpoint, json={"query": CREATE, "variables": variables})
        except httpx.TimeoutException as exc:
            raise RetryableDelivery(f"shopify timed out creating a discount: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:  # connection refused or reset, protocol errors
            raise RetryableDelivery(f"shopify unreachable: {type(exc).__name__}: {exc}") from exc
        _raise_for(response, code)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def _discount(code: str, percent: int, starts_at: datetime, expires_at: datetime) -> dict[str, Any]:
    return {
        "title": f"Cart recovery {code}",
        "code": code,
        "startsAt": _iso(starts_at),
        "endsAt": _iso(expires_at),
        "context": {"all": "ALL"},  # replaces `customerSelection: {all: true}`, deprecated since 2025-04
        "customerGets": {"value": {"percentage": percent / 100}, "items": {"all": True}},
        "appliesOncePerCustomer": True,
        "usageLimit": 1,
    }


def _raise_for(response: httpx.Response, code: str) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        raise RetryableDelivery(f"shopify {status}: throttled or unavailable")
    if status != 200:
        raise RetryableDelivery(f"shopify {status}: {_text(response)} (check the store's coupons URL and token)")
    body = _json(response)
    errors = body.get("errors")
    if errors:
        codes = {str((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}
        if "THROTTLED" in codes:
            raise RetryableDelivery("shopify: throttled (query cost over the shop's budget)")
        raise RetryableDelivery(f"shopify: {_text(response)} (check the token's write_discounts scope)")
    payload = (body.get("data") or {}).get("discountCodeBasicCreate") or {}
    user_errors = payload.get("userErrors") or []
    refused = [e for e in user_errors if not _code_taken(e)]
    if refused:
        raise PermanentDelivery("shopify refused the code: " + "; ".join(str(e.get("message")) for e in refused))
    if not user_errors and not payload.get("codeDiscountNode"):
        raise RetryableDelivery(f"shopify answered without a discount for {code}")


def _code_taken(error: dict[str, Any]) -> bool:
    """The code exists already: made by an earlier attempt of the same step, whose codes are unique to it."""
    return error.get("code") == "TAKEN" and "code" in (error.get("field") or [])


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(response: httpx.Response) -> str:
    body = _json(response)
    errors = body.get("errors")
    if isinstance(errors, list):
        return "; ".join(str(e.get("message")) if isinstance(e, dict) else str(e) for e in errors)
    return str(errors or response.reason_phrase)[:300]
