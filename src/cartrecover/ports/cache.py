"""A cache of derived data (online features) in front of the state store: losing it loses nothing.

Every value in it is computed from the state store and could be computed again. What it must never do is hand
out a value that the state store no longer gives, so every key carries a generation, and a value is stored only
under the generation it was computed for:

    reader:  cached = read(key)                    a hit: use cached.value; a miss: go on
             value = <read the state store>        started after `read` returned
             fill(key, value, cached.generation)   stored only if the key was not invalidated meanwhile
    writer:  <change the state store>; commit; invalidate([key])

`invalidate` drops the key, generation and value: a `fill` computed before it is refused, a value stored
before it is gone. A reader that reads the state store after a write's `invalidate` sees that write; one that
read it before is refused or dropped. So a value in the cache is what the state store gave after its last
invalidation. A write whose `invalidate` never happens (its process died in between, or the cache was
unreachable) leaves a value that may be stale until the adapter's time to live ends: keep it short.

Every method raises CacheError when the cache cannot be reached; callers then read the state store.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Cached:
    """A key's value (None: a miss) and the generation a value computed now must be filled under."""

    value: bytes | None
    generation: int


class Cache(Protocol):
    """Values by key, each filled under a generation and dropped by `invalidate`; entries expire on their own."""

    def read(self, key: str) -> Cached:
        """The key's value, or a miss; either way the key's current generation (begun now if it had none)."""
        ...

    def fill(self, key: str, value: bytes, generation: int) -> bool:
        """Store `value` if the key is still at `generation`; False (nothing stored) if it was invalidated since.

        Called after reading the state store, with the generation `read` gave before that read.
        """
        ...

    def invalidate(self, keys: Collection[str]) -> None:
        """Drop the keys' values and generations. Called after the transaction that changed their source commits."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
