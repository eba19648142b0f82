"""The composition root: the only module that chooses and imports adapters.

Backends are chosen by URL scheme through a small table of lazily imported factories, so an installation
without the PostgreSQL or NATS extras never imports their drivers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime

from cartrecover.engine import Engine
from cartrecover.errors import ConfigError
from cartrecover.ports.clock import Clock
from cartrecover.ports.unit_of_work import Database
from cartrecover.settings import Settings

_DATABASES: dict[str, tuple[str, str]] = {
    "sqlite": ("cartrecover.adapters.sqlite", "SqliteDatabase"),
}


def open_database(settings: Settings) -> Database:
    """The store named by `database_url`."""
    url = settings.resolved_database_url
    scheme = url.split(":", 1)[0]
    if scheme not in _DATABASES:
        raise ConfigError(f"no backend for {scheme!r} URLs (known: {', '.join(sorted(_DATABASES))})")
    module, name = _DATABASES[scheme]
    factory: Callable[..., Database] = getattr(importlib.import_module(module), name).from_url
    return factory(url, durability=settings.durability)


def make_clock(settings: Settings, start: datetime | None = None) -> Clock:
    """The system clock, or a manual one starting at `start` (default: now)."""
    from cartrecover.adapters.clock import ManualClock, SystemClock

    if settings.clock == "manual":
        return ManualClock(start)
    if settings.clock == "system":
        return SystemClock()
    raise ConfigError(f"clock must be 'system' or 'manual', not {settings.clock!r}")


def build_engine(settings: Settings, start: datetime | None = None) -> Engine:
    """An engine wired from the settings, with the configured stores created or updated."""
    engine = Engine(settings, open_database(settings), make_clock(settings, start))
    engine.sync_configured_stores()
    return engine
