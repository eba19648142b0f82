"""The in-process cache (`memory://?ttl=3600&max_entries=100000`): right for one process that both decides and
delivers (the embedded default: `serve` and its one worker). Processes do not see each other's invalidations, so
several workers need a cache they share (`redis://`) or none.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from urllib.parse import parse_qs, urlsplit

from cartrecover.errors import ConfigError
from cartrecover.ports.cache import Cached

DEFAULT_TTL = 3600.0
DEFAULT_MAX_ENTRIES = 100_000


class MemoryCache:
    """Keys → (generation, value, expiry) in one dict, oldest first; a full cache drops its oldest keys."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ConfigError("memory:// cache: ttl and max_entries must be positive")
        self._ttl, self._max, self._clock = ttl, max_entries, clock
        self._entries: OrderedDict[str, tuple[int, bytes | None, float]] = OrderedDict()
        # Generations are never reused: a key dropped and begun again gets a new one, so a fill computed
        # before the drop is refused (the port's docstring).
        self._generations = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> MemoryCache:
        """`memory://` with optional `ttl` (seconds a value lives) and `max_entries`."""
        parts = urlsplit(url)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        if parts.scheme != "memory" or parts.netloc or parts.path.strip("/"):
            raise ConfigError(f"not a memory:// URL: {url!r}")
        if unknown := set(query) - {"ttl", "max_entries"}:
            raise ConfigError(f"unknown memory:// URL parameters: {', '.join(sorted(unknown))}")
        try:
            return cls(float(query.get("ttl", DEFAULT_TTL)), int(query.get("max_entries", DEFAULT_MAX_ENTRIES)))
        except ValueError as exc:
            raise ConfigError(f"memory:// URL: {exc}") from exc

    def read(self, key: str) -> Cached:
        """The value, or a miss; the key's generation, begun now if it had none (or its entry expired)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[2] <= now:
                entry = (next(self._generations), None, now + self._ttl)
                self._put(key, entry)
            return Cached(entry[1], entry[0])

    def fill(self, key: str, value: bytes, generation: int) -> bool:
        """Store the value if the key is still at `generation`."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != generation or entry[2] <= now:
                return False
            self._put(key, (generation, value, now + self._ttl))
            return True

    def invalidate(self, keys: Collection[str]) -> None:
        """Drop the keys."""
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def close(self) -> None:
        """Nothing to release."""

    def __len__(self) -> int:
        return len(self._entries)

    def _put(self, key: str, entry: tuple[int, bytes | None, float]) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
