"""Online features read through the cache: the times of a shopper's recent messages (`messages_30d`).

The cache holds, per store and shopper, the times of every message the outbox counts from some horizon on;
any window that starts at or after the horizon is counted from them, by the same rule as
`Outbox.sent_since` (sent at or after the window's start). A miss reads the times from the state store, in
the decision's own transaction, and fills the cache under the generation read before (ports/cache.py).

Why a value read in the decision's transaction may be cached: that transaction never changes a send time (sends
are set and cleared by delivery's transactions only), and it sees every commit made before its read: a write
transaction on SQLite holds the database's write lock, so nothing commits while it runs, and PostgreSQL's write
transactions run at READ COMMITTED, so each statement sees what committed before it started.

Delivery calls `sends_changed` after each transaction that claims or settles steps. When the cache cannot be
reached, reads go to the state store (a warning, once per outage), and the invalidations that failed are kept
and sent first when the cache is tried again: this process never reads the cache while it owes it one.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from cartrecover.errors import CacheError
from cartrecover.ports.cache import Cache, Cached
from cartrecover.ports.unit_of_work import UnitOfWork

_log = logging.getLogger(__name__)

RETRY_AFTER = 10.0  # seconds without trying the cache after it could not be reached
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_OWED = 100_000  # invalidations kept while the cache is unreachable; past this, some are lost (and logged)


class _Sends(msgspec.Struct, array_like=True):
    horizon: int  # µs: the times are complete from here on
    times: list[int]  # µs, ascending


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Sends).decode


def key(store_id: int, shopper_id: str) -> str:
    """The cache key of a shopper's send times."""
    return f"sends:{store_id}:{shopper_id}"


class RecentSends:
    """Counts a shopper's messages since a time, from the cache when it has them, else from the state store."""

    def __init__(self, cache: Cache, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._cache, self._clock = cache, clock
        self._retry_at = 0.0  # monotonic time before which the cache is not tried
        self._owed: set[str] = set()  # keys whose invalidation failed: sent before any read
        self._lock = threading.Lock()  # delivery and decisions may run on different threads
        self.hits = self.misses = 0

    def count_since(self, uow: UnitOfWork, store_id: int, shopper_id: str, since: datetime) -> int:
        """What `uow.outbox.sent_since(store_id, shopper_id, since)` returns, read through the cache."""
        name = key(store_id, shopper_id)
        cached = self._read(name)
        if cached is None:
            return uow.outbox.sent_since(store_id, shopper_id, since)
        start = _us(since)
        if cached.value is not None:
            sends = _decode(cached.value)
            if start >= sends.horizon:
                self.hits += 1
                return len(sends.times) - bisect.bisect_left(sends.times, start)
        self.misses += 1
        times = [_us(at) for at in uow.outbox.sent_times(store_id, shopper_id, since)]
        try:
            self._cache.fill(name, _encode(_Sends(start, times)), cached.generation)
        except CacheError as exc:
            self._unreachable(exc)
        return len(times)

    def sends_changed(self, shoppers: Iterable[tuple[int, str]]) -> None:
        """Drop the cached times of these (store, shopper) pairs; called after the transaction that changed them."""
        with self._lock:
            self._owed.update(key(store_id, shopper_id) for store_id, shopper_id in shoppers)
        if self._clock() >= self._retry_at:
            self._pay()

    def close(self) -> None:
        """Send what is owed (if the cache answers) and release its connections."""
        self.sends_changed(())
        self._cache.close()

    def _read(self, name: str) -> Cached | None:
        """The cached entry; None when the cache is not to be used now (unreachable, or invalidations owed)."""
        if self._clock() < self._retry_at or not self._pay():
            return None
        try:
            return self._cache.read(name)
        except CacheError as exc:
            self._unreachable(exc)
            return None

    def _pay(self) -> bool:
        """Send the owed invalidations, if any; False if the cache could not take them."""
        with self._lock:
            owed = set(self._owed)
        if not owed:
            return True
        try:
            self._cache.invalidate(owed)
        except CacheError as exc:
            self._unreachable(exc)
            with self._lock:
                if len(self._owed) > MAX_OWED:
                    _log.error(
                        "%d cache invalidations could not be sent: the entries they concern may be stale until "
                        "they expire",
                        len(self._owed),
                    )
                    self._owed.clear()
            return False
        with self._lock:
            self._owed -= owed
        return True

    def _unreachable(self, exc: CacheError) -> None:
        if self._clock() >= self._retry_at:  # once per outage, not once per decision
            _log.warning("%s; decisions read the state store for the next %.0f s", exc.message, RETRY_AFTER)
        self._retry_at = self._clock() + RETRY_AFTER


def _us(at: datetime) -> int:
    """Microseconds since the epoch, as the state stores compare times."""
    return (at - _EPOCH) // timedelta(microseconds=1)
