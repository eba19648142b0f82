"""The recovery report of a store for a window of abandonment times: what was recovered, and what was earned.

Treated carts are compared with holdout carts (never contacted): the difference in recovery rate and in revenue
per abandoned cart, with 95 % intervals, is what the journeys earned. Costs are the discounts our codes gave on
recovered orders and what the channels charged for the messages sent. Money is integer minor units of the
store's currency throughout; only the intervals (and rates) are float, and interval bounds of money are rounded
to the minor unit when scaled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from cartrecover.domain.holdout import Group
from cartrecover.domain.journey import Step
from cartrecover.domain.money import to_minor
from cartrecover.measure.attribution import last_touch
from cartrecover.measure.outcomes import CartOutcome, abandoned_between, incentive_of, sends_as_touches
from cartrecover.measure.statistics import (
    Interval,
    difference_of_means,
    difference_of_proportions,
    probability_of_best,
)
from cartrecover.ports.unit_of_work import UnitOfWork

MIN_CARTS = 2  # per group: fewer gives no variance to build an interval on


@dataclass(frozen=True)
class GroupFigures:
    """Carts of one group, how many were recovered (orders, each once) and their revenue."""

    carts: int
    recovered: int
    revenue: int

    @property
    def rate(self) -> float | None:
        """The recovery rate, or None without carts."""
        return self.recovered / self.carts if self.carts else None


@dataclass(frozen=True)
class Incremental:
    """What the journeys earned over the holdout, with 95 % intervals."""

    recovery_rate: Interval  # treated − holdout, Newcombe
    revenue_per_cart: Interval  # treated − holdout mean revenue per abandoned cart (minor units, float), Welch
    revenue: int  # exact: the difference of means × treated carts, rounded half-even to the minor unit
    revenue_low: int | None
    revenue_high: int | None


@dataclass(frozen=True)
class Row:
    """One line of a breakdown (a channel, a step or an incentive): activity, last-touch credit and costs."""

    key: str
    sends: int = 0
    clicks: int = 0
    orders: int = 0  # orders credited by last touch
    revenue: int = 0  # their value
    incentive_cost: int = 0  # discounts of recovered orders that used this row's codes
    channel_cost: int = 0


@dataclass(frozen=True)
class VariantFigures:
    """One variant of an experiment: its carts, their recovery against the holdout, and its chance of being best."""

    experiment: str
    variant: str
    carts: int
    recovered: int
    revenue: int
    lift: Interval | None  # recovery rate − the holdout's, Newcombe; None with too few carts on either side
    probability_best: float  # of having the highest recovery rate in its experiment (Beta posteriors)

    @property
    def rate(self) -> float | None:
        """The recovery rate, or None without carts."""
        return self.recovered / self.carts if self.carts else None


@dataclass(frozen=True)
class Report:
    """The whole report; see the module docstring."""

    store_id: int
    currency: str
    since: datetime
    until: datetime
    abandoned: int
    abandoned_value: int
    treated: GroupFigures
    holdout: GroupFigures
    incremental: Incremental | None
    not_enough_data: str | None  # why `incremental` is None
    incentive_cost: int
    channel_cost: int
    net_incremental_revenue: int | None
    roi: Fraction | None  # net ÷ (incentive + channel cost)
    attributed_orders: int
    attributed_revenue: int
    channels: tuple[Row, ...]
    steps: tuple[Row, ...]
    incentives: tuple[Row, ...]
    variants: tuple[VariantFigures, ...] = ()  # by experiment, then variant


def build(
    outcomes: Sequence[CartOutcome],
    *,
    store_id: int,
    currency: str,
    since: datetime,
    until: datetime,
    windows: Mapping[str, timedelta],
    channel_cost: Mapping[str, Decimal],
) -> Report:
    """The report over these carts; `channel_cost` is per message, in major units of `currency`."""
    treated = [o for o in outcomes if o.group is Group.TREATED]
    holdout = [o for o in outcomes if o.group is Group.HOLDOUT]
    ledger = _Ledger(windows, channel_cost, currency)
    for outcome in treated:
        ledger.add(outcome)
    incremental, why = _incremental(treated, holdout)
    costs = ledger.incentive_total + ledger.channel_total
    net = None if incremental is None else incremental.revenue - costs
    return Report(
        store_id=store_id,
        currency=currency,
        since=since,
        until=until,
        abandoned=len(outcomes),
        abandoned_value=sum(o.value for o in outcomes),
        treated=_figures(treated),
        holdout=_figures(holdout),
        incremental=incremental,
        not_enough_data=why,
        incentive_cost=ledger.incentive_total,
        channel_cost=ledger.channel_total,
        net_incremental_revenue=net,
        roi=Fraction(net, costs) if net is not None and costs else None,
        attributed_orders=ledger.attributed_orders,
        attributed_revenue=ledger.attributed_revenue,
        channels=ledger.rows("channel"),
        steps=ledger.rows("step"),
        incentives=ledger.rows("incentive"),
        variants=_variants(treated, _figures(holdout)),
    )


def _variants(treated: Sequence[CartOutcome], holdout: GroupFigures) -> tuple[VariantFigures, ...]:
    """Each experiment variant's figures; the probability of being best is among the experiment's variants."""
    arms: dict[tuple[str, str], list[CartOutcome]] = defaultdict(list)
    for outcome in treated:
        if outcome.experiment is not None and outcome.variant is not None:
            arms[outcome.experiment, outcome.variant].append(outcome)
    result = []
    for experiment in sorted({e for e, _ in arms}):
        names = sorted(v for e, v in arms if e == experiment)
        figures = [_figures(arms[experiment, name]) for name in names]
        best = probability_of_best([(f.recovered, f.carts) for f in figures])
        for name, f, p in zip(names, figures, best, strict=True):
            enough = f.carts >= MIN_CARTS and holdout.carts >= MIN_CARTS
            lift = difference_of_proportions(f.recovered, f.carts, holdout.recovered, holdout.carts) if enough else None
            result.append(VariantFigures(experiment, name, f.carts, f.recovered, f.revenue, lift, p))
    return tuple(result)


def _figures(outcomes: Sequence[CartOutcome]) -> GroupFigures:
    recovered = [o for o in outcomes if o.order is not None]
    return GroupFigures(len(outcomes), len(recovered), sum(o.revenue for o in recovered))


def _incremental(
    treated: Sequence[CartOutcome], holdout: Sequence[CartOutcome]
) -> tuple[Incremental | None, str | None]:
    if len(treated) < MIN_CARTS or len(holdout) < MIN_CARTS:
        return None, (
            f"not enough data: {len(treated)} treated and {len(holdout)} holdout carts "
            f"(at least {MIN_CARTS} of each are needed)"
        )
    t, h = _figures(treated), _figures(holdout)
    rate = difference_of_proportions(t.recovered, t.carts, h.recovered, h.carts)
    per_cart = difference_of_means([o.revenue for o in treated], [o.revenue for o in holdout])
    exact = (Fraction(t.revenue, t.carts) - Fraction(h.revenue, h.carts)) * t.carts
    scale = t.carts
    return Incremental(
        recovery_rate=rate,
        revenue_per_cart=per_cart,
        revenue=round(exact),  # Fraction rounds half to even
        revenue_low=None if per_cart.low is None else round(per_cart.low * scale),
        revenue_high=None if per_cart.high is None else round(per_cart.high * scale),
    ), None


class _Ledger:
    """Sends, clicks, last-touch credit and costs, added up per channel, step and incentive."""

    KEYS: Mapping[str, Callable[[str, str, str], str]] = {
        "channel": lambda channel, step, incentive: channel,
        "step": lambda channel, step, incentive: step,
        "incentive": lambda channel, step, incentive: incentive,
    }

    def __init__(self, windows: Mapping[str, timedelta], channel_cost: Mapping[str, Decimal], currency: str) -> None:
        self._windows, self._cost, self._currency = windows, channel_cost, currency
        self._counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._channel_spend: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.incentive_total = 0
        self.attributed_orders = 0
        self.attributed_revenue = 0

    @property
    def channel_total(self) -> int:
        """What the channels cost, rounded half-even to the minor unit once, over every message."""
        spend = sum((v for (kind, _), v in self._channel_spend.items() if kind == "channel"), Decimal(0))
        return to_minor(spend, self._currency)

    def add(self, outcome: CartOutcome) -> None:
        """Count one treated cart's messages, clicks, and its order's credit and discount."""
        for step in outcome.sends:
            channel = step.channel.value if step.channel else ""
            self._bump(channel, step.name, incentive_of(step), "sends")
            for kind, key in self._keys(channel, step.name, incentive_of(step)):
                self._channel_spend[kind, key] += self._cost.get(channel, Decimal(0))
        for click in outcome.clicks:
            self._bump(click.channel, click.step, click.incentive, "clicks")
        order = outcome.order
        if order is None:
            return
        touch = last_touch(order.placed_at, [*sends_as_touches(outcome), *outcome.clicks], self._windows)
        if touch is not None:
            self.attributed_orders += 1
            self.attributed_revenue += outcome.revenue
            self._bump(touch.channel, touch.step, touch.incentive, "orders")
            self._bump(touch.channel, touch.step, touch.incentive, "revenue", outcome.revenue)
        coupon_step = _step_of_code(outcome.sends, order.coupons)
        if coupon_step is not None and order.discount:
            self.incentive_total += order.discount
            channel = coupon_step.channel.value if coupon_step.channel else ""
            self._bump(channel, coupon_step.name, incentive_of(coupon_step), "incentive_cost", order.discount)

    def rows(self, kind: str) -> tuple[Row, ...]:
        """The breakdown by `kind` ("channel", "step" or "incentive"), by key."""
        keys = sorted(
            {key for (k, key) in self._counts if k == kind} | {key for (k, key) in self._channel_spend if k == kind}
        )
        return tuple(
            Row(
                key,
                channel_cost=to_minor(self._channel_spend.get((kind, key), Decimal(0)), self._currency),
                **self._counts.get((kind, key), {}),
            )
            for key in keys
        )

    def _keys(self, channel: str, step: str, incentive: str) -> list[tuple[str, str]]:
        return [(kind, of(channel, step, incentive)) for kind, of in self.KEYS.items()]

    def _bump(self, channel: str, step: str, incentive: str, field: str, amount: int = 1) -> None:
        for slot in self._keys(channel, step, incentive):
            self._counts[slot][field] += amount


def _step_of_code(steps: Sequence[Step], coupons: Sequence[str]) -> Step | None:
    """The sent step whose coupon code the order used (codes compared without regard to case, as shops do)."""
    used = {code.strip().upper() for code in coupons}
    return next((s for s in steps if s.coupon and s.coupon.strip().upper() in used), None)


def recovery(
    uow: UnitOfWork,
    store_id: int,
    currency: str,
    since: datetime,
    until: datetime,
    *,
    windows: Mapping[str, timedelta],
    channel_cost: Mapping[str, Decimal],
) -> Report:
    """The report of a store's carts abandoned in [since, until), read in one transaction."""
    outcomes = abandoned_between(uow, store_id, since, until)
    return build(
        outcomes,
        store_id=store_id,
        currency=currency,
        since=since,
        until=until,
        windows=windows,
        channel_cost=channel_cost,
    )
