"""`GET /api/v1/audiences/abandoners`: the store's retargetable abandoners, hashed, as JSON or CSV."""

from __future__ import annotations

from datetime import datetime, timedelta

from litestar import Request, Response, get
from litestar.params import Parameter

from cartrecover.deliver import audiences
from cartrecover.entrypoints.http.common import admin_store, json_response, runtime
from cartrecover.errors import InvalidEvent
from cartrecover.ingest.timestamps import parse_timestamp

DEFAULT_WINDOW = timedelta(days=30)
_DOC = {"tags": ["api"], "security": [{"adminKey": []}]}


def window(since: str | None, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) from ISO-8601 texts; until defaults to now and since to 30 days before until."""
    end = parse_timestamp(until, "until") if until else now
    start = parse_timestamp(since, "since") if since else end - DEFAULT_WINDOW
    if start >= end:
        raise InvalidEvent("since must be before until", code="invalid_query")
    return start, end


@get("/api/v1/audiences/abandoners", summary="Abandoners to retarget, hashed", **_DOC)  # type: ignore[arg-type]
async def abandoners(
    request: Request,  # type: ignore[type-arg]
    since: str | None = Parameter(default=None, description="ISO-8601; default: 30 days before `until`"),
    until: str | None = Parameter(default=None, description="ISO-8601; default: now"),
    format: str = Parameter(default="json", description="json or csv"),
) -> Response[bytes]:
    """Shoppers whose carts were abandoned in the window and who may be targeted: SHA-256 of email and phone."""
    store = admin_store(request)
    if format not in ("json", "csv"):
        raise InvalidEvent("format must be json or csv", code="invalid_query")
    rt = runtime(request)
    start, end = window(since, until, rt.engine.clock.now())
    with rt.engine.database.read() as uow:
        members = audiences.abandoners(
            uow, store.store_id, start, end, require_ads_consent=rt.engine.settings.guardrails.require_ads_consent
        )
    if format == "csv":
        return Response(
            audiences.to_csv(members).encode(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="abandoners-{store.store_id}.csv"'},
        )
    return json_response({"since": start, "until": end, "count": len(members), "members": audiences.to_json(members)})


ROUTES = [abandoners]
