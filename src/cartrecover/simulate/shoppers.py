"""Simulated shoppers: a store's profile, what a shop sees of each visit, and how each shopper responds — hidden.

Each shopper who leaves a cart gets a kind and a response drawn once from their own seeded random stream:

- their kind, with probabilities that depend on what the shop could see of the visit (its `Signals`: device,
  traffic source, coupon tries, a brief session, a returning customer, a started checkout), weighted as the
  profile's response model says;
- `u`, a uniform number: they order if `u` falls below their current probability of ordering;
- their baseline probability of coming back to buy on their own within the recovery window (also shifted by the
  signals), and when;
- every touch the engine really sent moves that probability by its lift (by channel, decaying with the delay
  since abandonment, plus the incentive, which counts for more on a dearer cart), or lowers it (an SMS to a
  shopper annoyed by SMS).

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
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")

__all__ = [
    "PROFILES",
    "SIGNALS",
    "SOURCES",
    "Kind",
    "Reaction",
    "ResponseModel",
    "Shopper",
    "Signals",
    "StoreProfile",
    "Touch",
    "load_profile",
    "profile_named",
]

# Traffic sources and the campaign (Segment's `context.campaign`, its UTM tags) their visits carry; direct has none.
SOURCES: dict[str, dict[str, str] | None] = {
    "direct": None,
    "organic": {"source": "google", "medium": "organic", "name": "search"},
    "paid": {"source": "google", "medium": "cpc", "name": "brand-search"},
    "email": {"source": "newsletter", "medium": "email", "name": "weekly-picks"},
    "social": {"source": "instagram", "medium": "social", "name": "stories"},
    "deals": {"source": "couponfollow", "medium": "affiliate", "name": "promo-codes"},
}
# What a visit can show, by name: its device, its source, and four facts about the session.
SIGNALS = ("mobile", "desktop", *SOURCES, "coupon", "brief", "returning", "checkout")
_MOST_INCENTIVE_SCALE = 3.0  # however dear the cart, an incentive works at most this many times as well


class Kind(enum.StrEnum):
    """How a shopper responds to being contacted."""

    REGULAR = "regular"  # any touch helps, more when soon after abandonment and with an incentive
    DISCOUNT_ONLY = "discount_only"  # only an incentive moves them
    NEVER = "never"  # never buys, contacted or not
    SMS_ANNOYED = "sms_annoyed"  # like regular by email; an SMS lowers their probability and may get a STOP


@dataclass(frozen=True)
class Signals:
    """What the shop could see of the visit that left the cart (the engine reads these from the Segment calls)."""

    device: str = "desktop"  # "mobile" or "desktop", from the User-Agent
    source: str = "direct"  # one of SOURCES, from the campaign
    coupon_tries: int = 0  # codes tried and refused before leaving
    brief: bool = False  # one page and a minute or two
    returning: bool = False  # a customer who ordered before, signed in
    checkout: bool = False  # started the checkout

    def names(self) -> frozenset[str]:
        """The signals present, by the names the response model's odds use."""
        flags = {"coupon": self.coupon_tries > 0, "brief": self.brief, "returning": self.returning}
        present = {name for name, on in (flags | {"checkout": self.checkout}).items() if on}
        return frozenset({self.device, self.source, *present})


def _default_kind_odds() -> dict[str, dict[str, float]]:
    return {
        "deals": {"discount_only": 5.0, "regular": 0.6},
        "coupon": {"discount_only": 4.0},
        "social": {"never": 1.5},
        "email": {"regular": 1.5, "never": 0.7},
        "returning": {"regular": 3.0, "never": 0.3, "discount_only": 0.5},
        "checkout": {"regular": 1.5, "never": 0.5},
        "brief": {"never": 4.0, "regular": 0.7},
        "desktop": {"sms_annoyed": 2.5},
    }


