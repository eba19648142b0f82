"""One decision at abandonment: the features, the plan (learned, explored or the rules'), its steps, its record.

Every abandonment is logged with its feature row, the plan and its propensity, the holdout's too: the
holdout and the "no contact" plan teach the no-contact model, exploring decisions teach the uplift model
without bias, and all of them let `cartrecover evaluate-policy` value a new policy offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cartrecover.decide import features, policy
from cartrecover.decide.actions import NO_CONTACT, Plan, Touch, for_shopper, narrowed, plan_of
from cartrecover.decide.online import RecentSends
from cartrecover.decide.policy import Economics, Scorer
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.cart import Cart
from cartrecover.domain.journey import Channel, Incentive, Journey, Step, step_id
from cartrecover.models.clv import Clv
from cartrecover.models.sendtime import SendTime
from cartrecover.ports.decisions import DecisionRecord
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.unit_of_work import UnitOfWork

INCENTIVE_VALID_FOR = timedelta(hours=72)
LIFETIME_PERIOD = timedelta(days=7)  # the lifetime-value model counts in weeks, as Fader & Hardie's CDNOW fit


class Models(Scorer, Protocol):
    """A store's active bundle as a decision uses it (cartrecover.models.bundle.Bundle)."""

    clv: Clv | None
    send_time: SendTime | None
    feature_version: str


@dataclass(frozen=True)
class Decided:
    """A decision's plan, its steps and its log record; `policy` and `reasons` go on the cart's timeline."""

    steps: tuple[Step, ...]
    record: DecisionRecord
    reasons: tuple[str, ...]


def usable_channels(shopper: Shopper | None) -> frozenset[Channel]:
    """The channels the shopper has an address and consent for (suppressions are checked at send time)."""
    if shopper is None:
        return frozenset()
    consent, usable = shopper.consent, set()
    if shopper.email and consent.get("email") is True:
        usable.add(Channel.EMAIL)
    if shopper.phone and consent.get("sms") is True:
        usable.add(Channel.SMS)
    if shopper.traits.get("push_subscription") and consent.get("push") is True:
        usable.add(Channel.PUSH)
    return frozenset(usable)


def lifetime_value(clv: Clv | None, shopper: Shopper | None, at: datetime) -> float | None:
    """The shopper's expected future spend (major units), from their order history; None without a model."""
    if clv is None:
        return None
    try:
        if shopper is None or not shopper.orders or shopper.first_order_at is None or shopper.last_order_at is None:
            return clv.value(0, 0.0, 0.0, 0.0)
        age = (at - shopper.first_order_at) / LIFETIME_PERIOD
        recency = (shopper.last_order_at - shopper.first_order_at) / LIFETIME_PERIOD
        mean = shopper.spend / 100 / shopper.orders
        value = clv.value(shopper.orders - 1, recency, max(age, recency), mean)
    except (ArithmeticError, ValueError):  # parameters far from any data seen: no estimate, never no decision
        return None
    return value if math.isfinite(value) else None


def observe(
    uow: UnitOfWork,
    cart: Cart,
    shopper: Shopper | None,
    timezone: str,
    clv: Clv | None,
    *,
    cache: RecentSends | None = None,
) -> list[float]:
    """The cart's feature row now (decide.features), with what only the state store knows."""
    at = cart.abandoned_at or cart.last_activity_at
    since = at - timedelta(days=30)
    messages = (
        uow.outbox.sent_since(cart.store_id, cart.shopper_id, since)
        if cache is None
        else cache.count_since(uow, cart.store_id, cart.shopper_id, since)  # the same count, through the cache
    )
    observed = features.Observed(messages, lifetime_value(clv, shopper, at), timezone)
    return features.row(cart, shopper, observed)


def holdout(cart: Cart, row: list[float], group: str) -> DecisionRecord:
    """The record of a held-out cart: no contact, not by chance."""
    return _record(cart, row, group, "holdout", NO_CONTACT)


def experiment(
    cart: Cart,
    shopper: Shopper | None,
    row: list[float],
    *,
    policy_name: str,
    journey: Journey,
    steps: Sequence[Step],
    probability: float,
) -> DecisionRecord:
    """The record of an experiment's variant: its journey, chosen with the variant's probability."""
    plan = _as_plan(rules_plan_name(journey), cart, steps, usable_channels(shopper))
    return _record(cart, row, "treated", policy_name, plan, propensity=probability)


