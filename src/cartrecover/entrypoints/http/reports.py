"""`GET /api/v1/reports/recovery`: what the journeys recovered and earned against the holdout, for one store.

Both handlers run in a worker thread: a month's report reads every cart of the period (about a second on a store
of 1,500 visitors a day), and the server's event loop must go on acknowledging events meanwhile."""

from __future__ import annotations

from datetime import timedelta

from litestar import Request, Response, get
from litestar.params import Parameter

from cartrecover import measure
from cartrecover.entrypoints.http.audiences import window
from cartrecover.entrypoints.http.common import admin_store, json_response, runtime
from cartrecover.errors import InvalidEvent
from cartrecover.measure.daily import MAX_DAYS, daily, series_as_json

_DOC = {"tags": ["api"], "security": [{"adminKey": []}]}


@get(
    "/api/v1/reports/recovery",
    summary="Recovery report: holdout lift, revenue, costs, ROI",
    sync_to_thread=True,
    **_DOC,  # type: ignore[arg-type]
)
def recovery(
    request: Request,  # type: ignore[type-arg]
    since: str | None = Parameter(
        default=None, description="ISO-8601; carts abandoned from then (default: 30 days before `until`)"
    ),
    until: str | None = Parameter(default=None, description="ISO-8601; carts abandoned before then (default: now)"),
) -> Response[bytes]:
    """Carts abandoned in [since, until): treated and holdout figures, incremental ones with 95 % intervals,
    costs, net incremental revenue and ROI, and last-touch breakdowns per channel, step and incentive."""
    store = admin_store(request)
    rt = runtime(request)
    start, end = window(since, until, rt.engine.clock.now())
    return json_response(measure.as_json(rt.engine.recovery_report(store, start, end)))


@get(
    "/api/v1/reports/recovery/daily",
    summary="The recovery report day by day: funnels, cumulative lift",
    sync_to_thread=True,
    **_DOC,  # type: ignore[arg-type]
)
def recovery_daily(
    request: Request,  # type: ignore[type-arg]
    since: str | None = Parameter(
        default=None, description="ISO-8601; carts abandoned from then (default: 30 days before `until`)"
    ),
    until: str | None = Parameter(default=None, description="ISO-8601; carts abandoned before then (default: now)"),
) -> Response[bytes]:
    """Every day of [since, until) in the store's time zone: the funnel of treated and holdout carts abandoned
    that day, and the incremental revenue (95 % interval) of the carts abandoned up to its end."""
    store = admin_store(request)
    rt = runtime(request)
    start, end = window(since, until, rt.engine.clock.now())
    if end - start > timedelta(days=MAX_DAYS):
        raise InvalidEvent(f"the window is limited to {MAX_DAYS} days", code="invalid_query")
    with rt.engine.database.read() as uow:
        series = daily(uow, store.store_id, store.currency, timezone=store.timezone, since=start, until=end)
    return json_response(series_as_json(series))


ROUTES = [recovery, recovery_daily]
