"""The event stream's operations in asyncio, run by `NatsEventLog` on its loop (the layout is in its docstring)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from cartrecover.adapters.nats._options import NatsOptions
from cartrecover.adapters.nats._publish import Pipeline, Refused
from cartrecover.domain.events import Event, decode_event, encode_event, redacted
from cartrecover.errors import ConfigError, StoreError

REPLACES = "Cartrecover-Replaces"  # on a marker: the offset of the event it stands for
NEWEST = "Cartrecover-Newest"  # on a marker: the newest event's offset when it was written
_WRONG_LAST_SEQUENCE = 10071  # an Expected-Last-(Subject-)Sequence header did not hold
_SEQUENCE_NOT_FOUND = 10043
# An atomic batch refused for an event logged already: by its subject, twice in the batch, by its message id.
_ALREADY_LOGGED = {_WRONG_LAST_SEQUENCE, 10164, 10201}
_ATOMIC_BATCH = 1000  # the server's limit
_FETCH = 500  # messages per pull when scanning a store
_GETS = 64  # scrubbed copies asked for at once
_MARK_TRIES = 50


def subject_token(message_id: str) -> str:
    """A subject token naming the message id: its URL-safe base64 (exact), or a SHA-256 of a very long id."""
    raw = message_id.encode()
    if len(raw) <= 96:
        return "i" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return "h" + hashlib.sha256(raw).hexdigest()


class EventStream:
    """One stream of events and the stream of their scrubbed copies, over one connection."""

    def __init__(self, nc: Client, options: NatsOptions) -> None:
        self._nc, self._js, self._jsm = nc, nc.jetstream(timeout=options.timeout), nc.jsm(timeout=options.timeout)
        self._name, self._scrubbed, self._options = options.stream, options.scrubbed_stream, options
        self._pipeline = Pipeline(nc)
        self._atomic = False

    async def create(self) -> None:
        """Create both streams if they are missing; refuse a stream that does not keep its messages on disk."""
        version = self._nc.connected_server_version
        atomic = (version.major, version.minor) >= (2, 12)  # atomic batches came in 2.12
        for name, subjects in ((self._name, f"{self._name}.>"), (self._scrubbed, f"{self._scrubbed}.*")):
            try:
                info = await self._jsm.stream_info(name)
            except NotFoundError:
                info = await self._jsm.add_stream(self._config(name, subjects, atomic=atomic))
            if info.config.storage != api.StorageType.FILE:
                raise ConfigError(f"NATS stream {name} keeps its messages in memory: the event log must be on disk")
            if name == self._name:
                self._atomic = bool(info.config.allow_atomic)

    def _config(self, name: str, subjects: str, *, atomic: bool) -> api.StreamConfig:
        return api.StreamConfig(
            name=name,
            subjects=[subjects],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            num_replicas=self._options.replicas,
            max_msgs=-1,
            max_bytes=-1,
            max_age=0,
            max_msgs_per_subject=1 if name == self._scrubbed else -1,  # a scrub run again replaces its copy
            duplicate_window=120,
            deny_purge=True,  # offsets are the log's identity: nothing but an erasure removes a message
            allow_direct=False,  # reads go to the leader, never to a replica that is behind
            allow_atomic=atomic or None,  # None: not sent to a server that would not know it
        )

    # --- appending ----------------------------------------------------------------------------------------------

    async def append(self, events: Sequence[Event]) -> list[bool]:
        """Publish every event to its own subject; a subject that ever held a message refuses it.

        On a stream that takes atomic batches, up to 1,000 events go in one, stored together or not at all; a
        batch refused because one of its events is logged already is sent again one event at a time, each with
        its own answer. Otherwise the events are published pipelined, each answered.
        """
        messages = []
        for event in events:
            token = f"{event.store_id}.{subject_token(event.message_id)}"
            headers = {
                api.Header.MSG_ID.value: token,
                api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: "0",
                api.Header.EXPECTED_STREAM.value: self._name,
            }
            messages.append((f"{self._name}.{token}", encode_event(event), headers))
        if not self._atomic or len(messages) == 1:
            return [_is_new(ack) for ack in await self._pipeline.publish(messages, self._options.timeout)]
        new: list[bool] = []
        for start in range(0, len(messages), _ATOMIC_BATCH):
            chunk = messages[start : start + _ATOMIC_BATCH]
            try:
                await self._pipeline.publish_atomic(chunk, self._options.timeout)
                new += [True] * len(chunk)
            except Refused as exc:
                if exc.err_code not in _ALREADY_LOGGED:
                    raise
                new += [_is_new(ack) for ack in await self._pipeline.publish(chunk, self._options.timeout)]
        return new

    # --- reading ------------------------------------------------------------------------------------------------

    async def last_offset(self) -> int:
        """The newest event's sequence: the last message's, or the one a trailing marker names."""
        return (await self._tail())[1]

    async def _tail(self) -> tuple[int, int]:
        """(last sequence of the stream, newest event's offset)."""
        last = (await self._jsm.stream_info(self._name)).state.last_seq
        if last == 0:
            return 0, 0
        try:
            message = await self._jsm.get_msg(self._name, seq=last)
        except NotFoundError:
            return last, last  # deleted: an erased event (markers are never deleted)
        newest = (message.headers or {}).get(NEWEST)
        return last, int(newest) if newest is not None else last

    async def read_after(self, offset: int, limit: int) -> list[tuple[int, Event]]:
        """Events after `offset` in sequence order; markers skipped, erased events filled from their copies."""
        if limit <= 0 or (await self._jsm.stream_info(self._name)).state.last_seq <= offset:
            return []
        found: list[tuple[int, Event]] = []
        expected = offset + 1
        async with self._cursor(f"{self._name}.>", offset + 1) as cursor:
            while cursor.pending and len(found) < limit:
                for message in await cursor.fetch(limit - len(found)):
                    seq = message.metadata.sequence.stream
                    found += await self._scrubbed_copies(range(expected, seq))
                    expected = seq + 1
                    if REPLACES not in (message.headers or {}):
                        found.append((seq, decode_event(message.data)))
        return found[:limit]

    @asynccontextmanager
    async def _cursor(self, subjects: str, start: int) -> AsyncIterator[_Cursor]:
        """An ephemeral consumer from sequence `start`: deleted after use, or by the server once idle."""
        name = f"read_{secrets.token_hex(8)}"
        config = api.ConsumerConfig(
            name=name,
            filter_subject=subjects,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        pending = (await self._jsm.add_consumer(self._name, config)).num_pending or 0
        sub = await self._js.pull_subscribe_bind(consumer=name, stream=self._name)
        try:
            yield _Cursor(sub, pending, self._options.timeout)
        finally:
            await sub.unsubscribe()
            # No reply asked for: the read does not wait on the delete, and a lost one expires after 30 s.
            await self._nc.publish(f"$JS.API.CONSUMER.DELETE.{self._name}.{name}", b"")

    async def _scrubbed_copies(self, offsets: range) -> list[tuple[int, Event]]:
        """The scrubbed copies of the erased events at these offsets (a gap without one was not ours to fill)."""
        copies: list[tuple[int, Event]] = []
        for start in range(offsets.start, offsets.stop, _GETS):
            chunk = range(start, min(start + _GETS, offsets.stop))
            bodies = await asyncio.gather(*(self._scrubbed_copy(seq) for seq in chunk))
            copies += [(seq, decode_event(body)) for seq, body in zip(chunk, bodies, strict=True) if body is not None]
        return copies

    async def _scrubbed_copy(self, seq: int) -> bytes | None:
        try:
            message = await self._jsm.get_msg(self._scrubbed, subject=f"{self._scrubbed}.{seq}")
        except NotFoundError:
            return None
        return message.data

    # --- erasure ------------------------------------------------------------------------------------------------

    async def scrub(self, store_id: int, matches: Callable[[Event], bool], *, count_erased: bool) -> int:
        """Erase the personal data of the store's events that match; returns how many matched.

        An event already erased has no personal data: it counts only when `count_erased` (every event matches).
        """
        originals, marked = await self._scan(store_id)
        tail: tuple[int, int] | None = None
        count = len(marked - {seq for seq, _, _ in originals}) if count_erased else 0
        for seq, subject, event in originals:
            if not matches(event):
                continue
            count += 1  # still stored, so still to scrub (a marked one is from a scrub that was interrupted)
            clean = redacted(event)
            if clean == event:
                continue  # nothing personal in it
            if seq not in marked:
                await self._js.publish(f"{self._scrubbed}.{seq}", encode_event(clean), stream=self._scrubbed)
                tail = await self._mark(subject, seq, tail or await self._tail())
            await self._erase(seq)
        return count

    async def _scan(self, store_id: int) -> tuple[list[tuple[int, str, Event]], set[int]]:
        """The store's events still stored (sequence, subject, event), and the offsets its markers stand for."""
        originals: list[tuple[int, str, Event]] = []
        marked: set[int] = set()
        async with self._cursor(f"{self._name}.{store_id}.>", 1) as cursor:
            while cursor.pending:
                for message in await cursor.fetch(_FETCH):
                    if (replaces := (message.headers or {}).get(REPLACES)) is not None:
                        marked.add(int(replaces))
                    else:
                        seq = message.metadata.sequence.stream
                        originals.append((seq, message.subject, decode_event(message.data)))
        return originals, marked

    async def _mark(self, subject: str, seq: int, tail: tuple[int, int]) -> tuple[int, int]:
        """Publish the marker that keeps `subject` refusing its message id once event `seq` is gone.

        The marker is written only if the stream's last sequence is still the one `tail` read, so the newest
        event it names is exact. Returns the new tail.
        """
        for _ in range(_MARK_TRIES):
            last, newest = tail
            headers = {
                REPLACES: str(seq),
                NEWEST: str(newest),
                api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(seq),
                api.Header.EXPECTED_LAST_SEQUENCE: str(last),
            }
            try:
                ack = await self._js.publish(subject, b"", stream=self._name, headers=headers)
                return ack.seq, newest
            except APIError as exc:
                if exc.err_code != _WRONG_LAST_SEQUENCE:
                    raise
            if await self._marked(subject, seq):
                return await self._tail()  # an earlier, interrupted scrub wrote it
            tail = await self._tail()  # events were appended meanwhile
        raise StoreError(f"could not mark event {seq} as erased: the log kept moving")

    async def _marked(self, subject: str, seq: int) -> bool:
        last = await self._jsm.get_msg(self._name, subject=subject)
        return (last.headers or {}).get(REPLACES) == str(seq)

    async def _erase(self, seq: int) -> None:
        """Delete message `seq`, overwriting it on disk (`no_erase: false`); already gone is fine."""
        request = json.dumps({"seq": seq, "no_erase": False}).encode()
        reply = await self._nc.request(f"$JS.API.STREAM.MSG.DELETE.{self._name}", request, self._options.timeout)
        error = json.loads(reply.data).get("error")
        if error and error.get("err_code") != _SEQUENCE_NOT_FOUND:
            raise StoreError(f"NATS could not erase event {seq}: {error.get('description')}")


class _Cursor:
    """The messages of one consumer, in sequence order, and how many it has left to deliver."""

    def __init__(self, sub: JetStreamContext.PullSubscription, pending: int, timeout: float) -> None:
        self._sub, self.pending, self._timeout = sub, pending, timeout

    async def fetch(self, wanted: int) -> list[Msg]:
        """Up to `wanted` of the next messages (a few more at times), none once all are delivered."""
        if not self.pending:
            return []
        # At least two: nats-py asks for a single message with a request that waits for one rather than answers.
        messages = await self._sub.fetch(max(min(wanted, self.pending), 2), timeout=self._timeout)
        self.pending = messages[-1].metadata.num_pending if messages else 0
        return messages


def _is_new(ack: dict[str, Any] | BaseException) -> bool:
    if isinstance(ack, Refused) and ack.err_code == _WRONG_LAST_SEQUENCE:
        return False  # the subject has held this message id, however long ago
    if isinstance(ack, BaseException):
        raise ack
    return not ack.get("duplicate")  # a retry within the duplicate window
