"""Ingest benchmark: a real `cartrecover serve` process, load from a separate process, raw SQLite beside it.

    python bench/ingest.py [--events N] [--seconds S] [--batch-connections C] [--track-connections C[,C...]]
                           [--mode default|ingest-only|both]

Phases, in one run against one server per mode:
  batch-json  `/v1/batch`, 100 events per body, as segment-analytics-python sends them (Basic auth and
              `writeKey` in the body, `sentAt`, uuid4 messageIds)
  batch-gzip  the same events gzipped, as rudder-sdk-python sends them (Basic auth, Content-Encoding: gzip)
  track       single `/v1/track` calls (Product Added), one per request, for `--seconds` at most; once per
              value of `--track-connections` (a sweep: by Little's law latency grows with concurrency)
Then the same rows (`(store_id, message_id, encode_event(event))`) are inserted into a fresh SQLite file with the
same schema and pragmas, one transaction per 100 rows and in one transaction, and the ratios are printed.
Finally the server is stopped and the events table is counted: it must hold exactly the events acknowledged.

The load generator is a small asyncio HTTP/1.1 client (keep-alive, pre-built request bytes) in a child process.
It shares the machine's cores with the server: on 2 cores every figure here is a floor set partly by it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
BATCH_SIZE = 100

# ---------------------------------------------------------------------------------------------- realistic events


def _messages(write_key: str, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` Segment calls shaped by segment-analytics-python itself (send=False), each with its own uuid4."""
    from segment.analytics.client import Client

    client = Client(write_key, send=False, sync_mode=True)
    rng = random.Random(seed)
    templates = [_one_call(client, rng, i) for i in range(min(count, 2_000))]
    out = []
    for i in range(count):
        message = dict(templates[i % len(templates)])
        message["messageId"] = str(uuid.uuid4())
        out.append(message)
    return out


def _one_call(client: Any, rng: random.Random, i: int) -> dict[str, Any]:
    anon = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    user = f"user_{rng.randrange(100_000)}" if rng.random() < 0.4 else None
    cart = f"cart_{rng.randrange(1_000_000)}"
    at = datetime(2026, 1, 5, 10, 0, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400))
    context = {
        "ip": f"203.0.113.{rng.randrange(255)}",
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
        "page": {
            "url": f"https://shop.example.com/products/{rng.randrange(500)}",
            "referrer": "https://www.google.com/",
        },
        "timezone": "Europe/Berlin",
    }
    product = {
        "product_id": f"sku-{rng.randrange(5_000)}",
        "sku": f"SKU-{rng.randrange(5_000):05d}",
        "category": "Apparel",
        "name": rng.choice(["Linen shirt", "Wool scarf", "Canvas tote", "Trail runners"]),
        "brand": "Example",
        "variant": rng.choice(["S", "M", "L"]),
        "price": round(rng.uniform(5, 250), 2),
        "quantity": rng.randint(1, 3),
        "url": "https://shop.example.com/products/linen-shirt",
        "image_url": "https://cdn.example.com/linen-shirt.jpg",
    }
    roll = i % 10
    if roll < 4:
        _, msg = client.track(user, "Product Added", {"cart_id": cart, **product}, context, at, anon)
    elif roll < 5:
        products = [{**product, "product_id": f"sku-{rng.randrange(5_000)}", "position": n} for n in range(3)]
        props = {
            "checkout_id": f"co_{rng.randrange(10**6)}",
            "cart_id": cart,
            "value": 129.5,
            "revenue": 119.5,
            "shipping": 10,
            "tax": 4.2,
            "currency": "USD",
            "products": products,
        }
        _, msg = client.track(user, "Checkout Started", props, context, at, anon)
    elif roll < 8:
        _, msg = client.page(user, "Products", "Linen shirt", {"path": "/products/linen-shirt"}, context, at, anon)
    elif roll < 9:
        traits = {
            "email": f"shopper{rng.randrange(10**6)}@example.com",
            "first_name": "Ada",
            "consent": {"email": True},
        }
        _, msg = client.identify(user or f"user_{rng.randrange(100_000)}", traits, context, at, anon)
    else:
        _, msg = client.track(user, "Product Viewed", product, context, at, anon)
    return dict(json.loads(json.dumps(msg, default=str)))


def _request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Workload:
    """Pre-built request bytes per phase, and how many events each request carries."""

    name: str
    requests: list[bytes]
    events_per_request: int
    connections: int
    seconds: float


