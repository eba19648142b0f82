"""One contract suite per port, written against the Protocols in `cartrecover.ports` and run on every adapter.

To add a backend, add a factory to `BACKENDS` (state stores) or `LOGS` (event logs): every test then runs on it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cartrecover.adapters.nats import NatsEventLog
from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.adapters.sqlite import SqliteDatabase, SqliteEventLog
from cartrecover.domain.cart import CartStatus
from cartrecover.domain.events import redacted
from cartrecover.domain.journey import Channel, Step, StepStatus
from cartrecover.errors import StoreExists
from cartrecover.ports.decisions import DecisionRecord
from cartrecover.ports.eventlog import EventLog
from cartrecover.ports.orders import Order
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.stores import Store
from cartrecover.ports.timers import Timer
from cartrecover.ports.unit_of_work import Database
from tests.conftest import START
from tests.factories import MINUTE, cart, event, random_id
from tests.nats_server import fresh_stream_url, nats_log, wheel_server_url
from tests.services import postgres_schema


@contextmanager
def postgres_database(tmp: Path) -> Iterator[Database]:
    """A PostgreSQL state store in a schema of its own, migrated, dropped afterwards."""
    with postgres_schema() as url:
        PostgresDatabase.migrate(url)
        with closing(PostgresDatabase.from_url(url)) as db:
            yield db


# State stores and event logs are separate backends (a PostgreSQL store may sit beside a NATS log).
BACKENDS: dict[str, Callable[[Path], AbstractContextManager[Database]]] = {
    "sqlite-file": lambda tmp: closing(SqliteDatabase.from_url(f"sqlite:///{tmp / 'contract.db'}")),
    "sqlite-memory": lambda tmp: closing(SqliteDatabase.from_url("sqlite://:memory:")),
    "postgres": postgres_database,
}


LOGS: dict[str, Callable[[Path], AbstractContextManager[EventLog]]] = {
    "sqlite-file": lambda tmp: closing(SqliteEventLog.from_url(f"sqlite:///{tmp / 'events.db'}")),
    "sqlite-memory": lambda tmp: closing(SqliteEventLog.from_url("sqlite://:memory:")),
    "nats": lambda tmp: nats_log(),  # a stream of its own on CARTRECOVER_TEST_NATS_URL, deleted afterwards
    "nats-wheel": lambda tmp: nats_log(wheel_server_url()),  # a recent nats-server: appends in atomic batches
}


@pytest.fixture(params=sorted(LOGS))
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    """A fresh, empty event log of each backend."""
    with LOGS[request.param](tmp_path) as opened:
        yield opened


@pytest.fixture(params=sorted(BACKENDS))
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, empty database of each backend."""
    with BACKENDS[request.param](tmp_path) as db:
        yield db


def store_id() -> int:
    """A random store id, so that nothing depends on ids handed out in order."""
    return random.randint(1, 2**31)


class Boom(Exception):
    """Raised inside a transaction to roll it back."""


# --- EventLog -----------------------------------------------------------------------------------------------


def test_append_reports_which_events_are_new_and_logs_a_retry_once(log: EventLog) -> None:
    sid = store_id()
    first, second = event(store_id=sid), event(store_id=sid)

    assert log.append([first, second]) == [True, True]
    assert log.append([second, event(store_id=sid)]) == [False, True]
    assert log.append([first]) == [False]
    assert [e.message_id for _, e in log.read_after(0, 100)].count(second.message_id) == 1
    assert log.last_offset() != 0
    assert len(log.read_after(0, 100)) == 3


def test_a_message_id_repeated_inside_one_append_is_new_only_the_first_time(log: EventLog) -> None:
    sid = store_id()
    e, other = event(store_id=sid), event(store_id=sid)

    assert log.append([e, other, e, e]) == [True, True, False, False]
    assert log.append([e, e]) == [False, False]
    assert [x.message_id for _, x in log.read_after(0, 100)] == [e.message_id, other.message_id]


def test_the_same_message_id_in_another_store_is_another_event(log: EventLog) -> None:
    message_id = random_id("m")

    assert log.append([event(store_id=store_id(), message_id=message_id)]) == [True]
    assert log.append([event(store_id=store_id(), message_id=message_id)]) == [True]


def test_append_of_nothing_appends_nothing(log: EventLog) -> None:
    assert log.append([]) == []
    assert log.last_offset() == 0


def test_read_after_returns_events_after_the_offset_oldest_first_up_to_the_limit(log: EventLog) -> None:
    sid = store_id()
    events = [event(store_id=sid, at=START + i * MINUTE) for i in range(5)]
    log.append(events)

    everything = log.read_after(0, 100)
    offsets = [seq for seq, _ in everything]
    first_two = log.read_after(0, 2)
    rest = log.read_after(first_two[-1][0], 100)
    last = log.last_offset()

    assert [e for _, e in everything] == events
    assert offsets == sorted(offsets) and len(set(offsets)) == 5
    assert [e for _, e in first_two] == events[:2]
    assert [e for _, e in rest] == events[2:]
    assert last == offsets[-1]
    assert log.read_after(last, 100) == []


def test_scrub_removes_personal_data_from_the_events_that_name_the_shopper(log: EventLog) -> None:
    sid = store_id()
    theirs = event(store_id=sid, email="jane@example.com", phone="+15550100", properties={"note": "hi"})
    also = event(store_id=sid, anonymous_id="anon-jane")
    others = event(store_id=sid, email="joe@example.com")
    elsewhere = event(store_id=store_id(), email="jane@example.com")
    log.append([theirs, also, others, elsewhere])

    assert log.scrub(sid, {("email", "jane@example.com"), ("anon", "anon-jane")}) == 2
    assert log.scrub(sid, {("email", "jane@example.com"), ("anon", "anon-jane")}) == 0
    assert log.scrub(sid, set()) == 0

    logged = {e.message_id: e for _, e in log.read_after(0, 100)}
    scrubbed = logged[theirs.message_id]
    assert (scrubbed.email, scrubbed.phone, scrubbed.anonymous_id, scrubbed.properties) == (None, None, None, {})
    assert scrubbed.identities == [] and logged[also.message_id].identities == []
    assert (scrubbed.kind, scrubbed.at, scrubbed.store_id) == (theirs.kind, theirs.at, sid)
    assert logged[others.message_id].email == "joe@example.com"
    assert logged[elsewhere.message_id].email == "jane@example.com"


def test_erasing_a_stores_events_leaves_other_stores_events_alone(log: EventLog) -> None:
    a, b = store_id(), store_id()
    log.append([event(store_id=a, email="jane@example.com"), event(store_id=b, email="jane@example.com")])

    assert log.erase_store(a) == 1
    assert log.erase_store(a) == 1  # idempotent: the event is already without personal data

    emails = {e.store_id: e.email for _, e in log.read_after(0, 10)}
    assert emails == {a: None, b: "jane@example.com"}


