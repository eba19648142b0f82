"""Coupons in WooCommerce: one `POST /wp-json/wc/v3/coupons` of its REST API per code.

    woocommerce://shop.example[/wordpress-path]?key=ck_…&secret=cs_…[&scheme=http]

The key needs read/write permission. Answers are translated here, and no httpx exception leaves this module:

    201                                              → issued
    400 woocommerce_rest_coupon_code_already_exists  → issued: a retry or re-send of the step made it before
    401/403/404                                      → RetryableDelivery: the keys or the site URL are wrong,
                                                       our configuration; the step ends as a replayable dead letter
    429, 5xx, timeouts, connection errors            → RetryableDelivery
    any other 4xx                                    → PermanentDelivery with WooCommerce's code and message
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from cartrecover.errors import ConfigError, PermanentDelivery, RetryableDelivery

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
CODE_EXISTS = "woocommerce_rest_coupon_code_already_exists"


class WooCommerceCoupons:
    """Creates one-use percentage coupons in one WooCommerce site; safe to share between threads."""

    def __init__(self, endpoint: str, key: str, secret: str, client: httpx.Client | None = None) -> None:
        self.endpoint = endpoint
        self._client = client or httpx.Client(timeout=TIMEOUT, auth=(key, secret))

    @classmethod
    def from_url(cls, url: str, where: str = "coupons") -> WooCommerceCoupons:
        """Read `woocommerce://HOST[/PATH]?key=ck_…&secret=cs_…&scheme=…`."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(query) - {"key", "secret", "scheme"}
        if parts.scheme != "woocommerce" or not parts.netloc or unknown:
            raise ConfigError(f"{where}: expected woocommerce://HOST?key=ck_…&secret=cs_…")
        if not query.get("key") or not query.get("secret"):
            raise ConfigError(f"{where}: give the REST API consumer key and secret as key=…&secret=…")
        scheme = query.get("scheme", "https")
        if scheme not in ("http", "https"):
            raise ConfigError(f"{where}: scheme must be http or https, not {scheme!r}")
        site = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        return cls(f"{site}/wp-json/wc/v3/coupons", query["key"], query["secret"])

    def issue(
        self, store_id: int, code: str, percent: int, expires_at: datetime, starts_at: datetime | None = None
    ) -> None:
        """Create the coupon: `percent` off, one use, alone, until `expires_at` (WooCommerce has no start)."""
        body = {
            "code": code,
            "discount_type": "percent",
            "amount": str(percent),
            # With its offset, so the site's own time zone does not shift it.
            "date_expires": expires_at.astimezone(UTC).isoformat(timespec="seconds"),
            "usage_limit": 1,
            "individual_use": True,
            "description": "Cart recovery",
        }
        try:
            response = self._client.post(self.endpoint, json=body)
        except httpx.TimeoutException as exc:
            raise RetryableDelivery(f"woocommerce timed out creating a coupon: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:  # connection refused or reset, protocol errors
            raise RetryableDelivery(f"woocommerce unreachable: {type(exc).__name__}: {exc}") from exc
        _raise_for(response)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if status in (200, 201):
        return
    body = _json(response)
    what = f"woocommerce {status} {body.get('code') or ''}: {body.get('message') or response.reason_phrase}"
    if status == 400 and body.get("code") == CODE_EXISTS:
        return
    if status == 429 or status >= 500:
        raise RetryableDelivery(what)
    if status in (401, 403, 404):
        raise RetryableDelivery(f"{what} (check the store's coupons URL, key and secret)")
    raise PermanentDelivery(what)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
