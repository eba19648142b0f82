"""What a decision pays for a shopper's 30-day message count: the state store's indexed count, against the same
count through the online-features cache (decide.online) on a hit and on a miss, per backend.

    python bench/online_features.py [--shoppers 20000] [--calls 3000]
    CARTRECOVER_BENCH_POSTGRES_URL=postgresql://… CARTRECOVER_BENCH_REDIS_URL=redis://…/0 python bench/online_features.py

Each call runs inside a write transaction, as decisions do. The outbox holds `--shoppers` shoppers with 0-6
messages each over 40 days. A miss is a read of the cache, the state store's read of the send times, and a fill.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cartrecover.adapters.memory import MemoryCache
from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.adapters.redis import RedisCache
from cartrecover.adapters.sqlite import SqliteDatabase
from cartrecover.decide.online import RecentSends
from cartrecover.domain.journey import Channel, Step, StepStatus
from cartrecover.ports.cache import Cache
from cartrecover.ports.unit_of_work import Database

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def fill_outbox(database: Database, shoppers: int, rng: random.Random) -> None:
    steps = []
    for n in range(shoppers):
        for k in range(rng.randint(0, 6)):
            at = NOW - timedelta(minutes=rng.randrange(40 * 24 * 60))
            steps.append(
                Step(
                    step_id=f"st-{n}-{k}", store_id=1, cart_id=f"c-{n}-{k}", shopper_id=f"s{n}", number=0,
                    name="reminder", template="reminder", channels=(Channel.EMAIL,), due_at=at,
                    status=StepStatus.SENT, sent_at=at,
                )
            )  # fmt: skip
    for start in range(0, len(steps), 5000):
        with database.write() as uow:
            uow.outbox.add(steps[start : start + 5000])


def timed(database: Database, call: Callable[..., object], shoppers: list[str]) -> list[float]:
    """Microseconds per call, each in a write transaction of its own (timed inside it)."""
    took = []
    since = NOW - timedelta(days=30)
    for shopper in shoppers:
        with database.write() as uow:
            started = time.perf_counter()
            call(uow, shopper, since)
            took.append((time.perf_counter() - started) * 1e6)
    return took


def through(sends: RecentSends) -> Callable[..., object]:
    return lambda uow, shopper, since: sends.count_since(uow, 1, shopper, since)


def report(name: str, took: list[float]) -> None:
    took.sort()
    print(f"  {name:<34} p50 {statistics.median(took):7.1f} µs   p99 {took[int(len(took) * 0.99)]:7.1f} µs")


def postgres(url: str) -> Iterator[tuple[str, Database]]:
    import psycopg
    from psycopg import sql

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    try:
        PostgresDatabase.migrate(scoped)
        yield "PostgreSQL (loopback)", PostgresDatabase.from_url(scoped)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def caches() -> Iterator[tuple[str, Cache]]:
    yield "memory", MemoryCache()
    if url := os.environ.get("CARTRECOVER_BENCH_REDIS_URL"):
        prefix = f"bench:{uuid.uuid4().hex[:12]}:"
        cache = RedisCache.from_url(f"{url}{'&' if '?' in url else '?'}prefix={prefix}")
        try:
            yield "Redis (loopback)", cache
        finally:
            cache.delete_prefix()


def run(name: str, database: Database, shoppers: int, calls: int, rng: random.Random) -> None:
    fill_outbox(database, shoppers, rng)
    sample = [f"s{n}" for n in rng.sample(range(shoppers), calls)]  # each once: the first pass misses
    print(f"{name}, {shoppers} shoppers, {calls} calls each:")
    report("state store: sent_since", timed(database, lambda uow, s, since: uow.outbox.sent_since(1, s, since), sample))
    for cache_name, cache in caches():
        sends = RecentSends(cache)
        sends.sends_changed((1, s) for s in sample)
        report(f"{cache_name}: miss (read, store, fill)", timed(database, through(sends), sample))
        report(f"{cache_name}: hit", timed(database, through(sends), sample))
        assert sends.hits == sends.misses == calls
        started = time.perf_counter()
        for shopper in sample:
            sends.sends_changed([(1, shopper)])
        print(f"  {cache_name + ': invalidation':<34} {(time.perf_counter() - started) / calls * 1e6:7.1f} µs each")
    database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=3_000)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteDatabase.from_url(f"sqlite:///{Path(tmp) / 'bench.db'}")
        run("SQLite (file, WAL)", sqlite, args.shoppers, args.calls, rng)
    if url := os.environ.get("CARTRECOVER_BENCH_POSTGRES_URL"):
        for name, database in postgres(url):
            run(name, database, args.shoppers, args.calls, rng)


if __name__ == "__main__":
    main()
