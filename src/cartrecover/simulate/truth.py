"""The truth of any plan: what contacting a simulated shopper so would bring, in expectation, and the best plan.

A plan is a tuple of touches (channel, hours after abandonment, percent off); the empty plan is no contact. For one
shopper — their kind, cart value, signals, consented channels and the store's response model, but not their random
draws — `expected` gives the exact expectation of the plan's outcome over everything the shopper draws: `u`, when
they would come back alone, how long each click takes, whether an annoying SMS gets a STOP, whether a shopper
coming back anyway does so through a message. The touches act as `shoppers.Shopper.receive` makes them act, in
time order; a touch on a channel the shopper did not consent to is skipped, and one due after the shopper has
ordered is not sent (the engine ends the journey at the order).

How: `u` is uniform, and the outcome depends on it only through which of the probabilities the touches step
through it lies below, so each interval between those probabilities counts by its length. Given `u`, the own
return time enters through comparisons with the touches' times and click delays, whose distributions are
exponential: the walk over the touches is exact for any return time, and the return time is integrated by
Gauss–Legendre quadrature on pieces cut at every touch and around every click-delay scale, plus its two point
masses (returns are at least an hour and at most the recovery window). Repeated calls give the same numbers.

`oracle` picks, among candidate plans, the one with the best expected incremental profit for this shopper: an
upper bound for any policy that sees only what the shop sees, since it also knows the shopper's kind.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from cartrecover.simulate.shoppers import Kind, Shopper, Touch

__all__ = ["CartTruth", "Expected", "Plan", "PlannedTouch", "expected", "oracle"]

_NODES = 8  # Gauss–Legendre nodes per piece of the own-return time
_MINUTE = 1 / 60
Array = NDArray[np.float64]


@dataclass(frozen=True)
class PlannedTouch:
    """One message of a plan: its channel, how many hours after abandonment, and the percent off it offers."""

    delay_hours: float
    channel: str
    percent_off: int = 0


Plan = tuple[PlannedTouch, ...]


@dataclass(frozen=True)
class Expected:
    """A plan's expected outcome for one shopper; money in minor units of the store's currency."""

    p_order: float  # the probability that they order
    revenue: float  # the order's total (value − discount), in expectation
    discount: float
    messages: float  # messages sent (consented, and due before the order)
    cost: float  # what those messages cost
    incremental_profit: float  # profit with the plan − profit with no contact − cost (docs/simulator.md)


@dataclass(frozen=True)
class CartTruth:
    """An abandoned cart of a run and its shopper as the simulator knows them, to price any plan afterwards."""

    cart_id: str
    group: str  # the engine's group of the cart: "treated", "holdout" (or "unknown")
    shopper: Shopper
    engine_abandoned_at: datetime | None = None  # when the engine marked it abandoned

    @property
    def kind(self) -> Kind:
        """The shopper's hidden kind."""
        return self.shopper.kind

    @property
    def value(self) -> int:
        """The cart's value, minor units."""
        return self.shopper.value

    @property
    def abandoned_at(self) -> datetime:
        """When the simulator takes the cart as abandoned (plans' delays count from here)."""
        return self.shopper.abandoned_at

    @property
    def channels(self) -> frozenset[str]:
        """The channels the shopper consented to (with an address)."""
        return self.shopper.channels


def expected(
    shopper: Shopper, plan: Iterable[PlannedTouch], *, margin: float, channel_costs: Mapping[str, float]
) -> Expected:
    """The exact expected outcome of `plan` for `shopper` (`channel_costs` per message in major units)."""
    model = shopper.model
    touches = sorted((t for t in plan if t.channel in shopper.channels), key=lambda t: t.delay_hours)
    baseline = shopper.baseline
    levels = [baseline]
    for touch in touches:
        offer = Touch(shopper.abandoned_at, touch.channel, touch.percent_off)  # its time is not read by `effect`
        effect = model.effect(shopper.kind, offer, touch.delay_hours, shopper.value)
        levels.append(min(max(levels[-1] + effect, 0.0), 1.0))
    walk = _Walk(shopper, touches, levels)
    cuts = sorted({0.0, 1.0, *levels})
    for low, high in itertools.pairwise(cuts):
        if high > low:
            walk.run((low + high) / 2, high - low)
    value = shopper.value
    discount = float(walk.discount)
    sent = walk.sent.tolist()
    cost = sum(p * channel_costs.get(t.channel, 0.0) * 100 for p, t in zip(sent, touches, strict=True))
    p_order = float(walk.ordered)
    profit = value * margin * p_order - discount
    return Expected(
        p_order=p_order,
        revenue=value * p_order - discount,
        discount=discount,
        messages=float(sum(sent)),
        cost=cost,
        incremental_profit=profit - value * margin * baseline - cost,
    )


