"""Operations: health, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from cartrecover.entrypoints.http.common import json_response, runtime
from cartrecover.ingest import segment


class Metrics:
    """The process's Prometheus collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "cartrecover_ingested_events", "Events accepted by ingest", ["store", "result"], registry=self.registry
        )
        self.rejected = Counter(
            "cartrecover_rejected_requests", "Requests refused with a 4xx, by reason", ["code"], registry=self.registry
        )
        self.lag = Gauge("cartrecover_lifecycle_lag_events", "Logged events not yet applied", registry=self.registry)
        self.carts = Gauge("cartrecover_carts", "Carts by status", ["status"], registry=self.registry)
        self.steps = Gauge(
            "cartrecover_journey_steps",
            "Journey steps by status (sent, skipped, dead, …)",
            ["status"],
            registry=self.registry,
        )


@get("/healthz", summary="Liveness and readiness", tags=["ops"])
async def healthz(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """200 when the database answers; reports the lifecycle's lag behind the log."""
    rt = runtime(request)
    lag = rt.engine.lag()
    return json_response({"status": "ok", "lifecycle_lag": lag, "clock": rt.engine.clock.now()})


@get("/metrics", summary="Prometheus metrics", tags=["ops"])
async def metrics(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """Counters and gauges in Prometheus' text format."""
    rt = runtime(request)
    collectors: Metrics = request.app.state.metrics
    collectors.lag.set(rt.engine.lag())
    with rt.engine.database.read() as uow:
        counts = uow.carts.count_by_status()
        steps = uow.outbox.count_by_status()
    for status, count in counts.items():
        collectors.carts.labels(status=status).set(count)
    for status, count in steps.items():
        collectors.steps.labels(status=status).set(count)
    return Response(generate_latest(collectors.registry), media_type=CONTENT_TYPE_LATEST)


@get("/openapi.json", summary="This API's OpenAPI document", tags=["ops"], include_in_schema=False)
async def openapi(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """The OpenAPI 3.1 document, with the ingest bodies described from the same msgspec types that parse them."""
    cached = getattr(request.app.state, "openapi_document", None)
    if cached is None:
        cached = request.app.state.openapi_document = msgspec.json.encode(
            document(request.app.openapi_schema.to_schema())
        )
    return Response(cached, media_type="application/json")


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add what Litestar cannot see (bodies read raw for speed and exact decimals) to its generated document."""
    (_, single_schema), components = msgspec.json.schema_components(
        [segment.Batch, segment.Message], ref_template="#/components/schemas/{name}"
    )
    components["Raw"] = {"type": "object", "description": "one Segment call (see Message)"}
    batch_ref = {"$ref": "#/components/schemas/Batch"}
    schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
    schema["components"]["securitySchemes"] = {
        "writeKeyBasic": {"type": "http", "scheme": "basic", "description": "write key as username, empty password"},
        "adminKey": {"type": "http", "scheme": "bearer", "description": "the store's admin key"},
    }
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if path == "/v1/batch":
                op["requestBody"] = _json_body(batch_ref)
            elif path.startswith("/v1/"):
                op["requestBody"] = _json_body(single_schema)
            elif path == "/api/v1/clock" and method == "post":
                op["requestBody"] = _json_body(
                    {
                        "type": "object",
                        "required": ["now"],
                        "properties": {"now": {"type": "string", "format": "date-time"}},
                    }
                )
            op.setdefault("responses", {}).update(_ERRORS)
    return schema


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        }
    }
}
_ERRORS = {
    str(code): {"description": text, **_ERROR}
    for code, text in (
        (400, "Bad input; nothing was stored"),
        (401, "Missing or wrong key"),
        (404, "Not found"),
        (409, "Conflict"),
        (413, "Over the size limits"),
        (415, "The body is not JSON (or not gzip)"),
        (429, "Over the store's rate; see Retry-After"),
        (503, "Storage unavailable; retry"),
    )
}

ROUTES = [healthz, metrics, openapi]