@dataclass(frozen=True)
class ResponseModel:
    """The hidden truth of how the store's shoppers respond (probabilities are 0–1, lifts are added to them)."""

    baseline: float = 0.08  # comes back and buys on their own within the recovery window (no signals)
    lift: Mapping[str, float] = field(default_factory=lambda: {"email": 0.05, "sms": 0.07, "push": 0.03})
    half_life_hours: float = 24.0  # a touch's lift halves with every this many hours since abandonment
    lift_per_percent_off: float = 0.008  # an incentive of 10 % off adds 0.08 (on a cart of the reference value)
    incentive_value_reference: float = 75.0  # a cart of this value (major units) gets the lift per percent as is
    incentive_value_elasticity: float = 0.5  # a cart k times dearer gets k ** this times as much (at most 3 times)
    # A regular (or SMS-annoyed) shopper, who would answer a reminder, is moved by an incentive only this share as
    # much as a deal-seeker: price matters less to them (the heterogeneity that makes blanket discounts wasteful).
    regular_incentive_share: float = 1.0
    discount_only_share: float = 0.14  # the kinds' shares for a shopper showing no signal; the odds shift them
    never_share: float = 0.27
    sms_annoyed_share: float = 0.09
    # Each signal multiplies the weight of some kinds (1: no effect); the shares are the weights normalised.
    kind_odds: Mapping[str, Mapping[str, float]] = field(default_factory=_default_kind_odds)
    # Each signal multiplies the odds p / (1 − p) of coming back alone (regular and SMS-annoyed shoppers).
    baseline_odds: Mapping[str, float] = field(
        default_factory=lambda: {"returning": 3.0, "checkout": 1.6, "email": 1.3, "brief": 0.5}
    )
    sms_annoyance: float = 0.06  # what an SMS takes from an annoyed shopper's probability
    stop_probability: float = 0.5  # an annoyed shopper texts STOP (counted, not sent: STOP is out of scope)
    own_return_mean_hours: float = 30.0  # when a shopper who comes back on their own does so (exponential)
    recovery_window_hours: float = 150.0  # own returns fall inside this (the engine's window is 7 days)
    click_delay_mean_minutes: float = 45.0  # from delivery to click, for a shopper the message moves
    idle_click_probability: float = 0.05  # clicks and leaves without buying
    return_through_message: float = 0.5  # a shopper coming back anyway does so through a message's link

    def __post_init__(self) -> None:
        shares = (self.discount_only_share, self.never_share, self.sms_annoyed_share)
        if sum(shares) > 1 or min(shares) < 0:
            raise ValueError("the shares of discount_only, never and sms_annoyed shoppers must be 0–1 and sum to ≤ 1")
        unknown = (set(self.kind_odds) | set(self.baseline_odds)) - set(SIGNALS)
        kinds = {kind for odds in self.kind_odds.values() for kind in odds} - {k.value for k in Kind}
        if unknown or kinds:
            raise ValueError(f"unknown signals or kinds in the odds: {', '.join(sorted(unknown | kinds))}")
        odds = [v for o in self.kind_odds.values() for v in o.values()] + list(self.baseline_odds.values())
        if min(odds, default=1.0) < 0:
            raise ValueError("odds multipliers must not be negative")

    def kind_shares(self, signals: Collection[str] = ()) -> dict[Kind, float]:
        """The probability of each kind for a shopper showing `signals` (names of SIGNALS)."""
        weights = {
            Kind.REGULAR: 1 - self.discount_only_share - self.never_share - self.sms_annoyed_share,
            Kind.DISCOUNT_ONLY: self.discount_only_share,
            Kind.NEVER: self.never_share,
            Kind.SMS_ANNOYED: self.sms_annoyed_share,
        }
        for signal in signals:
            for kind, factor in self.kind_odds.get(signal, {}).items():
                weights[Kind(kind)] *= factor
        total = sum(weights.values())
        if total <= 0:
            return {kind: float(kind is Kind.REGULAR) for kind in weights}
        return {kind: weight / total for kind, weight in weights.items()}

    def baseline_of(self, kind: Kind, signals: Collection[str] = ()) -> float:
        """The probability of buying with no contact at all."""
        if kind in (Kind.NEVER, Kind.DISCOUNT_ONLY) or self.baseline <= 0:
            return 0.0
        if self.baseline >= 1:
            return 1.0
        factor = math.prod(self.baseline_odds.get(signal, 1.0) for signal in signals)
        if factor == 1:
            return self.baseline
        odds = factor * self.baseline / (1 - self.baseline)
        return odds / (1 + odds)

    def incentive_scale(self, value: int | None) -> float:
        """How much better than on a cart of the reference value an incentive works on a cart of `value` (minor)."""
        if value is None or self.incentive_value_elasticity == 0 or self.incentive_value_reference <= 0:
            return 1.0
        ratio = max(value, 0) / 100 / self.incentive_value_reference
        return float(min(ratio**self.incentive_value_elasticity, _MOST_INCENTIVE_SCALE))

    def effect(self, kind: Kind, touch: Touch, hours: float, value: int | None = None) -> float:
        """How much one touch, `hours` after abandonment, moves the probability of buying a cart of `value`."""
        decay = 0.5 ** (max(hours, 0.0) / self.half_life_hours) if self.half_life_hours > 0 else 1.0
        incentive = touch.percent_off * self.lift_per_percent_off * self.incentive_scale(value)
        if kind is Kind.NEVER:
            return 0.0
        if kind is Kind.DISCOUNT_ONLY:
            return incentive * decay
        if kind is Kind.SMS_ANNOYED and touch.channel == "sms":
            return -self.sms_annoyance
        return (self.lift.get(touch.channel, 0.0) + incentive * self.regular_incentive_share) * decay


