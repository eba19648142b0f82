"""What must hold when messages go out (DESIGN.md §6.2–3, issue 3), against real processes and a real SMTP server.

- Two `cartrecover worker` processes on one data dir send every step exactly once, each under its own message id.
- A worker SIGKILLed while its SMTP server holds a message in DATA: another worker re-sends that step after the
  lease (`[engine] delivery_lease`) with the same Message-ID, and no other step is repeated.
- An order recorded after planning (also while a worker is in the middle of a batch) cancels what remains.
- SMTP refusing connections delays sends but loses none: retries with backoff, then a dead letter that
  `cartrecover dead-letters list|replay` shows and sends once.

Steps made due "now" on the system clock come from events stamped hours ago (everything runs on event time).
Every test runs on both stacks: the workers share a data dir and, on the scale-out stack, a PostgreSQL schema and
a NATS stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller

from cartrecover.bootstrap import build_engine, make_clock, open_database, open_event_log
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.journey import StepStatus
from cartrecover.engine import Engine
from cartrecover.ports.channels import OutboundMessage
from cartrecover.settings import load_settings
from tests.conftest import START, add_shop
from tests.e2e.conftest import Stack, _free_port, on_both_stacks
from tests.factories import identified, item, order_completed, product_added, random_id

pytestmark = [pytest.mark.slow, on_both_stacks]

PATIENCE = 90.0  # seconds: a bound on waiting for eventual state, not a timed assertion
ONE_STEP = """
[[journey.steps]]
name = "reminder"
delay = "1h"
channels = ["email"]
template = "reminder"
"""


def eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll until `check` returns something truthy; fail naming `what` after PATIENCE seconds."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


# -- a real SMTP server ------------------------------------------------------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message; told to, it holds the first one in DATA without answering."""

    stall_first: bool = False
    messages: list[bytes] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(bytes(envelope.content))
        if self.stall_first and len(self.messages) == 1:
            while not self.release.is_set():  # the client waits for our 250 until it is killed
                await asyncio.sleep(0.05)
        return "250 OK"

    def message_ids(self) -> list[str]:
        return [str(message_from_bytes(m)["Message-ID"]) for m in self.messages]


@contextlib.contextmanager
def smtp_server(inbox: Inbox, port: int) -> Iterator[Controller]:
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller
    finally:
        inbox.release.set()
        controller.stop()


def smtp_url(port: int, timeout: int = 10) -> str:
    return f"smtp://127.0.0.1:{port}?from=shop%40example.com&timeout={timeout}"


# -- processes on one data dir -----------------------------------------------------------------------------


