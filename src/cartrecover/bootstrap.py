"""The composition root: the only module that chooses and imports adapters.

Backends are chosen by URL scheme through a small table of lazily imported factories, so an installation
without the PostgreSQL or NATS extras never imports their drivers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cartrecover.engine import Engine
from cartrecover.errors import ConfigError
from cartrecover.ports.clock import Clock
from cartrecover.ports.eventlog import EventLog
from cartrecover.ports.unit_of_work import Database
from cartrecover.settings import Settings

_DATABASES: dict[str, tuple[str, str]] = {
    "sqlite": ("cartrecover.adapters.sqlite", "SqliteDatabase"),
}
_EVENT_LOGS: dict[str, tuple[str, str]] = {
    "sqlite": ("cartrecover.adapters.sqlite", "SqliteEventLog"),
}


def _open(table: dict[str, tuple[str, str]], url: str, what: str, settings: Settings) -> Any:
    scheme = url.split(":", 1)[0]
    if scheme not in table:
        raise ConfigError(f"no {what} backend for {scheme!r} URLs (known: {', '.join(sorted(table))})")
    module, name = table[scheme]
    factory: Callable[..., Any] = getattr(importlib.import_module(module), name).from_url
    return factory(url, durability=settings.durability)


def open_database(settings: Settings) -> Database:
    """The state store named by `database_url`."""
    database: Database = _open(_DATABASES, settings.resolved_database_url, "state store", settings)
    return database


def open_event_log(settings: Settings) -> EventLog:
    """The event log named by `event_log_url`."""
    log: EventLog = _open(_EVENT_LOGS, settings.resolved_event_log_url, "event log", settings)
    return log


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
    engine = Engine(settings, open_database(settings), open_event_log(settings), make_clock(settings, start))
    engine.sync_configured_stores()
    return engine