@dataclass(frozen=True)
class StoreProfile:
    """A store to simulate: its traffic, its catalogue, its shoppers, their response model, and its economics."""

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
    mobile_share: float = 0.6  # visits from a phone; the rest from a desktop browser
    sources: Mapping[str, float] = field(  # where visits come from (relative weights over SOURCES)
        default_factory=lambda: (
            {"direct": 0.3, "organic": 0.25, "paid": 0.15, "email": 0.1, "social": 0.12} | {"deals": 0.08}
        )
    )
    coupon_share: Mapping[str, float] = field(  # by source: who tries a code (refused) before leaving a cart
        default_factory=lambda: (
            {"direct": 0.05, "organic": 0.06, "paid": 0.08, "email": 0.1, "social": 0.08} | {"deals": 0.6}
        )
    )
    brief_share: float = 0.25  # sessions of a page or two and a minute or two
    returning_share: float = 0.3  # of those signed in, customers who ordered before (once there are any)
    margin: float = 0.35  # the store's profit on goods, as a share of their price (for the truth's profit)
    channel_costs: Mapping[str, float] = field(  # what one message costs, major units (for the truth's profit)
        default_factory=lambda: {"email": 0.001, "sms": 0.04, "push": 0.0005}
    )
    response: ResponseModel = field(default_factory=ResponseModel)

    def __post_init__(self) -> None:
        if len(self.hourly_weights) != 24:
            raise ValueError("hourly_weights needs 24 numbers, one per local hour")
        if not self.timezones or not self.cart_sizes or not self.sources:
            raise ValueError("timezones, cart_sizes and sources must not be empty")
        unknown = (set(self.sources) | set(self.coupon_share)) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown traffic sources: {', '.join(sorted(unknown))} (known: {', '.join(SOURCES)})")


def load_profile(path: Path) -> StoreProfile:
    """A profile from a TOML or JSON file: top-level keys of StoreProfile, and a [response] table."""
    text = path.read_text()
    raw: dict[str, Any] = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    response = _build(ResponseModel, raw.pop("response", {}), "response")
    for name in ("hourly_weights", "cart_sizes"):
        if name in raw:
            raw[name] = tuple(raw[name])
    return replace(_build(StoreProfile, raw, "profile"), response=response)


def profile_named(name_or_path: str) -> StoreProfile:
    """A preset of PROFILES by name, or else a profile file (TOML or JSON)."""
    return PROFILES[name_or_path] if name_or_path in PROFILES else load_profile(Path(name_or_path))


