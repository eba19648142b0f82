"""The recovery report on a simulated store: in process through the engine, and over HTTP, before and after.

Builds a store with the simulator (`--days` of `--visitors` a day, the default profile; a `--data-dir` kept
from an earlier run is reused: it holds `report-bench.json`) and times the report and its daily series of the
whole run (the window the simulator itself asks for) and of the run's last week. `--way before` is the reads
the engine made before commit 26bfa54, through the ports' one-cart reads: every cart of the store decoded, then
a cart's order, steps and timeline with a query each (and the cart again for the daily series). `--way both`
(the default) times the two by turns in the same run and stops if they do not give the same JSON. `--http`
also times `GET /api/v1/reports/recovery[/daily]` of a served engine (the code as it is), `--profile` prints
cProfile's top of one report.

    .venv/bin/python bench/report.py [--days 28] [--visitors 1500] [--data-dir DIR] [--way both|before|after]
        [--repeat 3] [--http] [--profile] [--database-url postgresql://… --schema report_bench]

With `--database-url` the store's state store is PostgreSQL, in `--schema` (created and migrated here, kept
with the data directory for later runs; drop it by hand); the event log stays in the data directory.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from cartrecover import measure
from cartrecover.bootstrap import build_engine
from cartrecover.domain.cart import CartStatus
from cartrecover.domain.holdout import Group
from cartrecover.domain.journey import StepStatus
from cartrecover.engine import Engine
from cartrecover.measure.attribution import Touch
from cartrecover.measure.daily import build_series, daily, series_as_json
from cartrecover.measure.outcomes import incentive_of
from cartrecover.ports.orders import Order
from cartrecover.ports.stores import Store
from cartrecover.ports.unit_of_work import UnitOfWork
from cartrecover.settings import load_settings
from cartrecover.simulate.run import run_simulation
from cartrecover.simulate.server import server
from cartrecover.simulate.shoppers import PROFILES

MARKER = "report-bench.json"


def build(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The simulated store's data directory and its run (start, end, admin key), simulated once then kept.

    With `--database-url` the state store is PostgreSQL, in the schema `--schema` (created and migrated here,
    kept with the data directory; drop it by hand), and the engine's processes are told so by the environment.
    """
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="cartrecover-report-"))
    kept = data_dir / MARKER
    if args.database_url:
        os.environ["CARTRECOVER_DATABASE_URL"] = postgres_schema(args.database_url, args.schema)
    if not kept.exists():
        profile = replace(PROFILES["default"], shoppers_per_day=args.visitors)
        began = time.perf_counter()
        env = {"CARTRECOVER_DATABASE_URL": os.environ["CARTRECOVER_DATABASE_URL"]} if args.database_url else {}
        run = run_simulation(args.days, args.seed, profile, data_dir, show=False, progress=True, env=env)
        run_info = {
            "start": run["start"].isoformat(),
            "end": run["end"].isoformat(),
            "admin_key": run["admin_key"],
            "days": args.days,
            "visitors": args.visitors,
            "seed": args.seed,
            "simulated_seconds": time.perf_counter() - began,
        }
        kept.write_text(json.dumps(run_info, indent=2))
    return data_dir, json.loads(kept.read_text())


def postgres_schema(base: str, schema: str) -> str:
    """The URL of `schema` on the server at `base`, created if missing and migrated to the code's version."""
    import psycopg
    from psycopg import sql

    from cartrecover.adapters.postgres import PostgresDatabase

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"] + [("options", f"-csearch_path={schema}")]
    url = urlunsplit(parts._replace(query=urlencode(query)))
    PostgresDatabase.migrate(url)
    return url


