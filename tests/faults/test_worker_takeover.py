"""Worker processes on PostgreSQL and NATS JetStream sharing the lifecycle's partitions, one killed under load.

Two `cartrecover worker` processes split eight partitions (stores 1–8, one each); events are appended while one of
them is killed with SIGKILL. The survivor takes the dead one's partitions over once its leases expire, and in the
end every event is applied exactly once (one timeline entry per event, one item per cart) and every cart's message
is sent, each once, except at most the one the killed worker had in flight.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.bootstrap import build_engine
from cartrecover.engine import Engine
from cartrecover.settings import load_settings
from tests.conftest import add_shop
from tests.faults.fleet import Fleet, Load, applied_once, carts_of, eventually, settled
from tests.nats_server import fresh_stream_url
from tests.services import postgres_schema

pytestmark = pytest.mark.slow


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A migrated PostgreSQL schema and a NATS stream of the test's own, on the machine's servers."""
    with postgres_schema() as database_url, fresh_stream_url() as event_log_url:
        PostgresDatabase.migrate(database_url)
        yield database_url, event_log_url


def observer_on(root: Path, database_url: str, event_log_url: str) -> Engine:
    """An engine in the test process on the same backends, on a manual clock: it reads state and appends only."""
    settings = load_settings(
        None, env={}, data_dir=root / "data", database_url=database_url, event_log_url=event_log_url, clock="manual"
    )
    return build_engine(settings)


def test_a_worker_killed_under_load_has_its_partitions_taken_over_and_every_event_applied_once(
    tmp_path: Path, backends: tuple[str, str]
) -> None:
    database_url, event_log_url = backends
    observer = observer_on(tmp_path, database_url, event_log_url)
    fleet = Fleet(tmp_path, database_url, event_log_url, partitions=8, lease="2s")
    stores = [add_shop(observer).store_id for _ in range(8)]
    load = Load(observer.log, stores)
    try:
        first, second = fleet.start(), fleet.start()
        eventually(
            lambda: fleet.holders() == {first.pid: 4, second.pid: 4}, "the two workers to hold 4 partitions each"
        )

        load.start()
        load.wait_for_more(300)
        eventually(lambda: fleet.sent_by(0) >= 30, "the first worker to be delivering")
        fleet.kill(first)  # mid-apply or mid-delivery
        load.wait_for_more(300)  # the load goes on through the takeover
        events = load.finish()
        carts = carts_of(events)

        eventually(lambda: fleet.holders() == {second.pid: 8}, "the survivor to hold every partition")
        eventually(lambda: observer.lag() == 0, "the survivor to apply every event")
        eventually(lambda: settled(observer, carts), "every cart's message to be sent")
        state = applied_once(observer, carts)
        sends = fleet.sends()
    except BaseException:
        print(fleet.output())
        raise
    finally:
        load.stopping.set()
        fleet.stop_all()
        observer.close()

    assert len(carts) >= 300
    assert set(state["timeline"]) == set(carts.values())  # every acknowledged event was applied …
    assert set(state["timeline"].values()) == {1}  # … once
    assert state["items"] == Counter({1: len(carts)})
    assert len(sends) == len(carts)  # every step went out …
    repeats = {step: n for step, n in sends.items() if n > 1}
    assert len(repeats) <= 1 and set(repeats.values()) <= {2}, repeats  # … once, but the one in flight at the kill
