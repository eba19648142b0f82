"""Off-policy evaluation of a model bundle on the decisions a store logged, before it goes live.

The reward of a logged decision is the profit it brought: the order's margin less the discount its plan
offered (counted `discount_weight` times, as the policy counts it), if the cart was ordered within its window, less
the plan's channel costs. The candidate policy is the
bundle's choice over the plans each logged shopper could get, made as serving makes it (`policy.choose` with the
config's economics: `discount_weight` and `caution` included). Only decisions with a logged propensity
count (exploring or exploring-capable ones); IPS, self-normalised IPS and doubly robust (with the bundle's own
reward model) estimate what the candidate would have earned per decision, next to what the logged policy did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cartrecover.decide import features, policy
from cartrecover.decide.actions import Plan, reachable
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.journey import Channel
from cartrecover.learn import ope
from cartrecover.learn.train import Example, NotEnoughData, train
from cartrecover.models.bundle import Bundle
from cartrecover.ports.shoppers import Shopper

HELD_OUT = 0.2  # the newest share of the log a candidate is checked on before it may go live


@dataclass(frozen=True)
class Evaluation:
    """A candidate's estimated value per decision and the logged policy's, on the same decisions."""

    decisions: int
    logged_value: float
    estimates: tuple[ope.Estimate, ...]
    agreement: float  # the share of decisions where the candidate would have chosen the logged plan


def evaluate(found: Sequence[Example], bundle: Bundle, config: DecisionConfig, max_discount: int) -> Evaluation:
    """IPS, SNIPS and DR of the bundle's greedy policy on the randomised part of `found`."""
    usable = [e for e in found if e.record.propensity and e.record.group != "holdout"]
    if not usable:
        raise ValueError("no logged decision has a propensity: turn exploration on and let it log some")
    economics = config.economics(max_discount)
    plans, w = config.plans(), config.discount_weight
    reward, logged, target, predicted, expected = [], [], [], [], []
    for example in usable:
        record = example.record
        row = record.features
        allowed = _reachable(plans, row)
        choice = policy.choose(
            bundle, row, allowed, order_value=example.value, clv=0.0, economics=economics, exploration=0.0,
            seed=record.cart_id, explain=0,
        )  # fmt: skip
        logged_plan = next((p for p in plans if p.describe() == record.action), None)
        percent, cost = record.action[5], economics.cost(logged_plan) if logged_plan else 0.0
        given = percent if example.discounted else 0.0  # the discount the order really took
        reward.append(_profit(float(example.ordered), example.value, config.margin, w * given, cost))
        logged.append(record.propensity or 1.0)
        target.append(float(choice.plan.describe() == record.action))
        p_logged, q_logged = _p_order(bundle, row, record.action)
        predicted.append(_profit(p_logged, example.value, config.margin, w * percent * q_logged, cost))
        chosen = choice.plan
        expected.append(
            choice.chosen.p_order * example.value * config.margin - w * choice.chosen.incentive - economics.cost(chosen)
        )
    arrays = [np.asarray(a, dtype=np.float64) for a in (reward, logged, target, predicted, expected)]
    r, p, t, q, e = arrays
    estimates = (
        ope.ips(r, p, t),
        ope.snips(r, p, t),
        ope.doubly_robust(r, p, t, q, e),
    )
    return Evaluation(len(usable), float(r.mean()), estimates, float(t.mean()))


@dataclass(frozen=True)
class Check:
    """Whether a new model's policy beat the one running, offline, on the newest decisions it was not fitted on."""

    passed: bool
    reason: str
    decisions: int = 0
    running_value: float = float("nan")  # what the running policy's own (non-exploring) decisions earned, mean
    estimate: ope.Estimate | None = None  # the doubly robust value of the candidate's policy

    def metrics(self) -> dict[str, float]:
        """For the registry's metrics."""
        if self.estimate is None:
            return {"offline_check_passed": float(self.passed)}
        return {
            "offline_check_passed": float(self.passed),
            "offline_decisions": float(self.decisions),
            "offline_running_value": self.running_value,
            "offline_dr_value": self.estimate.value,
            "offline_dr_low": self.estimate.low,
            "offline_dr_high": self.estimate.high,
        }


def check(found: Sequence[Example], purchasers: Sequence[Shopper], config: DecisionConfig, max_discount: int) -> Check:
    """Fit on the older part of `found` (oldest first), then compare on the newest part: the candidate's doubly
    robust value per decision against what the running policy's own decisions earned there."""
    cut = int(len(found) * (1 - HELD_OUT))
    older, newest = found[:cut], found[cut:]
    try:
        candidate = train(older, purchasers).bundle
    except NotEnoughData as exc:
        return Check(False, f"too little data to check a model offline ({exc})")
    running = [
        _profit(float(e.ordered), e.value, config.margin, config.discount_weight * e.record.action[5] * e.discounted, _cost(config, max_discount, e.record.action))
        for e in newest
        if e.record.group == "treated" and not e.record.explored and e.record.propensity
    ]  # fmt: skip
    try:
        result = evaluate(newest, candidate, config, max_discount)
    except ValueError as exc:
        return Check(False, str(exc))
    if len(running) < 30:
        return Check(False, f"only {len(running)} decisions of the running policy among the newest to compare with")
    running_value = float(np.mean(running))
    dr = next(e for e in result.estimates if e.estimator == "doubly_robust")
    passed = dr.value > running_value
    verdict = "beats" if passed else "does not beat"
    reason = (
        f"on the newest {result.decisions} decisions the model's policy {verdict} the running one: "
        f"DR {dr.value:.3f} per decision (95 % {dr.low:.3f} to {dr.high:.3f}) against {running_value:.3f}"
    )
    return Check(passed, reason, result.decisions, running_value, dr)


def _cost(config: DecisionConfig, max_discount: int, action: Sequence[float]) -> float:
    plan = next((p for p in config.plans() if p.describe() == list(action)), None)
    return config.economics(max_discount).cost(plan) if plan is not None else 0.0


def _profit(p_order: float, value: float, margin: float, percent: float, cost: float) -> float:
    """A decision's (expected) profit: the order's margin less the plan's discount (`percent`, already weighted),
    if it orders, less its costs."""
    return p_order * (value * margin - percent / 100 * value) - cost


def _reachable(plans: Sequence[Plan], row: Sequence[float]) -> list[Plan]:
    named = dict(zip(features.NAMES, row, strict=True))
    usable = frozenset(
        c for c, key in ((Channel.EMAIL, "email_ok"), (Channel.SMS, "sms_ok"), (Channel.PUSH, "push_ok")) if named[key]
    )
    return [p for p in plans if p.touches and reachable(p, usable)]


def _p_order(bundle: Bundle, row: Sequence[float], action: Sequence[float]) -> tuple[float, float]:
    """P(order) under the logged action, and the share of its orders that would use its incentive."""
    x = np.asarray(row, dtype=np.float64)
    if not action[0]:
        return bundle.no_contact(x), 0.0
    described = np.asarray([action], dtype=np.float64)
    return float(bundle.outcomes(x, described)[0]), float(bundle.discount_shares(x, described)[0])
