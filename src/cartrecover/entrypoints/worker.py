"""`cartrecover worker`: the lifecycle in a process of its own — consume the event log, fire due timers.

Apart from the API process, the lifecycle has a core and a GIL of its own, and never holds up an
acknowledgement: ingest writes only the event log, the worker only the state store. Any number of workers may
share a PostgreSQL state store: each applies the events of the partitions it holds a lease on (see
`cartrecover.partitions`), and all of them fire timers and deliver.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from cartrecover.bootstrap import build_engine
from cartrecover.engine import Engine
from cartrecover.errors import CartRecoverError
from cartrecover.partitions import Membership
from cartrecover.settings import Settings

logger = logging.getLogger("cartrecover.worker")


def run_worker(settings: Settings, *, parent_pid: int | None = None, poll: float = 0.05) -> int:
    """Apply logged events and due timers until stopped (SIGTERM, SIGINT, or the parent process gone)."""
    if settings.worker_nice:
        # Acknowledging events is what clients wait for (Shopify gives up after 5 s); the lifecycle may fall a
        # moment behind under a burst, since every event is already durable, and it has the core when ingest idles.
        os.nice(settings.worker_nice)
    engine = build_engine(settings)
    membership = _membership(settings, engine)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                logger.warning("the serving process is gone; stopping")
                break
            try:
                parts = _heartbeat(membership)
                now = engine.clock.now()
                done = engine.process_pending(parts=parts) + engine.fire_due(now) + engine.deliver_due(now)
            except CartRecoverError:
                logger.exception("lifecycle step failed; retrying in 1 s")
                stop.wait(1)
                continue
            if not done:
                stop.wait(poll)
    finally:
        _leave(membership)
        engine.close()
    return 0


def _membership(settings: Settings, engine: Engine) -> Membership | None:
    """The worker's share of the partitions on a shared state store; None on SQLite, where it applies them all.

    A SQLite file is one machine's, and its write lock lets one transaction through at a time: a second worker
    could only take turns, so there are no leases to wait for, and a restarted worker resumes at once.
    """
    if settings.resolved_database_url.startswith("sqlite:"):
        return None
    owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
    return Membership(engine.database, engine.partitions, settings.worker_lease, owner)


def _heartbeat(membership: Membership | None) -> tuple[int, ...] | None:
    """The partitions to apply now (None: all of them)."""
    if membership is None:
        return None
    membership.heartbeat_if_due()
    return membership.held


def _leave(membership: Membership | None) -> None:
    """Hand the partitions back on a clean stop; if the store cannot be reached, their leases expire instead."""
    if membership is None:
        return
    try:
        membership.leave()
    except CartRecoverError:
        logger.warning("could not release the lifecycle's partitions: they move when their leases expire")