@dataclass
class DataDir:
    """A data dir, config files and backends shared by the test's engine and its `cartrecover worker` processes."""

    root: Path
    stack: Stack
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def config(self, name: str, text: str) -> Path:
        """A config file; decisions never explore here (a random plan would change which steps exist)."""
        path = self.root / f"{name}.toml"
        path.write_text(f"{text}\n[decisions]\nexploration = 0\n")
        return path

    def start_worker(self, config: Path) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "cartrecover", "worker", "--config", str(config)]
        command += ["--data-dir", str(self.data)]
        log = (self.root / f"worker-{len(self.workers)}.log").open("wb")
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.stack.environment(),
            cwd=self.root,
            start_new_session=True,
        )
        log.close()
        self.workers.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.kill(process)

    def output(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')}" for p in self.root.glob("worker-*.log"))

    def steps(self) -> dict[str, tuple[str, int]]:
        """step id → (status, attempts), read beside the running workers."""
        engine = build_engine(load_settings(None, env={}, data_dir=self.data, holdout_share=0.0, **self.stack.settings))
        try:
            with engine.database.read() as uow:
                return {
                    s.step_id: (s.status.value, s.attempts)
                    for store in engine.stores.all()
                    for cart in uow.carts.page(store.store_id, None, 100_000, None)
                    for s in uow.outbox.for_cart(store.store_id, cart.cart_id)
                }
        finally:
            engine.close()


@pytest.fixture
def shared(tmp_path: Path, stack: Stack) -> Iterator[DataDir]:
    shared = DataDir(tmp_path, stack)
    try:
        yield shared
    finally:
        for process in shared.workers:
            shared.kill(process)


def settled_steps(shared: DataDir) -> dict[str, tuple[str, int]] | None:
    """The steps' (status, attempts) once none is scheduled or being sent any more."""
    steps = shared.steps()
    return steps if steps and all(StepStatus(s).is_final for s, _ in steps.values()) else None


def holds_store_open(pid: int, shared: DataDir) -> bool:
    """Whether the process has opened the state store (it has built its engine and is about to loop): the SQLite
    file, or a connection to PostgreSQL's port."""
    try:
        opened = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        if not shared.stack.database_url:
            return str(shared.data / "cartrecover.db") in opened
        port = urlsplit(shared.stack.database_url).port or 5432
        connections = [Path(f"/proc/{pid}/net/{kind}").read_text().splitlines()[1:] for kind in ("tcp", "tcp6")]
    except OSError:
        return False
    # /proc/PID/net/tcp: local and remote address as hex IP:port, the state (01 established), …, the socket's inode.
    for row in (line.split() for rows in connections for line in rows):
        if row[3] == "01" and int(row[2].rsplit(":", 1)[1], 16) == port and f"socket:[{row[9]}]" in opened:
            return True
    return False


def abandon_long_ago(shared: DataDir, config: Path, carts: int, *, apply: bool, first: int = 0) -> dict[str, str]:
    """Log `carts` consenting shoppers' carts (numbered from `first`), stamped three hours ago; returns cart id →
    email.

    With `apply`, the test's own engine abandons them and plans their (already due) steps; otherwise the
    workers do it from the log.
    """
    settings = load_settings(
        config, env={}, data_dir=shared.data, clock="system", holdout_share=0.0, **shared.stack.settings
    )
    engine = build_engine(settings)
    try:
        store = engine.stores.by_name("shop") or engine.stores.by_id(add_shop(engine, "shop").store_id)
        assert store is not None
        then = datetime.now(UTC) - timedelta(hours=3)
        emails, events = {}, []
        for n in range(first, first + carts):
            cart_id, anon = f"cart-{n:05d}", random_id("anon")
            emails[cart_id] = f"{anon}@example.com"
            events += [
                identified(
                    store_id=store.store_id, anonymous_id=anon, email=emails[cart_id], consent={"email": True}, at=then
                ),
                product_added(
                    item("p1", price=2500, name="Linen shirt"),
                    store_id=store.store_id,
                    anonymous_id=anon,
                    cart_id=cart_id,
                    at=then + timedelta(seconds=1),
                ),
            ]
        for start in range(0, len(events), 200):
            engine.append(events[start : start + 200])
        if apply:
            while engine.process_pending() or engine.fire_due(datetime.now(UTC)):
                pass
        return emails
    finally:
        engine.close()


def written(path: Path) -> int:
    """Complete lines so far (a worker may be in the middle of one)."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- exactly once ------------------------------------------------------------------------------------------


def test_two_delivery_workers_send_every_step_exactly_once(shared: DataDir) -> None:
    carts = 1500
    configs = [
        shared.config(name, f'[channels]\nemail = "file://{shared.root / name}.jsonl"\n{ONE_STEP}')
        for name in ("first", "second")
    ]
    abandon_long_ago(shared, configs[0], 0, apply=False)  # the store, before any worker runs
    workers = [shared.start_worker(c) for c in configs]
    for w in workers:
        eventually(lambda w=w: holds_store_open(w.pid, shared), "the worker to open the store")

    outputs = [shared.root / "first.jsonl", shared.root / "second.jsonl"]
    emails: dict[str, str] = {}
    for race in range(3):  # on a loaded machine one worker can take a whole round before the other wakes: race again
        emails |= abandon_long_ago(shared, configs[0], carts, apply=False, first=race * carts)  # they race to send
        expected = len(emails)
        eventually(lambda n=expected: sum(written(p) for p in outputs) >= n, f"{expected} messages")
        eventually(lambda: all(s == ("sent", 1) for s in shared.steps().values()), "every step to be settled")
        if all(written(p) for p in outputs):
            break
    shared.stop_all()  # anything either worker was still going to write is written by now

    per_worker = [lines(p) for p in outputs]
    sent = per_worker[0] + per_worker[1]
    by_step = Counter(m["step_id"] for m in sent)
    assert len(by_step) == len(emails) and set(by_step.values()) == {1}, by_step.most_common(3)
    assert sorted(m["to"] for m in sent) == sorted(emails.values())
    ids = {m["step_id"]: m["message_id"] for m in sent}
    assert len(set(ids.values())) == len(emails)  # each step its own message id
    assert all(m["headers"]["Message-ID"] == m["message_id"] for m in sent)
    assert all(per_worker), "both workers should have sent some (else the race was not run)"


def test_a_worker_killed_mid_send_is_replaced_and_only_the_step_in_flight_repeats(shared: DataDir) -> None:
    carts = 6
    inbox = Inbox(stall_first=True)
    port = _free_port()
    # A cap of one message per shopper: the repeat of a step must not be counted against its own first claim.
    config = shared.config(
        "smtp",
        f'[engine]\ndelivery_lease = "3s"\n[guardrails]\ncaps = [[1, "24h"]]\n'
        f'[channels]\nemail = "{smtp_url(port, timeout=600)}"\n{ONE_STEP}',
    )
    with smtp_server(inbox, port):
        emails = abandon_long_ago(shared, config, carts, apply=True)
        first = shared.start_worker(config)
        eventually(lambda: inbox.messages, "the first message to reach DATA")
        time.sleep(0.2)  # not an assertion: lets the worker sit in the stalled send a moment before it dies
        shared.kill(first)
        (in_flight,) = inbox.message_ids()

        shared.start_worker(config)
        settled = eventually(lambda: settled_steps(shared), "every step to be settled after the lease")
        shared.stop_all()

    assert {status for status, _ in settled.values()} == {"sent"}, settled
    counts = Counter(inbox.message_ids())
    assert counts[in_flight] == 2, shared.output()
    assert {k: v for k, v in counts.items() if k != in_flight} == dict.fromkeys(set(counts) - {in_flight}, 1)
    assert len(counts) == carts
    recipients = sorted(str(message_from_bytes(m)["To"]) for m in inbox.messages)
    assert len(set(recipients)) == carts and set(recipients) == set(emails.values())


# -- orders -------------------------------------------------------------------------------------------------


class OrdersMidBatch:
    """An email channel that, on its first message, has the shop side record an order for every given cart.

    The shop side is another engine on the same files (its own connections, as another process would be), so
    the orders commit while this worker holds a claimed batch and is between its two transactions.
    """

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self.on_first: Callable[[], None] = lambda: None

    def send(self, message: OutboundMessage) -> str:
        if not self.sent:
            self.on_first()
        self.sent.append(message)
        return message.message_id


def engine_on(data: Path, config: Path, stack: Stack, start: datetime, senders: dict[str, Any]) -> Engine:
    settings = load_settings(
        config,
        env={},
        data_dir=data,
        clock="manual",
        holdout_share=0.0,
        decisions=DecisionConfig(exploration=0.0),
        **stack.settings,
    )
    return Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, start),
        senders=senders,
        secret=b"test-secret",
    )


def test_an_order_recorded_while_a_worker_is_mid_batch_lets_only_the_send_in_flight_out(
    tmp_path: Path, stack: Stack
) -> None:
    config = tmp_path / "cartrecover.toml"
    config.write_text(ONE_STEP)
    channel = OrdersMidBatch()
    worker = engine_on(tmp_path / "data", config, stack, START, {"email": channel})
    shop_side = engine_on(tmp_path / "data", config, stack, START, {})
    try:
        shop = add_shop(worker, "shop")
        shoppers = {}
        for n in range(260):  # more than one batch (200): the second batch is claimed after the orders
            cart_id, anon = f"cart-{n:04d}", random_id("anon")
            shoppers[cart_id] = anon
            worker.append(
                [
                    identified(
                        store_id=shop.store_id, anonymous_id=anon, email=f"{anon}@example.com", consent={"email": True}
                    ),
                    product_added(item("p1", price=2500), store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id),
                ]
            )
        worker.advance_clock(START + timedelta(minutes=45))  # abandoned at +30 min, reminders planned for +1h30
        early = [c for n, c in enumerate(shoppers) if n % 10 == 0]  # ordered after planning, before any send
        record_orders(shop_side, shop.store_id, {c: shoppers[c] for c in early}, START + timedelta(minutes=50))

        claimed_before_orders: set[str] = set()

        def orders_now() -> None:
            with shop_side.database.read() as uow:
                for cart_id in shoppers:
                    if any(s.status is StepStatus.SENDING for s in uow.outbox.for_cart(shop.store_id, cart_id)):
                        claimed_before_orders.add(cart_id)
            rest = {c: a for c, a in shoppers.items() if c not in early}
            record_orders(shop_side, shop.store_id, rest, START + timedelta(hours=1, minutes=40))

        channel.on_first = orders_now
        worker.advance_clock(START + timedelta(hours=3))

        sent_to = {m.to.removesuffix("@example.com") for m in channel.sent}
        sent_carts = {c for c, a in shoppers.items() if a in sent_to}
        assert len(claimed_before_orders) > 1 and not claimed_before_orders & set(early)
        # Only the send in flight when the orders committed went out; the rest of its batch was withdrawn.
        assert len(channel.sent) == len(sent_carts) == 1
        with worker.database.read() as uow:
            for cart_id in set(shoppers) - sent_carts:
                (step,) = uow.outbox.for_cart(shop.store_id, cart_id)
                assert step.status is StepStatus.CANCELLED, (cart_id, step)
                assert step.reason is not None
                expected = "before sending" if cart_id in claimed_before_orders else "journey stopped"
                assert expected in step.reason, (cart_id, step.reason)
    finally:
        worker.close()
        shop_side.close()


def record_orders(engine: Engine, store_id: int, carts: dict[str, str], at: datetime) -> None:
    """Log an order for each cart (cart id → anonymous id) and apply it, as the lifecycle of another process."""
    engine.append([order_completed(store_id=store_id, anonymous_id=a, cart_id=c, at=at) for c, a in carts.items()])
    while engine.process_pending():
        pass


# -- a provider that is down ----------------------------------------------------------------------------------


def cli(shared: DataDir, config: Path, *args: str) -> str:
    command = [sys.executable, "-m", "cartrecover", *args, "--config", str(config), "--data-dir", str(shared.data)]
    done = subprocess.run(command, capture_output=True, check=False, env=shared.stack.environment(), cwd=shared.root)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


def test_smtp_refusing_connections_delays_sends_then_dead_letters_that_replay_once(shared: DataDir) -> None:
    port = _free_port()  # nothing listens here until the test starts the server: connections are refused
    config = shared.config(
        "down", f'[guardrails]\nmax_attempts = 3\n[channels]\nemail = "{smtp_url(port)}"\n{ONE_STEP}'
    )
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    settings = load_settings(
        config, env={}, data_dir=shared.data, clock="manual", holdout_share=0.0, **shared.stack.settings
    )
    engine = build_engine(settings, start=t0)
    inbox = Inbox()
    try:
        shop = add_shop(engine, "shop")
        first, second = random_id("anon"), random_id("anon")
        for anon, at in ((first, t0), (second, t0 + timedelta(minutes=10))):
            engine.append(
                [
                    identified(
                        store_id=shop.store_id,
                        anonymous_id=anon,
                        email=f"{anon}@example.com",
                        consent={"email": True},
                        at=at,
                    ),
                    product_added(
                        item("p1", price=2500), store_id=shop.store_id, anonymous_id=anon, cart_id=f"cart-{anon}", at=at
                    ),
                ]
            )
        due = t0 + timedelta(minutes=30) + timedelta(hours=1)
        engine.advance_clock(due)  # first attempt: refused
        engine.advance_clock(due + timedelta(minutes=1))  # second attempt, after the first backoff: refused
        assert not inbox.messages
        with smtp_server(inbox, port):  # the provider is back before the third attempt
            engine.advance_clock(due + timedelta(minutes=5))
            assert len(inbox.messages) == 1
            retrying = messages_of(engine, shop.store_id, f"cart-{first}", "retrying")
            assert [when(e["next_attempt"]) for e in retrying] == [due + timedelta(minutes=m) for m in (1, 5)]
            assert all("refused" in e["reason"].lower() or "connect" in e["reason"].lower() for e in retrying), retrying
            assert messages_of(engine, shop.store_id, f"cart-{first}", "sent")

        # The second cart's step is due ten minutes later; its three attempts all meet a closed port.
        for minutes in (10, 11, 15):
            engine.advance_clock(due + timedelta(minutes=minutes))
        (dead,) = json.loads(cli(shared, config, "dead-letters", "list", "--json"))
        assert dead["cart_id"] == f"cart-{second}" and dead["attempts"] == 3 and dead["reason"], dead

        with smtp_server(inbox, port):
            assert "1 dead letter" in cli(shared, config, "dead-letters", "replay", "--all")
            engine.advance_clock(datetime.now(UTC) + timedelta(minutes=1))
            engine.advance_clock(datetime.now(UTC) + timedelta(minutes=2))  # nothing more goes out
        assert json.loads(cli(shared, config, "dead-letters", "list", "--json")) == []
    finally:
        engine.close()

    recipients = Counter(str(message_from_bytes(m)["To"]) for m in inbox.messages)
    assert recipients == {f"{first}@example.com": 1, f"{second}@example.com": 1}
    assert len(set(inbox.message_ids())) == 2


def messages_of(engine: Engine, store_id: int, cart_id: str, status: str) -> list[dict[str, Any]]:
    """The cart's timeline entries about its messages with this status."""
    with engine.database.read() as uow:
        entries = uow.timeline.for_cart(store_id, cart_id)
    return [e for e in entries if e["kind"] == "message" and e["status"] == status]


def when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
