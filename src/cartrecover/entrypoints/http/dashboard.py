"""`GET /dashboard`: the recovery report as a page, for people.

The page and its assets are static files of the package and carry no data: the page asks for the store's admin
key, keeps it in the tab's sessionStorage, and reads the JSON API with it as a Bearer token. The charting
library (Chart.js) is copied into `static/vendor/` by `make install` from `dashboard/package-lock.json`, so
nothing is fetched from elsewhere at run time; a strict Content-Security-Policy says so to the browser too.
"""

from __future__ import annotations

from importlib import resources

from litestar import Response, get
from litestar.params import FromPath

from cartrecover.entrypoints.http.common import json_response

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# The only files served: name in the URL → (file under static/, media type).
_ASSETS = {
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "chart.umd.min.js": ("vendor/chart.umd.min.js", "text/javascript; charset=utf-8"),
}


def _static(path: str) -> bytes | None:
    """A file of the package's static folder; kept once read, looked for again while missing (not built yet)."""
    found = _read.get(path)
    if found is None:
        file = resources.files("cartrecover.entrypoints.http").joinpath("static", *path.split("/"))
        if not file.is_file():
            return None
        found = _read[path] = file.read_bytes()
    return found


_read: dict[str, bytes] = {}


@get("/dashboard", include_in_schema=False)
async def dashboard() -> Response[bytes]:
    """The page: a form for the admin key, then the report's figures and charts, carts and their timelines."""
    body = _static("dashboard.html")
    assert body is not None, "dashboard.html is part of the package"
    return Response(body, media_type="text/html; charset=utf-8", headers={**_HEADERS, "Cache-Control": "no-store"})


@get("/dashboard/assets/{name:str}", include_in_schema=False)
async def dashboard_asset(name: FromPath[str]) -> Response[bytes]:
    """The page's script, style sheet and charting library (only these names)."""
    found = _ASSETS.get(name)
    body = _static(found[0]) if found else None
    if found is None or body is None:
        missing = "the charting library was not installed: run `make install`" if found else f"no asset {name!r}"
        return json_response({"code": "not_found", "message": missing}, 404)
    return Response(body, media_type=found[1], headers={**_HEADERS, "Cache-Control": "public, max-age=300"})


ROUTES = [dashboard, dashboard_asset]
