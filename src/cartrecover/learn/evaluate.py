"""Off-policy evaluation of a model bundle on the decisions a store logged, before it goes live.

The reward of a logged decision is the profit it brought: the order's margin less the discount its plan
offered (counted `discount_weight` times, as the policy counts it), if the cart was ordered within its window, less
the plan's channel costs. The candidate policy is the bundle's choice over the plans each logged shopper could get,
made as serving makes it (`policy.choose` with the config's economics, `discount_weight` and `caution` included,
and the cart's value when it was decided: an order's value is known only after it). Only decisions with a logged
propensity count (exploring or exploring-capable ones).

`evaluate`: IPS, self-normalised IPS and doubly robust (with the bundle's own reward model) estimate what the
candidate would have earned per decision, next to what the logged policy did. `compare`: the candidate against the
running policy on the same decisions, by the plan each decision logs as the one the running policy would have
chosen (`DecisionRecord.greedy`); `check`, which `cartrecover train` runs, uses it on the newest part of the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from cartrecover.decide import features, policy
from cartrecover.decide.actions import ACTION_NAMES, Plan, for_shopper
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.journey import Channel
from cartrecover.learn import ope
from cartrecover.learn.train import Example, NotEnoughData, train
from cartrecover.models.bundle import Bundle
from cartrecover.ports.shoppers import Shopper

PERCENT = ACTION_NAMES.index("percent_off")
VALUE = features.NAMES.index("cart_value")  # the cart's value when decided: what serving sees, not the order's
HELD_OUT = 0.2  # the newest share of the log a candidate is checked on before it may go live
DETECTABLE = 2.8  # standard errors a true difference needs to be seen 4 times in 5 at 95 % (1.96 + 0.84)


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
    rewards, logged, target, predicted, expected = [], [], [], [], []
    for example in usable:
        record = example.record
        row = record.features
        allowed = _reachable(plans, row)
        choice = policy.choose(
            bundle, row, allowed, order_value=row[VALUE], clv=0.0, economics=economics, exploration=0.0,
            seed=record.cart_id, explain=0,
        )  # fmt: skip
        rewards.append(reward(example, config, max_discount))
        logged.append(record.propensity or 1.0)
        target.append(float(choice.plan.describe() == record.action))
        predicted.append(_expected(bundle, row, list(record.action), config=config, max_discount=max_discount))
        chosen = choice.plan
        expected.append(
            choice.chosen.p_order * row[VALUE] * config.margin - w * choice.chosen.incentive - economics.cost(chosen)
        )
    arrays = [np.asarray(a, dtype=np.float64) for a in (rewards, logged, target, predicted, expected)]
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
    running_value: float = float("nan")  # the running policy's value per decision (estimated, or what it earned)
    estimate: ope.Estimate | None = None  # the doubly robust value of the candidate's policy
    difference: ope.Estimate | None = None  # candidate − running, paired on the same decisions (when known)

    @property
    def worse(self) -> bool:
        """Whether the check tells the new policy is worse than the running one: its whole interval below it."""
        if self.difference is not None:
            return self.difference.high < 0
        return self.estimate is not None and self.estimate.high < self.running_value

    def metrics(self) -> dict[str, float]:
        """For the registry's metrics."""
        if self.estimate is None:
            return {"offline_check_passed": float(self.passed)}
        return {
            "offline_check_passed": float(self.passed),
            "offline_check_worse": float(self.worse),
            "offline_decisions": float(self.decisions),
            "offline_running_value": self.running_value,
            "offline_dr_value": self.estimate.value,
            "offline_dr_low": self.estimate.low,
            "offline_dr_high": self.estimate.high,
        } | (
            {}
            if self.difference is None
            else {
                "offline_difference": self.difference.value,
                "offline_difference_low": self.difference.low,
                "offline_difference_high": self.difference.high,
            }
        )


