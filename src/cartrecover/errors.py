"""Every error the engine raises on purpose.

    CartRecoverError
    ├── InvalidEvent          bad input: 400, nothing stored
    │   ├── PayloadTooLarge   over Segment's size limits: 413
    │   └── UnsupportedMediaType  a body that is not JSON: 415
    ├── Unauthorized          missing or wrong key or signature: 401
    ├── NotFound              no such cart (or not this store's): 404
    ├── RateLimited           the store sends faster than its limit: 429 with Retry-After
    ├── ClockError            the clock cannot be moved like that: 409
    ├── ConfigError           the settings are inconsistent
    ├── CacheError            the cache of derived data cannot be reached: the state store answers instead
    ├── DeliveryError         a channel could not deliver
    │   ├── RetryableDelivery     try again later (provider down, throttled)
    │   └── PermanentDelivery     never will (hard bounce, unsubscribed number): suppress the address
    └── StoreError            the backend failed: 503, the client retries
        └── StoreExists       a store with that name exists: 409

Vendor exceptions (sqlite3, …) are translated to StoreError (redis-py's to CacheError) at the adapter edge.
"""

from __future__ import annotations


class CartRecoverError(Exception):
    """Base of the engine's errors; `code` is the machine-readable reason sent to clients."""

    status = 500
    code = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidEvent(CartRecoverError):
    """The input is not a valid event or request."""

    status, code = 400, "invalid_request"


class PayloadTooLarge(InvalidEvent):
    """An event or batch is over the size limits."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(InvalidEvent):
    """The body's Content-Type or Content-Encoding is not one we read."""

    status, code = 415, "unsupported_media_type"


class Unauthorized(CartRecoverError):
    """No valid key or signature for a store."""

    status, code = 401, "unauthorized"


class NotFound(CartRecoverError):
    """The thing asked for does not exist for this store."""

    status, code = 404, "not_found"


class RateLimited(CartRecoverError):
    """The store is over its request rate."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClockError(CartRecoverError):
    """The engine clock cannot be moved as asked."""

    status, code = 409, "clock"


class ConfigError(CartRecoverError):
    """The settings are wrong."""

    code = "config"


class CacheError(CartRecoverError):
    """The cache cannot be reached; what it holds is derived, so callers read the state store instead."""

    code = "cache"


class DeliveryError(CartRecoverError):
    """A channel could not deliver a message."""

    code = "delivery"


class RetryableDelivery(DeliveryError):
    """Delivery failed for now; the step is retried with backoff."""


class PermanentDelivery(DeliveryError):
    """Delivery will never succeed to this address; it is suppressed on the channel."""


class StoreError(CartRecoverError):
    """The storage backend failed; the request may be retried."""

    status, code = 503, "unavailable"


class StoreExists(StoreError):
    """A store with this name already exists."""

    status, code = 409, "store_exists"
