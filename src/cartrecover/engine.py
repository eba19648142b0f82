"""The engine: stages connected through the event log and the store, never directly.

Ingest appends to the log; the lifecycle consumes the log and fires timers. Everything here is synchronous
and runs on the single writer (see `writer.py`) or in the CLI.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from cartrecover import measure
from cartrecover.deliver.render import Renderer
from cartrecover.domain.cart import AbandonmentRules
from cartrecover.domain.events import Event
from cartrecover.domain.links import LinkSigner
from cartrecover.errors import ClockError, ConfigError, StoreError
from cartrecover.flow import Journeys
from cartrecover.lifecycle import timeline
from cartrecover.lifecycle.context import Context
from cartrecover.lifecycle.handlers import handle
from cartrecover.partitions import LIFECYCLE, LayoutChanged, Positions, checkpoint_name, settle_layout
from cartrecover.ports.cache import Cache
from cartrecover.ports.channels import Sender
from cartrecover.ports.clock import Clock
from cartrecover.ports.coupons import CouponIssuer
from cartrecover.ports.eventlog import EventLog
from cartrecover.ports.partitions import Layout
from cartrecover.ports.stores import Store
from cartrecover.ports.unit_of_work import Database
from cartrecover.settings import Settings, StoreConfig

logger = logging.getLogger("cartrecover.engine")


def hash_key(key: str) -> str:
    """How admin keys are kept: SHA-256, so a leaked database does not leak them."""
    return hashlib.sha256(key.encode()).hexdigest()


class StoreDirectory:
    """Stores by write key and admin key, cached; a miss reloads, so stores added by the CLI are seen."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._by_write: dict[str, Store] = {}
        self._by_admin: dict[str, Store] = {}
        self._by_id: dict[int, Store] = {}
        self.reload()

    def reload(self) -> None:
        """Read every store again."""
        with self._database.read() as uow:
            stores = uow.stores.all()
        with self._lock:
            self._by_write = {s.write_key: s for s in stores}
            self._by_admin = {s.admin_key_hash: s for s in stores}
            self._by_id = {s.store_id: s for s in stores}

    def by_write_key(self, key: str) -> Store | None:
        """The store this write key belongs to."""
        return self._by_write.get(key) or self._reload_and(lambda: self._by_write.get(key))

    def by_admin_key(self, key: str) -> Store | None:
        """The store this admin key belongs to."""
        digest = hash_key(key)
        return self._by_admin.get(digest) or self._reload_and(lambda: self._by_admin.get(digest))

    def by_id(self, store_id: int) -> Store | None:
        """The store with this id."""
        return self._by_id.get(store_id) or self._reload_and(lambda: self._by_id.get(store_id))

    def by_name(self, name: str) -> Store | None:
        """The store with this name."""
        found = next((s for s in self._by_id.values() if s.name == name), None)
        return found or self._reload_and(lambda: next((s for s in self._by_id.values() if s.name == name), None))

    def all(self) -> list[Store]:
        """Every store."""
        return sorted(self._by_id.values(), key=lambda s: s.store_id)

    def named_or_only(self, name: str | None) -> Store:
        """The store with this name, or the only store when no name is given (what CLI commands take)."""
        if name:
            store = self.by_name(name)
            if store is None:
                raise ConfigError(f"no store named {name!r}")
            return store
        stores = self.all()
        if len(stores) != 1:
            raise ConfigError(f"there are {len(stores)} stores: name one with --store")
        return stores[0]

    def _reload_and(self, look: object) -> Store | None:
        self.reload()
        result = look()  # type: ignore[operator]
        return result if isinstance(result, Store) else None