def before(uow: UnitOfWork, store_id: int, since: datetime, until: datetime) -> list[measure.CartOutcome]:
    """`measure.abandoned_between` as it was: every cart of the store decoded, then three queries per cart."""
    every = uow.carts.page(store_id, None, 2**62, None)  # the old scan: all of the store's carts in one query
    inside = [c for c in every if c.abandoned_at is not None and since <= c.abandoned_at < until]
    seen: set[str] = set()
    outcomes = []
    for cart in sorted(inside, key=lambda c: (c.abandoned_at or since, c.cart_id)):
        order = None
        if cart.status is CartStatus.RECOVERED and cart.order_id is not None:
            order = uow.orders.get(store_id, cart.order_id)
            if order is None:
                assert cart.closed_at is not None
                order = Order(store_id, cart.order_id, cart.shopper_id, cart.closed_at, cart.order_value, None, ())
            order = None if order.cancelled_at is not None or order.order_id in seen else order
        if order is not None:
            seen.add(order.order_id)
        steps = uow.outbox.for_cart(store_id, cart.cart_id)
        by_message = {s.message_id: s for s in steps}
        clicks = []
        for entry in uow.timeline.for_cart(store_id, cart.cart_id):
            step = by_message.get(str(entry.get("message_id"))) if entry.get("kind") == "click" else None
            if step is not None:
                channel = str(entry.get("channel") or (step.channel.value if step.channel else ""))
                clicks.append(Touch(entry["at"], channel, step.name, step.step_id, True, incentive_of(step)))
        outcomes.append(
            measure.CartOutcome(
                cart_id=cart.cart_id,
                group=Group(cart.group) if cart.group else Group.TREATED,
                value=cart.value,
                sends=tuple(s for s in steps if s.status is StepStatus.SENT and s.sent_at and s.channel),
                clicks=tuple(clicks),
                order=order,
                experiment=cart.experiment if cart.group != Group.HOLDOUT else None,
                variant=cart.variant if cart.group != Group.HOLDOUT else None,
            )
        )
    return outcomes


def report_before(engine: Engine, store: Store, since: datetime, until: datetime) -> dict[str, Any]:
    """The report as `engine.recovery_report` computed it before, as the API's JSON."""
    config = engine.settings.measure
    with engine.database.read() as uow:
        outcomes = before(uow, store.store_id, since, until)
    return measure.as_json(
        measure.build(
            outcomes,
            store_id=store.store_id,
            currency=store.currency,
            since=since,
            until=until,
            windows=config.attribution_windows,
            channel_cost=config.channel_cost,
        )
    )


def daily_before(engine: Engine, store: Store, since: datetime, until: datetime) -> dict[str, Any]:
    """The daily series as it was computed before: the outcomes as above, then each cart read again by id."""
    with engine.database.read() as uow:
        outcomes = before(uow, store.store_id, since, until)
        abandoned = {}
        for outcome in outcomes:
            cart = uow.carts.get(store.store_id, outcome.cart_id)
            assert cart is not None and cart.abandoned_at is not None
            abandoned[outcome.cart_id] = cart.abandoned_at
    series = build_series(
        outcomes, abandoned, currency=store.currency, timezone=store.timezone, since=since, until=until
    )
    return series_as_json(series)


def report_after(engine: Engine, store: Store, since: datetime, until: datetime) -> dict[str, Any]:
    """The report as the engine computes it now, as the API's JSON."""
    return measure.as_json(engine.recovery_report(store, since, until))


def daily_after(engine: Engine, store: Store, since: datetime, until: datetime) -> dict[str, Any]:
    """The daily series as the API computes it now."""
    with engine.database.read() as uow:
        series = daily(uow, store.store_id, store.currency, timezone=store.timezone, since=since, until=until)
    return series_as_json(series)


WAYS: dict[str, dict[str, Callable[[Engine, Store, datetime, datetime], dict[str, Any]]]] = {
    "before": {"report": report_before, "daily": daily_before},
    "after": {"report": report_after, "daily": daily_after},
}