def decide(
    uow: UnitOfWork,
    cart: Cart,
    shopper: Shopper | None,
    row: list[float],
    *,
    config: DecisionConfig,
    economics: Economics,
    models: Models | None,
    rules: tuple[str, tuple[Step, ...], tuple[str, ...]],
    timezone: str,
) -> Decided:
    """The treated cart's plan: the learned policy with a model, else the rules' journey; both explore."""
    assert cart.abandoned_at is not None, "decide only abandoned carts"
    seed = f"{cart.store_id}/{cart.cart_id}/{cart.abandoned_at.isoformat()}"
    usable = usable_channels(shopper)
    plans = [p for p in for_shopper(config.plans(), usable) if economics.allows(p)]
    plans = _within_budget(uow, cart, plans, config)
    send_time = models.send_time if models is not None else None
    if models is not None and config.policy == "learned" and models.feature_version == features.VERSION:
        value = cart.value / 100
        clv = lifetime_value(models.clv, shopper, cart.abandoned_at) or 0.0
        choice = policy.choose(
            models, row, plans, order_value=value, clv=clv, economics=economics,
            exploration=config.exploration, seed=seed,
        )  # fmt: skip
        record = _record(cart, row, "treated", f"learned:v{models.version}", choice.plan, propensity=choice.propensity)
        record.explored, record.model_version = choice.explored, int(models.version)
        record.greedy = choice.greedy.describe()
        record.incentive = choice.chosen.incentive
        record.scores = _scores(choice)
        record.contributions = choice.contributions
        why = "explored: a random allowed plan" if choice.explored else "the best expected incremental profit"
        reasons = (f"{choice.plan.name}: {why} ({choice.chosen.value:+.2f} expected vs no contact)",)
        steps = steps_of(
            cart, choice.plan, shopper=shopper, send_time=send_time, window=config.send_time_window, timezone=timezone
        )
        return Decided(steps, record, reasons)
    name, rule_steps, rule_reasons = rules
    journey = _as_plan(name, cart, rule_steps, usable)
    action = journey.describe()
    explored, share = policy.explore(plans, config.exploration, seed)
    # The journey's chance: the rules run it, and the draw can land on it too when it is one of the candidates.
    same = any(p.describe() == action for p in [NO_CONTACT, *plans])
    journey_chance = 1 - config.exploration + (share if same else 0.0)
    if explored is not None:
        chance = journey_chance if explored.describe() == action else share
        record = _record(cart, row, "treated", "explore", explored, propensity=chance)
        record.explored, record.greedy = True, action
        steps = steps_of(cart, explored, shopper=shopper, send_time=None, window=timedelta(0), timezone=timezone)
        return Decided(steps, record, (f"{explored.name}: explored while the store has no model",))
    record = _record(cart, row, "treated", name, journey, propensity=journey_chance if config.exploration else None)
    record.greedy = action
    return Decided(rule_steps, record, rule_reasons)


def steps_of(
    cart: Cart,
    plan: Plan,
    *,
    shopper: Shopper | None,
    send_time: SendTime | None,
    window: timedelta,
    timezone: str,
) -> tuple[Step, ...]:
    """The plan's touches as scheduled steps; follow-ups (a day or more later) move to the shopper's best hour."""
    assert cart.abandoned_at is not None
    steps = []
    hours = shopper.active_hours if shopper else {}
    zone = (shopper.timezone if shopper else None) or timezone
    for number, touch in enumerate(plan.touches):
        due = cart.abandoned_at + touch.delay
        if send_time is not None and touch.delay >= timedelta(hours=24):
            due = send_time.best(due, window, hours, zone)
        incentive = Incentive(touch.percent_off, 0, INCENTIVE_VALID_FOR) if touch.percent_off else None
        steps.append(
            Step(
                step_id=step_id(cart.cart_id, cart.abandoned_at, number),
                store_id=cart.store_id,
                cart_id=cart.cart_id,
                shopper_id=cart.shopper_id,
                number=number,
                name=f"{plan.name} · {number + 1}/{len(plan.touches)}",
                template="incentive" if incentive else "reminder",
                channels=touch.channels,
                due_at=due,
                incentive=incentive,
            )
        )
    return tuple(steps)


def rules_plan_name(journey: Journey) -> str:
    """How a rule-based journey is named in the decision log."""
    return "journey: " + " / ".join(step.name for step in journey.steps)


def _within_budget(uow: UnitOfWork, cart: Cart, plans: Sequence[Plan], config: DecisionConfig) -> list[Plan]:
    """Without budget left this period, no plan with an incentive."""
    if config.incentive_budget <= 0 or cart.abandoned_at is None:
        return list(plans)
    period = config.budget_period.total_seconds()
    start = cart.abandoned_at.timestamp() // period * period
    since = datetime.fromtimestamp(start, cart.abandoned_at.tzinfo)
    if uow.decisions.incentive_committed(cart.store_id, since) < config.incentive_budget:
        return list(plans)
    return [p for p in plans if not p.percent_off]


def _as_plan(name: str, cart: Cart, steps: Sequence[Step], usable: frozenset[Channel]) -> Plan:
    """Scheduled steps (a configured journey's) as a plan, timed from the cart's abandonment, as the shopper will
    get it: each step on the first of its channels they can get, the steps they can get on none left out. The
    models learn what a plan does from what it sent: a last step of "SMS, else email" that goes out as an email
    is logged as an email, and a journey with nothing the shopper can get as no contact."""
    assert cart.abandoned_at is not None
    at = cart.abandoned_at
    scheduled = (Touch(s.due_at - at, s.channels, s.incentive.percent if s.incentive else 0) for s in steps)
    return plan_of(name, [t for t in (narrowed(t, usable) for t in scheduled) if t.channels])


def _scores(choice: policy.Choice) -> dict[str, object]:
    def valued(v: policy.Valued) -> dict[str, object]:
        return {"plan": v.plan.name, "p_order": v.p_order, "uplift": v.uplift, "value": v.value}

    return {
        "p_no_contact": choice.p_no_contact,
        "chosen": valued(choice.chosen),
        "runner_up": valued(choice.runner_up) if choice.runner_up else None,
        "candidates": choice.candidates,
    }


def _record(
    cart: Cart, row: list[float], group: str, policy_name: str, plan: Plan, *, propensity: float | None = None
) -> DecisionRecord:
    assert cart.abandoned_at is not None
    return DecisionRecord(
        store_id=cart.store_id,
        cart_id=cart.cart_id,
        shopper_id=cart.shopper_id,
        at=cart.abandoned_at,
        group=group,
        policy=policy_name,
        plan=plan.name,
        action=plan.describe(),
        features=row,
        feature_version=features.VERSION,
        propensity=propensity,
    )