class Engine:
    """Ingest, lifecycle and clock over an event log and a state store."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        log: EventLog,
        clock: Clock,
        *,
        senders: Mapping[str, Sender] | None = None,
        coupon_issuers: Mapping[str, CouponIssuer] | None = None,
        secret: bytes = b"",
        cache: Cache | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.log = log
        self.clock = clock
        self.stores = StoreDirectory(database)
        self.signer = LinkSigner(secret or secrets.token_bytes(32))
        templates = Path(settings.templates) if settings.templates else None
        renderer = Renderer(self.signer, settings.resolved_public_url, templates)
        self.journeys = Journeys(
            settings,
            database,
            store_for=self.stores.by_id,
            senders=senders or {},
            coupon_issuers=coupon_issuers or {},
            renderer=renderer,
            secret=secret,
            manual_clock=clock.manual,
            online=cache,
        )
        self.context = Context(rules_for=self.rules_for, log=log, on_change=self.journeys.on_cart_change)
        self.partitions = settings.resolved_worker_partitions
        self._layout: Layout | None = None

    def rules_for(self, store_id: int) -> AbandonmentRules:
        """The abandonment rules of a store (the engine's defaults for now)."""
        return self.settings.rules

    def append(self, events: Sequence[Event]) -> list[bool]:
        """Append events durably; returns which were new (the rest were retries)."""
        return self.log.append(events)

    def process_pending(self, limit: int = 500, parts: Sequence[int] | None = None) -> int:
        """Apply up to `limit` logged events of these partitions (default: all) to carts, moving each partition's
        checkpoint in the same transaction (see `partitions`).

        If applying fails for a reason other than the database, the events are applied one at a time and the
        one that fails is parked as a dead letter with its reason, so one bad event cannot stall the log.
        """
        layout = self._layout or self._settle_layout()
        parts = range(layout.partitions) if parts is None else parts
        if not parts:
            return 0
        try:
            return self._apply_pending(layout, parts, limit)
        except LayoutChanged:
            logger.warning("lifecycle: the partition layout changed under this process; settling it again")
            self._layout = None
            return 0
        except StoreError:
            raise
        except Exception:
            logger.exception("lifecycle: a batch failed; applying its events one by one")
            return self._apply_one_or_park(layout, parts)

    def _settle_layout(self) -> Layout:
        with self.database.write() as uow:
            self._layout = settle_layout(uow, self.partitions, time.time_ns() // 1000)
        return self._layout

    def _apply_pending(self, layout: Layout, parts: Sequence[int], limit: int) -> int:
        with self.database.write() as uow:
            positions = Positions.locked(uow, layout, parts)
            batch = self.log.read_after(positions.start, limit)
            for seq, event in batch:
                if positions.pending(seq, event):
                    handle(uow, event, self.context)
            if batch:
                positions.advance(uow, batch[-1][0])
        return len(batch)

    def _apply_one_or_park(self, layout: Layout, parts: Sequence[int]) -> int:
        with self.database.read() as uow:
            positions = Positions(
                layout, {part: uow.checkpoints.get(checkpoint_name(part, layout.partitions)) for part in parts}
            )
            batch = self.log.read_after(positions.start, 500)
        first = next(((seq, event) for seq, event in batch if positions.pending(seq, event)), None)
        if first is None:
            return 0
        seq, event = first
        part = event.store_id % layout.partitions
        try:
            with self.database.write() as uow:
                positions = Positions.locked(uow, layout, [part])
                if positions.pending(seq, event):
                    handle(uow, event, self.context)
                positions.advance(uow, seq)
        except StoreError:
            raise
        except Exception as exc:
            logger.exception("lifecycle: parking event %s (%s) as a dead letter", seq, event.message_id)
            with self.database.write() as uow:
                positions = Positions.locked(uow, layout, [part])
                uow.dead_letters.park(LIFECYCLE, seq, f"{type(exc).__name__}: {exc}"[:1000])
                positions.advance(uow, seq)
        return 1

    def fire_due(self, now: datetime, limit: int = 500) -> int:
        """Fire up to `limit` timers due by `now`, each at its own due time."""
        with self.database.write() as uow:
            due = uow.timers.pop_due(now, limit)
            for timer in due:
                timeline.fire(uow, timer, self.context)
        return len(due)

    def deliver_due(self, now: datetime | None = None) -> int:
        """Send the journey steps due by `now` (guardrails checked at claim); returns how many were handled."""
        return self.journeys.deliver_due(now or self.clock.now())

    def catch_up(self, now: datetime | None = None) -> int:
        """Apply every logged event, every timer and every send due by `now`; returns how much was done."""
        now = now or self.clock.now()
        done = 0
        while (n := self.process_pending()) or (n := self.fire_due(now)) or (n := self.deliver_due(now)):
            done += n
        return done

    def advance_clock(self, when: datetime) -> int:
        """Manual clock only: move to `when`, after which every event, timer and send due by then is done."""
        advance = getattr(self.clock, "advance_to", None)
        if not self.clock.manual or advance is None:
            raise ClockError("the clock can only be moved when the engine runs with --clock manual")
        advance(when)
        return self.catch_up(when)

    def recovery_report(self, store: Store, since: datetime, until: datetime) -> measure.Report:
        """The recovery report of the store's carts abandoned in [since, until), read in one snapshot."""
        config = self.settings.measure
        with self.database.read() as uow:
            return measure.recovery(
                uow,
                store.store_id,
                store.currency,
                since,
                until,
                windows=config.attribution_windows,
                channel_cost=config.channel_cost,
            )

    def lag(self) -> int:
        """How many logged events the lifecycle has not applied yet (behind its slowest partition)."""
        with self.database.read() as uow:
            layout = uow.layouts.get(LIFECYCLE) or Layout(1)
            applied = min(uow.checkpoints.get(checkpoint_name(p, layout.partitions)) for p in range(layout.partitions))
        return self.log.last_offset() - applied

    def close(self) -> None:
        """Release the backends' connections."""
        self.journeys.close()
        self.database.close()
        self.log.close()

    def add_store(self, config: StoreConfig) -> tuple[Store, dict[str, str]]:
        """Create a store, generating the keys and secrets not given; returns it and its secrets in clear."""
        keys = {
            "write_key": config.write_key or f"wk_{secrets.token_urlsafe(24)}",
            "admin_key": config.admin_key or f"ak_{secrets.token_urlsafe(32)}",
            "shopify_secret": (config.shopify_secrets or (secrets.token_hex(32),))[0],
            "woocommerce_secret": config.woocommerce_secret or secrets.token_urlsafe(32),
        }
        store = Store(
            store_id=0,
            name=config.name,
            write_key=keys["write_key"],
            admin_key_hash=hash_key(keys["admin_key"]),
            shopify_secrets=config.shopify_secrets or (keys["shopify_secret"],),
            woocommerce_secret=keys["woocommerce_secret"],
            timezone=config.timezone,
            currency=config.currency,
            restore_url=config.restore_url,
            coupon_style=config.coupon_style,
        )
        with self.database.write() as uow:
            store = uow.stores.add(store)
        self.stores.reload()
        return store, keys

    def sync_configured_stores(self) -> None:
        """Create or update the stores declared in the config file (their keys must be given there)."""
        for config in self.settings.stores:
            existing = self.stores.by_name(config.name)
            if existing is None:
                self.add_store(config)
                continue
            updated = replace(
                existing,
                write_key=config.write_key or existing.write_key,
                admin_key_hash=hash_key(config.admin_key) if config.admin_key else existing.admin_key_hash,
                shopify_secrets=config.shopify_secrets or existing.shopify_secrets,
                woocommerce_secret=config.woocommerce_secret or existing.woocommerce_secret,
                timezone=config.timezone,
                currency=config.currency,
                restore_url=config.restore_url,
                coupon_style=config.coupon_style,
            )
            with self.database.write() as uow:
                uow.stores.update(updated)
        self.stores.reload()
