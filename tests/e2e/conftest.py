"""A real `cartrecover serve` process per test (or per module), on a free port, its own data dir, a manual clock
(or the system clock, where the lifecycle runs in its own worker process).

Each server runs on a stack: the embedded default (SQLite files in its data dir), or the scale-out stack, a
PostgreSQL schema (migrated with `cartrecover migrate`), a NATS JetStream stream and a Redis key prefix of its
own on the servers named by `CARTRECOVER_TEST_POSTGRES_URL`, `CARTRECOVER_TEST_NATS_URL` and
`CARTRECOVER_TEST_REDIS_URL`, dropped afterwards. Tests run on the embedded stack; those marked `@on_both_stacks`
run on both (see `tests.services` for skipping and CI).

The server runs as `sys.executable -m cartrecover` in its own session, so the whole process tree (Granian's
main process and its worker) can be killed by process-group id, with SIGKILL when a test wants a crash.
Its stdout and stderr go to files; when a test fails they are added to the failure report.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cartrecover.bootstrap import open_event_log
from cartrecover.domain.events import Event
from cartrecover.ports.eventlog import EventLog
from cartrecover.settings import load_settings
from tests.nats_server import fresh_stream_url
from tests.services import postgres_schema, redis_prefix

STARTUP_LIMIT = 60.0  # seconds; a guard against a hung start, not a timed assertion
_SERVERS = pytest.StashKey[list["Server"]]()
STACKS = ("embedded", "scaleout")


@dataclass(frozen=True)
class Stack:
    """The backends of a test's engine: empty URLs for the embedded default, else a state store, an event log and
    a cache of online features."""

    name: str = "embedded"
    database_url: str = ""
    event_log_url: str = ""
    cache_url: str = ""

    @property
    def settings(self) -> dict[str, str]:
        """`load_settings` overrides for an engine in the test's own process."""
        return {"database_url": self.database_url, "event_log_url": self.event_log_url, "cache_url": self.cache_url}

    @property
    def variables(self) -> dict[str, str]:
        """The `CARTRECOVER_*` variables that point a process at these backends (none for the embedded stack)."""
        return {f"CARTRECOVER_{name.upper()}": url for name, url in self.settings.items() if url}

    def environment(self) -> dict[str, str]:
        """The environment of a `cartrecover` process on this stack (see `_clean_env`)."""
        return {**_clean_env(), **self.variables}


EMBEDDED = Stack()

# Parametrises a test (or, as `pytestmark`, a module) to run once per stack; the servers, engines and
# `stack` fixtures it uses follow. Tests without it run on the embedded stack only.
on_both_stacks = pytest.mark.parametrize("stack_name", STACKS, indirect=True, scope="module")


@contextlib.contextmanager
def open_stack(name: str, cwd: Path) -> Iterator[Stack]:
    """A fresh stack: nothing to make for the embedded one; a new schema, migrated, a new stream and a new key
    prefix for the scale-out one, all dropped on the way out."""
    if name == "embedded":
        yield EMBEDDED
        return
    with postgres_schema() as database_url, fresh_stream_url() as event_log_url, redis_prefix() as cache_url:
        stack = Stack(name, database_url, event_log_url, cache_url)
        command = [sys.executable, "-m", "cartrecover", "migrate"]  # the operator's step before any process starts
        done = subprocess.run(command, capture_output=True, check=False, env=stack.environment(), cwd=cwd)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        yield stack


@contextlib.contextmanager
def opened_log(url: str) -> Iterator[EventLog]:
    """The event log at `url`, opened through the port as the lifecycle opens it (beside the running server)."""
    log = open_event_log(load_settings(None, env={}, event_log_url=url, durability="normal"))
    try:
        yield log
    finally:
        log.close()


def read_log(url: str, after: int = 0) -> list[Event]:
    """The events of the event log at `url` with an offset above `after` (all by default), oldest first."""
    with opened_log(url) as log:
        events: list[Event] = []
        offset = after
        while batch := log.read_after(offset, 1000):
            offset = batch[-1][0]
            events += [event for _, event in batch]
        return events


