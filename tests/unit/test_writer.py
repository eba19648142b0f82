"""The writer thread: concurrent appends share a commit, and one that fails fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest

from cartrecover.domain.events import Event, EventKind
from cartrecover.engine import Engine
from cartrecover.errors import StoreError
from cartrecover.writer import Writer
from tests.conftest import START, Shop


def page(shop: Shop, message_id: str) -> Event:
    return Event(
        kind=EventKind.BROWSED,
        store_id=shop.store_id,
        message_id=message_id,
        source="test",
        name="page",
        at=START,
        received_at=START + timedelta(seconds=1),
        anonymous_id="a1",
    )


async def appended_together(engine: Engine, batches: list[list[Event]]) -> tuple[list[object], list[int]]:
    """Queue the batches while the writer is busy, so they are committed as one group; return their outcomes."""
    writer = Writer(engine)
    release, busy = threading.Event(), threading.Event()
    commits: list[int] = []
    real_append = engine.log.append

    def counting_append(events: Sequence[Event]) -> list[bool]:
        commits.append(len(events))
        return real_append(events)

    engine.log.append = counting_append  # type: ignore[method-assign]
    try:
        blocker = asyncio.ensure_future(writer.call(lambda: busy.set() or release.wait(10)))
        await asyncio.to_thread(busy.wait, 10)
        pending = [asyncio.ensure_future(writer.append(batch)) for batch in batches]
        await asyncio.sleep(0.05)  # let every append reach the writer's queue
        release.set()
        await blocker
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
    finally:
        writer.close()
    return outcomes, commits


def test_appends_queued_together_are_committed_in_one_transaction(engine: Engine, shop: Shop) -> None:
    outcomes, commits = asyncio.run(appended_together(engine, [[page(shop, f"m{n}")] for n in range(5)]))

    assert outcomes == [[True]] * 5
    assert commits == [5]
    assert engine.log.last_offset() == 5


def test_an_append_that_fails_fails_alone_and_the_others_in_its_group_are_stored(
    engine: Engine, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = engine.log.append

    def refuse_poison(events: Sequence[Event]) -> list[bool]:
        if any(e.message_id == "poison" for e in events):
            raise StoreError("this row cannot be written")
        return real_append(events)

    monkeypatch.setattr(engine.log, "append", refuse_poison)
    batches = [[page(shop, "m1")], [page(shop, "poison"), page(shop, "m2")], [page(shop, "m3")]]

    outcomes, commits = asyncio.run(appended_together(engine, batches))

    assert outcomes[0] == [True] and outcomes[2] == [True]
    assert isinstance(outcomes[1], StoreError)
    assert commits == [4, 1, 2, 1]  # the group, then each request on its own
    stored = [e.message_id for _, e in engine.log.read_after(0, 10)]
    assert stored == ["m1", "m3"]
