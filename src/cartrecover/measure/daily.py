"""The recovery report day by day: each day's funnel per group, and the incremental revenue up to that day.

Carts are counted on the day (in the store's time zone) they were abandoned, as the report counts them in its
window. A day's funnel is abandoned → contacted (a message was sent) → clicked → recovered, for treated and
holdout carts. The incremental revenue of a day is cumulative, over the carts abandoned from the window's start
to the end of that day, computed as the report computes it: so the last day's figure is the report's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from cartrecover.domain.holdout import Group
from cartrecover.domain.money import to_major
from cartrecover.measure.outcomes import CartOutcome, abandoned_between
from cartrecover.measure.report import MIN_CARTS
from cartrecover.measure.statistics import difference_of_means
from cartrecover.ports.unit_of_work import UnitOfWork

MAX_DAYS = 400  # a bound on the answer's size; longer windows are refused by the caller


@dataclass(frozen=True)
class Funnel:
    """Carts of one group and how far they went: contacted, clicked, recovered (orders, each once), revenue."""

    carts: int = 0
    contacted: int = 0
    clicked: int = 0
    recovered: int = 0
    revenue: int = 0

    def plus(self, outcome: CartOutcome) -> Funnel:
        """This funnel with one more cart."""
        return Funnel(
            self.carts + 1,
            self.contacted + bool(outcome.sends),
            self.clicked + bool(outcome.clicks),
            self.recovered + (outcome.order is not None),
            self.revenue + outcome.revenue,
        )


@dataclass(frozen=True)
class CumulativeIncremental:
    """Incremental revenue of the carts abandoned so far, with its 95 % interval (minor units)."""

    revenue: int
    low: int | None
    high: int | None


@dataclass(frozen=True)
class Day:
    """One day of the series."""

    day: date
    treated: Funnel
    holdout: Funnel
    incremental: CumulativeIncremental | None  # None while either group has fewer than MIN_CARTS carts


@dataclass(frozen=True)
class Series:
    """Every day of [since, until) in the store's time zone, and the totals of the funnel."""

    currency: str
    timezone: str
    since: datetime
    until: datetime
    days: tuple[Day, ...]
    treated: Funnel
    holdout: Funnel


def daily(uow: UnitOfWork, store_id: int, currency: str, *, timezone: str, since: datetime, until: datetime) -> Series:
    """The series of a store's carts abandoned in [since, until), read in one transaction."""
    outcomes = abandoned_between(uow, store_id, since, until)
    abandoned = {o.cart_id: o.abandoned_at for o in outcomes if o.abandoned_at is not None}  # all: read by it
    return build_series(outcomes, abandoned, currency=currency, timezone=timezone, since=since, until=until)


def build_series(
    outcomes: Sequence[CartOutcome],
    abandoned_at: dict[str, datetime],
    *,
    currency: str,
    timezone: str,
    since: datetime,
    until: datetime,
) -> Series:
    """The series over these carts; `abandoned_at` gives each cart's abandonment time."""
    zone = ZoneInfo(timezone)
    first, last = since.astimezone(zone).date(), (until - timedelta(microseconds=1)).astimezone(zone).date()
    by_day: dict[date, list[CartOutcome]] = {}
    for outcome in outcomes:
        by_day.setdefault(abandoned_at[outcome.cart_id].astimezone(zone).date(), []).append(outcome)
    days, totals = [], {Group.TREATED: Funnel(), Group.HOLDOUT: Funnel()}
    revenues: dict[Group, list[int]] = {Group.TREATED: [], Group.HOLDOUT: []}
    day = first
    while day <= last:
        today = {Group.TREATED: Funnel(), Group.HOLDOUT: Funnel()}
        for outcome in by_day.get(day, ()):
            today[outcome.group] = today[outcome.group].plus(outcome)
            totals[outcome.group] = totals[outcome.group].plus(outcome)
            revenues[outcome.group].append(outcome.revenue)
        incremental = _incremental(revenues[Group.TREATED], revenues[Group.HOLDOUT])
        days.append(Day(day, today[Group.TREATED], today[Group.HOLDOUT], incremental))
        day += timedelta(days=1)
    return Series(currency, timezone, since, until, tuple(days), totals[Group.TREATED], totals[Group.HOLDOUT])


def _incremental(treated: Sequence[int], holdout: Sequence[int]) -> CumulativeIncremental | None:
    """As the report's: the exact difference of mean revenue per cart × treated carts, Welch's interval scaled."""
    if len(treated) < MIN_CARTS or len(holdout) < MIN_CARTS:
        return None
    exact = (Fraction(sum(treated), len(treated)) - Fraction(sum(holdout), len(holdout))) * len(treated)
    per_cart = difference_of_means(treated, holdout)
    scale = len(treated)
    return CumulativeIncremental(
        revenue=round(exact),  # Fraction rounds half to even, as the report does
        low=None if per_cart.low is None else round(per_cart.low * scale),
        high=None if per_cart.high is None else round(per_cart.high * scale),
    )


def series_as_json(series: Series) -> dict[str, Any]:
    """A JSON-ready dict; amounts in minor units beside `<name>_display` decimal text, as in the report."""
    cur = series.currency

    def money(name: str, minor: int | None) -> dict[str, Any]:
        return {name: minor, f"{name}_display": None if minor is None else str(to_major(minor, cur))}

    def funnel(f: Funnel) -> dict[str, Any]:
        return {
            "carts": f.carts,
            "contacted": f.contacted,
            "clicked": f.clicked,
            "recovered": f.recovered,
            **money("revenue", f.revenue),
        }

    def incremental(inc: CumulativeIncremental | None) -> dict[str, Any] | None:
        if inc is None:
            return None
        return {**money("revenue", inc.revenue), **money("revenue_low", inc.low), **money("revenue_high", inc.high)}

    return {
        "currency": cur,
        "timezone": series.timezone,
        "since": series.since.isoformat(),
        "until": series.until.isoformat(),
        "totals": {"treated": funnel(series.treated), "holdout": funnel(series.holdout)},
        "days": [
            {
                "date": d.day.isoformat(),
                "treated": funnel(d.treated),
                "holdout": funnel(d.holdout),
                "cumulative_incremental": incremental(d.incremental),
            }
            for d in series.days
        ],
    }
