"""Reading the training examples from a real state store: `learn.train.examples` against the size of the log.

`cartrecover train` first reads every logged decision whose recovery window has closed, with its cart and, for
an ordered cart, the order's coupons and the cart's steps. This fills a state store with `N` abandoned carts, one
decision each, spread over 90 days (the newest week's windows are still open, so those are not read), through
the state store's own ports in transactions of 10,000 carts, so the rows are those the engine writes:

- carts with 1–4 lines and their join keys; 15 % holdout (no contact), the rest treated, 70 % of those reached
  with 1–3 sent steps, 40 % of the reached carts with a discount code on their last step;
- 12 % of the carts ordered inside the window (recovered, with an order), 1 % after it (expired, the order kept
  unjoined); half the orders of carts with a code used it (in lower case, as shoppers type it), 5 % used
  another code; every other cart expired (or is still recovering, inside the open week).

Then each read runs in a fresh process (its peak RSS is the read's own) on the filled store: `examples`, the
read as it is (a query per page of 1,000 decisions' carts); `one_by_one`, the same with a query per cart, as it
was up to commit 714f07c; and, on SQLite, `scan`: one by one with the query `outbox.for_cart` had before commit
4d98ee1, which SQLite's planner ran on the primary key's first column (every step of the store, per ordered cart
with a code). All must give the same examples. Last, one cart's steps by `outbox.for_cart` (as the engine reads
them when an order ends a journey), averaged over 100 ordered carts.

    .venv/bin/python bench/train_read.py --sizes 10000 100000 1000000 [--ways scan one_by_one examples] \\
        [--postgres URL --postgres-sizes 100000]

SQLite files are kept in `--data` (default /tmp/cartrecover-train-read) and reused by later runs of one size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from cartrecover.adapters.sqlite.database import SqliteUnitOfWork
from cartrecover.decide import features
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.cart import AbandonmentRules, Cart, CartStatus
from cartrecover.domain.events import LineItem
from cartrecover.domain.journey import Channel, Incentive, Step, StepStatus, step_id
from cartrecover.learn.train import examples
from cartrecover.ports.carts import Carts
from cartrecover.ports.decisions import DecisionRecord
from cartrecover.ports.orders import Order
from cartrecover.ports.outbox import Outbox
from cartrecover.ports.unit_of_work import Database, UnitOfWork

START = datetime(2030, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=90)
WINDOW = AbandonmentRules().recovery_window
STORE = 1
CHUNK = 10_000


def until_of(count: int) -> datetime:
    """The training cut: just after the newest decision."""
    return START + SPAN + timedelta(seconds=1)


# `SqliteOutbox.for_cart` before commit 4d98ee1
SCAN = "SELECT body FROM outbox WHERE store_id=? AND cart_id=? ORDER BY due_us, step_id"
_step_decoder = msgspec.msgpack.Decoder(Step)


class ScanningOutbox:
    """A SQLite unit of work's outbox whose `for_cart` runs the query of before commit 4d98ee1."""

    def __init__(self, outbox: Outbox, conn: sqlite3.Connection) -> None:
        self._outbox, self._conn = outbox, conn

    def for_cart(self, store_id: int, cart_id: str) -> list[Step]:
        return [_step_decoder.decode(body) for (body,) in self._conn.execute(SCAN, (store_id, cart_id))]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._outbox, name)


def scanning(uow: UnitOfWork) -> UnitOfWork:
    """The unit of work of before commit 4d98ee1: the old outbox query (SQLite only), carts one by one."""
    assert isinstance(uow, SqliteUnitOfWork)
    uow.outbox = ScanningOutbox(uow.outbox, uow.conn)  # type: ignore[assignment]
    return one_by_one(uow)


class OneByOneCarts:
    """Carts whose `get_many` reads each cart by its own query, as `examples` did before it read pages."""

    def __init__(self, carts: Carts) -> None:
        self._carts = carts

    def get_many(self, store_id: int, cart_ids: Collection[str]) -> dict[str, Cart]:
        found = ((cart_id, self._carts.get(store_id, cart_id)) for cart_id in cart_ids)
        return {cart_id: cart for cart_id, cart in found if cart is not None}


def one_by_one(uow: UnitOfWork) -> UnitOfWork:
    """The unit of work of before the paged read: a query per cart."""
    uow.carts = OneByOneCarts(uow.carts)  # type: ignore[assignment]
    return uow


WAYS = {"scan": scanning, "one_by_one": one_by_one, "examples": lambda uow: uow}


