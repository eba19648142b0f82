"""What a `postgresql://` URL says to the pool (`pool_min`, `pool_max`), taken out before the URL reaches libpq.

libpq refuses query parameters it does not know, so the pool's own are removed from the URL; the others (libpq's:
`sslmode`, `options`, …) are passed on exactly as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from cartrecover.errors import ConfigError

DEFAULT_MIN = 1
DEFAULT_MAX = 10


@dataclass(frozen=True)
class PoolOptions:
    """`postgresql://…/db?pool_min=1&pool_max=10`: the connections a process keeps open, and at most opens.

    `pool_min` connections are opened at start and kept (idle ones above it close after 10 minutes); more are
    opened on demand up to `pool_max`, and a transaction that finds them all taken waits for one (30 s at most).
    `pool_max` defaults to the larger of 10 and `pool_min`.
    """

    min_size: int = DEFAULT_MIN
    max_size: int = DEFAULT_MAX

    @classmethod
    def from_url(cls, url: str) -> tuple[str, PoolOptions]:
        """The URL without the pool's parameters (for libpq), and the pool's sizes; a wrong value is a ConfigError."""
        parts = urlsplit(url)
        kept, ours = [], {}
        for item in parts.query.split("&") if parts.query else ():
            key, _, value = item.partition("=")
            name = unquote_plus(key)
            if name not in ("pool_min", "pool_max"):
                kept.append(item)
            elif name in ours:
                raise ConfigError(f"database_url: {name} is given twice")
            else:
                ours[name] = unquote_plus(value)
        low = _count(ours, "pool_min", DEFAULT_MIN, least=0)
        high = _count(ours, "pool_max", max(DEFAULT_MAX, low), least=1)
        if low > high:
            raise ConfigError(f"database_url: pool_min ({low}) is more than pool_max ({high})")
        return urlunsplit(parts._replace(query="&".join(kept))), cls(low, high)


def _count(query: dict[str, str], name: str, default: int, *, least: int) -> int:
    if name not in query:
        return default
    text = query[name]
    if not (text.isascii() and text.isdigit()) or int(text) < least:
        raise ConfigError(f"database_url: {name} must be a whole number of connections, {least} or more, not {text!r}")
    return int(text)
