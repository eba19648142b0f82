"""The learned policy: the action with the best expected incremental profit that the guardrails allow.

For each candidate plan a (DESIGN.md section 5):

    value(a) = uplift(a) · (order value + clv_weight · lifetime value) · margin
               − w · P(order | a) · P(the order uses the incentive | a) · percent_off(a) · order value
               − Σ channel costs of its touches

and value(no contact) = 0, where w is `[decisions] discount_weight` (1: a discount costs its face value). The incentive is charged on every order the plan may bring through its offer,
including the orders that would have come anyway: that is what makes a discount to a shopper who returns alone
a loss. An offer that comes late is used by fewer of the orders (the earlier reminders and the shoppers who come
back alone take the rest): the bundle learns that share from which logged orders used our codes; without it,
every order is charged.

With `[decisions] caution` κ > 0, plans are ranked by a pessimistic value instead: the plan's effect on the
log-odds of an order κ standard deviations below its estimate, and the share of its orders that use the offer κ
above (the models' covariances, models/effects.py). A plan that the log tried on few carts like this one is then
not chosen for an estimate that its noise alone made large (the winner's curse of an argmax over 37 noisy
estimates). The recorded P(order), uplift and expected incentive stay the estimates; only the ranking is cautious.

A share of decisions explores: it picks uniformly among the allowed plans, and every decision records the
probability its plan had of being chosen (its propensity), so that uplift can be learned without bias and a new
policy evaluated offline (`cartrecover evaluate-policy`). Which decisions explore is a hash of the cart and its
abandonment, so a replay decides the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import numpy as np

from cartrecover.decide.actions import NO_CONTACT, Plan


class Scorer(Protocol):
    """The fitted models, as a decision needs them (cartrecover.models.bundle.Bundle)."""

    version: int

    def no_contact(self, row: np.ndarray) -> float:
        """P(order | no contact), calibrated."""
        ...

    def outcomes(self, row: np.ndarray, actions: np.ndarray, caution: float = 0.0) -> np.ndarray:
        """P(order | plan) for each row of `actions` (described by actions.ACTION_NAMES); with `caution` κ, the
        plan's effect on the log-odds κ standard deviations below its estimate."""
        ...

    def explain(self, row: np.ndarray, top: int) -> list[tuple[str, float]]:
        """The features that moved the no-contact prediction most (TreeSHAP), largest first."""
        ...

    def discount_shares(self, row: np.ndarray, actions: np.ndarray, caution: float = 0.0) -> np.ndarray:
        """For each plan, the share of its orders that would use its incentive (1 where unknown); with `caution` κ,
        its log-odds κ standard deviations above the estimate."""
        ...


@dataclass(frozen=True)
class Economics:
    """What an order is worth to the store and what each touch costs, in the store's major units."""

    margin: float = 0.3
    margin_floor: float = 0.1  # no discount takes the order's margin below this
    max_discount_percent: int = 30
    clv_weight: float = 0.0  # the share of a shopper's expected future spend a won-back order also wins
    channel_costs: Mapping[str, float] = field(default_factory=lambda: {"email": 0.001, "sms": 0.04, "push": 0.0005})
    discount_weight: float = 1.0  # a unit of discount given counts this many times when plans are compared
    caution: float = 0.0  # plans are ranked by their value this many standard deviations below the estimate

    def allows(self, plan: Plan) -> bool:
        """The discount guardrails: the maximum discount and the margin floor."""
        percent = plan.percent_off
        return percent <= self.max_discount_percent and self.margin - percent / 100 >= self.margin_floor - 1e-9

    def cost(self, plan: Plan) -> float:
        """The channel cost of every touch the plan makes (on its first-choice channel)."""
        return sum(self.channel_costs.get(t.channels[0].value, 0.0) for t in plan.touches)


@dataclass(frozen=True)
class Valued:
    """One candidate with its scores."""

    plan: Plan
    p_order: float
    uplift: float
    value: float  # what it was ranked by: the expected value, or with caution its pessimistic value
    incentive: float = 0.0  # the expected discount it gives, in the store's major units