def test_erased_events_keep_their_offsets_and_the_log_reads_on_past_them(log: EventLog) -> None:
    a, b = store_id(), store_id()
    events = [event(store_id=(a if i % 3 else b), email=f"shopper{i}@example.com") for i in range(150)]
    log.append(events)
    before = [seq for seq, _ in log.read_after(0, 1000)]

    assert log.erase_store(a) == 100
    assert log.scrub(b, {("email", "shopper0@example.com"), ("email", "shopper148@example.com")}) == 1  # 148: store a
    later = event(store_id=b, email="later@example.com")
    assert log.append([*events[:3], later]) == [False, False, False, True]

    everything = log.read_after(0, 1000)
    in_pages, offset = [], 0
    while page := log.read_after(offset, 7):
        in_pages += page
        offset = page[-1][0]
    assert in_pages == everything
    assert [seq for seq, _ in everything[:150]] == before
    assert [e.message_id for _, e in everything] == [e.message_id for e in [*events, later]]
    assert [e.email for _, e in everything[:150]] == [
        None if e.store_id == a or e.email == "shopper0@example.com" else e.email for e in events
    ]
    assert log.read_after(before[-1], 10) == [everything[-1]]
    assert log.last_offset() == everything[-1][0]


def test_the_newest_offset_stays_that_of_an_erased_last_event(log: EventLog) -> None:
    sid = store_id()
    log.append([event(store_id=sid), event(store_id=sid, email="jane@example.com")])
    newest = log.last_offset()

    log.scrub(sid, {("email", "jane@example.com")})

    assert log.last_offset() == newest
    assert [seq for seq, _ in log.read_after(0, 10)][-1] == newest
    assert log.read_after(newest, 10) == []


@contextmanager
def sqlite_file_url(tmp: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp / 'reopened.db'}"


# Event logs that outlive their connections: a URL to open, close and open again.
REOPENABLE_LOGS: dict[str, tuple[Callable[[Path], AbstractContextManager[str]], Callable[[str], EventLog]]] = {
    "sqlite-file": (sqlite_file_url, SqliteEventLog.from_url),
    "nats": (lambda tmp: fresh_stream_url(), NatsEventLog.from_url),
    "nats-wheel": (lambda tmp: fresh_stream_url(wheel_server_url()), NatsEventLog.from_url),
}


@pytest.mark.parametrize("backend", sorted(REOPENABLE_LOGS))
def test_appended_events_are_durable_across_reopening(backend: str, tmp_path: Path) -> None:
    where, open_log = REOPENABLE_LOGS[backend]
    with where(tmp_path) as url:
        first = open_log(url)
        appended = [event(store_id=1, email="jane@example.com"), event(store_id=1)]
        first.append(appended)
        first.scrub(1, {("email", "jane@example.com")})
        first.close()

        again = open_log(url)
        try:
            assert [e for _, e in again.read_after(0, 10)] == [redacted(appended[0]), appended[1]]
            assert again.append(appended) == [False, False]
            assert again.last_offset() == again.read_after(0, 10)[-1][0]
        finally:
            again.close()


@pytest.mark.parametrize("backend", sorted(REOPENABLE_LOGS))
def test_two_writers_appending_the_same_events_at_once_log_each_once(backend: str, tmp_path: Path) -> None:
    where, open_log = REOPENABLE_LOGS[backend]
    events = [event(store_id=1) for _ in range(300)]
    batches = [events[i : i + 10] for i in range(0, len(events), 10)]
    with where(tmp_path) as url:
        logs = [open_log(url), open_log(url)]
        try:
            with ThreadPoolExecutor(2) as pool:
                reports = list(pool.map(lambda log: [new for batch in batches for new in log.append(batch)], logs))
            logged = logs[0].read_after(0, 1000)
        finally:
            for log in logs:
                log.close()

    assert [a + b for a, b in zip(*reports, strict=True)] == [1] * len(events)
    assert sorted(e.message_id for _, e in logged) == sorted(e.message_id for e in events)


# --- Checkpoints and dead letters (in the state store, committed with the state) -----------------------------


def test_checkpoints_start_at_zero_and_keep_each_consumers_offset(database: Database) -> None:
    with database.write() as uow:
        assert uow.checkpoints.get("lifecycle") == 0
        uow.checkpoints.put("lifecycle", 7)
        uow.checkpoints.put("lifecycle", 9)
        uow.checkpoints.put("other", 3)
    with database.read() as uow:
        assert (uow.checkpoints.get("lifecycle"), uow.checkpoints.get("other")) == (9, 3)


def test_a_rolled_back_transaction_leaves_nothing(database: Database) -> None:
    sid = store_id()
    c = cart(store_id=sid)

    with pytest.raises(Boom), database.write() as uow:
        uow.checkpoints.put("lifecycle", 1)
        uow.carts.save(c)
        uow.timeline.add(sid, c.cart_id, START, "event", {"name": "x"})
        uow.timers.set(Timer(sid, c.cart_id, "abandon", START))
        uow.shoppers.resolve(sid, [("anon", "a")], "s-1")
        uow.orders.save(Order(sid, "o-1", None, START, 100, "USD", ("cart:x",)))
        raise Boom

    with database.read() as uow:
        assert uow.checkpoints.get("lifecycle") == 0
        assert uow.carts.get(sid, c.cart_id) is None
        assert uow.timeline.for_cart(sid, c.cart_id) == []
        assert uow.timers.next_due() is None
        assert uow.shoppers.find(sid, "anon", "a") is None
        assert uow.orders.get(sid, "o-1") is None


def test_dead_letters_keep_each_parked_offset_with_its_reason(database: Database) -> None:
    with database.write() as uow:
        assert uow.dead_letters.parked("lifecycle") == []
        uow.dead_letters.park("lifecycle", 12, "KeyError: 'x'")
        uow.dead_letters.park("lifecycle", 4, "ValueError: y")
        uow.dead_letters.park("other", 5, "z")
    with pytest.raises(Boom), database.write() as uow:
        uow.dead_letters.park("lifecycle", 99, "rolled back")
        raise Boom
    with database.read() as uow:
        assert uow.dead_letters.parked("lifecycle") == [(4, "ValueError: y"), (12, "KeyError: 'x'")]
        assert uow.dead_letters.parked("other") == [(5, "z")]


def test_a_saved_cart_reads_back_equal_by_id_and_by_each_join_key(database: Database) -> None:
    c = cart(refs=("checkout:chk-1", "token:tok-1"), currency="EUR")

    with database.write() as uow:
        uow.carts.save(c)
    with database.read() as uow:
        assert uow.carts.get(c.store_id, c.cart_id) == c
        assert uow.carts.find(c.store_id, f"cart:{c.cart_id}") == c
        assert uow.carts.find(c.store_id, "checkout:chk-1") == c
        assert uow.carts.find(c.store_id, "token:tok-1") == c
        assert uow.carts.find(c.store_id, "checkout:other") is None
        assert uow.carts.get(c.store_id, "nope") is None


