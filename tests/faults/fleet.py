"""`cartrecover worker` processes on one state store and one event log, the load that feeds them, and what to check.

Each worker has its own config file and its own messages file (the `file://` channel), so what each sent can be
counted; they share the data directory (its secret key) and the backends named by URL. The test process appends
events to the log itself, as the API would: an append that returned is an acknowledged event.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cartrecover.domain.events import Event
from cartrecover.engine import Engine
from cartrecover.errors import StoreError
from cartrecover.partitions import LIFECYCLE
from cartrecover.ports.eventlog import EventLog
from tests.factories import identified, item, product_added, random_id

PATIENCE = 120.0  # seconds: a bound on waiting for eventual state (the machine is shared), not a timed assertion

# Carts abandoned after 1 s idle, one email 1 s later; a claimed step whose worker died is claimed again after 3 s.
CONFIG = """
[engine]
holdout_share = 0.0
delivery_lease = "3s"

[worker]
nice = 0

[lifecycle]
idle = "1s"
checkout_idle = "1s"

[decisions]
exploration = 0

[[journey.steps]]
name = "reminder"
delay = "1s"
channels = ["email"]
template = "reminder"

[channels]
email = "file://{messages}"
"""


def eventually(check: Callable[[], Any], what: str, within: float = PATIENCE) -> Any:
    """Poll until `check` returns something truthy; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


@dataclass
class Fleet:
    """Worker processes on the backends named by `database_url` and `event_log_url`."""

    root: Path
    database_url: str
    event_log_url: str
    partitions: int = 8
    lease: str = "2s"
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        """Start one more worker."""
        n = len(self.workers)
        config = self.root / f"worker-{n}.toml"
        config.write_text(CONFIG.format(messages=self.root / f"messages-{n}.jsonl"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARTRECOVER_")}
        env |= {
            "CARTRECOVER_DATABASE_URL": self.database_url,
            "CARTRECOVER_EVENT_LOG_URL": self.event_log_url,
            "CARTRECOVER_WORKER_PARTITIONS": str(self.partitions),
            "CARTRECOVER_WORKER_LEASE": self.lease,
        }
        command = [sys.executable, "-m", "cartrecover", "worker", "--config", str(config)]
        command += ["--data-dir", str(self.root / "data")]
        with (self.root / f"worker-{n}.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.workers.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL: the worker stops mid-whatever, releasing nothing."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        """SIGTERM every worker still running (a clean stop), SIGKILL those that do not stop."""
        for process in self.workers:
            if process.poll() is None:
                process.terminate()
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(process)

    def log_of(self, n: int) -> str:
        """The whole log of the `n`th worker started."""
        return (self.root / f"worker-{n}.log").read_text(errors="replace")

    def met_outages(self) -> bool:
        """Whether every worker's log shows it lost its connection or had a step fail (the outage reached it). A
        worker whose calls waited on its PostgreSQL pool while the pool reconnected has no failed step to show, only
        the pool's own lines about the broken connection and the refused reconnects."""
        marks = ("NATS: disconnected", "lifecycle step failed", "discarding closed connection", "error connecting in")
        return all(any(mark in self.log_of(n) for mark in marks) for n in range(len(self.workers)))

    def output(self) -> str:
        """The end of every worker's log, for failure messages."""
        logs = sorted(self.root.glob("worker-*.log"))
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}" for p in logs)

    def holders(self) -> dict[int, int]:
        """Live lease holders: worker pid → how many partitions it holds."""
        now = time.time_ns() // 1000
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT owner FROM partition_leases WHERE consumer=%s AND expires_us > %s", (LIFECYCLE, now)
            ).fetchall()
        return dict(Counter(int(owner.split(":")[1]) for (owner,) in rows))

    def sent_by(self, n: int) -> int:
        """How many messages the `n`th worker started has sent so far."""
        path = self.root / f"messages-{n}.jsonl"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def sends(self) -> Counter[str]:
        """How many times each step was sent, over every worker's messages file."""
        counts: Counter[str] = Counter()
        for path in self.root.glob("messages-*.jsonl"):
            counts.update(json.loads(line)["step_id"] for line in path.read_text().splitlines() if line.strip())
        return counts


class Load(threading.Thread):
    """Appends carts (an identify with email consent, then a Product Added) over the given stores until stopped."""

    def __init__(self, log: EventLog, stores: list[int], carts_per_append: int = 5) -> None:
        super().__init__(name="load", daemon=True)
        self.log, self.stores, self.per_append = log, stores, carts_per_append
        self.acknowledged: list[Event] = []
        self.unknown: list[list[Event]] = []  # appends that failed: logged or not, the client would send them again
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            batch: list[Event] = []
            for _ in range(self.per_append):
                store, anon, now = self.stores[n % len(self.stores)], random_id("anon"), datetime.now(UTC)
                batch += [
                    identified(
                        store_id=store, anonymous_id=anon, email=f"{anon}@example.com", consent={"email": True}, at=now
                    ),
                    product_added(item(price=2500), store_id=store, anonymous_id=anon, cart_id=f"c-{anon}", at=now),
                ]
                n += 1
            try:
                self.log.append(batch)
            except StoreError:
                self.unknown.append(batch)
                time.sleep(0.1)
                continue
            self.acknowledged += batch
            time.sleep(0.02)

    def wait_for_more(self, count: int, within: float = 60) -> None:
        """Wait until `count` more events are acknowledged."""
        target = len(self.acknowledged) + count
        eventually(lambda: len(self.acknowledged) >= target or not self.is_alive(), f"{count} more appends", within)
        assert self.is_alive(), "the load thread died"

    def finish(self) -> list[Event]:
        """Stop, send the failed appends again until they are taken (as clients would); every event sent."""
        self.stopping.set()
        self.join(timeout=30)
        for batch in self.unknown:
            eventually(lambda b=batch: _appended(self.log, b), "a failed append to be taken on retry")
        return [*self.acknowledged, *(e for batch in self.unknown for e in batch)]


def _appended(log: EventLog, batch: list[Event]) -> bool:
    try:
        log.append(batch)
    except StoreError:
        return False
    return True


def carts_of(events: list[Event]) -> dict[tuple[int, str], str]:
    """(store, cart id) → the message id of the Product Added that made the cart."""
    return {(e.store_id, e.cart_id): e.message_id for e in events if e.cart_id}


def applied_once(observer: Engine, carts: dict[tuple[int, str], str]) -> dict[str, Any]:
    """What the state says of each cart: how often its event is on its timeline, its items, its steps' statuses."""
    timeline: Counter[str] = Counter()
    items, statuses = Counter[int](), Counter[str]()
    with observer.database.read() as uow:
        for (store, cart_id), _ in carts.items():
            entries = uow.timeline.for_cart(store, cart_id)
            timeline.update(e["message_id"] for e in entries if e["kind"] == "event")
            cart = uow.carts.get(store, cart_id)
            items[sum(line.quantity for line in cart.items) if cart else 0] += 1
            statuses.update(step.status.value for step in uow.outbox.for_cart(store, cart_id))
    return {"timeline": timeline, "items": items, "steps": statuses}


def settled(observer: Engine, carts: dict[tuple[int, str], str]) -> bool:
    """Whether every cart's journey step has been sent (and recorded)."""
    state = applied_once(observer, carts)
    return bool(state["steps"] == Counter({"sent": len(carts)}))
