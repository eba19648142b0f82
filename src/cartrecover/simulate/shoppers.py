"""Simulated shoppers: a store's profile, its visitors' traffic, and how each one responds — hidden from the engine.

Each shopper who leaves a cart gets a kind and a response drawn once from their own seeded random stream:

- `u`, a uniform number: they order if `u` falls below their current probability of ordering;
- their baseline probability of coming back to buy on their own within the recovery window, and when;
- every touch the engine really sent moves that probability by its lift (by channel, decaying with the delay
  since abandonment, plus the incentive), or lowers it (an SMS to a shopper annoyed by SMS).

Because the same `u` decides both the world with the engine's touches and the world without any, the
counterfactual (what the shopper would have done with no contact) is known exactly: with no lift the two worlds
are the same, and the true incremental effect of the engine is the sum over shoppers of the difference.
"""

from __future__ import annotations

import enum
import json
import math
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")

__all__ = ["Kind", "Reaction", "ResponseModel", "Shopper", "StoreProfile", "Touch", "load_profile"]


class Kind(enum.StrEnum):
    """How a shopper responds to being contacted."""

    REGULAR = "regular"  # any touch helps, more when soon after abandonment and with an incentive
    DISCOUNT_ONLY = "discount_only"  # only an incentive moves them
    NEVER = "never"  # never buys, contacted or not
    SMS_ANNOYED = "sms_annoyed"  # like regular by email; an SMS lowers their probability and may get a STOP


@dataclass(frozen=True)
class ResponseModel:
    """The hidden truth of how the store's shoppers respond (probabilities are 0–1, lifts are added to them)."""

    baseline: float = 0.12  # comes back and buys on their own within the recovery window
    lift: Mapping[str, float] = field(default_factory=lambda: {"email": 0.05, "sms": 0.07, "push": 0.03})
    half_life_hours: float = 24.0  # a touch's lift halves with every this many hours since abandonment
    lift_per_percent_off: float = 0.008  # an incentive of 10 % off adds 0.08
    discount_only_share: float = 0.15
    never_share: float = 0.25
    sms_annoyed_share: float = 0.10
    sms_annoyance: float = 0.06  # what an SMS takes from an annoyed shopper's probability
    stop_probability: float = 0.5  # an annoyed shopper texts STOP (counted, not sent: STOP is out of scope)
    own_return_mean_hours: float = 30.0  # when a shopper who comes back on their own does so (exponential)
    recovery_window_hours: float = 150.0  # own returns fall inside this (the engine's window is 7 days)
    click_delay_mean_minutes: float = 45.0  # from delivery to click, for a shopper the message moves
    idle_click_probability: float = 0.05  # clicks and leaves without buying
    return_through_message: float = 0.5  # a shopper coming back anyway does so through a message's link

    def baseline_of(self, kind: Kind) -> float:
        """The probability of buying with no contact at all."""
        return 0.0 if kind in (Kind.NEVER, Kind.DISCOUNT_ONLY) else self.baseline

    def effect(self, kind: Kind, touch: Touch, hours: float) -> float:
        """How much one touch, `hours` after abandonment, moves the probability of buying."""
        decay = 0.5 ** (max(hours, 0.0) / self.half_life_hours) if self.half_life_hours > 0 else 1.0
        incentive = touch.percent_off * self.lift_per_percent_off
        if kind is Kind.NEVER:
            return 0.0
        if kind is Kind.DISCOUNT_ONLY:
            return incentive * decay
        if kind is Kind.SMS_ANNOYED and touch.channel == "sms":
            return -self.sms_annoyance
        return (self.lift.get(touch.channel, 0.0) + incentive) * decay


@dataclass(frozen=True)
class StoreProfile:
    """A store to simulate: its traffic, its catalogue, its shoppers, and their response model."""

    name: str = "sim-shop"
    currency: str = "USD"
    timezone: str = "Europe/Berlin"
    shoppers_per_day: int = 300  # visitors a day
    # Arrivals by hour of the shopper's local day (relative weights): quiet nights, busy evenings.
    hourly_weights: tuple[float, ...] = (1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5, 6, 6, 5, 5, 6, 7, 8, 9, 9, 7, 4, 2)
    timezones: Mapping[str, float] = field(
        default_factory=lambda: {"Europe/Berlin": 0.5, "Europe/London": 0.2, "America/New_York": 0.3}
    )
    catalogue_size: int = 120
    price_median: float = 45.0  # prices are log-normal around this, in the store's currency
    price_sigma: float = 0.7
    cart_sizes: tuple[float, ...] = (0.5, 0.28, 0.14, 0.08)  # share of carts with 1, 2, 3, … lines
    cart_share: float = 0.55  # visitors who put something in a cart; the rest only browse
    buy_now_share: float = 0.3  # of those, who check out at once (never abandoned)
    sign_in_share: float = 0.6  # who sign in (identify) before leaving
    email_consent_share: float = 0.8  # of those signed in
    sms_consent_share: float = 0.35  # of those signed in, who also give a phone number and SMS consent
    checkout_share: float = 0.5  # of those signed in, who start the checkout before leaving
    holdout_share: float = 0.2  # the engine's holdout share for this store (its default is 0.1)
    response: ResponseModel = field(default_factory=ResponseModel)

    def __post_init__(self) -> None:
        if len(self.hourly_weights) != 24:
            raise ValueError("hourly_weights needs 24 numbers, one per local hour")
        if not self.timezones or not self.cart_sizes:
            raise ValueError("timezones and cart_sizes must not be empty")