def _rows(
    first: int, count: int, total: int, rng: random.Random
) -> Iterator[tuple[Cart, DecisionRecord, list[Step], Order | None]]:
    """Carts `first` … `first + count - 1` of a log of `total`, with their decision, steps and order."""
    plans = DecisionConfig(channels=(Channel.EMAIL, Channel.SMS)).plans()
    spacing = SPAN / total
    for i in range(first, first + count):
        at = START + spacing * i
        cart_id, shopper_id = f"c{i:07d}", f"s{i:07d}"
        items = tuple(
            LineItem(f"p{rng.randrange(500)}", rng.randint(1, 2), rng.randrange(500, 9000), name="A product")
            for _ in range(rng.randint(1, 4))
        )
        holdout = rng.random() < 0.15
        plan = plans[0] if holdout else rng.choice(plans[1:])
        reached = not holdout and rng.random() < 0.7
        code = f"CR-{i:07d}" if reached and rng.random() < 0.4 else None
        steps = _sent_steps(cart_id, shopper_id, at, rng.randint(1, 3), code) if reached else []
        draw = rng.random()
        open_window = at + WINDOW > until_of(total)
        ordered_at = at + timedelta(hours=rng.uniform(0.5, 160)) if draw < 0.12 else None
        late_at = at + WINDOW + timedelta(hours=rng.uniform(1, 48)) if 0.12 <= draw < 0.13 else None
        cart = Cart(
            STORE, cart_id, shopper_id, at - timedelta(minutes=40), at - timedelta(minutes=30),
            CartStatus.RECOVERING if steps else CartStatus.ABANDONED, items, currency="EUR",
            checkout_started=rng.random() < 0.3, has_contact=True, abandoned_at=at,
            refs=(f"checkout:k{i}", f"token:t{i}"), group="holdout" if holdout else "treated", page_views=3,
        )  # fmt: skip
        order = None
        if ordered_at is not None or late_at is not None:
            coupons = (code.lower(),) if code and rng.random() < 0.5 else ("WELCOME5",) if rng.random() < 0.05 else ()
            placed = ordered_at or late_at
            assert placed is not None
            order = Order(
                STORE, f"o{i:07d}", shopper_id, placed, cart.value, "EUR", (f"cart:{cart_id}", f"order:o{i:07d}"),
                cart_id if ordered_at else None, coupons=coupons, discount=cart.value // 10 if coupons else None,
            )  # fmt: skip
        if ordered_at is not None and (not open_window or ordered_at <= until_of(total)):
            cart.status, cart.closed_at, cart.order_id, cart.order_value = (
                CartStatus.RECOVERED, ordered_at, order.order_id if order else None, cart.value
            )  # fmt: skip
        elif not open_window:
            cart.status, cart.closed_at = CartStatus.EXPIRED, at + WINDOW
        record = DecisionRecord(
            STORE, cart_id, shopper_id, at, cart.group or "treated", "rules-v1", plan.name, plan.describe(),
            [rng.random() * 100 for _ in features.NAMES], features.VERSION, None if holdout else 0.5,
            incentive=1.5 if code else 0.0, scores={"chosen": 0.4, "runner_up": 0.3},
        )  # fmt: skip
        yield cart, record, steps, order


def _sent_steps(cart_id: str, shopper_id: str, at: datetime, count: int, code: str | None) -> list[Step]:
    """`count` sent reminders an hour apart, the last with the code (and its incentive), if there is one."""
    steps = []
    for n in range(1, count + 1):
        last = n == count
        steps.append(Step(
            step_id(cart_id, at, n), STORE, cart_id, shopper_id, n, f"step {n}", "reminder", (Channel.EMAIL,),
            at + timedelta(hours=n), Incentive(10) if code and last else None, StepStatus.SENT, Channel.EMAIL,
            attempts=1, coupon=code if last else None, sent_at=at + timedelta(hours=n), provider_id=f"m-{cart_id}-{n}",
        ))  # fmt: skip
    return steps


def fill(database: Database, total: int) -> float:
    """Write a log of `total` decisions; returns the seconds it took."""
    rng = random.Random(total)
    began = time.perf_counter()
    for first in range(0, total, CHUNK):
        with database.write() as uow:
            for cart, record, steps, order in _rows(first, min(CHUNK, total - first), total, rng):
                uow.carts.save(cart)
                uow.decisions.add(record)
                if steps:
                    uow.outbox.add(steps)
                if order is not None:
                    uow.orders.save(order)
    return time.perf_counter() - began


