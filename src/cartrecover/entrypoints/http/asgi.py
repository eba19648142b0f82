"""The ASGI factory the server imports in each worker: settings come from the environment."""

from __future__ import annotations

from cartrecover.bootstrap import build_engine
from cartrecover.entrypoints.http.app import create_app
from cartrecover.entrypoints.http.ingest import IngestFastPath
from cartrecover.settings import load_settings


def create() -> IngestFastPath:
    """Build settings (CARTRECOVER_CONFIG and CARTRECOVER_* variables), the engine and the app.

    The ingest routes are served by a thin layer in front of the Litestar app (see `ingest.IngestFastPath`).
    """
    settings = load_settings()
    return IngestFastPath(create_app(build_engine(settings), background=settings.lifecycle_mode == "in-process"))