def test_many_carts_read_back_at_once_by_id_of_one_store_leaving_out_ids_without_a_cart(database: Database) -> None:
    sid = store_id()
    mine = [cart(store_id=sid) for _ in range(1203)]  # more than one of SQLite's batches of ids
    theirs = cart(store_id=store_id(), cart_id=mine[0].cart_id, currency="EUR")
    with database.write() as uow:
        for c in (*mine, theirs):
            uow.carts.save(c)

    with database.read() as uow:
        wanted = [c.cart_id for c in mine[::2]]
        assert uow.carts.get_many(sid, [*wanted, "no-such-cart"]) == {c.cart_id: c for c in mine[::2]}
        assert uow.carts.get_many(theirs.store_id, [c.cart_id for c in mine]) == {theirs.cart_id: theirs}
        assert uow.carts.get_many(sid, []) == {}


def test_saving_a_cart_again_updates_it(database: Database) -> None:
    c = cart()
    with database.write() as uow:
        uow.carts.save(c)

    c.status, c.abandoned_at = CartStatus.ABANDONED, START + 30 * MINUTE
    c.refs = ("checkout:late",)
    with database.write() as uow:
        uow.carts.save(c)
    with database.read() as uow:
        assert uow.carts.get(c.store_id, c.cart_id) == c
        assert uow.carts.find(c.store_id, "checkout:late") == c
        assert uow.carts.count_by_status().get("abandoned", 0) >= 1


def test_open_for_shopper_lists_only_open_carts_newest_activity_first(database: Database) -> None:
    sid, shopper = store_id(), random_id("s")
    old = cart(store_id=sid, shopper_id=shopper, at=START)
    new = cart(store_id=sid, shopper_id=shopper, at=START + MINUTE, status=CartStatus.ABANDONED)
    closed = cart(store_id=sid, shopper_id=shopper, at=START + 2 * MINUTE, status=CartStatus.CONVERTED)
    someone_else = cart(store_id=sid, at=START + 3 * MINUTE)
    with database.write() as uow:
        for c in (old, new, closed, someone_else):
            uow.carts.save(c)

    with database.read() as uow:
        assert [c.cart_id for c in uow.carts.open_for_shopper(sid, shopper)] == [new.cart_id, old.cart_id]
        assert {c.cart_id for c in uow.carts.for_shopper(sid, shopper)} == {old.cart_id, new.cart_id, closed.cart_id}


def test_page_lists_a_stores_carts_by_id_with_a_status_filter_and_a_cursor(database: Database) -> None:
    sid = store_id()
    carts = [
        cart(store_id=sid, cart_id=f"c{i}", status=CartStatus.ACTIVE if i % 2 else CartStatus.EXPIRED) for i in range(5)
    ]
    with database.write() as uow:
        for c in carts:
            uow.carts.save(c)
        uow.carts.save(cart(store_id=store_id(), cart_id="c9"))

    with database.read() as uow:
        first = uow.carts.page(sid, None, 2, None)
        second = uow.carts.page(sid, None, 2, first[-1].cart_id)
        active = uow.carts.page(sid, CartStatus.ACTIVE, 100, None)
        counts = uow.carts.count_by_status()

    assert [c.cart_id for c in first + second] == ["c0", "c1", "c2", "c3"]
    assert [c.cart_id for c in active] == ["c1", "c3"]
    assert counts["active"] >= 2 and counts["expired"] >= 3


def test_a_closed_cart_saved_again_does_not_take_a_join_key_from_an_open_cart(database: Database) -> None:
    sid = store_id()
    old = cart(store_id=sid, cart_id="x", refs=("cart:x",), status=CartStatus.CONVERTED)
    new = cart(store_id=sid, cart_id="x~2", refs=("cart:x",))
    with database.write() as uow:
        uow.carts.save(old)
        uow.carts.save(new)
        uow.carts.save(old)

    with database.read() as uow:
        found = uow.carts.find(sid, "cart:x")
    assert found is not None and found.cart_id == "x~2"


def test_carts_and_their_keys_are_kept_per_store(database: Database) -> None:
    a, b = store_id(), store_id()
    mine = cart(store_id=a, cart_id="same", shopper_id="s", refs=("checkout:same",))
    theirs = cart(store_id=b, cart_id="same", shopper_id="s", refs=("checkout:same",), status=CartStatus.ABANDONED)
    with database.write() as uow:
        uow.carts.save(mine)
        uow.carts.save(theirs)
        uow.timeline.add(a, "same", START, "event", {"name": "mine"})

    with database.read() as uow:
        assert uow.carts.get(a, "same") == mine and uow.carts.get(b, "same") == theirs
        assert uow.carts.find(b, "checkout:same") == theirs
        assert [c.store_id for c in uow.carts.open_for_shopper(a, "s")] == [a]
        assert [c.store_id for c in uow.carts.for_shopper(b, "s")] == [b]
        assert uow.carts.page(a, None, 10, None) == [mine]
        assert uow.timeline.for_cart(b, "same") == []


def test_the_timeline_reads_back_in_event_time_order(database: Database) -> None:
    sid, cart_id = store_id(), random_id("cart")
    with database.write() as uow:
        uow.timeline.add(sid, cart_id, START + 2 * MINUTE, "state", {"from": "active", "to": "abandoned"})
        uow.timeline.add(sid, cart_id, START, "event", {"name": "Product Added", "items": 1})
        uow.timeline.add(sid, cart_id, START + 2 * MINUTE, "event", {"name": "page"})

    with database.read() as uow:
        entries = uow.timeline.for_cart(sid, cart_id)

    assert entries == [
        {"at": START, "kind": "event", "name": "Product Added", "items": 1},
        {"at": START + 2 * MINUTE, "kind": "state", "from": "active", "to": "abandoned"},
        {"at": START + 2 * MINUTE, "kind": "event", "name": "page"},
    ]


def test_the_timeline_entries_of_one_kind_read_back_by_cart_in_event_time_order(database: Database) -> None:
    sid = store_id()
    carts = [random_id("cart") for _ in range(1203)]  # more than one of SQLite's batches of ids
    with database.write() as uow:
        for n, cart_id in enumerate(carts):
            uow.timeline.add(sid, cart_id, START + 2 * MINUTE, "click", {"message_id": f"late-{n}"})
            uow.timeline.add(sid, cart_id, START, "event", {"name": "Product Added"})
            uow.timeline.add(sid, cart_id, START + MINUTE, "click", {"message_id": f"early-{n}", "channel": "sms"})
            uow.timeline.add(sid, cart_id, START + 2 * MINUTE, "click", {"message_id": f"tie-{n}"})
        uow.timeline.add(store_id(), carts[0], START, "click", {"message_id": "elsewhere"})
        uow.timeline.add(sid, "other-cart", START, "click", {"message_id": "not asked for"})

    with database.read() as uow:
        wanted = [*carts[::2], "no-such-cart"]
        clicks = uow.timeline.for_carts(sid, wanted, "click")
        events = uow.timeline.for_carts(sid, carts[:3], "event")
        assert uow.timeline.for_carts(sid, [], "click") == {}

    assert set(clicks) == set(carts[::2])
    n = 2
    assert clicks[carts[n]] == [
        {"at": START + MINUTE, "kind": "click", "message_id": f"early-{n}", "channel": "sms"},
        {"at": START + 2 * MINUTE, "kind": "click", "message_id": f"late-{n}"},
        {"at": START + 2 * MINUTE, "kind": "click", "message_id": f"tie-{n}"},
    ]
    assert all(len(entries) == 3 for entries in clicks.values())
    assert events == {c: [{"at": START, "kind": "event", "name": "Product Added"}] for c in carts[:3]}


