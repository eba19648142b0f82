"""One writer thread per process: every write runs on it, and concurrent appends share one commit.

SQLite has one writer at a time anyway; funnelling writes through one thread turns contention into batching.
Appends that queue up while a commit is in flight are committed together (group commit): one fsync
acknowledges them all, which is what lets durable single-event requests reach thousands per second.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cartrecover.domain.events import Event
from cartrecover.engine import Engine

T = TypeVar("T")
_STOP = object()
CALL_DELAY = 0.25
"""Seconds a background job (`call`) may be held back while appends keep arriving."""


class Writer:
    """Runs write jobs serially on its own thread; `await writer.append(events)` returns once they are durable."""

    def __init__(self, engine: Engine, on_appended: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._on_appended = on_appended
        self._thread = threading.Thread(target=self._run, name="cartrecover-writer", daemon=True)
        self._thread.start()

    async def append(self, events: Sequence[Event]) -> list[bool]:
        """Append durably; resolves with which events were new."""
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._queue.put(("append", events, future))
        return await future

    async def call(self, job: Callable[[], T]) -> T:
        """Run `job` on the writer thread."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put(("call", job, future, time.monotonic()))
        return await future

    def close(self) -> None:
        """Finish queued jobs and stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        appends: list[Any] = []
        calls: collections.deque[Any] = collections.deque()
        stopping = False
        while True:
            if not appends and not calls:
                if stopping:
                    return
                stopping = self._sort(self._queue.get(), appends, calls)
            while True:  # everything queued by now joins this round
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                stopping = self._sort(item, appends, calls) or stopping
            # Appends go first (a request is waiting on each); background jobs run when none are waiting,
            # or once they have waited CALL_DELAY, so they cannot be starved by a steady stream of appends.
            if calls and (not appends or time.monotonic() - calls[0][3] >= CALL_DELAY):
                _, job, future, _ = calls.popleft()
                _settle(future, job)
            elif appends:
                self._commit(appends)
                appends = []

    @staticmethod
    def _sort(item: Any, appends: list[Any], calls: collections.deque[Any]) -> bool:
        if item is _STOP:
            return True
        (appends if item[0] == "append" else calls).append(item)
        return False

    def _commit(self, appends: list[Any]) -> None:
        events = [e for _, batch, _ in appends for e in batch]
        try:
            results = self._engine.append(events)
        except BaseException as exc:
            if len(appends) == 1:
                _resolve(appends[0][2], exc=exc)
                return
            # One request's events may be what failed the group: give each request its own commit, so only
            # the one that really fails hears about it (a shared 4xx would make clients drop good events).
            for append in appends:
                self._commit([append])
            return
        start = 0
        for _, batch, future in appends:
            _resolve(future, result=results[start : start + len(batch)])
            start += len(batch)
        if self._on_appended is not None:
            self._on_appended()


def _settle(future: asyncio.Future[Any], job: Callable[[], Any]) -> None:
    try:
        result = job()
    except BaseException as exc:
        _resolve(future, exc=exc)
    else:
        _resolve(future, result=result)


def _resolve(future: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    def done() -> None:
        if future.cancelled():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    future.get_loop().call_soon_threadsafe(done)
