"""PostgreSQL's claims: workers (each with its own connections, as processes on several machines) take due
steps and timers with `FOR UPDATE SKIP LOCKED`, so none waits for another and none takes what another holds."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta

import pytest

from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.domain.journey import Channel, Step
from cartrecover.ports.timers import Timer
from tests.conftest import START
from tests.factories import random_id
from tests.services import postgres_schema

NOW = START + timedelta(hours=1)


@pytest.fixture
def url() -> Iterator[str]:
    """A migrated schema of its own."""
    with postgres_schema() as where:
        PostgresDatabase.migrate(where)
        yield where


def due_step(minutes: int) -> Step:
    return Step(
        step_id=random_id("step"),
        store_id=1,
        cart_id=random_id("c"),
        shopper_id=random_id("s"),
        number=1,
        name="reminder",
        template="reminder",
        channels=(Channel.EMAIL,),
        due_at=START + timedelta(minutes=minutes),
    )


def test_a_worker_claims_the_next_steps_while_another_holds_the_first_without_waiting(url: str) -> None:
    steps = [due_step(m) for m in range(6)]
    with closing(PostgresDatabase(url)) as first, closing(PostgresDatabase(url)) as second:
        with first.write() as uow:
            uow.outbox.add(steps)

        def claim_all() -> list[str]:
            with second.write() as uow:
                return [s.step_id for s in uow.outbox.due(NOW, 10)]

        with ThreadPoolExecutor(1) as pool, first.write() as uow:
            held = [s.step_id for s in uow.outbox.due(NOW, 2)]
            # Still inside the first worker's transaction: the second must answer now, not after it ends.
            taken = pool.submit(claim_all).result(timeout=10)

    assert held == [s.step_id for s in steps[:2]]
    assert taken == [s.step_id for s in steps[2:]]


def test_a_worker_fires_the_next_timers_while_another_fires_the_first_without_waiting(url: str) -> None:
    timers = [Timer(1, random_id("c"), "abandon", START + timedelta(minutes=m)) for m in range(5)]
    with closing(PostgresDatabase(url)) as first, closing(PostgresDatabase(url)) as second:
        with first.write() as uow:
            for timer in timers:
                uow.timers.set(timer)

        def pop_all() -> list[Timer]:
            with second.write() as uow:
                return uow.timers.pop_due(NOW, 10)

        with ThreadPoolExecutor(1) as pool, first.write() as uow:
            held = uow.timers.pop_due(NOW, 3)
            taken = pool.submit(pop_all).result(timeout=10)

    assert (held, taken) == (timers[:3], timers[3:])


def test_steps_held_by_a_worker_that_rolled_back_are_claimed_by_the_next(url: str) -> None:
    steps = [due_step(m) for m in range(3)]
    with closing(PostgresDatabase(url)) as db:
        with db.write() as uow:
            uow.outbox.add(steps)
        with pytest.raises(RuntimeError), db.write() as uow:
            assert len(uow.outbox.due(NOW, 10)) == 3
            raise RuntimeError("the worker died mid-claim")
        with db.write() as uow:
            assert uow.outbox.due(NOW, 10) == steps