# --- Timers ------------------------------------------------------------------------------------------------


def test_timers_pop_in_due_order_up_to_the_limit_and_only_when_due(database: Database) -> None:
    sid = store_id()
    late, early, middle = (Timer(sid, random_id("c"), "abandon", START + m * MINUTE) for m in (30, 10, 20))
    future = Timer(sid, random_id("c"), "expire", START + timedelta(days=7))
    with database.write() as uow:
        for t in (late, early, middle, future):
            uow.timers.set(t)

    with database.write() as uow:
        assert uow.timers.next_due() == early.due
        assert uow.timers.pop_due(START + 30 * MINUTE, 2) == [early, middle]
        assert uow.timers.pop_due(START + 30 * MINUTE, 10) == [late]
        assert uow.timers.pop_due(START + 30 * MINUTE, 10) == []
        assert uow.timers.next_due() == future.due


def test_setting_a_timer_again_moves_it_and_cancel_disarms_it(database: Database) -> None:
    sid, cart_id = store_id(), random_id("c")
    with database.write() as uow:
        uow.timers.set(Timer(sid, cart_id, "abandon", START))
        uow.timers.set(Timer(sid, cart_id, "abandon", START + MINUTE))
        uow.timers.set(Timer(sid, cart_id, "expire", START + 2 * MINUTE))
        uow.timers.cancel(sid, cart_id, "expire")
        uow.timers.cancel(sid, cart_id, "never-set")

    with database.write() as uow:
        assert uow.timers.pop_due(START + timedelta(days=1), 10) == [Timer(sid, cart_id, "abandon", START + MINUTE)]


def test_timers_popped_in_a_rolled_back_transaction_come_back(database: Database) -> None:
    timer = Timer(store_id(), random_id("c"), "abandon", START)
    with database.write() as uow:
        uow.timers.set(timer)

    with pytest.raises(Boom), database.write() as uow:
        assert uow.timers.pop_due(START, 10) == [timer]
        raise Boom

    with database.write() as uow:
        assert uow.timers.pop_due(START, 10) == [timer]


def test_timers_of_the_same_cart_id_in_two_stores_are_separate(database: Database) -> None:
    a, b = Timer(store_id(), "same", "abandon", START), Timer(store_id(), "same", "abandon", START + MINUTE)
    with database.write() as uow:
        uow.timers.set(a)
        uow.timers.set(b)
        uow.timers.cancel(a.store_id, "same", "abandon")

    with database.write() as uow:
        assert uow.timers.pop_due(START + MINUTE, 10) == [b]


# --- Shoppers ----------------------------------------------------------------------------------------------


def test_unknown_identities_make_a_new_shopper_and_known_ones_find_it(database: Database) -> None:
    sid, new_id = store_id(), random_id("s")

    with database.write() as uow:
        assert uow.shoppers.resolve(sid, [("anon", "a1")], new_id) == (new_id, [])
        assert uow.shoppers.resolve(sid, [("anon", "a1"), ("user", "u1")], random_id("s")) == (new_id, [])
    with database.read() as uow:
        assert uow.shoppers.find(sid, "user", "u1") == new_id
        assert uow.shoppers.find(sid, "anon", "a1") == new_id
        assert uow.shoppers.find(sid, "email", "nobody@example.com") is None
        assert uow.shoppers.get(sid, new_id) == Shopper(store_id=sid, shopper_id=new_id)


def test_identities_of_two_shoppers_merge_them_into_the_oldest(database: Database) -> None:
    sid = store_id()
    with database.write() as uow:
        oldest, _ = uow.shoppers.resolve(sid, [("anon", "phone")], "s-z-oldest")
        newer, _ = uow.shoppers.resolve(sid, [("anon", "laptop")], "s-a-newer")
        uow.shoppers.save(Shopper(sid, newer, email="jane@example.com", consent={"email": True}))
        uow.shoppers.save(Shopper(sid, oldest, timezone="Europe/Paris", consent={"email": False, "sms": True}))

    with database.write() as uow:
        survivor, merged = uow.shoppers.resolve(sid, [("anon", "laptop"), ("anon", "phone"), ("user", "u")], "s-new")

    assert (survivor, merged) == (oldest, [newer])
    with database.read() as uow:
        assert {uow.shoppers.find(sid, "anon", v) for v in ("phone", "laptop")} == {oldest}
        assert uow.shoppers.find(sid, "user", "u") == oldest
        assert uow.shoppers.get(sid, newer) is None
        kept = uow.shoppers.get(sid, oldest)
    assert kept is not None
    assert (kept.email, kept.timezone) == ("jane@example.com", "Europe/Paris")
    assert kept.consent == {"email": False, "sms": True}  # the survivor's own answers win


def test_erase_removes_the_profile_and_every_identity_and_is_idempotent(database: Database) -> None:
    sid = store_id()
    with database.write() as uow:
        shopper_id, _ = uow.shoppers.resolve(sid, [("email", "jane@example.com"), ("anon", "a")], random_id("s"))
        uow.shoppers.save(Shopper(sid, shopper_id, email="jane@example.com", phone="+15550100", traits={"n": "Jane"}))
        kept, _ = uow.shoppers.resolve(sid, [("anon", "other")], random_id("s"))

    for _ in range(2):
        with database.write() as uow:
            uow.shoppers.erase(sid, shopper_id)

    with database.read() as uow:
        assert uow.shoppers.get(sid, shopper_id) is None
        assert uow.shoppers.find(sid, "email", "jane@example.com") is None
        assert uow.shoppers.find(sid, "anon", "a") is None
        assert uow.shoppers.find(sid, "anon", "other") == kept


def test_shoppers_are_kept_per_store(database: Database) -> None:
    a, b = store_id(), store_id()
    with database.write() as uow:
        in_a, _ = uow.shoppers.resolve(a, [("user", "u")], "s-a")
        in_b, merged = uow.shoppers.resolve(b, [("user", "u")], "s-b")
        uow.shoppers.erase(a, in_a)

    assert (in_a, in_b, merged) == ("s-a", "s-b", [])
    with database.read() as uow:
        assert uow.shoppers.find(a, "user", "u") is None
        assert uow.shoppers.find(b, "user", "u") == "s-b"
        assert uow.shoppers.get(b, "s-b") is not None


