"""`cartrecover worker`: the lifecycle in a process of its own — consume the event log, fire due timers.

Apart from the API process, the lifecycle has a core and a GIL of its own, and never holds up an
acknowledgement: ingest writes only the event log, the worker only the state store.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from cartrecover.bootstrap import build_engine
from cartrecover.errors import CartRecoverError
from cartrecover.settings import Settings

logger = logging.getLogger("cartrecover.worker")


def run_worker(settings: Settings, *, parent_pid: int | None = None, poll: float = 0.05) -> int:
    """Apply logged events and due timers until stopped (SIGTERM, SIGINT, or the parent process gone)."""
    if settings.worker_nice:
        # Acknowledging events is what clients wait for (Shopify gives up after 5 s); the lifecycle may fall a
        # moment behind under a burst, since every event is already durable, and it has the core when ingest idles.
        os.nice(settings.worker_nice)
    engine = build_engine(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                logger.warning("the serving process is gone; stopping")
                break
            try:
                now = engine.clock.now()
                done = engine.process_pending() + engine.fire_due(now) + engine.deliver_due(now)
            except CartRecoverError:
                logger.exception("lifecycle step failed; retrying in 1 s")
                stop.wait(1)
                continue
            if not done:
                stop.wait(poll)
    finally:
        engine.close()
    return 0
