"""The Redis cache: `redis://[user:password@]host:6379/0?prefix=cartrecover:&ttl=3600&timeout=0.5`.

Each key is one Redis hash holding its generation (`g`) and value (`v`), so a key expires or is evicted whole.
Generations are random 62-bit numbers begun by `read`, never a counter that could start again at the same
number after an eviction: a fill computed before its key was dropped, in any way, is refused. `read` and `fill`
are Lua scripts (each runs atomically on the server); `invalidate` is UNLINK. `rediss://` (TLS) and `unix://`
URLs work too; other query parameters go to redis-py (`socket_timeout`, `max_connections`, …).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cartrecover.errors import CacheError, ConfigError
from cartrecover.ports.cache import Cached
from cartrecover.settings import redact_url

T = TypeVar("T")
SCHEMES = ("redis", "rediss", "unix")
DEFAULT_TTL = 3600.0
DEFAULT_TIMEOUT = 0.5  # seconds: a decision waits at most this long for the cache before reading the state store

# KEYS[1] the key's hash; ARGV[1] a new generation, used if the key has none; ARGV[2] its time to live (ms).
_READ = """
local found = redis.call('HMGET', KEYS[1], 'g', 'v')
if found[1] then return found end
redis.call('HSET', KEYS[1], 'g', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {ARGV[1], false}
"""
# KEYS[1] the key's hash; ARGV[1] the generation the value was computed under, ARGV[2] the value, ARGV[3] ttl (ms).
_FILL = """
if redis.call('HGET', KEYS[1], 'g') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisCache:
    """Keys under a prefix on one Redis server (or a proxy to one); every failure to reach it is a CacheError."""

    def __init__(self, client: redis.Redis, *, prefix: str = "cartrecover:", ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ConfigError("redis:// cache: ttl must be positive")
        self._client, self._prefix, self._ttl_ms = client, prefix, int(ttl * 1000)
        self._read = client.register_script(_READ)
        self._fill = client.register_script(_FILL)
        self._where = "the Redis cache"

    @classmethod
    def from_url(cls, url: str) -> RedisCache:
        """Connect lazily (nothing is sent before the first call); a malformed URL is a ConfigError."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ConfigError(f"not a redis:// URL: {redact_url(url)!r}")
        ours = {"prefix": "cartrecover:", "ttl": str(DEFAULT_TTL), "timeout": str(DEFAULT_TIMEOUT)}
        theirs = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in ours:
                ours[key] = value
            else:
                theirs.append((key, value))
        try:
            ttl, timeout = float(ours["ttl"]), float(ours["timeout"])
            client = redis.Redis.from_url(
                urlunsplit(parts._replace(query=urlencode(theirs))),
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),  # no retries: an unreachable cache is skipped, not waited for
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"redis cache URL {redact_url(url)!r}: {exc}") from exc
        cache = cls(client, prefix=ours["prefix"], ttl=ttl)
        cache._where = f"the Redis cache at {parts.hostname or parts.path}"
        return cache

    def read(self, key: str) -> Cached:
        """The value, or a miss; the key's generation, begun now if it had none."""
        begun = secrets.randbits(62)
        found = self._call(lambda: self._read(keys=[self._prefix + key], args=[begun, self._ttl_ms]))
        generation, value = found
        return Cached(value, int(generation))

    def fill(self, key: str, value: bytes, generation: int) -> bool:
        """Store the value if the key is still at `generation`."""
        stored = self._call(lambda: self._fill(keys=[self._prefix + key], args=[generation, value, self._ttl_ms]))
        return bool(stored)

    def invalidate(self, keys: Collection[str]) -> None:
        """Drop the keys (UNLINK: freed by the server in the background)."""
        if keys:
            self._call(lambda: self._client.unlink(*(self._prefix + key for key in keys)))

    def delete_prefix(self) -> int:
        """Drop every key under the prefix (tests clean up with it); returns how many."""
        names = list(self._call(lambda: list(self._client.scan_iter(match=_glob_escape(self._prefix) + "*"))))
        if names:
            self._call(lambda: self._client.unlink(*names))
        return len(names)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _call(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except redis.RedisError as exc:  # connection refused, timeout, server error: the caller reads the store
            raise CacheError(f"{self._where}: {type(exc).__name__}: {exc}") from exc


def _glob_escape(text: str) -> str:
    """`text` with Redis glob's special characters escaped, to match it literally in SCAN."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
