"""The online-features cache (decide.online) never changes a decision: every feature row is the one the state store
alone gives, with the cache, without it, with a cache that fails now and then, and with one that is unreachable.

The scenario runs journeys on the manual clock: shoppers abandon carts again and again over weeks, messages go out,
some fail for a while and are retried, some bounce, some carts are bought. The same events go to every engine.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import socket
import zlib
from collections.abc import Callable, Collection, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cartrecover.adapters.memory import MemoryCache
from cartrecover.adapters.redis import RedisCache
from cartrecover.adapters.sqlite import SqliteDatabase
from cartrecover.bootstrap import make_clock, open_cache, open_database, open_event_log
from cartrecover.decide import features
from cartrecover.decide.online import RecentSends
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.events import Event
from cartrecover.domain.journey import Channel, Step, StepStatus
from cartrecover.engine import Engine
from cartrecover.errors import CacheError, PermanentDelivery, RetryableDelivery
from cartrecover.ports.cache import Cache, Cached
from cartrecover.ports.channels import OutboundMessage
from cartrecover.settings import StoreConfig
from tests.conftest import START, make_settings
from tests.factories import MINUTE, identified, item, order_completed, product_added

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
MESSAGES_30D = features.NAMES.index("messages_30d")


class FlakyEmail:
    """Fails the same messages in every run: a third once (then retried), a few for good (the address bounces)."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self._failed: set[str] = set()

    def send(self, message: OutboundMessage) -> str:
        mark = zlib.crc32(message.message_id.encode())
        if mark % 11 == 0:
            raise PermanentDelivery("550 no such mailbox")
        if mark % 3 == 0 and message.message_id not in self._failed:
            self._failed.add(message.message_id)
            raise RetryableDelivery("421 try again later")
        self.sent.append(message)
        return f"provider-{len(self.sent)}"


def scenario(store_id: int, seed: int = 5) -> list[tuple[datetime, list[Event]]]:
    """Ten shoppers over about two months: carts minutes, hours or days apart, a third of them bought."""
    rng = random.Random(seed)
    moments: list[tuple[datetime, list[Event]]] = []
    for n in range(10):
        anon, at = f"anon-{n}", START + rng.randrange(48) * HOUR
        consent = n % 4 != 3  # one in four is never messaged: their count stays cached between abandonments
        moments.append(
            (at, [identified(store_id=store_id, anonymous_id=anon, email=f"s{n}@example.com",
                             consent={"email": consent}, at=at, message_id=f"id-{n}")]),
        )  # fmt: skip
        for c in range(rng.randint(3, 7)):
            at += rng.choice([20 * MINUTE, 3 * HOUR, 30 * HOUR, 3 * DAY, 9 * DAY])
            cart, price = f"cart-{n}-{c}", rng.choice([1500, 4500, 12000])
            added = product_added(
                item("p1", price=price), store_id=store_id, anonymous_id=anon, cart_id=cart, at=at,
                message_id=f"add-{n}-{c}",
            )  # fmt: skip
            moments.append((at, [added]))
            if rng.random() < 0.3:
                paid = at + rng.choice([2 * HOUR, 26 * HOUR])
                order = order_completed(
                    item("p1", price=price), store_id=store_id, anonymous_id=anon, cart_id=cart, at=paid,
                    order_id=f"order-{n}-{c}", message_id=f"order-{n}-{c}",
                )  # fmt: skip
                moments.append((paid, [order]))
    return sorted(moments, key=lambda moment: moment[0])


def build(tmp_path: Path, cache: Cache | None, **overrides: Any) -> Engine:
    settings = make_settings(tmp_path, decisions=DecisionConfig(exploration=0.3), **overrides)
    return Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, START),
        senders={"email": FlakyEmail()},
        secret=b"test-secret",
        cache=cache,
    )


def feature_rows(
    tmp_path: Path, cache: Cache | None, sends: RecentSends | None = None, **overrides: Any
) -> tuple[list[str], Engine]:
    """Run the scenario on a fresh engine; every decision's (cart, time, feature row), NaN written as NaN."""
    engine = build(tmp_path, cache, **overrides)
    if sends is not None:  # a reader with a test clock in place of the engine's own
        engine.journeys.recent_sends = sends
    store = engine.add_store(StoreConfig(name="shop"))[0].store_id
    moments = scenario(store)
    for at, events in moments:
        engine.advance_clock(at)
        engine.append(events)
    engine.advance_clock(moments[-1][0] + 10 * DAY)
    with engine.database.read() as uow:
        records = uow.decisions.between(store, START - DAY, START + 365 * DAY)
    return [json.dumps([r.cart_id, r.at.isoformat(), r.features]) for r in records], engine