@dataclass(frozen=True)
class Keys:
    """A store created with `cartrecover stores add --json`: its id and keys in clear."""

    name: str
    store_id: int
    write_key: str
    admin_key: str
    shopify_secret: str = ""
    woocommerce_secret: str = ""

    @property
    def basic(self) -> dict[str, str]:
        """Segment-style Basic auth: the write key as username, empty password."""
        return {"Authorization": "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()}

    @property
    def admin(self) -> dict[str, str]:
        """Bearer auth with the store's admin key."""
        return {"Authorization": f"Bearer {self.admin_key}"}


@dataclass
class Server:
    """One `cartrecover serve` process tree; `restart()` starts a new one on the same data dir and stack."""

    data_dir: Path
    stores: dict[str, Keys]
    config: Path | None = None
    clock: str = "manual"
    stack: Stack = EMBEDDED
    base_url: str = ""
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    # -- process -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start on a free port and wait until /healthz answers."""
        for _attempt in range(3):  # a free port can be taken between probing and binding: try another
            port = _free_port()
            log = self.data_dir.parent / f"server-{len(self.logs)}.log"
            self.logs.append(log)
            command = [sys.executable, "-m", "cartrecover", "serve", "--data-dir", str(self.data_dir)]
            command += ["--host", "127.0.0.1", "--port", str(port), "--clock", self.clock]
            if self.config is not None:
                command += ["--config", str(self.config)]
            with log.open("wb") as out:
                self.process = subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=self.stack.environment(),
                    cwd=self.data_dir.parent,  # no stray ./cartrecover.toml is picked up
                )
            self.base_url = f"http://127.0.0.1:{port}"
            if self._wait_healthy():
                return
            self.kill()
            if "address already in use" not in log.read_text(errors="replace").lower():
                break
        raise RuntimeError(f"cartrecover serve did not become healthy:\n{self.output()}")

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + STARTUP_LIMIT
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL the whole process tree (no shutdown hooks run: a crash) and reap it."""
        if self.process is None:
            return
        # Granian's worker and the lifecycle worker are in the same process group: one signal ends them all,
        # also when a test has already killed the main process and left its children behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Kill (if running) and start again on the same data dir."""
        self.kill()
        self.start()

    def output(self) -> str:
        """Everything the server processes printed, oldest first."""
        parts = [f"--- {p.name} ---\n{p.read_text(errors='replace')}" for p in self.logs if p.exists()]
        return "\n".join(parts)

    # -- HTTP ----------------------------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client on the server's base URL."""
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """One POST on a fresh connection."""
        with self.client() as http:
            return http.post(path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """One GET on a fresh connection."""
        with self.client() as http:
            return http.get(path, **kwargs)

    def now(self, shop: Keys | None = None) -> datetime:
        """The engine's (manual) clock."""
        shop = shop or self.any_store
        response = self.get("/api/v1/clock", headers=shop.admin)
        assert response.status_code == 200, response.text
        return datetime.fromisoformat(response.json()["now"])

    def advance(self, by: timedelta = timedelta(0), shop: Keys | None = None) -> dict[str, Any]:
        """Move the manual clock by `by`; on return every logged event and due timer has been processed."""
        shop = shop or self.any_store
        when = self.now(shop) + by
        response = self.post("/api/v1/clock", json={"now": when.isoformat()}, headers=shop.admin)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def carts(self, shop: Keys, status: str | None = None) -> list[dict[str, Any]]:
        """GET /api/v1/carts (one page is plenty here)."""
        params = {"limit": "1000", **({"status": status} if status else {})}
        response = self.get("/api/v1/carts", params=params, headers=shop.admin)
        assert response.status_code == 200, response.text
        carts: list[dict[str, Any]] = response.json()["carts"]
        return carts

    def cart(self, shop: Keys, cart_id: str) -> dict[str, Any]:
        """GET /api/v1/carts/{id}, which must exist."""
        response = self.get(f"/api/v1/carts/{cart_id}", headers=shop.admin)
        assert response.status_code == 200, response.text
        cart: dict[str, Any] = response.json()
        return cart

    @property
    def any_store(self) -> Keys:
        """The first store (the clock is the engine's, whichever store's admin key moves it)."""
        return next(iter(self.stores.values()))

    # -- stored state --------------------------------------------------------------------------------------

    @property
    def event_log(self) -> Path:
        """The event log's SQLite file (the embedded stack's)."""
        return self.data_dir / "events.db"

    @property
    def event_log_url(self) -> str:
        """The URL of the server's event log, on its stack."""
        return self.stack.event_log_url or f"sqlite:///{self.event_log}"

    def logged_events(self) -> list[Event]:
        """Every event in the server's log, read through the port (beside the running server)."""
        return read_log(self.event_log_url)

    def log_offset(self) -> int:
        """The offset of the newest event in the server's log, 0 if none: a mark to read what comes after it."""
        with opened_log(self.event_log_url) as log:
            return log.last_offset()

    def logged_after(self, offset: int) -> list[Event]:
        """The events logged after `offset`, read through the port: what a request added, without reading the
        whole log (offsets only grow, and a logged event keeps its offset)."""
        return read_log(self.event_log_url, after=offset)

    def _logged(self, shop: Keys | None) -> list[tuple[int, str]]:
        """(store id, message id) of the logged events of one store or of all."""
        rows = [(event.store_id, event.message_id) for event in self.logged_events()]
        return [row for row in rows if shop is None or row[0] == shop.store_id]

    def event_count(self, shop: Keys | None = None) -> int:
        """Events in the log, of one store or of all."""
        return len(self._logged(shop))

    def message_ids(self, shop: Keys) -> set[str]:
        """The message ids in the log for a store."""
        return {message_id for _, message_id in self._logged(shop)}


def add_store(data_dir: Path, name: str, config: Path | None = None, stack: Stack = EMBEDDED) -> Keys:
    """`cartrecover stores add NAME --json`, as a user would run it."""
    command = [sys.executable, "-m", "cartrecover", "stores", "add", name, "--json", "--data-dir", str(data_dir)]
    if config is not None:
        command += ["--config", str(config)]
    done = subprocess.run(command, capture_output=True, check=False, env=stack.environment(), cwd=data_dir.parent)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    keys = json.loads(done.stdout)
    return Keys(
        keys["name"],
        int(keys["store_id"]),
        keys["write_key"],
        keys["admin_key"],
        keys["shopify_secret"],
        keys["woocommerce_secret"],
    )


ServerFactory = Callable[..., Server]


def _factory(base: Path, request: pytest.FixtureRequest, stack_name: str) -> Iterator[ServerFactory]:
    started: list[Server] = []
    request.node.stash.setdefault(_SERVERS, started)
    stacks = contextlib.ExitStack()

    def make(stores: tuple[str, ...] = ("a",), config: str | None = None, clock: str = "manual") -> Server:
        root = base / f"server-{uuid.uuid4().hex[:8]}"
        root.mkdir(parents=True)
        config_path = None
        if config is not None:
            config_path = root / "cartrecover.toml"
            config_path.write_text(config)
        data_dir = root / "data"
        server = Server(data_dir, {}, config_path, clock, stacks.enter_context(open_stack(stack_name, root)))
        started.append(server)
        for name in stores:
            server.stores[name] = add_store(data_dir, name, config_path, server.stack)
        server.start()
        return server

    with stacks:  # dropped after the servers that use them are gone
        try:
            yield make
        finally:
            for server in started:
                server.kill()


@pytest.fixture(scope="module")
def stack_name(request: pytest.FixtureRequest) -> str:
    """The stack of the test's servers and engines: "embedded", unless the test is marked `@on_both_stacks`."""
    return str(getattr(request, "param", "embedded"))


@pytest.fixture
def stack(stack_name: str, tmp_path: Path) -> Iterator[Stack]:
    """Fresh backends for an engine the test builds itself (the servers of `server_factory` get their own)."""
    with open_stack(stack_name, tmp_path) as opened:
        yield opened


@pytest.fixture
def server_factory(tmp_path: Path, request: pytest.FixtureRequest, stack_name: str) -> Iterator[ServerFactory]:
    """Start servers: `server_factory(stores=("a", "b"), config="[engine]\\nrate_limit = 5")`; all killed after."""
    yield from _factory(tmp_path, request, stack_name)


@pytest.fixture
def server(server_factory: ServerFactory) -> Server:
    """A fresh server with one store, "a"."""
    return server_factory()


@pytest.fixture(scope="module")
def module_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, stack_name: str
) -> Iterator[Server]:
    """One server with stores "a" and "b" shared by a module's tests (each test checks its own deltas)."""
    factory = _factory(tmp_path_factory.mktemp("e2e"), request, stack_name)
    make = next(factory)
    yield make(stores=("a", "b"))
    factory.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the output of the test's servers to its failure report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    servers = list(item.stash.get(_SERVERS, []))
    for name in item.fixturenames:  # module-scoped servers live on the module's node
        if name == "module_server" and hasattr(item, "funcargs") and name in item.funcargs:
            servers.append(item.funcargs[name])
    for server in {id(s): s for s in servers}.values():
        report.sections.append((f"cartrecover serve ({server.data_dir})", server.output()))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    """The environment without CARTRECOVER_* settings, so the test's flags are all that configure the server,
    and without a holdout or exploring decisions (tests that need them configure them)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CARTRECOVER_")}
    return {**clean, "CARTRECOVER_HOLDOUT_SHARE": "0", "CARTRECOVER_DECISIONS_EXPLORATION": "0"}