def load_profile(path: Path) -> StoreProfile:
    """A profile from a TOML or JSON file: top-level keys of StoreProfile, and a [response] table."""
    text = path.read_text()
    raw: dict[str, Any] = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    response = _build(ResponseModel, raw.pop("response", {}), "response")
    for name in ("hourly_weights", "cart_sizes"):
        if name in raw:
            raw[name] = tuple(raw[name])
    return replace(_build(StoreProfile, raw, "profile"), response=response)


def _build(kind: type[_T], raw: dict[str, Any], where: str) -> _T:
    known = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown {where} settings: {', '.join(sorted(unknown))}")
    return kind(**raw)


@dataclass(frozen=True)
class Touch:
    """One message the engine really delivered to the shopper."""

    at: datetime
    channel: str
    percent_off: int = 0


@dataclass(frozen=True)
class Reaction:
    """What the shopper does about a touch: click at `click_at` (None: ignore it), and order then or not."""

    click_at: datetime | None = None
    orders: bool = False
    stops: bool = False


@dataclass
class Shopper:
    """One shopper who left a cart, with the response drawn for them; `receive` applies each touch in turn."""

    number: int
    kind: Kind
    value: int  # the cart's value in minor units
    abandoned_at: datetime
    u: float
    own_return_at: datetime | None  # when they come back on their own, if they would
    model: ResponseModel
    rng: random.Random
    probability: float = 0.0
    touches: list[Touch] = field(default_factory=list)
    order_at: datetime | None = None  # when they will order (or did), in the world with the engine's touches
    via_click: bool = False
    stopped: bool = False

    @classmethod
    def draw(cls, number: int, seed: int, value: int, abandoned_at: datetime, model: ResponseModel) -> Shopper:
        """The shopper's kind and response, from a random stream of their own (so arrival order does not matter)."""
        rng = random.Random(f"{seed}/shopper/{number}")
        kinds, weights = zip(*_kind_shares(model), strict=True)
        kind = rng.choices(kinds, weights)[0]
        u = rng.random()
        hours = min(rng.expovariate(1 / model.own_return_mean_hours), model.recovery_window_hours)
        baseline = model.baseline_of(kind)
        own = abandoned_at + timedelta(hours=max(hours, 1.0)) if u < baseline else None
        shopper = cls(number, kind, value, abandoned_at, u, own, model, rng, probability=baseline)
        shopper.order_at = own
        return shopper

    @property
    def counterfactual_orders(self) -> bool:
        """Whether they would have bought with no contact at all."""
        return self.u < self.model.baseline_of(self.kind)

    @property
    def orders(self) -> bool:
        """Whether they buy, given the touches received so far."""
        return self.order_at is not None

    def receive(self, touch: Touch) -> Reaction:
        """Apply a delivered touch: the probability moves, and the shopper may click, order, or text STOP."""
        self.touches.append(touch)
        if self.via_click or self.stopped:
            return Reaction()  # already on their way to the shop through a link, or opted out
        before = self.probability
        hours = (touch.at - self.abandoned_at).total_seconds() / 3600
        self.probability = min(max(before + self.model.effect(self.kind, touch, hours), 0.0), 1.0)
        click_at = touch.at + timedelta(minutes=1 + self.rng.expovariate(1 / self.model.click_delay_mean_minutes))
        stops = self.probability < before and touch.channel == "sms" and self.rng.random() < self.model.stop_probability
        self.stopped = stops
        if self.u >= self.probability:
            self.order_at = None  # not buying: an annoyed shopper who would have come back no longer does
            if not stops and self.rng.random() < self.model.idle_click_probability:
                return Reaction(click_at=click_at)
            return Reaction(stops=stops)
        if self.order_at is not None and (
            self.order_at <= click_at or self.rng.random() >= self.model.return_through_message
        ):
            return Reaction(stops=stops)  # coming back on their own, as they would have anyway
        self.order_at, self.via_click = click_at, True
        return Reaction(click_at=click_at, orders=True, stops=stops)