@pytest.fixture
def without_cache(tmp_path: Path) -> list[str]:
    """The rows the state store alone gives."""
    rows, engine = feature_rows(tmp_path / "none", None)
    engine.close()
    return rows


def test_every_feature_row_is_the_same_with_the_cache_and_without_it(tmp_path: Path, without_cache: list[str]) -> None:
    rows, engine = feature_rows(tmp_path / "memory", MemoryCache())
    sends = engine.journeys.recent_sends
    engine.close()
    assert rows == without_cache
    counts = [json.loads(row)[2][MESSAGES_30D] for row in rows]
    assert len(rows) > 30 and max(counts) >= 3  # shoppers with a history of messages, not only zeros
    assert sends is not None and sends.hits > 5 and sends.misses > 5  # the cache answered, and was refilled


def test_a_cache_that_fails_now_and_then_changes_no_row(tmp_path: Path, without_cache: list[str]) -> None:
    flaky = Failing(MemoryCache(), every=3)
    # A clock that jumps past the retry delay at every look: the cache is tried again at once after each failure.
    sends = RecentSends(flaky, clock=itertools.count(step=60).__next__)
    rows, engine = feature_rows(tmp_path / "flaky", flaky, sends)
    engine.close()
    assert flaky.failures > 20 and flaky.failed_invalidations > 0
    assert rows == without_cache
    assert sends.hits > 0


