"""A token bucket per store: ingest answers 429 with Retry-After instead of falling over."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from cartrecover.errors import RateLimited


class RateLimiter:
    """`rate` requests per second per store, with bursts up to `burst`."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = rate, burst, clock
        self._buckets: dict[int, tuple[float, float]] = {}

    def take(self, store_id: int, name: str = "") -> None:
        """Spend one token or raise RateLimited saying when to come back."""
        if self._rate <= 0:
            return
        now = self._clock()
        tokens, last = self._buckets.get(store_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1:
            self._buckets[store_id] = (tokens, now)
            wait = max(1, math.ceil((1 - tokens) / self._rate))
            raise RateLimited(f"store {name or store_id} is over {self._rate:g} requests per second", retry_after=wait)
        self._buckets[store_id] = (tokens - 1, now)
