"""The cache port's contract (ports/cache.py), run on every adapter: in-process memory and Redis.

Redis runs on `CARTRECOVER_TEST_REDIS_URL` (`redis://127.0.0.1:6379/0` in CI; skipped on a machine without it,
failed under CI), each test under a key prefix of its own, deleted afterwards. The last tests check, on every
state store, the outbox method the online-features cache fills from.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from cartrecover.adapters.memory import MemoryCache
from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.adapters.redis import RedisCache
from cartrecover.domain.journey import Step, StepStatus
from cartrecover.errors import CacheError, ConfigError
from cartrecover.ports.cache import Cache
from cartrecover.ports.unit_of_work import Database
from tests.conftest import START
from tests.contract.test_sqlite_ports import BACKENDS, a_step, store_id
from tests.factories import MINUTE, random_id
from tests.services import postgres_schema, service_url
from tests.unit.test_online_features import feature_rows


def redis_url(**params: str) -> str:
    """The test server's URL with our parameters added (a prefix of the test's own, a ttl, …)."""
    parts = urlsplit(service_url("CARTRECOVER_TEST_REDIS_URL"))
    return urlunsplit(parts._replace(query=urlencode([*parse_qsl(parts.query), *params.items()])))


@contextmanager
def redis_cache(ttl: float = 3600.0) -> Iterator[RedisCache]:
    """A Redis cache under a prefix of its own; every key under it is deleted afterwards."""
    cache = RedisCache.from_url(redis_url(prefix=f"test:{uuid.uuid4().hex}:", ttl=str(ttl)))
    try:
        yield cache
    finally:
        cache.delete_prefix()
        cache.close()


@contextmanager
def memory_cache(ttl: float = 3600.0) -> Iterator[MemoryCache]:
    """An in-process cache."""
    yield MemoryCache(ttl=ttl)


CACHES: dict[str, Callable[..., AbstractContextManager[Cache]]] = {"memory": memory_cache, "redis": redis_cache}


@pytest.fixture(params=sorted(CACHES))
def cache(request: pytest.FixtureRequest) -> Iterator[Cache]:
    """An empty cache of each adapter."""
    with CACHES[request.param]() as opened:
        yield opened


@pytest.fixture(params=sorted(CACHES))
def short_lived(request: pytest.FixtureRequest) -> Iterator[Cache]:
    """A cache of each adapter whose entries live 0.3 s."""
    with CACHES[request.param](ttl=0.3) as opened:
        yield opened


def test_a_key_never_filled_is_a_miss_with_a_generation_that_stays_until_it_is_invalidated(cache: Cache) -> None:
    first = cache.read("k")
    assert first.value is None
    assert cache.read("k") == first
    cache.invalidate(["k"])
    assert cache.read("k").generation != first.generation


def test_a_value_filled_under_the_current_generation_is_read_back_byte_for_byte(cache: Cache) -> None:
    value = bytes(range(256)) + b"\x00"
    generation = cache.read("k").generation
    assert cache.fill("k", value, generation) is True
    assert cache.read("k").value == value
    assert cache.read("other").value is None


def test_a_fill_computed_before_an_invalidation_is_refused(cache: Cache) -> None:
    before = cache.read("k").generation
    cache.invalidate(["k"])
    assert cache.fill("k", b"stale", before) is False
    assert cache.read("k").value is None


def test_a_fill_is_refused_even_when_the_key_was_begun_again_after_the_invalidation(cache: Cache) -> None:
    before = cache.read("k").generation
    cache.invalidate(["k"])
    again = cache.read("k").generation  # another reader begins the key anew
    assert cache.fill("k", b"stale", before) is False
    assert cache.fill("k", b"fresh", again) is True
    assert cache.read("k").value == b"fresh"


def test_invalidating_drops_the_value_and_only_the_keys_named(cache: Cache) -> None:
    for key in ("a", "b", "c"):
        assert cache.fill(key, key.encode(), cache.read(key).generation)
    cache.invalidate(["a", "c", "never-read"])
    cache.invalidate([])
    assert [cache.read(key).value for key in ("a", "b", "c")] == [None, b"b", None]


def test_two_readers_of_one_generation_may_both_fill_and_the_last_value_stays(cache: Cache) -> None:
    one, two = cache.read("k"), cache.read("k")
    assert cache.fill("k", b"one", one.generation) and cache.fill("k", b"two", two.generation)
    assert cache.read("k").value == b"two"


def test_entries_expire_after_their_time_to_live(short_lived: Cache) -> None:
    generation = short_lived.read("k").generation
    assert short_lived.fill("k", b"v", generation)
    assert short_lived.read("k").value == b"v"
    time.sleep(0.5)
    assert short_lived.read("k").value is None
    assert short_lived.fill("k", b"late", generation) is False  # the generation expired with the value


def test_any_interleaving_of_reads_fills_and_invalidations_keeps_only_values_of_the_current_generation(
    cache: Cache,
) -> None:
    """A model of the contract against random operations: a fill succeeds exactly when its key was not dropped
    since the read that gave its generation, and a read returns the last value filled since the last drop."""
    rng = random.Random(20260105)
    keys = ["x", "y", "z"]
    current: dict[str, tuple[int, bytes | None]] = {}  # key → (generation, value), as the contract says
    issued: dict[str, set[int]] = {k: set() for k in keys}
    readers: list[tuple[str, int]] = []
    for step in range(600):
        key, roll = rng.choice(keys), rng.random()
        if roll < 0.4:
            found = cache.read(key)
            if key in current:
                assert (found.generation, found.value) == current[key]
            else:
                assert found.value is None and found.generation not in issued[key]  # never a generation twice
                current[key] = (found.generation, None)
                issued[key].add(found.generation)
            readers.append((key, found.generation))
        elif roll < 0.8 and readers:
            key, generation = rng.choice(readers)
            value = f"{step}".encode()
            expected = key in current and current[key][0] == generation
            assert cache.fill(key, value, generation) is expected
            if expected:
                current[key] = (generation, value)
        else:
            dropped = rng.sample(keys, rng.randint(1, 2))
            cache.invalidate(dropped)
            for gone in dropped:
                current.pop(gone, None)


def test_the_memory_cache_keeps_at_most_its_maximum_of_keys_dropping_the_oldest() -> None:
    cache = MemoryCache(max_entries=2)
    old = cache.read("a").generation
    cache.read("b")
    cache.read("c")
    assert len(cache) == 2
    assert cache.fill("a", b"v", old) is False  # dropped: a fill computed before is refused
    assert cache.read("a").generation != old


def test_cache_urls_are_checked_and_their_secrets_never_printed() -> None:
    assert MemoryCache.from_url("memory://?ttl=60&max_entries=10") is not None
    for url in ("memory://?size=1", "memory://?ttl=soon", "memory://?ttl=0", "memory://host"):
        with pytest.raises(ConfigError):
            MemoryCache.from_url(url)
    with pytest.raises(ConfigError) as refused:
        RedisCache.from_url("redis://:hunter2@localhost:6379/0?ttl=soon")
    assert "hunter2" not in refused.value.message
    with pytest.raises(ConfigError):
        RedisCache.from_url("http://localhost:6379")


def test_an_unreachable_redis_is_a_cache_error_naming_the_host_not_the_password() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cache = RedisCache.from_url(f"redis://:hunter2@127.0.0.1:{port}/0?timeout=0.2")
    for call in (lambda: cache.read("k"), lambda: cache.fill("k", b"v", 1), lambda: cache.invalidate(["k"])):
        with pytest.raises(CacheError) as failed:
            call()
        assert "127.0.0.1" in failed.value.message and "hunter2" not in failed.value.message
    cache.close()


def test_a_redis_that_accepts_but_never_answers_fails_within_the_timeout_not_the_client_default() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel's backlog; nothing ever replies
        cache = RedisCache.from_url(f"redis://127.0.0.1:{silent.getsockname()[1]}/0?timeout=0.2")
        started = time.monotonic()
        with pytest.raises(CacheError):
            cache.read("k")
        assert time.monotonic() - started < 1.5  # redis-py alone would wait 5 s and retry 3 times
        cache.close()


def test_redis_prefixes_keep_two_installations_apart_and_delete_prefix_removes_only_its_own() -> None:
    with redis_cache() as one, redis_cache() as two:
        assert one.fill("k", b"one", one.read("k").generation)
        assert two.read("k").value is None
        assert two.fill("k", b"two", two.read("k").generation)
        assert one.delete_prefix() == 1
        assert one.read("k").value is None and two.read("k").value == b"two"


def test_redis_fills_racing_invalidations_from_threads_never_leave_a_value_older_than_the_last_drop() -> None:
    """A writer bumps a counter (the state store), invalidates, then looks: whatever the readers' interleaving, a
    value in the cache was read from the counter after that invalidation, so it is at least the counter then."""
    with redis_cache() as cache:
        counter, lock, stop = [0], threading.Lock(), threading.Event()
        stale: list[tuple[int, int]] = []

        def read() -> None:
            while not stop.is_set():
                generation = cache.read("k").generation
                with lock:
                    seen = counter[0]
                time.sleep(random.random() / 2000)  # the state store's read takes a while: the writer goes on
                cache.fill("k", str(seen).encode(), generation)

        readers = [threading.Thread(target=read) for _ in range(4)]
        for thread in readers:
            thread.start()
        try:
            for _ in range(400):
                with lock:
                    counter[0] += 1
                    written = counter[0]
                cache.invalidate(["k"])
                value = cache.read("k").value
                if value is not None and int(value) < written:
                    stale.append((int(value), written))
        finally:
            stop.set()
            for thread in readers:
                thread.join()
        assert stale == []


# --- a decision's feature row is the same with Redis as without a cache ---------------------------------------


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_every_feature_row_is_the_same_with_redis_as_without_a_cache(tmp_path: Path, store: str) -> None:
    """The scenario of tests/unit/test_online_features.py, on Redis, on both state stores."""
    results = []
    for cache in (None, "redis"):
        with ExitStack() as stack:
            overrides = {}
            if store == "postgres":
                overrides["database_url"] = url = stack.enter_context(postgres_schema())
                PostgresDatabase.migrate(url)
            opened = stack.enter_context(redis_cache()) if cache else None
            rows, engine = feature_rows(tmp_path / f"{store}-{cache}", opened, **overrides)
            sends = engine.journeys.recent_sends
            engine.close()
            results.append(rows)
            if opened is not None:
                assert sends is not None and sends.hits > 5 and sends.misses > 5
    assert results[0] == results[1] and len(results[0]) > 30


# --- the outbox method the online-features cache fills from, on every state store ---------------------------


@pytest.fixture(params=sorted(BACKENDS))
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, empty state store of each backend."""
    with BACKENDS[request.param](tmp_path) as db:
        yield db


