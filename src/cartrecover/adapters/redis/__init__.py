"""Redis backend for the cache of online features (`pip install 'cartrecover[redis]'`)."""

from cartrecover.adapters.redis.cache import RedisCache

__all__ = ["RedisCache"]
