"""The command line as a user runs it: stores, replay and the demo.

The stores and replay tests run on both stacks, the commands pointed at a fresh one by its `CARTRECOVER_*`
variables; they read what a command leaves (the carts' statuses, the event log) through the ports, from the
SQLite files or from PostgreSQL and NATS JetStream alike. The demo has a test per stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cartrecover.adapters.redis import RedisCache
from cartrecover.bootstrap import open_database
from cartrecover.domain.events import Event
from cartrecover.settings import load_settings
from cartrecover.simulate.traffic import generate_day
from tests.e2e.conftest import EMBEDDED, Stack, on_both_stacks, read_log
from tests.nats_server import delete_streams, with_stream
from tests.services import service_url

DAY = datetime(2026, 3, 1, tzinfo=UTC)


def cli(*args: str, cwd: Path | None = None, stack: Stack = EMBEDDED) -> subprocess.CompletedProcess[str]:
    """Run `python -m cartrecover ARGS` on `stack` (no holdout: the generator's fates assume every shopper is
    treated)."""
    env = {**os.environ, **stack.variables, "CARTRECOVER_HOLDOUT_SHARE": "0"}
    return subprocess.run(
        [sys.executable, "-m", "cartrecover", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
        env=env,
    )


def carts_by_status(data_dir: Path, stack: Stack = EMBEDDED) -> dict[str, str]:
    """Cart id → status of every store's carts, read through the state store's port."""
    database = open_database(load_settings(None, env={}, data_dir=data_dir, **stack.settings))
    try:
        with database.read() as uow:
            statuses: dict[str, str] = {}
            for store in uow.stores.all():
                after: str | None = None
                while page := uow.carts.page(store.store_id, None, 1000, after):
                    statuses |= {cart.cart_id: cart.status.value for cart in page}
                    after = page[-1].cart_id
            return statuses
    finally:
        database.close()


def logged_events(data_dir: Path, stack: Stack) -> list[Event]:
    """The events in the stack's event log, read through the port."""
    return read_log(load_settings(None, env={}, data_dir=data_dir, **stack.settings).resolved_event_log_url)


def write_jsonl(path: Path, calls: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(call) + "\n" for call in calls))


@on_both_stacks
def test_stores_add_prints_working_keys_and_list_shows_no_secrets(stack: Stack, tmp_path: Path) -> None:
    added = cli("stores", "add", "corner-shop", "--json", "--data-dir", str(tmp_path), "--currency", "eur", stack=stack)
    assert added.returncode == 0, added.stderr
    keys = json.loads(added.stdout)
    assert keys["name"] == "corner-shop"
    assert keys["write_key"].startswith("wk_") and keys["admin_key"].startswith("ak_")
    assert keys["shopify_secret"] and keys["woocommerce_secret"]

    listed = cli("stores", "list", "--json", "--data-dir", str(tmp_path), stack=stack)
    assert json.loads(listed.stdout) == [
        {"store_id": keys["store_id"], "name": "corner-shop", "timezone": "UTC", "currency": "EUR"}
    ]
    assert keys["admin_key"] not in listed.stdout and keys["write_key"] not in listed.stdout

    again = cli("stores", "add", "corner-shop", "--data-dir", str(tmp_path), stack=stack)
    assert again.returncode == 1 and "exists" in again.stderr


@on_both_stacks
def test_replay_applies_a_shuffled_file_in_event_time_order(stack: Stack, tmp_path: Path) -> None:
    day = generate_day(DAY, shoppers=120, seed=11)
    shuffled = list(day.calls)
    random.Random(5).shuffle(shuffled)
    write_jsonl(tmp_path / "day.jsonl", shuffled)
    assert cli("stores", "add", "replayed", "--data-dir", str(tmp_path / "d"), stack=stack).returncode == 0

    run = cli(
        "replay",
        str(tmp_path / "day.jsonl"),
        *("--data-dir", str(tmp_path / "d"), "--until", "2026-03-02T02:00:00Z"),
        stack=stack,
    )

    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["events"] == len(day.calls) and summary["duplicates"] == 0
    assert carts_by_status(tmp_path / "d", stack) == day.fates
    assert summary["carts"] == dict(Counter(day.fates.values()))


@on_both_stacks
def test_replaying_the_same_file_twice_changes_nothing_the_second_time(stack: Stack, tmp_path: Path) -> None:
    day = generate_day(DAY, shoppers=40, seed=3)
    write_jsonl(tmp_path / "day.jsonl", day.calls)
    data_dir = ("--data-dir", str(tmp_path / "d"))
    assert cli("stores", "add", "twice", *data_dir, stack=stack).returncode == 0
    first = cli("replay", str(tmp_path / "day.jsonl"), *data_dir, "--until", "2026-03-02T02:00:00Z", stack=stack)
    before = carts_by_status(tmp_path / "d", stack)

    second = cli("replay", str(tmp_path / "day.jsonl"), *data_dir, "--until", "2026-03-02T03:00:00Z", stack=stack)

    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["duplicates"] == len(day.calls)
    assert carts_by_status(tmp_path / "d", stack) == before == day.fates
    assert len(logged_events(tmp_path / "d", stack)) == len(day.calls)  # each logged once