def _kind_shares(model: ResponseModel) -> list[tuple[Kind, float]]:
    special = model.discount_only_share + model.never_share + model.sms_annoyed_share
    if special > 1 or min(model.discount_only_share, model.never_share, model.sms_annoyed_share) < 0:
        raise ValueError("the shares of discount_only, never and sms_annoyed shoppers must be 0–1 and sum to ≤ 1")
    return [
        (Kind.REGULAR, 1 - special),
        (Kind.DISCOUNT_ONLY, model.discount_only_share),
        (Kind.NEVER, model.never_share),
        (Kind.SMS_ANNOYED, model.sms_annoyed_share),
    ]


def lognormal_prices(rng: random.Random, count: int, median: float, sigma: float) -> list[int]:
    """A catalogue's prices in minor units, rounded to .99 or .50 endings like real shops."""
    prices = []
    for _ in range(count):
        major = max(math.floor(median * math.exp(rng.gauss(0, sigma))), 1)
        prices.append(major * 100 + rng.choice((0, 50, 99)))
    return prices


@dataclass
class Visit:
    """One visitor's session as Segment calls, and what the simulator needs to play their part later."""

    number: int
    anonymous_id: str
    timezone: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    cart_id: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    value: int = 0
    user_id: str | None = None
    email: str | None = None
    phone: str | None = None
    left_at: datetime | None = None  # when they left a filled cart unbought
    quick_abandon: bool = False  # checkout started with a contact: the engine waits less before abandoning
    sent: int = 0  # calls made so far, for unique message ids

    def call(self, kind: str, at: datetime, **fields_: Any) -> None:
        """Append a Segment call at `at`, as this visitor's browser would make it."""
        call: dict[str, Any] = {
            "type": kind,
            "anonymousId": self.anonymous_id,
            "messageId": f"sim-{self.number}-{self.sent}",
            "timestamp": at.isoformat().replace("+00:00", "Z"),
            "context": {"timezone": self.timezone},
            **fields_,
        }
        if self.user_id:
            call["userId"] = self.user_id
        self.calls.append(call)
        self.sent += 1

    def order(self, at: datetime, currency: str, coupon: str | None = None, discount: int = 0) -> None:
        """`Order Completed` for the whole cart, with the coupon and its discount when one is used."""
        total = self.value - discount
        properties: dict[str, Any] = {
            "order_id": f"order-{self.cart_id}",
            "cart_id": self.cart_id,
            "currency": currency,
            "total": total / 100,
            "revenue": total / 100,
            "products": self.lines,
        }
        if coupon:
            properties |= {"coupon": coupon, "discount": discount / 100}
        self.call("track", at, event="Order Completed", properties=properties)


def make_visit(profile: StoreProfile, rng: random.Random, number: int, arrival: datetime, prices: list[int]) -> Visit:
    """A visitor arriving at `arrival`: pages, maybe a cart, maybe a sign-in with consent, maybe an order at once."""
    zones, shares = zip(*profile.timezones.items(), strict=True)
    visit = Visit(number, f"anon-{number}", rng.choices(zones, shares)[0])
    now = arrival
    for _ in range(rng.randint(1, 5)):
        visit.call("page", now, name="Product", properties={"path": f"/products/p{rng.randrange(len(prices))}"})
        now += timedelta(seconds=rng.randint(15, 150))
    if rng.random() >= profile.cart_share:
        return visit
    visit.cart_id = f"cart-{number}"
    size = rng.choices(range(1, len(profile.cart_sizes) + 1), profile.cart_sizes)[0]
    for product in rng.sample(range(len(prices)), min(size, len(prices))):
        line = {"product_id": f"p{product}", "name": f"Product {product}", "price": prices[product] / 100}
        visit.lines.append({**line, "quantity": 1})
        visit.value += prices[product]
        visit.call("track", now, event="Product Added", properties={"cart_id": visit.cart_id, **line, "quantity": 1})
        now += timedelta(seconds=rng.randint(20, 240))
    buys_now = rng.random() < profile.buy_now_share
    if buys_now or rng.random() < profile.sign_in_share:
        _sign_in(visit, profile, rng, now)
        now += timedelta(seconds=rng.randint(10, 60))
        if buys_now or rng.random() < profile.checkout_share:
            cart = {"cart_id": visit.cart_id, "currency": profile.currency, "value": visit.value / 100}
            visit.call("track", now, event="Checkout Started", properties={**cart, "products": visit.lines})
            visit.quick_abandon = visit.email is not None or visit.phone is not None
            now += timedelta(seconds=rng.randint(30, 300))
    if buys_now:
        visit.order(now, profile.currency)
    else:
        visit.left_at = now
    return visit


def _sign_in(visit: Visit, profile: StoreProfile, rng: random.Random, at: datetime) -> None:
    visit.user_id = f"user-{visit.number}"
    email, sms = rng.random() < profile.email_consent_share, rng.random() < profile.sms_consent_share
    traits: dict[str, Any] = {"consent": {"email": email, "sms": sms}}
    if email:
        visit.email = traits["email"] = f"shopper{visit.number}@sim.example"
    if sms:
        visit.phone = traits["phone"] = f"+1555{visit.number:07d}"
    visit.call("identify", at, traits=traits)