# --- Orders ------------------------------------------------------------------------------------------------


def order(sid: int, *refs: str, **fields: object) -> Order:
    """An order not yet joined to a cart."""
    return Order(
        store_id=sid,
        order_id=random_id("o"),
        shopper_id=None,
        placed_at=START,
        value=1999,
        currency="USD",
        refs=refs,
        **fields,
    )  # type: ignore[arg-type]


def test_an_order_reads_back_by_id_and_is_found_by_its_keys_until_it_joins_a_cart(database: Database) -> None:
    sid = store_id()
    o = order(sid, "checkout:chk", "token:tok")
    with database.write() as uow:
        uow.orders.save(o)

    with database.read() as uow:
        assert uow.orders.get(sid, o.order_id) == o
        assert uow.orders.find_unjoined(sid, ("cart:nope", "token:tok")) == o
        assert uow.orders.find_unjoined(sid, ("cart:nope",)) is None
        assert uow.orders.find_unjoined(sid, ()) is None

    joined = replace(o, cart_id="c1", cancelled_at=START + MINUTE)
    with database.write() as uow:
        uow.orders.save(joined)
    with database.read() as uow:
        assert uow.orders.get(sid, o.order_id) == joined
        assert uow.orders.find_unjoined(sid, ("checkout:chk",)) is None


def test_orders_are_kept_per_store(database: Database) -> None:
    a, b = store_id(), store_id()
    o = order(a, "checkout:same")
    with database.write() as uow:
        uow.orders.save(o)

    with database.read() as uow:
        assert uow.orders.get(b, o.order_id) is None
        assert uow.orders.find_unjoined(b, ("checkout:same",)) is None
        assert uow.orders.find_unjoined(a, ("checkout:same",)) == o


def test_many_orders_read_back_at_once_by_id_of_one_store_leaving_out_ids_without_an_order(database: Database) -> None:
    sid = store_id()
    mine = [order(sid, f"checkout:{n}") for n in range(1203)]  # more than one of SQLite's batches of ids
    theirs = replace(order(store_id()), order_id=mine[0].order_id)
    with database.write() as uow:
        for o in (*mine, theirs):
            uow.orders.save(o)

    with database.read() as uow:
        wanted = [o.order_id for o in mine[::2]]
        assert uow.orders.get_many(sid, [*wanted, "no-such-order"]) == {o.order_id: o for o in mine[::2]}
        assert uow.orders.get_many(theirs.store_id, [o.order_id for o in mine]) == {theirs.order_id: theirs}
        assert uow.orders.get_many(sid, []) == {}


# --- Stores ------------------------------------------------------------------------------------------------


def a_store(**fields: object) -> Store:
    """A store with random name and keys, not yet added."""
    return Store(
        store_id=0, name=random_id("shop"), write_key=random_id("wk"), admin_key_hash=random_id("ak"), **fields
    )  # type: ignore[arg-type]


def test_adding_stores_assigns_distinct_ids_and_keeps_everything(database: Database) -> None:
    with database.write() as uow:
        first = uow.stores.add(a_store(timezone="Europe/Berlin", currency="EUR", shopify_secrets=("s1", "s2")))
        second = uow.stores.add(a_store())

    assert first.store_id > 0 and second.store_id > 0 and first.store_id != second.store_id
    with database.read() as uow:
        assert uow.stores.by_name(first.name) == first
        assert uow.stores.by_name("no such shop") is None
        assert uow.stores.all() == sorted([first, second], key=lambda s: s.store_id)


def test_a_store_name_or_write_key_that_is_taken_is_refused(database: Database) -> None:
    with database.write() as uow:
        taken = uow.stores.add(a_store())

    for duplicate in (replace(a_store(), name=taken.name), replace(a_store(), write_key=taken.write_key)):
        with pytest.raises(StoreExists), database.write() as uow:
            uow.stores.add(duplicate)
    with database.read() as uow:
        assert uow.stores.all() == [taken]


def test_updating_a_store_replaces_its_keys_and_settings(database: Database) -> None:
    with database.write() as uow:
        store = uow.stores.add(a_store())
    changed = replace(store, write_key=random_id("wk"), currency="JPY", woocommerce_secret="w")

    with database.write() as uow:
        uow.stores.update(changed)
    with database.read() as uow:
        assert uow.stores.by_name(store.name) == changed


# --- the unit of work --------------------------------------------------------------------------------------


def test_erasing_a_stores_data_leaves_other_stores_and_the_store_itself(database: Database) -> None:
    with database.write() as uow:
        gone, kept = uow.stores.add(a_store()), uow.stores.add(a_store())
    a, b = gone.store_id, kept.store_id
    with database.write() as uow:
        for sid in (a, b):
            uow.carts.save(cart(store_id=sid, cart_id="c", shopper_id="s"))
            uow.timers.set(Timer(sid, "c", "abandon", START))
            uow.shoppers.resolve(sid, [("email", "jane@example.com")], "s")
            uow.orders.save(Order(sid, "o", "s", START, 1, "USD", ("cart:c",)))

    with database.write() as uow:
        uow.erase_store_data(a)

    with database.read() as uow:
        assert uow.carts.get(a, "c") is None and uow.carts.get(b, "c") is not None
        assert uow.shoppers.find(a, "email", "jane@example.com") is None
        assert uow.shoppers.find(b, "email", "jane@example.com") == "s"
        assert uow.orders.get(a, "o") is None and uow.orders.get(b, "o") is not None
        assert [s.name for s in uow.stores.all()] == [gone.name, kept.name]
    with database.write() as uow:
        assert uow.timers.pop_due(START, 10) == [Timer(b, "c", "abandon", START)]


def test_abandoned_between_finds_the_stores_carts_abandoned_in_the_window_in_order(database: Database) -> None:
    sid, other = store_id(), store_id()
    late = cart(store_id=sid, status=CartStatus.ABANDONED, abandoned_at=START + 3 * MINUTE)
    early = cart(store_id=sid, status=CartStatus.RECOVERED, abandoned_at=START + MINUTE)
    edge = cart(store_id=sid, status=CartStatus.ABANDONED, abandoned_at=START + 10 * MINUTE)  # until is excluded
    before = cart(store_id=sid, status=CartStatus.EXPIRED, abandoned_at=START - MINUTE)
    never = cart(store_id=sid, status=CartStatus.ACTIVE)
    elsewhere = cart(store_id=other, status=CartStatus.ABANDONED, abandoned_at=START + 2 * MINUTE)
    with database.write() as uow:
        for c in (late, early, edge, before, never, elsewhere):
            uow.carts.save(c)

    with database.read() as uow:
        everything = uow.carts.abandoned_between(sid, START, START + 10 * MINUTE)
        only_open = uow.carts.abandoned_between(sid, START, START + 10 * MINUTE, [CartStatus.ABANDONED])
        none = uow.carts.abandoned_between(sid, START, START + 10 * MINUTE, [])

    assert [c.cart_id for c in everything] == [early.cart_id, late.cart_id]
    assert [c.cart_id for c in only_open] == [late.cart_id]
    assert none == []


