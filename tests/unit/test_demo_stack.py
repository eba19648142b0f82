"""`cartrecover demo`'s choice of stack: what a run gets on each, and the environment its processes inherit."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import pytest

from cartrecover.entrypoints.demo_stack import DemoStack, describe, environment, prepare
from cartrecover.settings import load_settings
from tests.services import service_url


def test_on_the_embedded_stack_a_run_makes_nothing() -> None:
    assert prepare(load_settings(None, env={})) == DemoStack()


def test_a_run_on_nats_gets_a_stream_and_a_redis_prefix_of_its_own_and_keeps_the_other_parameters() -> None:
    settings = load_settings(
        None,
        env={},
        event_log_url="nats://n1:4222,n2:4222/?stream=shop&replicas=3",
        cache_url="redis://cache:6379/0?prefix=shop:&ttl=60",
    )

    first, second = prepare(settings), prepare(settings)

    log = urlsplit(first.variables["CARTRECOVER_EVENT_LOG_URL"])
    stream = parse_qs(log.query)["stream"]
    assert log.netloc == "n1:4222,n2:4222" and parse_qs(log.query)["replicas"] == ["3"]
    assert stream != ["shop"] and stream[0].startswith("cartrecover_demo_")
    cache = parse_qs(urlsplit(first.variables["CARTRECOVER_CACHE_URL"]).query)
    assert cache["prefix"] == [f"{stream[0]}:"] and cache["ttl"] == ["60"]
    assert first.variables != second.variables  # a second run starts as empty as the first
    assert "CARTRECOVER_DATABASE_URL" not in first.variables  # the state store stays the embedded one
    assert len(first.made) == 2


def test_a_run_on_postgresql_gets_a_migrated_schema_of_its_own_and_the_pool_s_parameters_stay_out_of_libpq() -> None:
    import psycopg

    base = service_url("CARTRECOVER_TEST_POSTGRES_URL")
    stack = prepare(load_settings(None, env={}, database_url=f"{base}?pool_min=1&pool_max=3"))
    url = stack.variables["CARTRECOVER_DATABASE_URL"]
    schema = parse_qs(urlsplit(url).query)["options"][0].removeprefix("-csearch_path=")
    try:
        assert parse_qs(urlsplit(url).query)["pool_max"] == ["3"]  # the run's processes keep the user's pool
        with psycopg.connect(base, autocommit=True) as conn:
            found = conn.execute(f'SELECT max(version) FROM "{schema}".schema_migrations').fetchone()
        assert found is not None and found[0] >= 1
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_the_run_environment_replaces_the_users_backends_and_config_and_is_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARTRECOVER_DATABASE_URL", "postgresql://shop@db/live")
    monkeypatch.setenv("CARTRECOVER_CONFIG", "production.toml")
    monkeypatch.delenv("CARTRECOVER_EVENT_LOG_URL", raising=False)

    with environment({"CARTRECOVER_EVENT_LOG_URL": "nats://n1:4222/?stream=demo"}):
        assert os.environ["CARTRECOVER_EVENT_LOG_URL"] == "nats://n1:4222/?stream=demo"
        assert "CARTRECOVER_DATABASE_URL" not in os.environ and os.environ["CARTRECOVER_CONFIG"] == ""
    with environment({}):  # the learning loop: the embedded stack whatever the user exported
        assert not {"CARTRECOVER_DATABASE_URL", "CARTRECOVER_EVENT_LOG_URL"} & set(os.environ)

    assert os.environ["CARTRECOVER_DATABASE_URL"] == "postgresql://shop@db/live"
    assert os.environ["CARTRECOVER_CONFIG"] == "production.toml" and "CARTRECOVER_EVENT_LOG_URL" not in os.environ


def test_what_the_demo_prints_hides_passwords() -> None:
    url = "postgresql://shop:s3cret@db:5432/live?options=-csearch_path%3Dcartrecover_demo_1"
    text = describe(DemoStack({"CARTRECOVER_DATABASE_URL": url}, ("PostgreSQL schema cartrecover_demo_1",)))
    assert "s3cret" not in text and "shop:***@db:5432" in text and "cartrecover_demo_1" in text
