"""In-process backends: the cache of online features for one process (`memory://`)."""

from cartrecover.adapters.memory.cache import MemoryCache

__all__ = ["MemoryCache"]
