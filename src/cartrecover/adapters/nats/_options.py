"""What a `nats://` URL says: the servers, the stream, its replicas; and the start-up check of the server's fsync."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from cartrecover.errors import ConfigError

logger = logging.getLogger(__name__)

_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KNOWN = {"stream", "replicas", "timeout", "monitor"}


@dataclass(frozen=True)
class NatsOptions:
    """`nats://[user:password@]host:port[,host:port…]/?stream=cartrecover&replicas=3&timeout=5&monitor=http://…`.

    `stream` names the stream and is the prefix of its subjects (one stream per installation, or per test);
    `replicas` is used when the stream is created (3 in production: docs/production.md); `timeout` bounds each
    request in seconds; `monitor` is the server's HTTP monitoring address, read once to check its fsync setting.
    """

    servers: tuple[str, ...]
    stream: str = "cartrecover"
    replicas: int = 1
    timeout: float = 5.0
    monitor: str | None = None

    @classmethod
    def from_url(cls, url: str) -> NatsOptions:
        """Parse and check a `nats://` URL; a wrong one is a ConfigError."""
        parts = urlsplit(url)
        credentials, _, hosts = parts.netloc.rpartition("@")
        if parts.scheme != "nats" or not hosts:
            raise ConfigError(f"not a nats:// URL with a host: {url!r}")
        login = f"{credentials}@" if credentials else ""
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        if unknown := set(query) - _KNOWN:
            raise ConfigError(f"unknown nats:// URL parameters: {', '.join(sorted(unknown))}")
        stream = query.get("stream", "cartrecover")
        if not _STREAM_NAME.fullmatch(stream):
            raise ConfigError(f"stream must be 1–64 letters, digits, '_' or '-', not {stream!r}")
        try:
            replicas, timeout = int(query.get("replicas", "1")), float(query.get("timeout", "5"))
        except ValueError as exc:
            raise ConfigError(f"nats:// URL: {exc}") from exc
        if not 1 <= replicas <= 5 or timeout <= 0:
            raise ConfigError("nats:// URL: replicas must be 1 to 5 and timeout positive")
        servers = tuple(f"nats://{login}{host}" for host in hosts.split(","))
        return cls(servers, stream, replicas, timeout, query.get("monitor"))

    @property
    def scrubbed_stream(self) -> str:
        """The stream that keeps the scrubbed copies of erased events, by offset."""
        return f"{self.stream}_scrubbed"


def check_fsync(version: tuple[int, int], options: NatsOptions) -> None:
    """Warn when the server may acknowledge appends it has not written to disk (only it can be told to).

    nats-server fsyncs every `sync_interval` (2 minutes by default): an acknowledged append can be lost on power
    loss unless it runs with `sync_interval: always` (2.10 and later; older servers have no such setting). No stream
    setting asks for more, and a client sees the setting only through the monitoring port (`monitor=` in the URL).
    """
    if version < (2, 10):
        logger.warning(
            "nats-server %d.%d cannot fsync before acknowledging (sync_interval came in 2.10): an acknowledged "
            "event can be lost on power loss; run 2.10 or later with `sync_interval: always`",
            *version,
        )
        return
    if options.monitor is None:
        logger.info("the NATS server's sync_interval was not checked (no monitor= in the URL); it must be `always`")
        return
    config = _jetstream_config(options.monitor)
    if config is None:
        logger.warning("could not read %s/varz to check the NATS server's sync_interval", options.monitor)
    elif not config.get("sync_always"):
        logger.warning(
            "the NATS server fsyncs every %s s, not on every write: set `sync_interval: always` in its jetstream "
            "block, or acknowledged events can be lost on power loss",
            config.get("sync_interval", 0) / 1e9,
        )


def _jetstream_config(monitor: str) -> dict[str, Any] | None:
    try:
        varz = httpx.get(f"{monitor.rstrip('/')}/varz", timeout=2).raise_for_status().json()
    except (httpx.HTTPError, ValueError):
        return None
    config = varz.get("jetstream", {}).get("config")
    return config if isinstance(config, dict) else None
