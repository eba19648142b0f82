"""Pipelined JetStream publishes: all of a batch sent in order, then every acknowledgement awaited.

nats-py's `publish_async` would do, but it never settles a publish the stream refused (2.16 raises inside its
reply handler instead of failing the future), and a refusal is how a duplicate event is told apart here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from cartrecover.errors import StoreError


class Refused(StoreError):
    """The stream answered a publish with an error (`err_code` is JetStream's)."""

    def __init__(self, err_code: int, description: str) -> None:
        super().__init__(f"NATS refused the publish: {description} ({err_code})")
        self.err_code = err_code


class Pipeline:
    """Publishes on one connection whose acknowledgements come back to one inbox, matched by reply subject."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._numbers = itertools.count()
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._sub: Subscription | None = None

    async def publish(self, messages: list[tuple[str, bytes, dict[str, str]]], timeout: float) -> list[Any]:
        """Send (subject, payload, headers) in order; each result is the ack's JSON or a Refused exception."""
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._settle)
        replies = [f"{self._inbox}.{next(self._numbers)}" for _ in messages]
        futures = [self._waiting.setdefault(reply, asyncio.get_running_loop().create_future()) for reply in replies]
        try:
            for (subject, payload, headers), reply in zip(messages, replies, strict=True):
                await self._nc.publish(subject, payload, reply=reply, headers=headers)
            return await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout)
        finally:
            for reply in replies:
                self._waiting.pop(reply).cancel()  # a settled future ignores it

    async def publish_atomic(self, messages: list[tuple[str, bytes, dict[str, str]]], timeout: float) -> dict[str, Any]:
        """Send the messages as one atomic batch (nats-server 2.12+): all are stored, or none (Refused).

        At most 1,000 messages; only the commit, the last, is answered.
        """
        batch = f"{secrets.token_hex(12)}"
        *first, (subject, payload, headers) = messages
        for number, (each_subject, each_payload, each_headers) in enumerate(first, start=1):
            numbered = {**each_headers, "Nats-Batch-Id": batch, "Nats-Batch-Sequence": str(number)}
            await self._nc.publish(each_subject, each_payload, headers=numbered)
        commit = {
            **headers,
            "Nats-Batch-Id": batch,
            "Nats-Batch-Sequence": str(len(messages)),
            "Nats-Batch-Commit": "1",
        }
        (ack,) = await self.publish([(subject, payload, commit)], timeout)
        if isinstance(ack, BaseException):
            raise ack
        return dict(ack)

    async def _settle(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject)
        if future is None or future.done():
            return
        if not msg.data:  # a status message: 503 when no stream listens on the subject
            status = (msg.headers or {}).get("Status", "?")
            future.set_exception(StoreError(f"NATS: no stream answered the publish (status {status})"))
            return
        ack = json.loads(msg.data)
        if error := ack.get("error"):
            future.set_exception(Refused(int(error.get("err_code", 0)), str(error.get("description"))))
        else:
            future.set_result(ack)