def test_abandoned_between_orders_carts_abandoned_at_once_by_id_character_by_character(database: Database) -> None:
    # Python and SQLite compare ids by code point; a database collation would put "a…" before "B…".
    sid, at = store_id(), START + MINUTE
    ids = ["a-cart", "B-cart", "_cart", "b-cart", "A-cart", "é-cart"]
    with database.write() as uow:
        for cart_id in ids:
            uow.carts.save(cart(store_id=sid, cart_id=cart_id, status=CartStatus.ABANDONED, abandoned_at=at))

    with database.read() as uow:
        found = uow.carts.abandoned_between(sid, START, START + 10 * MINUTE)

    assert [c.cart_id for c in found] == sorted(ids)


def test_a_cart_abandoned_again_is_found_at_its_new_abandonment_time_only(database: Database) -> None:
    sid = store_id()
    c = cart(store_id=sid, status=CartStatus.ABANDONED, abandoned_at=START + MINUTE)
    with database.write() as uow:
        uow.carts.save(c)
    again = replace(c, abandoned_at=START + 20 * MINUTE)
    with database.write() as uow:
        uow.carts.save(again)

    with database.read() as uow:
        assert uow.carts.abandoned_between(sid, START, START + 10 * MINUTE) == []
        assert uow.carts.abandoned_between(sid, START + 10 * MINUTE, START + HOUR) == [again]
        assert uow.carts.abandoned_between(sid, START, START + HOUR, [CartStatus.ABANDONED]) == [again]


def test_sqlite_reads_a_window_of_abandoned_carts_by_abandonment_time_not_by_scanning_the_store(
    tmp_path: Path,
) -> None:
    # Counted in SQLite's virtual machine instructions, not timed: reading every cart of the store (as before the
    # abandonment index) grows with the store's history; the index reads the window's carts only.
    sid = store_id()
    inside = [cart(store_id=sid, status=CartStatus.ABANDONED, abandoned_at=START + n * MINUTE) for n in range(3)]

    def instructions(history: int, statuses: list[CartStatus] | None) -> int:
        counted = [0]

        def count() -> int:
            counted[0] += 1
            return 0  # go on

        older = [
            cart(store_id=sid, status=CartStatus.ABANDONED, abandoned_at=START - HOUR - n * MINUTE)
            for n in range(history)
        ]
        with closing(SqliteDatabase.from_url(f"sqlite:///{tmp_path / f'carts-{history}-{statuses}.db'}")) as db:
            with db.write() as uow:
                for c in (*inside, *older):
                    uow.carts.save(c)
            with db.read() as uow:
                uow.conn.set_progress_handler(count, 1)
                assert uow.carts.abandoned_between(sid, START, START + HOUR, statuses) == inside
                uow.conn.set_progress_handler(None, 1)
        return counted[0]

    assert instructions(3000, None) < 2 * instructions(100, None)
    assert instructions(3000, [CartStatus.ABANDONED]) < 2 * instructions(100, [CartStatus.ABANDONED])


# --- Outbox and suppressions -------------------------------------------------------------------------------

SECOND, HOUR = timedelta(seconds=1), timedelta(hours=1)


def a_step(sid: int, due: datetime, **fields: object) -> Step:
    """A scheduled email step of a random cart, due at `due`."""
    return Step(
        step_id=random_id("step"),
        store_id=sid,
        cart_id=random_id("c"),
        shopper_id=random_id("s"),
        number=1,
        name="reminder",
        template="reminder",
        channels=(Channel.EMAIL,),
        due_at=due,
        **fields,
    )  # type: ignore[arg-type]


def test_adding_a_step_whose_id_exists_leaves_the_first_one(database: Database) -> None:
    first = a_step(store_id(), START)
    with database.write() as uow:
        uow.outbox.add([first])
        uow.outbox.add([replace(first, due_at=START + MINUTE, name="other"), a_step(first.store_id, START)])
        uow.outbox.add([])

    with database.read() as uow:
        assert uow.outbox.get(first.store_id, first.step_id) == first
        assert uow.outbox.get(first.store_id, "no-such-step") is None
        assert uow.outbox.count_by_status() == {"scheduled": 2}


def test_due_steps_are_scheduled_ones_due_and_sending_ones_whose_lease_ran_out_earliest_first(
    database: Database,
) -> None:
    sid, now = store_id(), START + 20 * MINUTE
    late = a_step(sid, START + 10 * MINUTE)
    early = a_step(sid, START + 5 * MINUTE)
    stale = a_step(sid, START, status=StepStatus.SENDING, lease_until=START + 7 * MINUTE, sent_at=START)
    leased = a_step(sid, START, status=StepStatus.SENDING, lease_until=START + HOUR, sent_at=START)
    future = a_step(sid, START + 30 * MINUTE)
    sent = a_step(sid, START, status=StepStatus.SENT, sent_at=START)
    with database.write() as uow:
        uow.outbox.add([late, early, stale, leased, future, sent])

    with database.write() as uow:
        assert uow.outbox.due(now, 10) == [early, stale, late]
        assert uow.outbox.due(now, 2) == [early, stale]
        assert uow.outbox.due(START, 10) == []


def test_a_saved_step_reads_back_with_its_new_state_and_counts_as_sent(database: Database) -> None:
    sid = store_id()
    step = a_step(sid, START + MINUTE)
    earlier = replace(a_step(sid, START), cart_id=step.cart_id, shopper_id=step.shopper_id)
    with database.write() as uow:
        uow.outbox.add([step, earlier])
    step.status, step.channel, step.sent_at, step.attempts = StepStatus.SENT, Channel.EMAIL, START + MINUTE, 1

    with database.write() as uow:
        uow.outbox.save(step)
    with database.read() as uow:
        assert uow.outbox.get(sid, step.step_id) == step
        assert uow.outbox.for_cart(sid, step.cart_id) == [earlier, step]
        assert uow.outbox.for_cart(store_id(), step.cart_id) == []
        assert uow.outbox.sent_since(sid, step.shopper_id, START + MINUTE) == 1
        assert uow.outbox.sent_since(sid, step.shopper_id, START + 2 * MINUTE) == 0
        assert uow.outbox.sent_since(sid, random_id("s"), START) == 0
        assert uow.outbox.count_by_status() == {"scheduled": 1, "sent": 1}
        assert uow.outbox.due(START + HOUR, 10) == [earlier]