def build_workloads(write_key: str, events: int, track_requests: int, args: argparse.Namespace) -> list[Workload]:
    """The three phases' requests, built before the clock starts."""
    basic = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    ua = "analytics-python/2.4.0"
    out = []
    for name in ("batch-json", "batch-gzip"):
        messages = _messages(write_key, events, seed=len(name))
        requests = []
        for start in range(0, len(messages), BATCH_SIZE):
            sent_at = datetime.now(UTC).isoformat()
            headers = {"Content-Type": "application/json", "User-Agent": ua, "Authorization": basic}
            if name == "batch-json":  # segment-analytics-python: writeKey in the body as well as Basic auth
                body = json.dumps(
                    {"batch": messages[start : start + BATCH_SIZE], "sentAt": sent_at, "writeKey": write_key}
                ).encode()
            else:  # rudder-sdk-python: gzip, Basic auth only
                body = gzip.compress(
                    json.dumps({"batch": messages[start : start + BATCH_SIZE], "sentAt": sent_at}).encode()
                )
                headers["Content-Encoding"] = "gzip"
            requests.append(_request("/v1/batch", body, headers))
        out.append(Workload(name, requests, BATCH_SIZE, args.batch_connections, args.seconds))
    for connections in args.track_connections:  # one phase per concurrency, each with its own messageIds
        singles = _messages(write_key, track_requests, seed=99 + connections)
        track = []
        for single in singles:
            m = {
                **single,
                "type": "track",
                "event": "Product Added",
                "properties": {
                    **single.get("properties", {}),
                    "cart_id": "cart_1",
                    "product_id": "sku-1",
                    "price": 19.99,
                },
            }
            m.pop("name", None)
            m.pop("traits", None)
            headers = {"Content-Type": "application/json", "User-Agent": ua, "Authorization": basic}
            track.append(_request("/v1/track", json.dumps(m).encode(), headers))
        out.append(Workload("track", track, 1, connections, args.seconds))
    return out


# ---------------------------------------------------------------------------------------------- load generator

_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        match = _LENGTH.search(self.buffer, 0, end + 2)
        total = end + 4 + (int(match.group(1)) if match else 0)
        if len(self.buffer) < total:
            return
        status = int(self.buffer[9:12])
        del self.buffer[:total]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))


