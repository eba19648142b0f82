"""Segment-compatible ingest: `/v1/track|identify|page|screen|group|alias|batch`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from cartrecover.entrypoints.http.common import OK, basic_username, read_body, runtime, store_for_write_key
from cartrecover.ingest import segment

_DOC = {"tags": ["ingest"], "security": [{"writeKeyBasic": []}]}


@post("/v1/batch", status_code=200, summary="Send a batch of Segment calls", **_DOC)  # type: ignore[arg-type]
async def batch(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """Up to 2,500 events and 500 KB; all are stored, or none (a 4xx names the bad one)."""
    rt = runtime(request)
    header_key = basic_username(request)
    store = store_for_write_key(rt, header_key) if header_key is not None else None
    messages, sent_at, body_key = segment.read_batch(await read_body(request))
    store = store or store_for_write_key(rt, body_key)
    now = rt.engine.clock.now()
    events = [
        segment.normalise(
            m, f"batch[{i}]", store_id=store.store_id, currency=store.currency, sent_at=sent_at, received_at=now
        )
        for i, m in enumerate(messages)
    ]
    if events:
        await rt.writer.append(events)
    return OK


def _single(kind: str) -> Any:
    async def handler(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
        rt = runtime(request)
        header_key = basic_username(request)
        store = store_for_write_key(rt, header_key) if header_key is not None else None
        message = segment.read_single(await read_body(request, segment.MAX_EVENT_BYTES), kind)
        store = store or store_for_write_key(rt, message.write_key)
        event = segment.normalise(
            message,
            kind,
            store_id=store.store_id,
            currency=store.currency,
            sent_at=None,
            received_at=rt.engine.clock.now(),
        )
        await rt.writer.append([event])
        return OK

    handler.__name__ = handler.__qualname__ = f"ingest_{kind}"
    handler.__doc__ = f"One Segment `{kind}` call (32 KB at most)."
    return post(f"/v1/{kind}", status_code=200, summary=f"Send one {kind} call", **_DOC)(handler)  # type: ignore[arg-type]


ROUTES = [batch, *(_single(kind) for kind in ("track", "identify", "page", "screen", "group", "alias"))]