def test_sqlite_reads_a_cart_s_steps_by_the_cart_not_by_scanning_the_store_s_outbox(tmp_path: Path) -> None:
    # The work of the query is counted in SQLite's virtual machine instructions, not timed: a scan of the store's
    # steps (SQLite 3.40's planner chose the primary key's store_id) grows with the store, the cart index does not.
    sid = store_id()
    step = a_step(sid, START)
    mine = [step, replace(a_step(sid, START + MINUTE), cart_id=step.cart_id)]

    def instructions(others: int) -> int:
        counted = [0]

        def count() -> int:
            counted[0] += 1
            return 0  # go on

        with closing(SqliteDatabase.from_url(f"sqlite:///{tmp_path / f'outbox-{others}.db'}")) as db:
            with db.write() as uow:
                uow.outbox.add([*mine, *(a_step(sid, START) for _ in range(others))])
            with db.read() as uow:
                uow.conn.set_progress_handler(count, 1)
                assert uow.outbox.for_cart(sid, step.cart_id) == mine
                uow.conn.set_progress_handler(None, 1)
        return counted[0]

    assert instructions(3000) < 2 * instructions(100)


def test_steps_of_many_carts_read_back_by_cart_oldest_first_leaving_out_carts_without_steps(
    database: Database,
) -> None:
    sid = store_id()
    firsts = [a_step(sid, START + MINUTE) for _ in range(1203)]  # more than one of SQLite's batches of ids
    earlier = [replace(a_step(sid, START), cart_id=s.cart_id, shopper_id=s.shopper_id) for s in firsts]
    sent = replace(firsts[0], status=StepStatus.SENT, channel=Channel.SMS, sent_at=START + MINUTE, attempts=1)
    theirs = replace(a_step(store_id(), START), cart_id=firsts[0].cart_id)
    with database.write() as uow:
        uow.outbox.add([*firsts, *earlier, theirs])
        uow.outbox.save(sent)

    with database.read() as uow:
        wanted = [s.cart_id for s in firsts[::2]]
        found = uow.outbox.for_carts(sid, [*wanted, "no-such-cart"])
        assert uow.outbox.for_carts(theirs.store_id, wanted) == {theirs.cart_id: [theirs]}
        assert uow.outbox.for_carts(sid, []) == {}

    assert found == {
        first.cart_id: [before, first] for first, before in zip(firsts[::2], earlier[::2], strict=True)
    } | {sent.cart_id: [earlier[0], sent]}


def test_dead_letters_list_newest_first_of_one_store_or_of_all(database: Database) -> None:
    a, b = store_id(), store_id()
    old, new = (a_step(a, START + m * MINUTE, status=StepStatus.DEAD, reason="550") for m in (1, 2))
    theirs = a_step(b, START, status=StepStatus.DEAD, reason="bounced")
    with database.write() as uow:
        uow.outbox.add([old, new, theirs, a_step(a, START + 3 * MINUTE)])

    with database.read() as uow:
        assert uow.outbox.dead(a, 10) == [new, old]
        assert uow.outbox.dead(a, 1) == [new]
        assert uow.outbox.dead(None, 10) == [new, old, theirs]


def test_suppressions_keep_the_first_reason_per_store_and_channel_until_lifted(database: Database) -> None:
    a, b = store_id(), store_id()
    with database.write() as uow:
        uow.suppressions.add(a, "email", "jane@example.com", "hard bounce", START)
        uow.suppressions.add(a, "email", "jane@example.com", "complaint", START + MINUTE)
        uow.suppressions.add(a, "sms", "+15550100", "STOP", START)

    with database.read() as uow:
        assert uow.suppressions.reason(a, "email", "jane@example.com") == "hard bounce"
        assert uow.suppressions.reason(a, "sms", "jane@example.com") is None
        assert uow.suppressions.reason(b, "email", "jane@example.com") is None
    with database.write() as uow:
        uow.suppressions.remove(a, "sms", "+15550100")
        uow.suppressions.remove(a, "sms", "never-suppressed")
    with database.read() as uow:
        assert uow.suppressions.reason(a, "sms", "+15550100") is None
        assert uow.suppressions.reason(a, "email", "jane@example.com") == "hard bounce"


# --- Decisions and models ----------------------------------------------------------------------------------


def a_decision(sid: int, at: datetime, cart_id: str | None = None, incentive: float = 0.0) -> DecisionRecord:
    """A logged decision with a few made-up features."""
    return DecisionRecord(
        sid, cart_id or random_id("c"), random_id("s"), at, "treated", "explore", "p1", [1.0, 0.0], [0.5, 2.0], "f1",
        propensity=0.25, explored=True, incentive=incentive, scores={"chosen": 1.5}, contributions=[("recency", 0.1)],
        greedy=[3.0, 1.0], trial=4, arm="candidate",
    )  # fmt: skip


def test_decisions_read_back_by_time_window_and_by_cart_oldest_first(database: Database) -> None:
    sid, cart_id = store_id(), random_id("c")
    second = a_decision(sid, START + MINUTE, cart_id, incentive=2.5)
    first = a_decision(sid, START, cart_id, incentive=1.0)
    same_time = a_decision(sid, START + MINUTE, incentive=0.25)
    edge = a_decision(sid, START + 2 * MINUTE, incentive=4.0)
    with database.write() as uow:
        for record in (second, first, same_time, edge, a_decision(store_id(), START, cart_id, incentive=9.0)):
            uow.decisions.add(record)

    with database.read() as uow:
        assert uow.decisions.between(sid, START, START + 2 * MINUTE) == [first, second, same_time]
        assert uow.decisions.for_cart(sid, cart_id) == [first, second]
        assert uow.decisions.incentive_committed(sid, START + MINUTE) == pytest.approx(6.75)
        assert uow.decisions.incentive_committed(sid, START + HOUR) == 0.0


def test_models_are_numbered_per_store_with_at_most_one_active(database: Database) -> None:
    a, b = store_id(), store_id()
    with database.write() as uow:
        assert uow.models.add(a, START, {"auc": 0.7}, b"one", activate=True) == 1
        assert uow.models.add(a, START + HOUR, {"auc": 0.8}, b"two", activate=False) == 2
        assert uow.models.add(b, START, {}, b"theirs", activate=True) == 1

    with database.read() as uow:
        assert uow.models.active(a) == (1, b"one") and uow.models.active_version(a) == 1
        assert uow.models.body(a, 2) == b"two"
        with pytest.raises(KeyError):
            uow.models.body(a, 3)
        versions = uow.models.versions(a)
    assert [(v.version, v.active, v.metrics, v.trained_at) for v in versions] == [
        (2, False, {"auc": 0.8}, START + HOUR),
        (1, True, {"auc": 0.7}, START),
    ]

    with database.write() as uow:
        assert uow.models.activate(a, 2) is True
        assert uow.models.activate(a, 7) is False
    with database.read() as uow:
        assert uow.models.active(a) == (2, b"two")
        assert [v.version for v in uow.models.versions(a) if v.active] == [2]
    with database.write() as uow:
        assert uow.models.activate(a, None) is True
    with database.read() as uow:
        assert uow.models.active(a) is None and uow.models.active_version(a) is None
        assert uow.models.active(b) == (1, b"theirs")


