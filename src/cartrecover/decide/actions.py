"""The actions a decision chooses from: no contact, or a plan of touches (channel × timing × incentive).

A plan starts on one channel; its follow-ups go by email, or on the first channel when there is no email. The
incentive, if any, comes with the last touch, as the fixed journeys do: early touches remind, the last one
persuades. Each plan is described to the uplift model by `ACTION_NAMES`, so what is learned about one plan
carries over to its neighbours (one more touch, five points more off).

A decision sees the plans as its shopper would get them (`for_shopper`): each touch keeps only the channels the
shopper can get, so an SMS-only shopper's "SMS, then email or SMS" plan is three SMS wherever it is scored,
costed, logged and sent, not one SMS and two emails.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from cartrecover.domain.journey import Channel

ACTION_NAMES: tuple[str, ...] = (
    "touches",
    "first_email",
    "first_sms",
    "first_push",
    "sms_touches",
    "percent_off",
    "incentive_delay_hours",
    "last_delay_hours",
)
CHANNEL_ORDER = (Channel.EMAIL, Channel.SMS, Channel.PUSH)


@dataclass(frozen=True)
class Touch:
    """One planned message: when after abandonment, on which channels (the first the shopper can get)."""

    delay: timedelta
    channels: tuple[Channel, ...]
    percent_off: int = 0


@dataclass(frozen=True)
class Plan:
    """A candidate action; the empty plan is no contact."""

    name: str
    touches: tuple[Touch, ...] = ()

    @property
    def percent_off(self) -> int:
        """The largest discount the plan offers."""
        return max((t.percent_off for t in self.touches), default=0)

    @property
    def first_channel(self) -> Channel | None:
        """The channel of the first touch (None for no contact)."""
        return self.touches[0].channels[0] if self.touches else None

    def describe(self) -> list[float]:
        """The plan as the uplift model sees it, in the order of `ACTION_NAMES`."""
        if not self.touches:
            return [0.0] * len(ACTION_NAMES)
        first = self.touches[0].channels[0]
        incentive = next((t for t in self.touches if t.percent_off), None)
        return [
            float(len(self.touches)),
            float(first is Channel.EMAIL),
            float(first is Channel.SMS),
            float(first is Channel.PUSH),
            float(sum(t.channels[0] is Channel.SMS for t in self.touches)),
            float(self.percent_off),
            incentive.delay.total_seconds() / 3600 if incentive else 0.0,
            self.touches[-1].delay.total_seconds() / 3600,
        ]


NO_CONTACT = Plan("no contact")


def candidates(
    channels: Iterable[Channel], cadences: Sequence[Sequence[timedelta]], incentives: Sequence[int]
) -> tuple[Plan, ...]:
    """No contact, then every (first channel, cadence, incentive) plan, in a stable order."""
    return _candidates(frozenset(channels), tuple(map(tuple, cadences)), tuple(incentives))


@lru_cache(maxsize=32)
def _candidates(
    channels: frozenset[Channel], cadences: tuple[tuple[timedelta, ...], ...], incentives: tuple[int, ...]
) -> tuple[Plan, ...]:
    """`candidates`, built once per configuration rather than on every decision."""
    plans = [NO_CONTACT]
    for channel in [c for c in CHANNEL_ORDER if c in channels]:
        follow = (Channel.EMAIL,) if channel is Channel.EMAIL else (Channel.EMAIL, channel)
        for cadence in cadences:
            for percent in incentives:
                touches = tuple(
                    Touch(delay, (channel,) if n == 0 else follow, percent if n == len(cadence) - 1 else 0)
                    for n, delay in enumerate(cadence)
                )
                hours = "+".join(_hours(d) for d in cadence)
                name = f"{channel.value} {hours}" + (f" {percent}% off" if percent else "")
                plans.append(Plan(name, touches))
    return tuple(plans)


def plan_of(name: str, touches: Sequence[Touch]) -> Plan:
    """Any list of touches as a plan (a configured journey, for logging it like a candidate)."""
    return Plan(name, tuple(touches))


def reachable(plan: Plan, usable: frozenset[Channel]) -> bool:
    """Whether the shopper can get the plan's first touch, and each later one on some channel."""
    if not plan.touches:
        return True
    return plan.touches[0].channels[0] in usable and all(set(t.channels) & usable for t in plan.touches[1:])


def for_shopper(plans: Iterable[Plan], usable: frozenset[Channel]) -> tuple[Plan, ...]:
    """The plans the shopper can get (`reachable`), each touch narrowed to the channels they can get, in order."""
    return _for_shopper(tuple(plans), usable)


@lru_cache(maxsize=256)
def _for_shopper(plans: tuple[Plan, ...], usable: frozenset[Channel]) -> tuple[Plan, ...]:
    """`for_shopper`, once per plan set and set of channels (a store has a handful of each)."""
    return tuple(
        Plan(p.name, tuple(narrowed(t, usable) for t in p.touches)) for p in plans if p.touches and reachable(p, usable)
    )


def narrowed(touch: Touch, usable: frozenset[Channel]) -> Touch:
    """The touch on the channels the shopper can get, in its order (none: they get nothing of it)."""
    return Touch(touch.delay, tuple(c for c in touch.channels if c in usable), touch.percent_off)


def _hours(delay: timedelta) -> str:
    hours = delay.total_seconds() / 3600
    return f"{hours:g}h"