async def _drive(port: int, work: Workload) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    next_index = iter(range(len(work.requests)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + work.seconds

    async def one_connection() -> None:
        _, conn = await loop.create_connection(_Connection, HOST, port)
        try:
            for i in next_index:
                if time.perf_counter() > deadline:
                    return
                conn.waiter = loop.create_future()
                started = time.perf_counter()
                assert conn.transport is not None
                conn.transport.write(work.requests[i])
                status = await conn.waiter
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            assert conn.transport is not None
            conn.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(work.connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "phase": work.name,
        "requests": len(latencies),
        "statuses": statuses,
        "elapsed": elapsed,
        "ok_events": statuses.get(200, 0) * work.events_per_request,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0,
        "connections": work.connections,
    }


def _load_process(port: int, work: Workload, results: Any) -> None:
    results.send(asyncio.run(_drive(port, work)))


def drive(port: int, work: Workload) -> dict[str, Any]:
    """Run one phase from a separate (forked) process, so the server's GIL is not shared with the client's."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_load_process, args=(port, work, child))
    process.start()
    result: dict[str, Any] = parent.recv()
    process.join()
    return result


# ---------------------------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def add_store(data_dir: Path) -> dict[str, Any]:
    """`cartrecover stores add bench --json`: the store and its keys."""
    out = subprocess.run(
        [str(BIN / "cartrecover"), "stores", "add", "bench", "--json", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    keys: dict[str, Any] = json.loads(out.stdout)
    return keys


def start_server(data_dir: Path, port: int, mode: str) -> subprocess.Popen[bytes]:
    """`cartrecover serve` (default: the lifecycle in its own worker process), or with `lifecycle = off` (ingest-only)."""
    env = {**os.environ, "CARTRECOVER_LIFECYCLE": "off" if mode == "ingest-only" else "auto"}
    command = [str(BIN / "cartrecover"), "serve", "--data-dir", str(data_dir), "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"server did not start: {server.stderr.read().decode() if server.stderr else ''}")


def renice_worker(server: subprocess.Popen[bytes], niceness: int) -> int | None:
    """Lower the priority of the lifecycle worker `serve` started (a diagnostic, `--worker-nice`); its pid."""
    marker = f"worker\0--parent-pid\0{server.pid}\0".encode()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes():
                    os.setpriority(os.PRIO_PROCESS, int(proc.name), niceness)
                    return int(proc.name)
            except OSError:
                continue
        time.sleep(0.1)
    return None


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGINT, as Ctrl-C would, and wait for the writer to drain."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# ---------------------------------------------------------------------------------------------- raw SQLite


def engine_rows(workloads: list[Workload], store_id: int, currency: str) -> list[tuple[int, str, bytes]]:
    """Exactly the rows the engine writes for the batch phases: `(store_id, message_id, encode_event(event))`."""
    sys.path.insert(0, str(ROOT / "src"))
    from cartrecover.domain.events import encode_event
    from cartrecover.ingest import segment

    now = datetime.now(UTC)
    rows = []
    for work in workloads:
        if not work.name.startswith("batch"):
            continue
        for request in work.requests:
            body = request.split(b"\r\n\r\n", 1)[1]
            if work.name == "batch-gzip":
                body = gzip.decompress(body)
            messages, sent_at, _ = segment.read_batch(body)
            for i, m in enumerate(messages):
                e = segment.normalise(
                    m, f"batch[{i}]", store_id=store_id, currency=currency, sent_at=sent_at, received_at=now
                )
                rows.append((e.store_id, e.message_id, encode_event(e)))
    return rows


def raw_insert(path: Path, rows: list[tuple[int, str, bytes]], per_commit: int) -> float:
    """Rows per second of executemany into a fresh file (same schema and pragmas), committing every `per_commit`."""
    from importlib.resources import files

    from cartrecover.adapters.sqlite.connections import Connections

    database = Connections(str(path), files("cartrecover.adapters.sqlite").joinpath("log.sql").read_text())
    insert = "INSERT OR IGNORE INTO events (store_id, message_id, body) VALUES (?, ?, ?)"
    started = time.perf_counter()
    for start in range(0, len(rows), per_commit):
        with database.write(lambda conn: conn) as conn:
            conn.executemany(insert, rows[start : start + per_commit])
    elapsed = time.perf_counter() - started
    count = sqlite3.connect(path).execute("SELECT count(*) FROM events").fetchone()[0]
    database.close()
    assert count == len(rows), (count, len(rows))
    return len(rows) / elapsed


# ---------------------------------------------------------------------------------------------- run


def run_mode(mode: str, args: argparse.Namespace) -> None:
    """All phases against one fresh server, then raw SQLite, then the row count."""
    with tempfile.TemporaryDirectory(prefix="cartrecover-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        store = add_store(data_dir)
        t0 = time.perf_counter()
        workloads = build_workloads(store["write_key"], args.events, args.track_requests, args)
        print(
            f"[{mode}] built {sum(len(w.requests) for w in workloads)} requests in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        port = _free_port()
        server = start_server(data_dir, port, mode)
        if args.worker_nice and mode == "default":
            print(f"[{mode}] worker pid {renice_worker(server, args.worker_nice)} at nice {args.worker_nice}")
        results = []
        try:
            for work in workloads:
                results.append(drive(port, work))
                print(f"[{mode}] {results[-1]}", flush=True)
        finally:
            stop_server(server)
        rows_stored = sqlite3.connect(data_dir / "events.db").execute("SELECT count(*) FROM events").fetchone()[0]
        rows = engine_rows(workloads, int(store["store_id"]), "USD")
        raw100 = raw_insert(Path(tmp) / "raw100.db", rows, BATCH_SIZE)
        raw_all = raw_insert(Path(tmp) / "raw-all.db", rows, len(rows))
        _report(mode, results, rows_stored, raw100, raw_all, n_rows=len(rows))


def _report(
    mode: str, results: list[dict[str, Any]], rows_stored: int, raw100: float, raw_all: float, *, n_rows: int
) -> None:
    print(
        f"\n== {mode}: raw SQLite insert of the same {n_rows} batch rows (fresh file, same schema, "
        f"synchronous=FULL): {raw100:,.0f} rows/s committing per 100, {raw_all:,.0f} rows/s in one transaction"
    )
    print(
        f"{'phase':12s} {'conns':>5s} {'requests':>9s} {'events/s':>10s} {'req/s':>8s} {'p50 ms':>7s} "
        f"{'p99 ms':>7s} {'÷raw/100':>8s} {'÷raw/all':>8s}  statuses"
    )
    acked = 0
    for r in results:
        eps = r["ok_events"] / r["elapsed"]
        acked += r["ok_events"]
        print(
            f"{r['phase']:12s} {r['connections']:5d} {r['requests']:9d} {eps:10,.0f} {r['requests'] / r['elapsed']:8,.0f} "
            f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {eps / raw100:8.2f} {eps / raw_all:8.2f}  {r['statuses']}"
        )
    verdict = "OK" if rows_stored == acked else "MISMATCH"
    print(f"rows in events table: {rows_stored}; events acknowledged: {acked}: {verdict}\n", flush=True)
    if rows_stored != acked:
        raise SystemExit(1)


def main() -> None:
    """Parse the options and run the chosen modes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per batch phase (100 per request)")
    parser.add_argument("--track-requests", type=int, default=60_000, help="single /v1/track requests at most")
    parser.add_argument("--seconds", type=float, default=15.0, help="time limit per phase")
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument(
        "--track-connections",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[32],
        help="connections of the track phase; a list (4,8,16,32) runs one track phase per value",
    )
    parser.add_argument(
        "--worker-nice", type=int, default=0, help="diagnostic: renice the lifecycle worker (default mode) to this"
    )
    parser.add_argument("--mode", choices=("default", "ingest-only", "both"), default="both")
    args = parser.parse_args()
    print(
        f"cartrecover ingest benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}"
    )
    for mode in ("default", "ingest-only") if args.mode == "both" else (args.mode,):
        run_mode(mode, args)


if __name__ == "__main__":
    main()