def registry(database: Database, store: int, versions: int) -> None:
    """`versions` bundles of the store, the first one active."""
    with database.write() as uow:
        for n in range(versions):
            uow.models.add(store, START + n * HOUR, {}, f"v{n + 1}".encode(), activate=n == 0)


def test_a_store_has_at_most_one_model_on_trial_and_a_new_trial_replaces_the_old(database: Database) -> None:
    a, b = store_id(), store_id()
    registry(database, a, 3)
    registry(database, b, 2)
    with database.write() as uow:
        assert uow.models.trial(a) is None and uow.models.end_trial(a) is None
        assert uow.models.start_trial(a, 2, 0.25) is True
        assert uow.models.start_trial(b, 2, 0.5) is True
    with database.read() as uow:
        assert uow.models.trial(a) == (2, 0.25) and uow.models.trial(b) == (2, 0.5)

    with database.write() as uow:
        assert uow.models.start_trial(a, 3, 0.1) is True
    with database.read() as uow:
        assert uow.models.trial(a) == (3, 0.1)
        assert [(v.version, v.active, v.trial_share) for v in uow.models.versions(a)] == [
            (3, False, 0.1),
            (2, False, None),
            (1, True, None),
        ]
        assert uow.models.trial(b) == (2, 0.5)

    with database.write() as uow:
        assert uow.models.end_trial(a) == 3
        assert uow.models.end_trial(a) is None
    with database.read() as uow:
        assert uow.models.trial(a) is None
        assert [v.trial_share for v in uow.models.versions(a)] == [None, None, None]
        assert uow.models.trial(b) == (2, 0.5) and uow.models.active_version(a) == 1


def test_the_active_model_a_missing_one_or_a_share_outside_0_to_1_never_goes_on_trial(database: Database) -> None:
    a, empty = store_id(), store_id()
    registry(database, a, 2)
    with database.write() as uow:
        assert uow.models.start_trial(a, 2, 0.3) is True

    with database.write() as uow:
        assert uow.models.start_trial(a, 1, 0.5) is False  # the active one
        assert uow.models.start_trial(a, 9, 0.5) is False
        assert uow.models.start_trial(empty, 1, 0.5) is False
    for share in (0.0, 1.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 1"), database.write() as uow:
            uow.models.start_trial(a, 2, share)

    with database.read() as uow:
        assert uow.models.trial(a) == (2, 0.3) and uow.models.active_version(a) == 1
        assert uow.models.trial(empty) is None


def test_activating_a_model_ends_the_store_s_trial_and_a_missing_one_leaves_it(database: Database) -> None:
    a, b = store_id(), store_id()
    registry(database, a, 3)
    registry(database, b, 2)
    with database.write() as uow:
        assert uow.models.start_trial(a, 2, 0.3) is True
        assert uow.models.start_trial(b, 2, 0.4) is True
        assert uow.models.activate(a, 9) is False
    with database.read() as uow:
        assert uow.models.trial(a) == (2, 0.3) and uow.models.active_version(a) == 1

    with database.write() as uow:
        assert uow.models.activate(a, 2) is True  # the one on trial goes live for everyone
    with database.read() as uow:
        assert uow.models.trial(a) is None and uow.models.active(a) == (2, b"v2")
        assert [(v.version, v.active, v.trial_share) for v in uow.models.versions(a)] == [
            (3, False, None),
            (2, True, None),
            (1, False, None),
        ]

    for version in (1, None):  # another version, or back to the rules
        with database.write() as uow:
            assert uow.models.start_trial(a, 3, 0.2) is True
            assert uow.models.activate(a, version) is True
        with database.read() as uow:
            assert uow.models.trial(a) is None and uow.models.active_version(a) == version
    with database.read() as uow:
        assert uow.models.trial(b) == (2, 0.4) and uow.models.active_version(b) == 1


# --- Writers at once ---------------------------------------------------------------------------------------


def test_workers_claiming_at_once_never_claim_the_same_step(database: Database) -> None:
    sid, now = store_id(), START + HOUR
    steps = [a_step(sid, START + i * SECOND) for i in range(40)]
    with database.write() as uow:
        uow.outbox.add(steps)
    start = threading.Barrier(3)

    def claim_until_none_left() -> list[str]:
        mine: list[str] = []
        start.wait()
        while True:
            with database.write() as uow:
                due = uow.outbox.due(now, 3)
                for step in due:
                    step.status, step.lease_until = StepStatus.SENDING, now + HOUR
                    uow.outbox.save(step)
            if not due:
                return mine
            mine += [step.step_id for step in due]

    with ThreadPoolExecutor(3) as pool:
        claimed = [f.result(timeout=60) for f in [pool.submit(claim_until_none_left) for _ in range(3)]]

    every = [step_id for mine in claimed for step_id in mine]
    assert sorted(every) == sorted(s.step_id for s in steps)  # each step once, none left behind


def test_a_second_writer_of_a_checkpoint_waits_for_the_first_and_reads_its_offset(database: Database) -> None:
    with database.write() as uow:
        uow.checkpoints.put("lifecycle", 4)

    def next_worker() -> int:
        with database.write() as uow:
            offset = uow.checkpoints.get("lifecycle")
            uow.checkpoints.put("lifecycle", offset + 1)
            return offset

    with ThreadPoolExecutor(1) as pool, database.write() as first:
        assert first.checkpoints.get("lifecycle") == 4
        second = pool.submit(next_worker)
        with pytest.raises(FutureTimeout):
            second.result(timeout=0.3)  # it waits for the first worker's transaction
        first.checkpoints.put("lifecycle", 9)
    assert second.result(timeout=30) == 9
    with database.read() as uow:
        assert uow.checkpoints.get("lifecycle") == 10


def test_two_writers_changing_one_cart_at_once_both_keep_their_change(database: Database) -> None:
    c = cart()
    with database.write() as uow:
        uow.carts.save(c)

    def add_a_key() -> None:
        with database.write() as uow:
            found = uow.carts.get(c.store_id, c.cart_id)
            assert found is not None
            found.refs = (*found.refs, "checkout:late")
            uow.carts.save(found)

    with ThreadPoolExecutor(1) as pool, database.write() as first:
        mine = first.carts.get(c.store_id, c.cart_id)
        assert mine is not None
        other = pool.submit(add_a_key)
        with pytest.raises(FutureTimeout):
            other.result(timeout=0.3)
        mine.status, mine.abandoned_at = CartStatus.ABANDONED, START + 30 * MINUTE
        first.carts.save(mine)
    other.result(timeout=30)

    with database.read() as uow:
        saved = uow.carts.get(c.store_id, c.cart_id)
    assert saved is not None
    assert (saved.status, saved.refs[-1]) == (CartStatus.ABANDONED, "checkout:late")