@dataclass(frozen=True)
class Comparison:
    """A candidate policy against the running one, paired on the same logged decisions: the doubly robust estimate
    of the difference in profit per decision, and each side's own estimate."""

    decisions: int
    difference: ope.Estimate  # candidate − running, per decision
    candidate: ope.Estimate
    running: ope.Estimate
    agreement: float  # the share of decisions where both would have chosen the same plan


def compare(found: Sequence[Example], bundle: Bundle, config: DecisionConfig, max_discount: int) -> Comparison:
    """The bundle's greedy policy against the plans the running policy would have chosen (`record.greedy`), by the
    doubly robust difference on each logged decision with a propensity.

    Both sides are valued with the bundle's reward model q̂ on the same decision, and each side's correction
    w·(r − q̂(x, a)) / μ counts only where the logged action is its plan: where the two policies agree, the terms
    cancel exactly, so the order noise of those decisions drops out of the difference.
    """
    return comparison(paired_terms(found, bundle, config, max_discount))


def _comparable(example: Example) -> bool:
    record = example.record
    return bool(record.propensity and record.group != "holdout" and record.greedy)


def paired_terms(found: Sequence[Example], bundle: Bundle, config: DecisionConfig, max_discount: int) -> np.ndarray:
    """Per comparable decision (a propensity and the running policy's plan logged, not held out): the candidate's
    doubly robust term, the running policy's, and whether the two chose the same plan; `comparison` sums them up."""
    usable = [e for e in found if _comparable(e)]
    if not usable:
        raise ValueError("no logged decision has a propensity and the running policy's plan: turn exploration on")
    economics, plans = config.economics(max_discount), config.plans()
    rows = []
    for example in usable:
        record = example.record
        row = record.features
        choice = policy.choose(
            bundle, row, _reachable(plans, row), order_value=row[VALUE], clv=0.0, economics=economics,
            exploration=0.0, seed=record.cart_id, explain=0,
        )  # fmt: skip
        taken, greedy, described = list(record.action), list(record.greedy or ()), choice.plan.describe()
        predicted, candidate, running = (
            _expected(bundle, row, a, config=config, max_discount=max_discount) for a in (taken, described, greedy)
        )
        rows.append(
            (reward(example, config, max_discount), predicted, candidate, running, float(described == taken),
             float(greedy == taken), float(described == greedy), record.propensity)
        )  # fmt: skip
    r, q, e_candidate, e_running, on_candidate, on_running, same, mu = np.asarray(rows, dtype=np.float64).T
    residual = (r - q) / mu
    return np.column_stack((e_candidate + on_candidate * residual, e_running + on_running * residual, same))


def _mean(name: str, terms: np.ndarray) -> ope.Estimate:
    """A mean of per-decision terms with its normal 95 % interval: `ope.direct`'s, named for what it estimates."""
    return replace(ope.direct(terms), estimator=name)


def comparison(terms: np.ndarray) -> Comparison:
    """The paired estimates from `paired_terms` (of one part of a log, or of several stacked)."""
    theirs, ours, same = terms.T
    return Comparison(
        len(terms),
        _mean("doubly_robust_difference", theirs - ours),
        _mean("doubly_robust", theirs),
        _mean("doubly_robust", ours),
        float(same.mean()),
    )


