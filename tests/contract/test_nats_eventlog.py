"""What the NATS event log promises beyond the shared contract: settings, the duplicate window, the fsync check."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import nats
import pytest
from nats.js import api

from cartrecover.adapters.nats import NatsEventLog
from cartrecover.adapters.nats._options import NatsOptions, check_fsync
from cartrecover.bootstrap import open_event_log
from cartrecover.errors import ConfigError
from cartrecover.settings import Settings
from tests.factories import event
from tests.nats_server import fresh_stream_url


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