def _build(kind: type[_T], raw: dict[str, Any], where: str) -> _T:
    known = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown {where} settings: {', '.join(sorted(unknown))}")
    return kind(**raw)


_FASHION = StoreProfile(
    name="fashion-shop",
    price_median=25.0,
    price_sigma=0.5,
    cart_sizes=(0.35, 0.3, 0.2, 0.1, 0.05),
    mobile_share=0.75,
    sources={"direct": 0.2, "organic": 0.15, "paid": 0.15, "email": 0.1, "social": 0.22, "deals": 0.18},
    coupon_share={"direct": 0.08, "organic": 0.08, "paid": 0.1, "email": 0.12, "social": 0.12, "deals": 0.7},
    brief_share=0.3,
    returning_share=0.25,
    margin=0.5,
    response=ResponseModel(
        baseline=0.1,
        discount_only_share=0.2,
        never_share=0.22,
        lift_per_percent_off=0.01,
        incentive_value_reference=50.0,
    ),
)
_ELECTRONICS = StoreProfile(
    name="electronics-shop",
    price_median=180.0,
    price_sigma=0.9,
    cart_sizes=(0.7, 0.2, 0.1),
    mobile_share=0.4,
    sources={"direct": 0.3, "organic": 0.3, "paid": 0.2, "email": 0.1, "social": 0.05, "deals": 0.05},
    brief_share=0.2,
    returning_share=0.4,
    margin=0.15,
    response=ResponseModel(
        baseline=0.16,
        discount_only_share=0.07,
        never_share=0.25,
        sms_annoyed_share=0.12,
        incentive_value_reference=250.0,
        half_life_hours=36.0,
    ),
)
# Built-in stores: `cartrecover simulate --profile NAME`.
PROFILES: dict[str, StoreProfile] = {
    "default": StoreProfile(),
    "fashion": _FASHION,  # many deal-seekers, cheap carts, mostly phones, a fat margin
    "electronics": _ELECTRONICS,  # dear carts, more regulars and returning customers, few discount-only, thin margin
}


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
    signals: frozenset[str] = frozenset()  # names of SIGNALS the visit showed
    channels: frozenset[str] = frozenset()  # the channels they can be reached on (address and consent)
    won_by: Touch | None = None  # the touch whose link they ordered through

    @classmethod
    def draw(
        cls,
        number: int,
        seed: int,
        value: int,
        abandoned_at: datetime,
        model: ResponseModel,
        *,
        signals: Collection[str] = (),
        channels: Collection[str] = (),
    ) -> Shopper:
        """The shopper's kind and response, from a random stream of their own (so arrival order does not matter)."""
        rng = random.Random(f"{seed}/shopper/{number}")
        kinds, weights = zip(*model.kind_shares(signals).items(), strict=True)
        kind = rng.choices(kinds, weights)[0]
        u = rng.random()
        hours = min(rng.expovariate(1 / model.own_return_mean_hours), model.recovery_window_hours)
        baseline = model.baseline_of(kind, signals)
        own = abandoned_at + timedelta(hours=max(hours, 1.0)) if u < baseline else None
        shopper = cls(number, kind, value, abandoned_at, u, own, model, rng, probability=baseline)
        shopper.order_at, shopper.signals, shopper.channels = own, frozenset(signals), frozenset(channels)
        return shopper

    @property
    def baseline(self) -> float:
        """The probability of buying with no contact at all, for their kind and signals."""
        return self.model.baseline_of(self.kind, self.signals)

    @property
    def counterfactual_orders(self) -> bool:
        """Whether they would have bought with no contact at all."""
        return self.u < self.baseline

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
        self.probability = min(max(before + self.model.effect(self.kind, touch, hours, self.value), 0.0), 1.0)
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
        self.order_at, self.via_click, self.won_by = click_at, True, touch
        return Reaction(click_at=click_at, orders=True, stops=stops)
