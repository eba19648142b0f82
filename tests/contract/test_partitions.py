"""The lifecycle split into partitions by store: leases shared by workers, every event applied once in state,
whoever applies it and however the partition count changes (SQLite and PostgreSQL state stores)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.bootstrap import make_clock, open_database, open_event_log
from cartrecover.domain.events import Event
from cartrecover.engine import Engine
from cartrecover.errors import ConfigError
from cartrecover.partitions import LIFECYCLE, Membership, checkpoint_name, partition_of
from cartrecover.ports.partitions import Layout
from cartrecover.settings import Settings, load_settings
from tests.conftest import START, add_shop, make_settings
from tests.factories import item, product_added, random_id
from tests.services import postgres_schema

LEASE = timedelta(seconds=0.6)


@contextmanager
def sqlite_settings(tmp_path: Path) -> Iterator[Settings]:
    yield make_settings(tmp_path)


@contextmanager
def postgres_settings(tmp_path: Path) -> Iterator[Settings]:
    with postgres_schema() as url:
        PostgresDatabase.migrate(url)
        yield make_settings(tmp_path, database_url=url)


STATE_STORES: dict[str, Callable[[Path], AbstractContextManager[Settings]]] = {
    "sqlite": sqlite_settings,
    "postgres": postgres_settings,
}


@pytest.fixture(params=sorted(STATE_STORES))
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings on each state store (the event log: a SQLite file), with stores 1–8."""
    with STATE_STORES[request.param](tmp_path) as found:
        engine = engine_on(found, partitions=1)
        for _ in range(8):
            add_shop(engine)
        engine.close()
        yield found