def check(found: Sequence[Example], purchasers: Sequence[Shopper], config: DecisionConfig, max_discount: int) -> Check:
    """Fit on the older part of `found` (oldest first), then compare on the newest part: the candidate's doubly
    robust value per decision against the running policy's, paired on the same decisions (`compare`); a log
    without the running policy's plans (before `greedy` was recorded) falls back on what its own decisions earned."""
    cut = int(len(found) * (1 - HELD_OUT))
    older, newest = found[:cut], found[cut:]
    try:
        candidate = train(older, purchasers).bundle
    except NotEnoughData as exc:
        return Check(False, f"too little data to check a model offline ({exc})")
    if any(e.record.greedy for e in newest):
        try:
            paired = compare(newest, candidate, config, max_discount)
        except ValueError as exc:
            return Check(False, str(exc))
        difference = paired.difference
        passed = difference.value > 0
        verdict = "beats" if passed else "does not beat"
        resolution = (
            DETECTABLE * (difference.high - difference.low) / 2 / NormalDist().inv_cdf(0.5 + difference.level / 2)
        )
        reason = (
            f"on the newest {paired.decisions} decisions the model's policy {verdict} the running one: "
            f"{difference.value:+.3f} per decision (doubly robust, paired; 95 % {difference.low:+.3f} to "
            f"{difference.high:+.3f}; the two agree on {paired.agreement:.0%} of them); a true difference under "
            f"about {resolution:.2f} per decision is not told from noise on this many"
        )
        return Check(passed, reason, paired.decisions, paired.running.value, paired.candidate, difference)
    running = [
        reward(e, config, max_discount)
        for e in newest
        if e.record.group == "treated" and not e.record.explored and e.record.propensity
    ]
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
    """The channel cost of the plan `action` describes; a plan not among the candidates as configured (a configured
    journey's, or a candidate narrowed to an SMS-only shopper's channel) is costed from its description: its SMS
    touches at the SMS price, the others by their first channel's."""
    economics = config.economics(max_discount)
    plan = next((p for p in config.plans() if p.describe() == list(action)), None)
    if plan is not None:
        return economics.cost(plan)
    touches, sms = action[0], action[4]
    first = "push" if action[3] else "email"
    return sms * economics.channel_costs.get("sms", 0.0) + (touches - sms) * economics.channel_costs.get(first, 0.0)


def _profit(p_order: float, value: float, margin: float, percent: float, cost: float) -> float:
    """A decision's (expected) profit: the order's margin less the plan's discount (`percent`, already weighted),
    if it orders, less its costs."""
    return p_order * (value * margin - percent / 100 * value) - cost


def _reachable(plans: Sequence[Plan], row: Sequence[float]) -> list[Plan]:
    named = dict(zip(features.NAMES, row, strict=True))
    usable = frozenset(
        c for c, key in ((Channel.EMAIL, "email_ok"), (Channel.SMS, "sms_ok"), (Channel.PUSH, "push_ok")) if named[key]
    )
    return list(for_shopper(plans, usable))


def reward(example: Example, config: DecisionConfig, max_discount: int) -> float:
    """What a logged decision brought: the order's margin less the discount it really took (weighted), less costs.

    An order that used our code reports its total after the code's percentage; margin and discount are both shares
    of the price before it, so the total is taken back to that price first."""
    action = example.record.action
    given = action[PERCENT] if example.discounted else 0.0
    listed = example.value / (1 - given / 100) if given < 100 else example.record.features[VALUE]
    cost = _cost(config, max_discount, action)
    return _profit(float(example.ordered), listed, config.margin, config.discount_weight * given, cost)


def _expected(
    bundle: Bundle, row: Sequence[float], action: list[float], *, config: DecisionConfig, max_discount: int
) -> float:
    """The bundle's expected profit of the plan `action` describes, for the cart of `row` at its value when decided
    (both sides of a paired comparison are valued by this one function: where they agree their terms cancel)."""
    p, share = _p_order(bundle, row, action)
    cost = _cost(config, max_discount, action)
    return _profit(p, row[VALUE], config.margin, config.discount_weight * action[PERCENT] * share, cost)


def _p_order(bundle: Bundle, row: Sequence[float], action: Sequence[float]) -> tuple[float, float]:
    """P(order) under the logged action, and the share of its orders that would use its incentive."""
    x = np.asarray(row, dtype=np.float64)
    if not action[0]:
        return bundle.no_contact(x), 0.0
    described = np.asarray([action], dtype=np.float64)
    return float(bundle.outcomes(x, described)[0]), float(bundle.discount_shares(x, described)[0])
