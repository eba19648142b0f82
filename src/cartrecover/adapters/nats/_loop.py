"""A private asyncio loop on its own thread: how the synchronous ports call nats-py, which is asyncio only."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats.errors

from cartrecover.errors import StoreError

T = TypeVar("T")


class LoopThread:
    """Runs coroutines on one event loop that a daemon thread keeps turning; nats errors become StoreError."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """The coroutine's result, waited for from the calling thread; `timeout` bounds the whole call."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise StoreError(f"NATS: no answer within {timeout} s") from exc
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise StoreError(f"NATS: {type(exc).__name__}: {exc}") from exc

    def stop(self) -> None:
        """Cancel what still runs on the loop (the client's own tasks), stop it and wait for its thread."""
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _cancel_the_rest() -> None:
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