@pytest.fixture
def pg_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings on a PostgreSQL schema of its own, with stores 1–8."""
    with postgres_settings(tmp_path) as found:
        engine = engine_on(found, partitions=1)
        for _ in range(8):
            add_shop(engine)
        engine.close()
        yield found


def engine_on(settings: Settings, partitions: int) -> Engine:
    """An engine of its own (as a worker process would have) running `partitions` partitions."""
    configured = load_settings(None, env={}, **{**_fields(settings), "worker_partitions": partitions})
    return Engine(configured, open_database(configured), open_event_log(configured), make_clock(configured, START))


def _fields(settings: Settings) -> dict[str, Any]:
    keep = ("data_dir", "database_url", "clock", "holdout_share", "decisions")
    return {name: getattr(settings, name) for name in keep}


def cart_events(count: int, stores: int = 8) -> list[Event]:
    """`count` Product Added events spread over stores 1–`stores`, a few per cart."""
    carts = [(store, random_id("cart")) for store in range(1, stores + 1) for _ in range(3)]
    return [
        product_added(item(), store_id=store, cart_id=cart, anonymous_id=f"anon-{cart}")
        for n in range(count)
        for store, cart in [carts[n % len(carts)]]
    ]


def applied_counts(engine: Engine, events: list[Event]) -> Counter[str]:
    """How many times each event's message id is on its cart's timeline (1 = applied once)."""
    found: Counter[str] = Counter()
    with engine.database.read() as uow:
        for store, cart in {(e.store_id, e.cart_id or "") for e in events}:
            found.update(
                entry["message_id"] for entry in uow.timeline.for_cart(store, cart) if entry["kind"] == "event"
            )
    return found


def drain(engine: Engine, parts: list[int] | None = None, limit: int = 500) -> None:
    while engine.process_pending(limit=limit, parts=parts):
        pass


# --- leases ------------------------------------------------------------------------------------------------------


def test_a_lone_worker_holds_every_partition(settings: Settings) -> None:
    engine = engine_on(settings, partitions=8)
    try:
        alone = Membership(engine.database, 8, LEASE, "alone")
        assert alone.heartbeat()
        assert alone.held == tuple(range(8))
    finally:
        engine.close()


def test_two_workers_split_the_partitions_and_the_survivor_takes_the_dead_ones_over(settings: Settings) -> None:
    engine = engine_on(settings, partitions=8)
    try:
        first, second = (Membership(engine.database, 8, LEASE, name) for name in ("first", "second"))
        first.heartbeat()
        second.heartbeat()  # joins: every partition is held, so it gets none yet
        assert (len(first.held), second.held) == (8, ())
        first.heartbeat()  # sees two workers: gives half back
        second.heartbeat()  # and takes them
        assert sorted(first.held + second.held) == list(range(8))
        assert len(first.held) == len(second.held) == 4

        time.sleep(LEASE.total_seconds() * 1.2)  # the first worker died: no heartbeat
        second.heartbeat()
        assert second.held == tuple(range(8))
    finally:
        engine.close()


def test_a_worker_that_leaves_hands_its_partitions_over_at_once(settings: Settings) -> None:
    engine = engine_on(settings, partitions=4)
    try:
        first, second = (Membership(engine.database, 4, timedelta(minutes=5), name) for name in ("first", "second"))
        first.heartbeat()
        second.heartbeat()
        first.heartbeat()
        second.heartbeat()
        assert len(second.held) == 2

        first.leave()
        second.heartbeat()
        assert second.held == tuple(range(4))
    finally:
        engine.close()


def test_workers_acquiring_at_once_never_take_the_same_partition(pg_settings: Settings) -> None:
    engine = engine_on(pg_settings, partitions=16)
    names = [f"w{n}" for n in range(4)]
    try:
        members = [Membership(engine.database, 16, timedelta(minutes=5), name) for name in names]
        with engine.database.write() as uow:  # all four alive, none holding anything yet
            for name in names:
                uow.leases.join(LIFECYCLE, name, 16, time.time_ns() // 1000 + 60_000_000)
        barrier = threading.Barrier(len(members))

        def beat(member: Membership) -> tuple[int, ...]:
            barrier.wait()
            member.heartbeat()
            return member.held

        with ThreadPoolExecutor(len(members)) as pool:
            held = list(pool.map(beat, members))
    finally:
        engine.close()

    taken = [part for parts in held for part in parts]
    assert len(taken) == len(set(taken))  # never one partition twice
    assert all(len(parts) <= 4 for parts in held)


# --- applying --------------------------------------------------------------------------------------------------


def test_events_go_to_their_stores_partition() -> None:
    assert [partition_of(store, 4) for store in range(1, 9)] == [1, 2, 3, 0, 1, 2, 3, 0]
    assert checkpoint_name(0, 1) == LIFECYCLE  # one partition keeps the single worker's checkpoint


def test_engines_applying_their_own_partitions_at_once_apply_every_event_once(settings: Settings) -> None:
    events = cart_events(600)
    engines = [engine_on(settings, partitions=4) for _ in range(3)]
    try:
        engines[0].append(events)
        # Two workers on two partitions each, and a third that believes it holds all four (its leases expired
        # under it while it was paused): the checkpoints make them take turns.
        shares: list[list[int] | None] = [[0, 1], [2, 3], None]
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda pair: drain(pair[0], pair[1], limit=50), zip(engines, shares, strict=True)))

        counts = applied_counts(engines[0], events)
        lag = engines[0].lag()
    finally:
        for engine in engines:
            engine.close()

    assert lag == 0
    assert {e.message_id for e in events} == set(counts)
    assert set(counts.values()) == {1}


def test_a_worker_applies_only_the_partitions_it_holds(settings: Settings) -> None:
    events = cart_events(80)
    engine = engine_on(settings, partitions=4)
    try:
        engine.append(events)
        drain(engine, parts=[1])
        counts = applied_counts(engine, events)
        with engine.database.read() as uow:
            offsets = [uow.checkpoints.get(checkpoint_name(part, 4)) for part in range(4)]
    finally:
        engine.close()

    assert set(counts) == {e.message_id for e in events if e.store_id % 4 == 1}
    assert offsets == [0, len(events), 0, 0]


def test_changing_the_partition_count_applies_every_event_once(settings: Settings) -> None:
    events = cart_events(400)
    single = engine_on(settings, partitions=1)
    single.append(events)
    single.process_pending(limit=100)  # a single worker applied the first 100 events, then stopped
    single.close()

    four = engine_on(settings, partitions=4)
    four.process_pending(limit=150, parts=[0])  # the new layout's partitions got to different offsets
    four.process_pending(limit=50, parts=[3])
    four.close()

    two = engine_on(settings, partitions=2)
    try:
        drain(two)  # from the oldest of the four offsets, skipping what each store's old partition had applied
        with two.database.read() as uow:
            layout = uow.layouts.get(LIFECYCLE)
        counts = applied_counts(two, events)
        lag = two.lag()
    finally:
        two.close()

    assert layout == Layout(2, (250, 100, 100, 150))
    assert lag == 0
    assert {e.message_id for e in events} == set(counts)
    assert set(counts.values()) == {1}


def test_a_change_waits_for_the_previous_one_to_catch_up(settings: Settings) -> None:
    events = cart_events(100)
    four = engine_on(settings, partitions=4)
    four.append(events)
    four.process_pending(limit=40, parts=[2])
    four.close()
    two = engine_on(settings, partitions=2)
    two.process_pending(limit=10)  # a layout with floors, not caught up yet
    two.close()

    three = engine_on(settings, partitions=3)
    try:
        with pytest.raises(ConfigError, match="not caught up"):
            three.process_pending()
    finally:
        three.close()


def test_the_count_is_not_changed_while_a_worker_of_the_old_count_is_alive(settings: Settings) -> None:
    four = engine_on(settings, partitions=4)
    try:
        Membership(four.database, 4, timedelta(minutes=5), "old").heartbeat()
        two = engine_on(settings, partitions=2)
        try:
            with pytest.raises(ConfigError, match="stop them all"):
                two.process_pending()
        finally:
            two.close()
    finally:
        four.close()


def test_a_running_engine_notices_that_the_layout_changed(settings: Settings) -> None:
    events = cart_events(60)
    old = engine_on(settings, partitions=4)
    try:
        old.append(events)
        old.process_pending(limit=10)  # settled on four partitions
        new = engine_on(settings, partitions=2)
        drain(new)  # the operator changed the count (the old worker's heartbeat had lapsed)
        new.close()

        assert old.process_pending() == 0  # the layout changed under it: it applies nothing with the old one
        drain(old)  # settles again (back to four, from where the two partitions got to), applying nothing twice
        counts = applied_counts(old, events)
    finally:
        old.close()

    assert set(counts.values()) == {1}
    assert len(counts) == len(events)


# --- settings ----------------------------------------------------------------------------------------------------


def test_partitions_default_to_one_on_sqlite_and_eight_on_a_shared_store(tmp_path: Path) -> None:
    assert load_settings(None, env={}).resolved_worker_partitions == 1
    shared = load_settings(None, env={"CARTRECOVER_DATABASE_URL": "postgresql://db/shop"})
    assert shared.resolved_worker_partitions == 8


def test_worker_settings_come_from_the_worker_section_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "cartrecover.toml"
    config.write_text('[worker]\npartitions = 16\nlease = "30s"\n')
    assert (load_settings(config, env={}).worker_partitions, load_settings(config, env={}).worker_lease) == (
        16,
        timedelta(seconds=30),
    )
    env = {"CARTRECOVER_WORKER_PARTITIONS": "4", "CARTRECOVER_WORKER_LEASE": "5s"}
    overridden = load_settings(config, env=env)
    assert (overridden.resolved_worker_partitions, overridden.worker_lease) == (4, timedelta(seconds=5))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[worker]\npartitions = -1\n", "partitions must be 1 or more"),
        ('[worker]\npartitions = "many"\n', "whole number"),
        ('[worker]\nlease = "100ms"\n', "at least 1 s"),
        ("[worker]\nthreads = 4\n", "unknown"),
    ],
)
def test_bad_worker_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "cartrecover.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, env={}).resolved_worker_partitions  # noqa: B018
