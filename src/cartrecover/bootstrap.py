"""The composition root: the only module that chooses and imports adapters.

Backends are chosen by URL scheme through a small table of lazily imported factories, so an installation
without the PostgreSQL, NATS or Redis extras never imports their drivers.
"""

from __future__ import annotations

import importlib
import os
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cartrecover.engine import Engine
from cartrecover.errors import ConfigError
from cartrecover.ports.cache import Cache
from cartrecover.ports.channels import Sender
from cartrecover.ports.clock import Clock
from cartrecover.ports.coupons import CouponIssuer
from cartrecover.ports.eventlog import EventLog
from cartrecover.ports.unit_of_work import Database
from cartrecover.settings import Settings

if TYPE_CHECKING:
    from cartrecover.adapters.migrations import Migrated

_DATABASES: dict[str, tuple[str, str]] = {
    "sqlite": ("cartrecover.adapters.sqlite", "SqliteDatabase"),
    "postgresql": ("cartrecover.adapters.postgres", "PostgresDatabase"),
    "postgres": ("cartrecover.adapters.postgres", "PostgresDatabase"),
}
_EVENT_LOGS: dict[str, tuple[str, str]] = {
    "nats": ("cartrecover.adapters.nats", "NatsEventLog"),
    "sqlite": ("cartrecover.adapters.sqlite", "SqliteEventLog"),
}

_CACHES: dict[str, tuple[str, str]] = {
    "memory": ("cartrecover.adapters.memory", "MemoryCache"),
    "redis": ("cartrecover.adapters.redis", "RedisCache"),
    "rediss": ("cartrecover.adapters.redis", "RedisCache"),
    "unix": ("cartrecover.adapters.redis", "RedisCache"),
}


def _backend(table: dict[str, tuple[str, str]], url: str, what: str) -> Any:
    scheme = url.split(":", 1)[0]
    if scheme not in table:
        raise ConfigError(f"no {what} backend for {scheme!r} URLs (known: {', '.join(sorted(table))})")
    module, name = table[scheme]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:  # an optional driver that is not installed
        raise ConfigError(f"the {scheme} {what} needs `pip install 'cartrecover[{_extra(scheme)}]'`: {exc}") from exc


def _extra(scheme: str) -> str:
    """The pip extra that brings the driver of a URL scheme."""
    return {"postgresql": "postgres", "rediss": "redis", "unix": "redis"}.get(scheme, scheme)


def _open(table: dict[str, tuple[str, str]], url: str, what: str, settings: Settings) -> Any:
    factory: Callable[..., Any] = _backend(table, url, what).from_url
    return factory(url, durability=settings.durability)


def open_database(settings: Settings) -> Database:
    """The state store named by `database_url`."""
    database: Database = _open(_DATABASES, settings.resolved_database_url, "state store", settings)
    return database


def migrate_database(settings: Settings) -> Migrated:
    """Apply the pending schema migrations of the state store named by `database_url`."""
    migrated: Migrated = _backend(_DATABASES, settings.resolved_database_url, "state store").migrate(
        settings.resolved_database_url
    )
    return migrated


def open_event_log(settings: Settings) -> EventLog:
    """The event log named by `event_log_url`."""
    log: EventLog = _open(_EVENT_LOGS, settings.resolved_event_log_url, "event log", settings)
    return log


def open_cache(settings: Settings) -> Cache | None:
    """The cache of online features named by `cache_url`, or None (`none`: every read goes to the state store)."""
    url = settings.resolved_cache_url
    if url.split(":", 1)[0] == "none":
        return None
    cache: Cache = _backend(_CACHES, url, "cache").from_url(url)
    return cache


_SENDERS: dict[str, tuple[str, str]] = {
    "console": ("cartrecover.adapters.console.sender", "ConsoleSender"),
    "file": ("cartrecover.adapters.console.sender", "ConsoleSender"),
    "null": ("cartrecover.adapters.console.sender", "NullSender"),
    "smtp": ("cartrecover.adapters.smtp.sender", "SmtpSender"),
    "smtps": ("cartrecover.adapters.smtp.sender", "SmtpSender"),
    "twilio": ("cartrecover.adapters.twilio.sender", "TwilioSender"),
    "webpush": ("cartrecover.adapters.webpush.sender", "WebPushSender"),
}


def open_senders(settings: Settings) -> dict[str, Sender]:
    """One sender per configured channel, chosen by its URL's scheme."""
    senders = {}
    for channel, url in settings.channels.items():
        scheme = url.split(":", 1)[0]
        if scheme not in _SENDERS:
            raise ConfigError(
                f"channels.{channel}: no sender for {scheme!r} URLs (known: {', '.join(sorted(_SENDERS))})"
            )
        module, name = _SENDERS[scheme]
        senders[channel] = getattr(importlib.import_module(module), name).from_url(url, settings.data_dir)
    return senders


_COUPON_ISSUERS: dict[str, tuple[str, str]] = {
    "shopify": ("cartrecover.adapters.shopify.coupons", "ShopifyCoupons"),
    "woocommerce": ("cartrecover.adapters.woocommerce.coupons", "WooCommerceCoupons"),
}


def open_coupon_issuers(settings: Settings) -> dict[str, CouponIssuer]:
    """One coupon issuer per store (by name) that names a platform in `coupons`; the others have none."""
    issuers = {}
    for store in settings.stores:
        if not store.coupons:
            continue
        scheme, where = store.coupons.split(":", 1)[0], f"stores.{store.name}.coupons"
        if scheme not in _COUPON_ISSUERS:
            raise ConfigError(f"{where}: no issuer for {scheme!r} URLs (known: {', '.join(sorted(_COUPON_ISSUERS))})")
        module, name = _COUPON_ISSUERS[scheme]
        issuers[store.name] = getattr(importlib.import_module(module), name).from_url(store.coupons, where)
    return issuers


def load_secret(settings: Settings) -> bytes:
    """The key that signs links and coupon codes: configured, or generated once into the data directory."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.data_dir / "secret.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secrets.token_hex(32))
    except FileExistsError:
        pass  # made before (or by the process starting beside us): read it
    return path.read_text().strip().encode()


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
    engine = Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, start),
        senders=open_senders(settings),
        coupon_issuers=open_coupon_issuers(settings),
        secret=load_secret(settings),
        cache=open_cache(settings),
    )
    engine.sync_configured_stores()
    return engine