@on_both_stacks
def test_replay_refuses_a_file_with_a_bad_line_and_names_it(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"type":"page","anonymousId":"a","timestamp":"2026-03-01T10:00:00Z"}\n{oops\n')
    assert cli("stores", "add", "strict", "--data-dir", str(tmp_path / "d"), stack=stack).returncode == 0

    run = cli("replay", str(tmp_path / "bad.jsonl"), "--data-dir", str(tmp_path / "d"), stack=stack)

    assert run.returncode == 1
    assert "bad.jsonl:2" in run.stderr
    assert logged_events(tmp_path / "d", stack) == []  # not even the good first line


@pytest.mark.slow
def test_the_demo_simulates_three_weeks_and_its_report_agrees_with_the_simulators_truth(tmp_path: Path) -> None:
    run = cli("demo", "--data-dir", str(tmp_path), "--learning-loop", "off")  # 21 days, seed 7 (loop: its own test)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "every cart reached the status its traffic implies" in run.stdout
    assert "the report counts exactly the simulated orders and their totals, per group" in run.stdout
    assert "Incremental revenue:" in run.stdout and "95 % CI" in run.stdout  # the `cartrecover report` table
    assert "the truth is INSIDE it" in run.stdout  # for this seed; bench/coverage.py measures the share over many
    assert "a journey stopped by an order" in run.stdout
    assert "http://127.0.0.1:8080/dashboard" in run.stdout and "admin key: ak_" in run.stdout
    statuses = Counter(carts_by_status(tmp_path).values())
    assert set(statuses) <= {"converted", "recovered", "abandoned", "recovering", "expired"}
    recovered = {
        g: int(n) for g, n in re.findall(r"^(treated|holdout)\s+\d+\s+(\d+)\s+[\d.]+%", run.stdout, re.MULTILINE)
    }
    assert recovered["treated"] > 0 and recovered["holdout"] > 0
    assert statuses["recovered"] == recovered["treated"] + recovered["holdout"]  # the report table, the database


@pytest.mark.slow
def test_the_demo_runs_on_the_scale_out_stack_with_one_config_file(tmp_path: Path) -> None:
    database, log = service_url("CARTRECOVER_TEST_POSTGRES_URL"), service_url("CARTRECOVER_TEST_NATS_URL")
    cache = service_url("CARTRECOVER_TEST_REDIS_URL")
    config = tmp_path / "scaleout.toml"
    urls = {"database_url": database, "event_log_url": with_stream(log, "cartrecover"), "cache_url": cache}
    config.write_text("[engine]\n" + "".join(f'{key} = "{url}"\n' for key, url in urls.items()))

    run = cli(
        "demo", "--config", str(config), "--data-dir", str(tmp_path / "demo"), "--days", "7", "--learning-loop", "off"
    )

    made = re.search(r"PostgreSQL schema (cartrecover_demo_[0-9a-f]+)", run.stdout)
    try:
        assert run.returncode == 0 and made, run.stdout[-3000:] + run.stderr[-2000:]
        assert "every cart reached the status its traffic implies" in run.stdout
        assert "the report counts exactly the simulated orders and their totals, per group" in run.stdout
        assert "Incremental revenue:" in run.stdout and "a journey stopped by an order" in run.stdout
        assert f"NATS streams {made[1]} and {made[1]}_scrubbed" in run.stdout
        assert f"Redis keys under {made[1]}:" in run.stdout
        assert not list((tmp_path / "demo").glob("*.db"))  # nothing went to the embedded stack's files
        with psycopg.connect(database) as db:
            table = sql.Identifier(made[1], "carts")
            statuses = dict(db.execute(sql.SQL("SELECT status, count(*) FROM {} GROUP BY status").format(table)))
        recovered = {
            g: int(n) for g, n in re.findall(r"^(treated|holdout)\s+\d+\s+(\d+)\s+[\d.]+%", run.stdout, re.MULTILINE)
        }
        assert recovered["treated"] > 0 and statuses["recovered"] == recovered["treated"] + recovered["holdout"]
    finally:
        if made:
            with psycopg.connect(database, autocommit=True) as db:
                db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(made[1])))
            asyncio.run(delete_streams(log, made[1], f"{made[1]}_scrubbed"))
            RedisCache.from_url(f"{cache}?prefix={made[1]}:").delete_prefix()