@dataclass(frozen=True)
class Choice:
    """What the policy chose and why: the values of the chosen plan and the runner-up, and its propensity."""

    plan: Plan
    propensity: float
    explored: bool
    p_no_contact: float
    chosen: Valued
    runner_up: Valued | None
    candidates: int
    contributions: list[tuple[str, float]]
    greedy: Plan  # the best plan: what an exploring decision set aside


def choose(
    scorer: Scorer,
    row: Sequence[float],
    plans: Sequence[Plan],
    *,
    order_value: float,
    clv: float,
    economics: Economics,
    exploration: float,
    seed: str,
    explain: int = 5,
) -> Choice:
    """The best plan among `plans` (no contact is always allowed), or a random one for an exploring decision."""
    allowed = [NO_CONTACT, *(p for p in plans if p.touches and economics.allows(p))]
    x = np.asarray(row, dtype=np.float64)
    p0 = scorer.no_contact(x)
    treated = allowed[1:]
    described = _described(tuple(treated))
    probabilities = scorer.outcomes(x, described) if treated else np.empty(0)
    used = scorer.discount_shares(x, described) if treated else np.empty(0)
    low, high = probabilities, used
    if economics.caution and treated:
        low = scorer.outcomes(x, described, caution=economics.caution)
        high = scorer.discount_shares(x, described, caution=economics.caution)
    worth = (order_value + economics.clv_weight * clv) * economics.margin
    valued = [Valued(NO_CONTACT, p0, 0.0, 0.0)]
    rows = zip(treated, probabilities.tolist(), used.tolist(), low.tolist(), high.tolist(), strict=True)
    for plan, p, q, p_low, q_high in rows:
        incentive = p * q * plan.percent_off / 100 * order_value
        charged = p * q_high * plan.percent_off / 100 * order_value  # the incentive at the share's upper bound
        value = (p_low - p0) * worth - economics.discount_weight * charged - economics.cost(plan)
        valued.append(Valued(plan, p, p - p0, value, incentive))
    ranked = sorted(valued, key=lambda v: v.value, reverse=True)
    best = ranked[0]
    share = exploration / len(valued)
    draw, pick = _uniforms(seed)
    explored = draw < exploration
    chosen = valued[min(int(pick * len(valued)), len(valued) - 1)] if explored else best
    propensity = share + (1 - exploration) * (chosen is best)
    runner_up = next((v for v in ranked if v is not chosen), None)
    contributions = scorer.explain(x, explain) if explain else []
    return Choice(chosen.plan, propensity, explored, p0, chosen, runner_up, len(valued), contributions, best.plan)


def explore(plans: Sequence[Plan], exploration: float, seed: str) -> tuple[Plan | None, float]:
    """Before a model exists: (a uniformly drawn plan, its share) for an exploring decision, else (None, share).

    The rule-based journey then runs on the other decisions; its propensity is 1 − exploration (+ its share
    of the draw when it is one of the candidates, which the caller adds).
    """
    options = [NO_CONTACT, *(p for p in plans if p.touches)]
    draw, pick = _uniforms(seed)
    share = exploration / len(options)
    if draw >= exploration:
        return None, share
    return options[min(int(pick * len(options)), len(options) - 1)], share


@lru_cache(maxsize=256)
def _described(plans: tuple[Plan, ...]) -> np.ndarray:
    """The plans' descriptions as one matrix; a store's decisions see a handful of distinct plan sets."""
    matrix = np.asarray([p.describe() for p in plans], dtype=np.float64)
    matrix.flags.writeable = False
    return matrix


def _uniforms(seed: str) -> tuple[float, float]:
    """Two independent uniforms from a hash of `seed`: whether to explore, and which plan."""
    digest = hashlib.blake2b(seed.encode(), digest_size=16).digest()
    scale = float(2**64)
    return int.from_bytes(digest[:8], "big") / scale, int.from_bytes(digest[8:], "big") / scale
