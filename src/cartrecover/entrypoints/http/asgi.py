"""The ASGI factory the server imports in each worker: settings come from the environment."""

from __future__ import annotations

from litestar import Litestar

from cartrecover.bootstrap import build_engine
from cartrecover.entrypoints.http.app import create_app
from cartrecover.settings import load_settings


def create() -> Litestar:
    """Build settings (CARTRECOVER_CONFIG and CARTRECOVER_* variables), the engine and the app."""
    return create_app(build_engine(load_settings()))