def test_sent_times_are_the_times_sent_since_counts_oldest_first(database: Database) -> None:
    sid, shopper = store_id(), random_id("s")

    def step(status: StepStatus, sent_at: datetime | None, *, store: int = sid, to: str = shopper) -> Step:
        return replace(a_step(store, START, status=status, sent_at=sent_at), shopper_id=to)

    steps = [
        step(StepStatus.SENT, START + 3 * MINUTE),
        step(StepStatus.SENDING, START + MINUTE),  # claimed: counted from its claim
        step(StepStatus.SENT, START - timedelta(days=40)),
        step(StepStatus.SCHEDULED, None),  # not sent: not counted
        step(StepStatus.SENT, START + MINUTE, to=random_id("s")),  # another shopper's
        step(StepStatus.SENT, START + MINUTE, store=store_id()),  # another store's
    ]
    with database.write() as uow:
        uow.outbox.add(steps)
    with database.read() as uow:
        for since in (START - timedelta(days=41), START, START + MINUTE, START + 2 * MINUTE, START + 4 * MINUTE):
            times = uow.outbox.sent_times(sid, shopper, since)
            assert len(times) == uow.outbox.sent_since(sid, shopper, since)
            assert times == sorted(times) and all(at >= since for at in times)
        assert uow.outbox.sent_times(sid, shopper, START) == [START + MINUTE, START + 3 * MINUTE]
