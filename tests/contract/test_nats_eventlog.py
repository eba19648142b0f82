"""What the NATS event log promises beyond the shared contract: settings, the duplicate window, the fsync check."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nats
import pytest
from litestar.testing import TestClient
from nats.js import api

from cartrecover.adapters.nats import NatsEventLog
from cartrecover.adapters.nats._options import NatsOptions, check_fsync
from cartrecover.adapters.nats._stream import EventStream
from cartrecover.bootstrap import build_engine, open_event_log
from cartrecover.domain.events import EventKind, redacted
from cartrecover.entrypoints.http.app import create_app
from cartrecover.errors import ConfigError, StoreError
from cartrecover.settings import Settings
from tests.conftest import START, add_shop, make_settings, move_clock
from tests.factories import event
from tests.nats_server import free_port, fresh_stream_url


def create_stream(url: str, **config: object) -> None:
    """Create the URL's stream beforehand, as an operator would, with these settings."""
    stream = parse_qs(urlsplit(url).query)["stream"][0]

    async def create() -> None:
        nc = await nats.connect(url.split("/?", maxsplit=1)[0])
        try:
            storage = config.pop("storage", api.StorageType.FILE)
            await nc.jsm().add_stream(
                api.StreamConfig(name=stream, subjects=[f"{stream}.>"], storage=storage, **config)
            )
        finally:
            await nc.close()

    asyncio.run(create())


@pytest.fixture
def url() -> Iterator[str]:
    """A stream of its own on the shared server, deleted afterwards."""
    with fresh_stream_url() as fresh:
        yield fresh


def test_a_retry_long_after_the_duplicate_window_is_still_not_new(url: str) -> None:
    create_stream(url, duplicate_window=0.2)  # the server forgets message ids after 0.2 s
    log = NatsEventLog.from_url(url)
    try:
        e = event(store_id=3)
        assert log.append([e]) == [True]
        time.sleep(0.5)

        assert log.append([e, event(store_id=3)]) == [False, True]
        assert len(log.read_after(0, 10)) == 2
    finally:
        log.close()


def test_a_stream_kept_in_memory_is_refused(url: str) -> None:
    create_stream(url, storage=api.StorageType.MEMORY)

    with pytest.raises(ConfigError, match="in memory"):
        NatsEventLog.from_url(url)


def test_the_composition_root_opens_a_nats_url(url: str) -> None:
    log = open_event_log(Settings(event_log_url=url))
    try:
        assert isinstance(log, NatsEventLog)
        assert log.append([event()]) == [True]
    finally:
        log.close()


def test_the_url_names_servers_credentials_stream_and_replicas() -> None:
    options = NatsOptions.from_url("nats://app:secret@n1:4222,n2:4222/?stream=shop_events&replicas=3&timeout=2")

    assert options.servers == ("nats://app:secret@n1:4222", "nats://app:secret@n2:4222")
    assert (options.stream, options.replicas, options.timeout) == ("shop_events", 3, 2.0)
    assert options.scrubbed_stream == "shop_events_scrubbed"
    assert NatsOptions.from_url("nats://localhost:4222").stream == "cartrecover"


@pytest.mark.parametrize(
    "url",
    [
        "nats:///?stream=x",
        "nats://h:4222/?stream=a.b",
        "nats://h:4222/?stream=a>",
        "nats://h:4222/?replicas=7",
        "nats://h:4222/?replicas=three",
        "nats://h:4222/?timeout=0",
        "nats://h:4222/?streem=x",
    ],
)
def test_a_wrong_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigError):
        NatsOptions.from_url(url)


def test_a_server_older_than_2_10_is_reported_as_unable_to_fsync_every_write(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_fsync((2, 9), NatsOptions(("nats://h:4222",)))

    assert "sync_interval" in caplog.text


def test_the_engine_on_a_nats_log_applies_events_and_erases_a_shopper(url: str, tmp_path: Path) -> None:
    engine = build_engine(make_settings(tmp_path, event_log_url=url), start=START)
    try:
        shop = add_shop(engine)
        with TestClient(create_app(engine)) as client:
            for minute, call in enumerate(
                [
                    {"event": "Product Added", "properties": {"cart_id": "c1", "product_id": "p1", "price": 10}},
                    {"userId": "u-7", "traits": {"email": "ada@example.com"}},
                ]
            ):
                kind = "identify" if "traits" in call else "track"
                at = (START + timedelta(minutes=minute)).isoformat()
                body = {"anonymousId": "laptop-anon", "timestamp": at, **call}
                assert client.post(f"/v1/{kind}", json=body, headers=shop.basic).status_code == 200
            move_clock(client, shop, START + timedelta(minutes=5))
            erasure = event(EventKind.SHOPPER_REDACTED, store_id=shop.store_id, email="ada@example.com")
            engine.append([erasure, erasure])
            move_clock(client, shop, START + timedelta(minutes=6))

        logged = [e for _, e in engine.log.read_after(0, 100)]
        assert [e.name for e in logged] == ["Product Added", "identify", "shopper_redacted"]
        assert all(e.identities == [] for e in logged)
        assert engine.lag() == 0
        with engine.database.read() as uow:
            assert uow.shoppers.find(shop.store_id, "user", "u-7") is None
    finally:
        engine.close()


def test_an_unreachable_server_is_a_store_error_that_names_it_without_its_password() -> None:
    port = free_port()

    with pytest.raises(StoreError, match=f"127.0.0.1:{port}") as raised:
        NatsEventLog.from_url(f"nats://app:hunter2@127.0.0.1:{port}/?timeout=0.3")

    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("interrupted_at", ["_mark", "_erase"])
def test_a_scrub_interrupted_midway_finishes_when_run_again(
    url: str, interrupted_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = NatsEventLog.from_url(url, durability="normal")
    try:
        jane, other = event(store_id=4, email="jane@example.com"), event(store_id=4)
        log.append([jane, other])
        step = getattr(EventStream, interrupted_at)

        async def fail(*args: object) -> None:
            raise StoreError("interrupted")

        monkeypatch.setattr(EventStream, interrupted_at, fail)
        with pytest.raises(StoreError):
            log.scrub(4, {("email", "jane@example.com")})
        monkeypatch.setattr(EventStream, interrupted_at, step)

        assert log.scrub(4, {("email", "jane@example.com")}) == 1
        assert log.scrub(4, {("email", "jane@example.com")}) == 0
        assert log.read_after(0, 10) == [(1, redacted(jane)), (2, other)]
        assert log.append([jane]) == [False]
        assert log.last_offset() == 2
        assert log.erase_store(4) == 2
    finally:
        log.close()
