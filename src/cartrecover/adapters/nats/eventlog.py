"""The event log on NATS JetStream: one file-storage stream, whose sequence numbers are the offsets.

Layout. The stream named in the URL (`?stream=cartrecover`) takes the subjects `<stream>.>`; each event is
published to a subject of its own, `<stream>.<store id>.<message id token>` (the message id in URL-safe base64, so
exact; a SHA-256 stands in for ids over 96 bytes). A second stream, `<stream>_scrubbed`, keeps the scrubbed copies
of erased events under `<stream>_scrubbed.<offset>`.

New only the first time, forever. Each event is published with `Nats-Expected-Last-Subject-Sequence: 0`: the
server stores it only if its subject has never held a message, checked and written in one step. `Nats-Msg-Id`
alone would not do: the server remembers ids for its duplicate window (2 minutes here), and a client that
retries an event a day later would log it twice. Within the window it answers a retry as a duplicate too.
`append` returns once the stream has acknowledged every event. On a stream that takes atomic batches (created on
nats-server 2.12+), up to 1,000 events go in one batch, stored together or not at all; a batch refused because an
event in it is logged already is sent again event by event. Otherwise events are published pipelined, each
acknowledged on its own, and a failure (StoreError) may leave those acknowledged before it logged: a retry of the
call logs the rest and reports those as new, the others as already logged.

Durability. An acknowledgement means the stream's replicas hold the message; whether it is on disk is up to the
server's `sync_interval`, 2 minutes by default (Jepsen, 2025: acknowledged writes lost on power loss). No stream
setting asks for more (2.12's `persist_mode` can only ask for less and is left at its default), so production
servers run with `sync_interval: always` (2.10 and later), and streams have 3 replicas (`?replicas=3`, see
docs/production.md). At start-up the adapter warns if the server is older than 2.10 or, given its monitoring
address (`?monitor=http://host:8222`), if it does not fsync every write.

Erasure. JetStream cannot edit a stored message, and an erased event must keep its offset (consumers' checkpoints
point into the log) and its subject (which refuses the message id). Scrubbing event `r` on subject `s`:
1. its copy without personal data is published to `<stream>_scrubbed.<r>`;
2. a marker is published on `s` (empty, header `Cartrecover-Replaces: r`), so `s` keeps refusing the message id;
3. message `r` is deleted with `no_erase: false`, so the server overwrites it on disk.
Readers skip markers and fill the gap at `r` from its copy. Each step is idempotent and a scrub resumes where it
stopped: the lifecycle scrubs while applying the erasure event, so a failure leaves its checkpoint before that
event and the erasure runs again. Until step 3 the original stays readable. Each marker also names the newest
event's offset (`Cartrecover-Newest`), written only if no message came after the one it read (an
`Nats-Expected-Last-Sequence` header): `last_offset` reads it when markers end the stream. On a replicated
stream, the replicas' Raft logs keep the original until their next snapshot.

nats-py is asyncio only: the port's synchronous methods run its coroutines on a private loop thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client

from cartrecover.adapters.nats._loop import LoopThread
from cartrecover.adapters.nats._options import NatsOptions, check_fsync
from cartrecover.adapters.nats._stream import EventStream
from cartrecover.domain.events import Event
from cartrecover.errors import StoreError

logger = logging.getLogger(__name__)


class NatsEventLog:
    """The event log in one JetStream stream: offsets are stream sequences, duplicates refused per subject."""

    def __init__(self, options: NatsOptions, *, durability: str = "full") -> None:
        self.options = options
        self._closing = False
        self._loop = LoopThread(f"nats-{options.stream}")
        try:
            self._nc = self._connected()
            version = self._nc.connected_server_version
            if durability == "full":
                check_fsync((version.major, version.minor), options)
            self._stream = EventStream(self._nc, options)
            self._loop.run(self._stream.create())
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, durability: str = "full") -> NatsEventLog:
        """`nats://host:4222/?stream=cartrecover&replicas=3` (parameters: `NatsOptions`)."""
        return cls(NatsOptions.from_url(url), durability=durability)

    def _connected(self) -> Client:
        wait = self.options.timeout * 3
        try:
            return self._loop.run(self._connect(), timeout=wait)
        except StoreError as exc:
            hosts = ", ".join(urlsplit(server).netloc.rpartition("@")[2] for server in self.options.servers)
            raise StoreError(f"cannot reach a NATS server at {hosts} within {wait} s") from exc

    async def _connect(self) -> Client:
        return await nats.connect(
            list(self.options.servers),
            connect_timeout=self.options.timeout,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,  # a restarted server is waited for; each request has its timeout
            allow_reconnect=True,
            name="cartrecover",
            error_cb=_log_error,
            disconnected_cb=self._log_disconnected,
            reconnected_cb=_log_reconnected,
        )

    def append(self, events: Sequence[Event]) -> list[bool]:
        """Publish the events; report which were new (the others' subjects held them already)."""
        if not events:
            return []
        return self._loop.run(self._stream.append(events))

    def read_after(self, offset: int, limit: int) -> list[tuple[int, Event]]:
        """Events after `offset`, oldest first, at most `limit`."""
        return self._loop.run(self._stream.read_after(offset, limit))

    def last_offset(self) -> int:
        """The newest event's sequence number, 0 when the log is empty."""
        return self._loop.run(self._stream.last_offset())

    def scrub(self, store_id: int, identities: set[tuple[str, str]]) -> int:
        """Erase the personal data of the store's events that name these identities."""
        if not identities:
            return 0
        named = identities.intersection
        return self._loop.run(
            self._stream.scrub(store_id, lambda event: bool(named(event.identities)), count_erased=False)
        )

    def erase_store(self, store_id: int) -> int:
        """Erase the personal data of every event of the store; returns how many events it has."""
        return self._loop.run(self._stream.scrub(store_id, lambda event: True, count_erased=True))

    def close(self) -> None:
        """Drain the connection and stop the loop thread."""
        try:
            self._loop.run(self._close(), timeout=self.options.timeout)
        finally:
            self._loop.stop()

    async def _log_disconnected(self) -> None:
        if not self._closing:
            logger.warning("NATS: disconnected; reconnecting")

    async def _close(self) -> None:
        self._closing = True
        if hasattr(self, "_nc") and not self._nc.is_closed:
            await asyncio.wait_for(self._nc.close(), self.options.timeout)


async def _log_error(exc: Exception) -> None:
    # One line per error: the client's default logs a traceback for every refused reconnection attempt.
    logger.warning("NATS: %s: %s", type(exc).__name__, exc)


async def _log_reconnected() -> None:
    logger.warning("NATS: reconnected")
