"""Litestar's per-request cost on /v1/track against a bare ASGI callable doing the same work, in process,
and `IngestFastPath` (what `cartrecover serve` answers /v1/* with).

    python bench/asgi_overhead.py

The writer is stubbed (no SQLite, no fsync) so only the request handling is timed; the rate limit is off.
"""

import asyncio
import base64
import json
import tempfile
import time
import uuid
from pathlib import Path

from cartrecover.bootstrap import build_engine
from cartrecover.entrypoints.http import common
from cartrecover.entrypoints.http.app import create_app
from cartrecover.entrypoints.http.ingest import IngestFastPath
from cartrecover.ingest import segment
from cartrecover.settings import StoreConfig, load_settings

tmp = Path(tempfile.mkdtemp())
engine = build_engine(load_settings(None, env={}, data_dir=tmp, clock="manual", rate_limit=0))
store, keys = engine.add_store(StoreConfig(name="s"))
wk = keys["write_key"]
basic = b"Basic " + base64.b64encode(f"{wk}:".encode())
app = create_app(engine, background=False)


class FakeWriter:
    async def append(self, events):
        return [True] * len(events)


def body():
    return json.dumps(
        {
            "type": "track",
            "event": "Product Added",
            "anonymousId": "a1",
            "messageId": str(uuid.uuid4()),
            "timestamp": "2026-01-05T10:00:00.000Z",
            "properties": {"cart_id": "c1", "product_id": "p1", "price": 19.99, "quantity": 1, "name": "Linen shirt"},
            "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        }
    ).encode()


bodies = [body() for _ in range(20000)]


def scope(path):
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", basic),
            (b"content-length", b"300"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


async def minimal(scope, receive, send):
    rt = app.state.runtime
    msg = await receive()
    b = msg["body"]
    headers = dict(scope["headers"])
    key = base64.b64decode(headers[b"authorization"][6:]).decode().split(":")[0]
    st = common.store_for_write_key(rt, key)
    m = segment.read_single(b, "track")
    e = segment.normalise(
        m, "track", store_id=st.store_id, currency=st.currency, sent_at=None, received_at=rt.engine.clock.now()
    )
    await rt.writer.append([e])
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"16")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"success":true}'})


async def run(target, n):
    sent = []

    async def send(m):
        sent.append(m)

    t = time.perf_counter()
    for i in range(n):
        b = bodies[i]

        async def receive(b=b):
            return {"type": "http.request", "body": b, "more_body": False}

        await target(scope("/v1/track"), receive, send)
    dt = time.perf_counter() - t
    assert sent[0]["status"] == 200, sent[:2]
    return dt / n * 1e6


async def main():
    async def lsend(m):
        pass

    # run lifespan
    q = asyncio.Queue()
    await q.put({"type": "lifespan.startup"})

    async def lrecv():
        return await q.get()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, lrecv, lsend))
    await asyncio.sleep(0.2)
    app.state.runtime.writer = FakeWriter()
    fast = IngestFastPath(app)
    for r in range(3):
        print(
            f"round {r}: litestar {await run(app, 10000):.1f} us/req   minimal {await run(minimal, 10000):.1f} us/req"
            f"   IngestFastPath {await run(fast, 10000):.1f} us/req"
        )
    await q.put({"type": "lifespan.shutdown"})
    await task


asyncio.run(main())