@contextmanager
def opened(url: str) -> Iterator[Database]:
    """The state store at `url`: a SQLite file, or a PostgreSQL schema."""
    from cartrecover.adapters.postgres import PostgresDatabase
    from cartrecover.adapters.sqlite import SqliteDatabase

    sqlite = url.startswith("sqlite:")
    with closing(SqliteDatabase.from_url(url) if sqlite else PostgresDatabase.from_url(url)) as database:
        yield database


def read(url: str, how: str, total: int) -> None:
    """One read in this process; prints a JSON line with its figures."""
    with opened(url) as database:
        began = time.perf_counter()
        with database.read() as uow:
            found = examples(WAYS[how](uow), STORE, until_of(total), WINDOW)
        took = time.perf_counter() - began
        with database.read() as uow:
            carts = [e.record.cart_id for e in found if e.ordered][:100]
            began = time.perf_counter()
            outbox = WAYS[how](uow).outbox
            for cart_id in carts:
                outbox.for_cart(STORE, cart_id)
            per_cart = (time.perf_counter() - began) / max(len(carts), 1)
    digest = hash(tuple((e.record.cart_id, e.record.at, e.ordered, e.value, e.discounted) for e in found))
    print(
        json.dumps(
            {
                "seconds": took,
                "for_cart_ms": per_cart * 1000,
                "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                "examples": len(found),
                "ordered": sum(e.ordered for e in found),
                "discounted": sum(e.discounted for e in found),
                "digest": digest,
            }
        )
    )


def measure(url: str, total: int, ways: list[str]) -> None:
    """Each read in a fresh process, and a line of figures per read."""
    seen = {}
    for how in ways:
        out = subprocess.run(
            [sys.executable, __file__, "--read", url, how, str(total)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        ).stdout
        got = json.loads(out.strip().splitlines()[-1])
        seen[how] = got["digest"]
        print(
            f"{url.split(':', maxsplit=1)[0]:>10}  {total:>10,}  {how:>10}  {got['seconds']:>9.1f}  {got['rss_gib']:>12.2f}  "
            f"{got['examples']:>9,}  {got['ordered']:>8,}  {got['discounted']:>10,}  {got['for_cart_ms']:>11.2f}",
            flush=True,
        )
    if len(set(seen.values())) > 1:
        raise SystemExit(f"the reads disagree: {seen}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--ways", nargs="*", default=list(WAYS), choices=list(WAYS))
    parser.add_argument("--data", type=Path, default=Path("/tmp/cartrecover-train-read"))
    parser.add_argument("--postgres", help="a PostgreSQL URL: a schema of its own is filled, then dropped")
    parser.add_argument("--postgres-sizes", nargs="*", type=int, default=[100_000])
    parser.add_argument("--read", nargs=3, metavar=("URL", "HOW", "TOTAL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read(args.read[0], args.read[1], int(args.read[2]))
        return
    print(f"{'store':>10}  {'decisions':>10}  {'read':>10}  {'seconds':>9}  {'peak RSS GiB':>12}  "
          f"{'examples':>9}  {'ordered':>8}  {'discounted':>10}  {'for_cart ms':>11}")  # fmt: skip
    args.data.mkdir(parents=True, exist_ok=True)
    for total in args.sizes:
        path, filled = args.data / f"log-{total}.db", args.data / f"log-{total}.filled"
        url = f"sqlite:///{path}"
        if not filled.exists():
            path.unlink(missing_ok=True)
            with opened(url) as database:
                print(f"filling {total:,} decisions into {path}: {fill(database, total):.0f} s", flush=True)
            filled.touch()
        measure(url, total, args.ways)
    for total in args.postgres_sizes if args.postgres else []:
        with postgres_schema(args.postgres) as url:
            with opened(url) as database:
                print(f"filling {total:,} decisions into PostgreSQL: {fill(database, total):.0f} s", flush=True)
            measure(url, total, [how for how in args.ways if how != "scan"])


@contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """A migrated schema of its own on the server at `base`, dropped afterwards."""
    import psycopg

    from cartrecover.adapters.postgres import PostgresDatabase

    schema = f"train_read_{os.getpid()}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    parts = urlsplit(base)
    query = [*((k, v) for k, v in parse_qsl(parts.query) if k != "options"), ("options", f"-csearch_path={schema}")]
    url = urlunsplit(parts._replace(query=urlencode(query)))
    try:
        PostgresDatabase.migrate(url)
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
