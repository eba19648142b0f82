"""Scale-out benchmark: ingest and lifecycle throughput with 1, 2 and 4 worker processes on PostgreSQL + NATS.

    python bench/scale.py [--database URL] [--nats URL] [--events N] [--stores S] [--partitions P]
                          [--workers 1,2,4] [--rounds R]

For each worker count, in a PostgreSQL schema and a NATS stream of its own (created, dropped afterwards):

  drain    the workers (started, holding their share of the P partitions, then stopped with SIGSTOP) get N events
           appended straight to the log; SIGCONT, and the clock runs until the lifecycle's lag is 0: the rate at
           which W workers apply a backlog, with nothing else running.
  ingest   `cartrecover serve` (API only: `lifecycle = off`) takes N more events over HTTP (`/v1/batch`, 100 events
           per body, 4 connections from a load process) while the W workers apply them: the rate of acknowledged
           events, and end to end, from the first request until the lag is 0.

Events are sessions on S stores (`identify` with an email, two `Product Added`, `Cart Viewed`), spread evenly, so
the P partitions (by store) carry equal work. During the drain the CPU time of the workers, of PostgreSQL's
processes, of nats-server and of everything else on the machine is read from /proc: on 2 cores it shows where the
ceiling is. Rounds run the worker counts in alternating order (1,2,4 then 4,2,1) so drift in the machine's load
does not favour one count; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
BATCH = 100
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- events


def sessions(write_keys: list[str], count: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """`count` Segment calls as (write key, calls) bodies of BATCH calls each; sessions of 4 calls, store by store."""
    now = datetime.now(UTC).isoformat()
    calls: list[tuple[str, dict[str, Any]]] = []
    n = 0
    while len(calls) < count:
        key = write_keys[n % len(write_keys)]
        anon, cart = str(uuid.uuid4()), f"cart-{uuid.uuid4().hex[:12]}"
        base = {"anonymousId": anon, "timestamp": now}
        calls += [
            (key, {**base, "type": "identify", "traits": {"email": f"{anon[:8]}@example.com"}}),
            *[
                (key, {**base, "type": "track", "event": "Product Added", "properties": product})
                for product in (
                    {"cart_id": cart, "product_id": "p1", "price": 19.99, "quantity": 1},
                    {"cart_id": cart, "product_id": "p2", "price": 5.0, "quantity": 2},
                )
            ],
            (key, {**base, "type": "track", "event": "Cart Viewed", "properties": {"cart_id": cart}}),
        ]
        n += 1
    for _, call in calls:
        call["messageId"] = str(uuid.uuid4())
    by_key: dict[str, list[dict[str, Any]]] = {}
    for key, call in calls[:count]:
        by_key.setdefault(key, []).append(call)
    bodies = []
    for key, mine in by_key.items():
        bodies += [(key, mine[i : i + BATCH]) for i in range(0, len(mine), BATCH)]
    return bodies


# ---------------------------------------------------------------------------------------------- processes


@dataclass
class Stack:
    """One worker count's backends, server and workers."""

    database_url: str
    event_log_url: str
    root: Path
    partitions: int
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    server: subprocess.Popen[bytes] | None = None
    port: int = 0

    def env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CARTRECOVER_")}
        return clean | {
            "CARTRECOVER_DATABASE_URL": self.database_url,
            "CARTRECOVER_EVENT_LOG_URL": self.event_log_url,
            "CARTRECOVER_DATA_DIR": str(self.root / "data"),
            "CARTRECOVER_WORKER_PARTITIONS": str(self.partitions),
            "CARTRECOVER_WORKER_LEASE": "3s",  # a heartbeat a second: the workers share the partitions out sooner
            "CARTRECOVER_HOLDOUT_SHARE": "0",
            # Full priority: on a machine shared with other work a niced worker measures that work, not itself.
            "CARTRECOVER_WORKER_NICE": "0",
        }

    def start_workers(self, count: int) -> None:
        for n in range(count):
            with (self.root / f"worker-{n}.log").open("wb") as log:
                self.workers.append(
                    subprocess.Popen(
                        [str(BIN / "cartrecover"), "worker", "--config", str(self.root / "bench.toml")],
                        env=self.env(),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

    def start_server(self) -> None:
        self.port = _free_port()
        env = self.env() | {"CARTRECOVER_LIFECYCLE": "off", "CARTRECOVER_RATE_LIMIT": "1000000"}
        command = [
            str(BIN / "cartrecover"),
            "serve",
            "--config",
            str(self.root / "bench.toml"),
            "--port",
            str(self.port),
        ]
        with (self.root / "server.log").open("wb") as log:
            self.server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"server did not start: {(self.root / 'server.log').read_text()[-2000:]}")

    def signal_workers(self, signum: int) -> None:
        for worker in self.workers:
            os.kill(worker.pid, signum)

    def stop(self) -> None:
        for process in [*self.workers, *([self.server] if self.server else [])]:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.send_signal(signal.SIGINT if process is self.server else signal.SIGTERM)
        for process in [*self.workers, *([self.server] if self.server else [])]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def backends(database: str, nats_url: str) -> Iterator[tuple[str, str]]:
    """A new PostgreSQL schema (migrated) and a new NATS stream name; both dropped afterwards."""
    import psycopg

    from cartrecover.adapters.postgres import PostgresDatabase

    schema, stream = f"bench_{uuid.uuid4().hex[:12]}", f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in database else "?"
    url = f"{database}{sep}{urlencode({'options': f'-csearch_path={schema}'})}"
    try:
        PostgresDatabase.migrate(url)
        yield url, f"{nats_url.rstrip('/')}/?stream={stream}"
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
        asyncio.run(_delete_streams(nats_url, stream, f"{stream}_scrubbed"))


async def _delete_streams(url: str, *streams: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url)
    try:
        for stream in streams:
            with suppress(NotFoundError):
                await nc.jsm().delete_stream(stream)
    finally:
        await nc.close()


# ---------------------------------------------------------------------------------------------- CPU from /proc


def cpu_used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds between two snapshots by group (processes that ended in between are not counted)."""
    groups = {"workers": 0.0, "postgres": 0.0, "nats-server": 0.0, "other": 0.0}
    for pid, (group, seconds) in after.items():
        groups[group] += seconds - before.get(pid, (group, 0.0))[1]
    return {group: round(seconds, 2) for group, seconds in groups.items()}


def cpu_by_process(workers: set[int]) -> dict[int, tuple[str, float]]:
    """pid → (group, CPU seconds so far): the workers, PostgreSQL, nats-server or other."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        pid = int(proc.name)
        group = "workers" if pid in workers else comm if comm in ("postgres", "nats-server") else "other"
        found[pid] = (group, seconds)
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# ---------------------------------------------------------------------------------------------- load


async def _post_all(port: int, bodies: list[tuple[str, list[dict[str, Any]]]], connections: int) -> int:
    import httpx

    queue: asyncio.Queue[tuple[str, list[dict[str, Any]]]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    done = 0

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal done
        while not queue.empty():
            key, batch = queue.get_nowait()
            response = await client.post("/v1/batch", json={"batch": batch}, auth=(key, ""))
            if response.status_code != 200:
                raise SystemExit(f"ingest answered {response.status_code}: {response.text}")
            done += len(batch)

    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=120) as client:
        await asyncio.gather(*(one(client) for _ in range(connections)))
    return done


def _load(port: int, bodies: list[tuple[str, list[dict[str, Any]]]], out: Any) -> None:
    started = time.perf_counter()
    events = asyncio.run(_post_all(port, bodies, 4))
    out.put((events, time.perf_counter() - started))


# ---------------------------------------------------------------------------------------------- one worker count


def wait_for(check: Any, what: str, within: float = 600) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.2)


