"""The ASGI application: routes, error mapping and the background work of one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

from cartrecover import __version__
from cartrecover.engine import Engine
from cartrecover.entrypoints.http import (
    api,
    audiences,
    dashboard,
    ingest,
    ops,
    push,
    reports,
    tracking,
    twilio,
    webhooks,
)
from cartrecover.entrypoints.http.common import Runtime, error_response, json_response
from cartrecover.entrypoints.http.ops import Metrics
from cartrecover.errors import CartRecoverError
from cartrecover.ingest.ratelimit import RateLimiter
from cartrecover.writer import Writer

log = logging.getLogger("cartrecover")


def create_app(engine: Engine, *, background: bool = True) -> Litestar:
    """The app for one engine; `background` runs the lifecycle consumer and, on the system clock, the timers."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        writer = Writer(engine, on_appended=lambda: _wake_from_thread(loop, wake))
        settings = engine.settings
        app.state.runtime = Runtime(engine, writer, RateLimiter(settings.rate_limit, settings.rate_burst))
        tasks = [asyncio.create_task(_consume(engine, writer, wake))] if background else []
        if background and not engine.clock.manual:
            tasks.append(asyncio.create_task(_tick(engine, writer, settings.tick)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()

    app = Litestar(
        route_handlers=[
            *ingest.ROUTES,
            *push.ROUTES,
            *webhooks.ROUTES,
            *twilio.ROUTES,
            *api.ROUTES,
            *audiences.ROUTES,
            *reports.ROUTES,
            *tracking.ROUTES,
            *dashboard.ROUTES,
            *ops.ROUTES,
        ],
        lifespan=[lifespan],
        exception_handlers={CartRecoverError: _known_error, HTTPException: _http_error, Exception: _unexpected},
        openapi_config=OpenAPIConfig(title="cartrecover", version=__version__, path="/schema"),
        request_max_body_size=2 * 1024 * 1024,
        logging_config=None,
    )
    app.state.metrics = Metrics()
    return app


def _wake_from_thread(loop: asyncio.AbstractEventLoop, wake: asyncio.Event) -> None:
    loop.call_soon_threadsafe(wake.set)


async def _consume(engine: Engine, writer: Writer, wake: asyncio.Event) -> None:
    """Apply logged events to carts as soon as they are appended (and whatever was left from before)."""
    while True:
        try:
            while await writer.call(engine.process_pending):
                pass
        except CartRecoverError:
            log.exception("lifecycle failed; retrying in 1 s")
            await asyncio.sleep(1)
            continue
        await wake.wait()
        wake.clear()


async def _tick(engine: Engine, writer: Writer, every: float) -> None:
    """On the system clock, fire due timers every `every` seconds."""
    while True:
        try:
            while await writer.call(lambda: engine.fire_due(engine.clock.now())):
                pass
        except CartRecoverError:
            log.exception("timer sweep failed; retrying")
        await asyncio.sleep(every)


def _known_error(request: Request, exc: CartRecoverError) -> Response[bytes]:  # type: ignore[type-arg]
    if exc.status < 500:
        request.app.state.metrics.rejected.labels(code=exc.code).inc()
    return error_response(exc)


def _http_error(request: Request, exc: HTTPException) -> Response[bytes]:  # type: ignore[type-arg]
    code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    status = exc.status_code if exc.status_code < 500 else 400
    message = str(exc.detail)
    extra = getattr(exc, "extra", None)
    if extra:
        message = f"{message}: {extra}"
    return json_response({"code": code.get(status, "invalid_request"), "message": message}, status)


def _unexpected(request: Request, exc: Exception) -> Response[bytes]:  # type: ignore[type-arg]
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_response({"code": "internal", "message": "internal error; it has been logged"}, 500)