def timed(call: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, this process's CPU seconds, the answer)."""
    wall, cpu = time.perf_counter(), time.process_time()
    answer = call()
    return time.perf_counter() - wall, time.process_time() - cpu, answer


def in_process(
    args: argparse.Namespace, windows: dict[str, tuple[datetime, datetime]]
) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
    """Each way × report × window `--repeat` times, the ways taking turns; the ways' answers must be equal."""
    engine = build_engine(load_settings(None, data_dir=args.data_dir))
    figures: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    try:
        store = engine.stores.named_or_only(None)
        report_after(engine, store, *windows["whole run"])  # imports statsmodels and SciPy, warms the caches
        for _ in range(args.repeat):
            for window, (since, until) in windows.items():
                for kind in ("report", "daily"):
                    answers = {}
                    for way in args.ways:
                        compute = partial(WAYS[way][kind], engine, store, since, until)
                        wall, cpu, answers[way] = timed(compute)
                        figures.setdefault((way, kind, window), []).append((wall, cpu))
                    if len(answers) == 2 and answers["before"] != answers["after"]:
                        raise SystemExit(f"the {kind} of the {window} differs between the ways")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(report_after, engine, store, *windows["whole run"])
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)
    finally:
        engine.close()
    return figures


def over_http(
    args: argparse.Namespace, run: dict[str, Any], windows: dict[str, tuple[datetime, datetime]]
) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
    """The report and the daily series over `GET /api/v1/reports/recovery[/daily]` of a served engine (wall only)."""
    figures: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    paths = {"report": "/api/v1/reports/recovery", "daily": "/api/v1/reports/recovery/daily"}
    headers = {"Authorization": f"Bearer {run['admin_key']}"}
    with server(args.data_dir, {}) as base, httpx.Client(base_url=base, timeout=900) as client:
        for _ in range(args.repeat):
            for window, (since, until) in windows.items():
                for kind, path in paths.items():
                    params = {"since": since.isoformat(), "until": until.isoformat()}
                    wall, _, response = timed(partial(client.get, path, params=params, headers=headers))
                    response.raise_for_status()
                    figures.setdefault(("http", kind, window), []).append((wall, float("nan")))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--visitors", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-url", help="a PostgreSQL server for the state store (default: SQLite)")
    parser.add_argument("--schema", default="report_bench", help="the PostgreSQL schema of the store")
    parser.add_argument("--way", choices=("both", "before", "after"), default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--http", action="store_true", help="also time the API of a served engine (the code as it is)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 20 of one report, as it is now")
    args = parser.parse_args()
    args.ways = ("before", "after") if args.way == "both" else (args.way,)
    args.data_dir, run = build(args)
    start, end = datetime.fromisoformat(run["start"]), datetime.fromisoformat(run["end"])
    last = start + timedelta(days=run["days"])  # after it the run only settles: nothing more is abandoned
    windows = {"whole run": (start, end), "last week": (last - timedelta(days=7), last)}
    backend = "PostgreSQL" if args.database_url else "SQLite"
    load = os.getloadavg()
    print(f"{run['days']} days at {run['visitors']} visitors a day (seed {run['seed']}) on {backend}, {args.data_dir}")
    print(f"commit {_commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    figures = in_process(args, windows)
    if args.http:
        figures |= over_http(args, run, windows)
    print(f"\n{'way':<8}{'what':<8}{'window':<13}{'wall median s':>15}{'wall min s':>12}{'CPU median s':>14}")
    for (way, kind, window), runs in figures.items():
        walls, cpus = sorted(w for w, _ in runs), sorted(c for _, c in runs)
        print(f"{way:<8}{kind:<8}{window:<13}{median(walls):>15.3f}{walls[0]:>12.3f}{median(cpus):>14.3f}")
    for kind in ("report", "daily"):
        for window in windows:
            old, new = figures.get(("before", kind, window)), figures.get(("after", kind, window))
            if old and new:
                ratio = median([w for w, _ in old]) / median([w for w, _ in new])
                print(f"{kind} of the {window}: before ÷ after {ratio:.1f} × (wall medians)")
    print(f"load at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def _commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True, check=False)
    return found.stdout.strip() + (" + changes in src" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    main()
