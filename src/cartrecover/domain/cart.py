"""The cart lifecycle: a state machine on event time.

    ACTIVE ──idle──▶ ABANDONED ──journey──▶ RECOVERING
      ▲                 │  │                   │
      └──shopper back───┘  │                   │
                           ├──order──▶ RECOVERED ◀─order─┘
                           └──window─▶ EXPIRED
    ACTIVE ──order──▶ CONVERTED      any open state ──erasure──▶ SUPPRESSED

An order before abandonment is a plain conversion, never counted as recovered.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from msgspec.structs import replace

from cartrecover.domain.events import CartChange, Event, EventKind, LineItem


class CartStatus(enum.StrEnum):
    """Where a cart is in its lifecycle."""

    ACTIVE = "active"
    ABANDONED = "abandoned"
    RECOVERING = "recovering"
    RECOVERED = "recovered"
    CONVERTED = "converted"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"

    @property
    def is_open(self) -> bool:
        """Whether the cart can still change state because of shopper activity."""
        return self in _OPEN


_OPEN = frozenset({CartStatus.ACTIVE, CartStatus.ABANDONED, CartStatus.RECOVERING})


@dataclass(frozen=True)
class AbandonmentRules:
    """How long a cart may sit idle before it counts as abandoned, and how long recovery may take."""

    idle: timedelta = timedelta(minutes=30)
    checkout_idle: timedelta = timedelta(minutes=15)  # checkout started and the shopper left a contact
    recovery_window: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class StateChanged:
    """A cart moved from one status to another, at event time, for a reason."""

    at: datetime
    before: CartStatus
    after: CartStatus
    reason: str


@dataclass
class Cart:
    """One shopper's cart, as the lifecycle knows it."""

    store_id: int
    cart_id: str
    shopper_id: str
    created_at: datetime
    last_activity_at: datetime
    status: CartStatus = CartStatus.ACTIVE
    items: tuple[LineItem, ...] = ()
    contents_at: datetime | None = None  # event time of the snapshot the items come from
    currency: str | None = None
    stated_value: int | None = None
    checkout_started: bool = False
    has_contact: bool = False
    restore_url: str | None = None
    abandoned_at: datetime | None = None
    closed_at: datetime | None = None
    order_id: str | None = None
    order_value: int | None = None
    refs: tuple[str, ...] = field(default_factory=tuple)
    delta_at: datetime | None = None  # event time of the newest add or remove applied since
    group: str | None = None  # the shopper's holdout group ("treated"/"holdout") when the cart was abandoned
    experiment: str | None = None  # the experiment the cart's journey was part of, at its last abandonment
    variant: str | None = None  # the experiment's variant it got
    assignment_probability: float | None = None  # the probability of getting that variant (the propensity)
    # What the session around the cart showed, for decisions (read by decide.features):
    page_views: int = 0  # pages and other calls while the cart was open
    coupon_attempts: int = 0  # codes the shopper tried ("Coupon Entered", "Coupon Denied", …)
    device: str | None = None  # "mobile", "tablet", "desktop"
    campaign: str | None = None  # "source/medium" of the campaign that brought the shopper

    @property
    def value(self) -> int:
        """The cart's value in minor units: what the source stated, else the sum of its lines."""
        if self.stated_value is not None:
            return self.stated_value
        return sum((item.price or 0) * item.quantity for item in self.items)

    def abandon_due(self, rules: AbandonmentRules) -> datetime:
        """When the cart counts as abandoned if nothing else happens."""
        quick = self.checkout_started and self.has_contact
        return self.last_activity_at + (rules.checkout_idle if quick else rules.idle)

    def expire_due(self, rules: AbandonmentRules) -> datetime | None:
        """When recovery gives up, for an abandoned cart."""
        return None if self.abandoned_at is None else self.abandoned_at + rules.recovery_window

    def catch_up(self, at: datetime, rules: AbandonmentRules) -> list[StateChanged]:
        """Fire the timers that were due by `at`, so that a late-processed event sees the state of its time."""
        changes = self.mark_abandoned(self.abandon_due(rules), rules) if self.abandon_due(rules) <= at else []
        due = self.expire_due(rules)
        if due is not None and due <= at:
            changes += self.expire(due, rules)
        return changes

    def record_activity(self, event: Event) -> list[StateChanged]:
        """Apply a cart event: contents, contact, checkout progress; a shopper who comes back reactivates it."""
        if not self.status.is_open:
            return []
        self._apply_contents(event)
        self.checkout_started = self.checkout_started or event.checkout_started
        self.has_contact = self.has_contact or bool(event.email or event.phone)
        self.currency = event.currency or self.currency
        self.restore_url = event.restore_url or self.restore_url
        self.refs = tuple(dict.fromkeys(self.refs + event.refs))
        self.observe(event)
        return self.record_presence(event.at, f"{event.source}: {event.name}")

    def observe(self, event: Event) -> None:
        """Count what the session shows: pages, coupon tries, the device and the campaign that brought it."""
        if event.kind is EventKind.BROWSED:
            self.page_views += 1
        if event.name[:7].lower() == "coupon ":
            self.coupon_attempts += 1
        self.device = event.device or self.device
        self.campaign = self.campaign or event.campaign

    def record_presence(self, at: datetime, reason: str) -> list[StateChanged]:
        """The shopper was seen at `at`: keep the cart active, or bring an abandoned one back."""
        if not self.status.is_open or at < self.last_activity_at:
            return []
        self.last_activity_at = at
        if self.status is CartStatus.ACTIVE or self.abandoned_at is None or at < self.abandoned_at:
            return []
        return [self._move(CartStatus.ACTIVE, at, f"shopper came back ({reason})", closes=False)]

    def mark_abandoned(self, at: datetime, rules: AbandonmentRules) -> list[StateChanged]:
        """Fire the idle timer: an active cart with items becomes abandoned."""
        if self.status is not CartStatus.ACTIVE or at < self.abandon_due(rules) or not self.items:
            return []
        self.abandoned_at = at
        return [self._move(CartStatus.ABANDONED, at, "idle", closes=False)]

    def start_recovery(self, at: datetime) -> StateChanged:
        """The first message of its journey went out: the cart is being recovered."""
        assert self.status is CartStatus.ABANDONED, "only an abandoned cart starts recovering"
        return self._move(CartStatus.RECOVERING, at, "first message sent", closes=False)

    def mark_ordered(self, order_id: str, value: int | None, at: datetime, why: str) -> list[StateChanged]:
        """An order closes the cart: recovered if placed after abandonment, else converted.

        Judged on the order's own time, so an order processed late still counts right; a shopper who came back
        before ordering still counts as recovered.
        """
        if self.status in (CartStatus.RECOVERED, CartStatus.CONVERTED, CartStatus.SUPPRESSED):
            return []
        if self.status is CartStatus.EXPIRED and (self.closed_at is None or at >= self.closed_at):
            return []  # placed after the recovery window: nothing to count
        self.order_id, self.order_value = order_id, value
        recovered = self.abandoned_at is not None and at >= self.abandoned_at
        after = CartStatus.RECOVERED if recovered else CartStatus.CONVERTED
        return [self._move(after, at, why, closes=True)]

    def expire(self, at: datetime, rules: AbandonmentRules) -> list[StateChanged]:
        """Fire the recovery-window timer."""
        due = self.expire_due(rules)
        if self.status not in (CartStatus.ABANDONED, CartStatus.RECOVERING) or due is None or at < due:
            return []
        return [self._move(CartStatus.EXPIRED, at, "recovery window over", closes=True)]

    def suppress(self, at: datetime, reason: str) -> list[StateChanged]:
        """Never contact about this cart again (erasure, complaint)."""
        if not self.status.is_open:
            return []
        return [self._move(CartStatus.SUPPRESSED, at, reason, closes=True)]

    def _move(self, after: CartStatus, at: datetime, reason: str, *, closes: bool) -> StateChanged:
        change = StateChanged(at=at, before=self.status, after=after, reason=reason)
        self.status = after
        if closes:
            self.closed_at = at
        return change

    def _apply_contents(self, event: Event) -> None:
        # Out of order: a snapshot older than a change already applied would undo it, and an add or remove
        # older than the snapshot is already part of it. At equal times the snapshot wins.
        if event.change is CartChange.REPLACE:
            newest = max((t for t in (self.contents_at, self.delta_at) if t is not None), default=None)
            if newest is None or event.at >= newest:
                self.items, self.contents_at = event.items, event.at
                self.stated_value = event.value
        elif event.change in (CartChange.ADD, CartChange.REMOVE):
            if self.contents_at is not None and event.at <= self.contents_at:
                return
            change = _add if event.change is CartChange.ADD else _remove
            self.items = change(self.items, event.items)
            self.delta_at = event.at if self.delta_at is None else max(self.delta_at, event.at)
            self.stated_value = None


def _same_line(a: LineItem, b: LineItem) -> bool:
    return a.product_id == b.product_id and a.variant == b.variant


def _add(items: tuple[LineItem, ...], added: tuple[LineItem, ...]) -> tuple[LineItem, ...]:
    result = list(items)
    for new in added:
        for i, old in enumerate(result):
            if _same_line(old, new):
                result[i] = replace(old, quantity=old.quantity + new.quantity, price=new.price or old.price)
                break
        else:
            result.append(new)
    return tuple(result)


def _remove(items: tuple[LineItem, ...], removed: tuple[LineItem, ...]) -> tuple[LineItem, ...]:
    result = list(items)
    for gone in removed:
        for i, old in enumerate(result):
            if _same_line(old, gone):
                left = old.quantity - gone.quantity
                if left > 0:
                    result[i] = replace(old, quantity=left)
                else:
                    del result[i]
                break
    return tuple(result)