def oracle(
    shopper: Shopper, candidates: Iterable[Iterable[PlannedTouch]], *, margin: float, channel_costs: Mapping[str, float]
) -> tuple[Plan, Expected]:
    """The candidate plan with the best expected incremental profit for `shopper` (the first of equals)."""
    best: tuple[Plan, Expected] | None = None
    for candidate in candidates:
        plan = tuple(candidate)
        outcome = expected(shopper, plan, margin=margin, channel_costs=channel_costs)
        if best is None or outcome.incremental_profit > best[1].incremental_profit:
            best = (plan, outcome)
    if best is None:
        raise ValueError("the oracle needs at least one candidate plan")
    return best


class _Walk:
    """The touches applied in time order to the probability mass of each state, for one value of `u` at a time.

    States: coming back alone at the own-return time x (`own`), or not ordering (`none`), each either still
    listening or stopped (a STOP: later touches are ignored). An order through a click ends the walk for its mass.
    In the `own` states the mass is an array over the quadrature nodes of x; for `none` x does not matter.
    """

    def __init__(self, shopper: Shopper, touches: list[PlannedTouch], levels: list[float]) -> None:
        model = shopper.model
        self.touches, self.levels = touches, levels
        self.times = [t.delay_hours for t in touches]
        self.discounts = [round(shopper.value * t.percent_off / 100) for t in touches]
        self.click_mean = max(model.click_delay_mean_minutes, 1e-9) / 60
        self.stop, self.through = model.stop_probability, model.return_through_message
        self.x, self.weight = _return_times(
            model.own_return_mean_hours, model.recovery_window_hours, tuple(self.times), self.click_mean
        )
        self.ordered = 0.0
        self.discount = 0.0
        self.sent = np.zeros(len(touches))

    def clicked_by(self, delay: float | Array) -> float | Array:
        """P(click delay < `delay` hours): a minute, then exponential."""
        return np.where(delay > _MINUTE, -np.expm1(-(np.maximum(delay, _MINUTE) - _MINUTE) / self.click_mean), 0.0)

    def run(self, u: float, mass: float) -> None:
        """Add the outcome for a `u` in an interval of length `mass`."""
        zeros = np.zeros_like(self.x)
        coming_back = u < self.levels[0]
        own = self.weight * mass if coming_back else zeros
        own_stopped = zeros.copy()
        none, none_stopped = (0.0 if coming_back else mass), 0.0
        for k, touch in enumerate(self.touches):
            t = self.times[k]
            done = self.x < t  # came back alone before this touch: the journey ended there
            self.ordered += float(np.sum((own + own_stopped)[done]))
            own, own_stopped = np.where(done, 0.0, own), np.where(done, 0.0, own_stopped)
            self.sent[k] += float(np.sum(own + own_stopped)) + none + none_stopped
            annoying = self.levels[k + 1] < self.levels[k] and touch.channel == "sms"
            stop = self.stop if annoying else 0.0
            if u >= self.levels[k + 1]:  # not buying now: an own return is lost
                lost = float(np.sum(own)) + none
                none, none_stopped, own = lost * (1 - stop), none_stopped + lost * stop, zeros
                continue
            self._click(k, none, None)  # a shopper not coming back is won: they click and order
            none = 0.0
            first = self.through * self.clicked_by(self.x - t)  # one coming back anyway comes through the link
            self._click(k, own * first, own)
            staying = own * (1 - first)
            own, own_stopped = staying * (1 - stop), own_stopped + staying * stop
        self.ordered += float(np.sum(own + own_stopped))

    def _click(self, k: int, won: float | Array, own: Array | None) -> None:
        """An order through touch k's link for mass `won`; later touches are sent while the click is pending."""
        total = float(np.sum(won))
        if total == 0:
            return
        self.ordered += total
        self.discount += total * self.discounts[k]
        t = self.times[k]
        for j in range(k + 1, len(self.touches)):
            gap = self.times[j] - t
            if own is None:
                self.sent[j] += total * (1 - float(self.clicked_by(gap)))
            else:  # the click came before the own return x and after touch j
                between = np.maximum(self.clicked_by(self.x - t) - self.clicked_by(gap), 0.0)
                self.sent[j] += float(np.sum(own * self.through * between))


@lru_cache(maxsize=4096)
def _return_times(mean: float, window: float, times: tuple[float, ...], click_mean: float) -> tuple[Array, Array]:
    """Nodes and probability weights for the own-return time: max(min(exponential(mean), window), 1 hour)."""
    if window <= 1 or mean <= 0:
        return np.array([1.0]), np.array([1.0])
    cuts = {1.0, window, *(1.0 + 12.0 * i for i in range(math.ceil(window / 12)))}
    for t in times:
        cuts |= {t, t + _MINUTE, *(t + _MINUTE + click_mean * 2.0**e for e in range(-2, 6))}
    edges = sorted(c for c in cuts if 1.0 <= c <= window)
    unit, unit_weights = np.polynomial.legendre.leggauss(_NODES)
    nodes, weights = [np.array([1.0, window])], [np.array([-math.expm1(-1 / mean), math.exp(-window / mean)])]
    for low, high in itertools.pairwise(edges):
        x = low + (unit + 1) * (high - low) / 2
        nodes.append(x)
        weights.append(unit_weights * (high - low) / 2 * np.exp(-x / mean) / mean)
    return np.concatenate(nodes), np.concatenate(weights)