def balanced(stack: Stack, observer: Any, count: int) -> bool:
    """Whether each of the `count` workers holds its share of the partitions."""
    now = time.time_ns() // 1000
    with observer.database.read() as uow:
        alive = uow.leases.workers("lifecycle", now)
    if len(alive) != count:
        return False
    import psycopg

    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute("SELECT owner, count(*) FROM partition_leases WHERE expires_us > %s GROUP BY owner", (now,))
        held = sorted(n for _, n in rows)
    share = -(-stack.partitions // count)
    return sum(held) == stack.partitions and len(held) == count and max(held) <= share


def run_count(count: int, args: argparse.Namespace) -> dict[str, Any]:
    from cartrecover.bootstrap import build_engine
    from cartrecover.settings import StoreConfig, load_settings

    with backends(args.database, args.nats) as (database_url, event_log_url), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bench.toml").write_text('[channels]\nemail = "null"\nsms = "null"\npush = "null"\n')
        stack = Stack(database_url, event_log_url, root, args.partitions)
        settings = load_settings(
            root / "bench.toml",
            env={},
            data_dir=root / "data",
            database_url=database_url,
            event_log_url=event_log_url,
            clock="manual",
        )
        observer = build_engine(settings)
        keys = [observer.add_store(StoreConfig(name=f"bench-{n}"))[1]["write_key"] for n in range(args.stores)]
        try:
            stack.start_workers(count)
            wait_for(lambda: balanced(stack, observer, count), f"{count} workers to share the partitions")
            result = {"workers": count, **drain(stack, observer, keys, args), **ingest(stack, observer, keys, args)}
        finally:
            stack.stop()
            observer.close()
        return result


def drain(stack: Stack, observer: Any, keys: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Append a backlog straight to the log with the workers stopped, then time them applying it."""
    from cartrecover.ingest import segment

    stack.signal_workers(signal.SIGSTOP)
    stores = {store.write_key: store for store in observer.stores.all()}
    for key, batch in sessions(keys, args.events):
        messages, sent_at, _ = segment.read_batch(json.dumps({"batch": batch}).encode())
        store, now = stores[key], datetime.now(UTC)
        observer.append(
            [
                segment.normalise(
                    m, "", store_id=store.store_id, currency=store.currency, sent_at=sent_at, received_at=now
                )
                for m in messages
            ]
        )
    pids = {w.pid for w in stack.workers}
    cpu_before, busy_before = cpu_by_process(pids), machine_busy()
    started = time.perf_counter()
    stack.signal_workers(signal.SIGCONT)
    wait_for(lambda: observer.lag() == 0, "the backlog to be applied")
    seconds = time.perf_counter() - started
    cpu_after, busy_after = cpu_by_process(pids), machine_busy()
    cpu = cpu_used(cpu_before, cpu_after)
    cores = (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1]) * os.cpu_count()  # type: ignore[operator]
    return {
        "drain_events_s": round(args.events / seconds),
        "drain_s": round(seconds, 2),
        "cpu_s": cpu,
        "cores_busy": round(cores, 2),
    }


def ingest(stack: Stack, observer: Any, keys: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Post events over HTTP while the workers apply them: acknowledged events/s, and end to end until lag 0."""
    stack.start_server()
    bodies = sessions(keys, args.events)
    results: Any = multiprocessing.get_context("spawn").Queue()
    load = multiprocessing.get_context("spawn").Process(target=_load, args=(stack.port, bodies, results))
    started = time.perf_counter()
    load.start()
    events, posting = results.get(timeout=1200)
    load.join()
    wait_for(lambda: observer.lag() == 0, "every ingested event to be applied")
    end_to_end = time.perf_counter() - started
    return {"ingest_events_s": round(events / posting), "e2e_events_s": round(events / end_to_end)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--stores", type=int, default=8)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    print(
        f"{args.events} events per phase on {args.stores} stores, {args.partitions} partitions, {os.cpu_count()} cores"
    )
    rows = []
    for round_ in range(args.rounds):
        for count in counts if round_ % 2 == 0 else counts[::-1]:
            row = run_count(count, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\nworkers  drain ev/s  (×1 worker)  ingest ev/s  end-to-end ev/s  (×1 worker)  cores busy in drain")
    for count in counts:
        mine = [r for r in rows if r["workers"] == count]
        base = [r for r in rows if r["workers"] == counts[0]]
        drain_ = sum(r["drain_events_s"] for r in mine) / len(mine)
        e2e = sum(r["e2e_events_s"] for r in mine) / len(mine)
        drain_base = sum(r["drain_events_s"] for r in base) / len(base)
        e2e_base = sum(r["e2e_events_s"] for r in base) / len(base)
        ingest_ = sum(r["ingest_events_s"] for r in mine) / len(mine)
        cores = sum(r["cores_busy"] for r in mine) / len(mine)
        print(
            f"{count:>7}  {drain_:>10.0f}  {drain_ / drain_base:>11.2f}  {ingest_:>11.0f}  {e2e:>15.0f}"
            f"  {e2e / e2e_base:>11.2f}  {cores:>19.2f}"
        )


if __name__ == "__main__":
    main()
