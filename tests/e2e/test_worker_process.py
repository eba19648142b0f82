"""On the system clock the lifecycle runs in its own worker process, started and watched over by `serve`.

Every test runs on both stacks: the worker holds the SQLite files on one, a connection to PostgreSQL and NATS
JetStream on the other.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Keys, Server, ServerFactory, on_both_stacks

pytestmark = [pytest.mark.slow, on_both_stacks]

PATIENCE = 60.0  # seconds: a bound on waiting for the worker to catch up, not a timed assertion
FAST = '[lifecycle]\nidle = "2s"\ncheckout_idle = "2s"\n'


def eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll until `check` returns something truthy; fail naming `what` after PATIENCE seconds."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


def workers_of(server: Server) -> list[int]:
    """Pids of the `cartrecover worker` processes whose parent is the server's main process."""
    assert server.process is not None
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in cmdline and f"{server.process.pid}".encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def add_to_cart(server: Server, shop: Keys, cart_id: str, message_id: str) -> None:
    now = datetime.now(UTC).isoformat()
    call = {
        "anonymousId": f"anon-{cart_id}",
        "event": "Product Added",
        "messageId": message_id,
        "timestamp": now,
        "properties": {"cart_id": cart_id, "product_id": "p1", "price": 12.5},
    }
    response = server.post("/v1/track", json=call, headers=shop.basic)
    assert response.status_code == 200, response.text


def status_of(server: Server, shop: Keys, cart_id: str) -> str | None:
    found = [c for c in server.carts(shop) if c["id"] == cart_id]
    return found[0]["status"] if found else None


def test_events_are_applied_and_carts_abandoned_by_the_worker_process(server_factory: ServerFactory) -> None:
    server = server_factory(config=FAST, clock="system")
    shop = server.stores["a"]
    assert len(eventually(lambda: workers_of(server), "the worker process")) == 1

    add_to_cart(server, shop, "c1", "m1")

    # Active for the 2 s idle time only: on a loaded machine the worker can apply the event that late, or the
    # polls miss the window, and the first status seen is already the abandoned one. Waiting to see "active"
    # then waits for ever.
    first = eventually(lambda: status_of(server, shop, "c1"), "the cart to appear")
    assert first in ("active", "abandoned")
    eventually(lambda: status_of(server, shop, "c1") == "abandoned", "the idle timer to fire")
    assert server.get("/healthz").json()["lifecycle_lag"] == 0


def test_a_killed_worker_is_replaced_and_applies_what_arrived_meanwhile(server_factory: ServerFactory) -> None:
    server = server_factory(config=FAST, clock="system")
    shop = server.stores["a"]
    (first,) = eventually(lambda: workers_of(server), "the worker process")

    os.kill(first, signal.SIGKILL)
    for n in range(20):
        add_to_cart(server, shop, f"c{n}", f"m{n}")

    replacement = eventually(lambda: [p for p in workers_of(server) if p != first], "a new worker")
    assert len(replacement) == 1
    eventually(lambda: len(server.carts(shop)) == 20, "all 20 carts")
    assert all(c["items"] == 1 for c in server.carts(shop))


def test_the_worker_stops_when_its_server_is_killed(server_factory: ServerFactory) -> None:
    server = server_factory(clock="system")
    (worker,) = eventually(lambda: workers_of(server), "the worker process")
    assert server.process is not None

    os.kill(server.process.pid, signal.SIGKILL)  # the main process only: its children are left behind

    eventually(lambda: not Path(f"/proc/{worker}").exists() or _is_zombie(worker), "the orphaned worker to exit")


def _is_zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().split()[2] == "Z"
    except OSError:
        return True