def test_an_unreachable_redis_changes_no_row_and_is_logged_once(
    tmp_path: Path, without_cache: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache.from_url(f"redis://127.0.0.1:{closed_port()}/0?timeout=0.1")
    with caplog.at_level(logging.WARNING, logger="cartrecover.decide.online"):
        rows, engine = feature_rows(tmp_path / "unreachable", cache)
        engine.close()
    assert rows == without_cache
    warnings = [r.getMessage() for r in caplog.records if r.name == "cartrecover.decide.online"]
    assert len(warnings) == 1 and "127.0.0.1" in warnings[0] and "state store" in warnings[0]


# --- RecentSends on a state store, step by step --------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Iterator[SqliteDatabase]:
    db = SqliteDatabase.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    yield db
    db.close()


def send(database: SqliteDatabase, at: datetime, number: int, shopper: str = "s1") -> None:
    """A message to the shopper, sent at `at` (as a claim records it)."""
    step = Step(
        step_id=f"step-{number}", store_id=1, cart_id=f"c{number}", shopper_id=shopper, number=0, name="reminder",
        template="reminder", channels=(Channel.EMAIL,), due_at=at, status=StepStatus.SENT, sent_at=at,
    )  # fmt: skip
    with database.write() as uow:
        uow.outbox.add([step])


def count(sends: RecentSends, database: SqliteDatabase, since: datetime, shopper: str = "s1") -> tuple[int, int]:
    """The count through the cache, and the state store's own."""
    with database.write() as uow:  # decisions read inside the lifecycle's write transaction
        return sends.count_since(uow, 1, shopper, since), uow.outbox.sent_since(1, shopper, since)


def test_a_send_is_counted_after_its_invalidation_and_the_window_s_start_is_honoured_to_the_microsecond(
    database: SqliteDatabase,
) -> None:
    sends = RecentSends(MemoryCache())
    send(database, START, 1)
    assert count(sends, database, START - DAY) == (1, 1)  # a miss: read and cached
    assert count(sends, database, START) == (1, 1)  # a hit: sent at the window's start counts
    assert count(sends, database, START + timedelta(microseconds=1)) == (0, 0)  # a hit
    assert sends.hits == 2
    send(database, START + HOUR, 2)
    sends.sends_changed([(1, "s1")])
    assert count(sends, database, START) == (2, 2)
    assert count(sends, database, START - 40 * DAY) == (2, 2)  # before the cached horizon: read again


def test_without_the_invalidation_the_cache_would_be_stale_so_the_test_above_can_fail(
    database: SqliteDatabase,
) -> None:
    sends = RecentSends(MemoryCache())
    assert count(sends, database, START - DAY) == (0, 0)
    send(database, START, 1)
    assert count(sends, database, START - DAY) == (0, 1)  # what skipping `sends_changed` would do


def test_a_fill_computed_before_a_send_committed_is_refused_and_the_next_decision_reads_it(
    database: SqliteDatabase,
) -> None:
    sends: RecentSends

    def a_send_commits_meanwhile() -> None:  # between the decision's read of the outbox and its fill
        send(database, START, 1)
        sends.sends_changed([(1, "s1")])

    cache = Interleaved(MemoryCache(), before_fill=a_send_commits_meanwhile)
    sends = RecentSends(cache)
    with database.read() as uow:  # the decision's read, in a transaction of its own: the send commits beside it
        assert sends.count_since(uow, 1, "s1", START - DAY) == 0
    assert cache.refused == 1
    assert count(sends, database, START - DAY) == (1, 1)


def test_invalidations_that_failed_are_sent_before_the_cache_is_read_again(database: SqliteDatabase) -> None:
    memory = MemoryCache()
    cache = Failing(memory, every=0)
    sends = RecentSends(cache, clock=itertools.count(step=60).__next__)
    assert count(sends, database, START - DAY) == (0, 0)
    send(database, START, 1)
    cache.down = True
    sends.sends_changed([(1, "s1")])  # fails: owed
    assert count(sends, database, START - DAY) == (1, 1)  # unreachable: the state store answers
    cache.down = False
    assert count(sends, database, START - DAY) == (1, 1)  # paid first, then a miss, not the stale zero
    assert cache.failed_invalidations == 2  # `sends_changed`, then the read that tried to pay first
    assert memory.read("sends:1:s1").value is not None  # refilled with the count that includes the send


def test_the_default_cache_is_in_process_for_one_sqlite_worker_else_none_and_any_can_be_named(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.resolved_cache_url == "memory://" and isinstance(open_cache(settings), MemoryCache)
    shared = make_settings(tmp_path, database_url="postgresql://db/shop")
    assert shared.resolved_cache_url == "none:" and open_cache(shared) is None
    assert make_settings(tmp_path, worker_partitions=2).resolved_cache_url == "none:"  # several workers
    named = make_settings(tmp_path, database_url="postgresql://db/shop", cache_url="redis://cache:6379/0")
    assert isinstance(open_cache(named), RedisCache)
    assert open_cache(make_settings(tmp_path, cache_url="none")) is None


# --- test doubles ----------------------------------------------------------------------------------------------


class Failing:
    """A cache that raises CacheError on every `every`-th call (0: never), or on every call while `down`."""

    def __init__(self, inner: Cache, every: int) -> None:
        self._inner, self._every, self._calls = inner, every, 0
        self.down = False
        self.failures = self.failed_invalidations = 0

    def _fail(self) -> bool:
        self._calls += 1
        failing = self.down or (self._every > 0 and self._calls % self._every == 0)
        self.failures += failing
        return failing

    def read(self, key: str) -> Cached:
        if self._fail():
            raise CacheError("the test cache is down")
        return self._inner.read(key)

    def fill(self, key: str, value: bytes, generation: int) -> bool:
        if self._fail():
            raise CacheError("the test cache is down")
        return self._inner.fill(key, value, generation)

    def invalidate(self, keys: Collection[str]) -> None:
        if self._fail():
            self.failed_invalidations += 1
            raise CacheError("the test cache is down")
        self._inner.invalidate(keys)

    def close(self) -> None:
        self._inner.close()


class Interleaved(Failing):
    """A cache that runs `before_fill` before its first fill: another process's write landing in the race window."""

    def __init__(self, inner: Cache, before_fill: Callable[[], None]) -> None:
        super().__init__(inner, every=0)
        self._before_fill, self.refused = before_fill, 0

    def fill(self, key: str, value: bytes, generation: int) -> bool:
        self._before_fill()
        self._before_fill = lambda: None  # once
        stored = super().fill(key, value, generation)
        self.refused += not stored
        return stored


def closed_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
