"""The `[decisions]` section of `cartrecover.toml`: how the learned policy decides, and within which limits.

[decisions]
policy = "learned"          # "learned": a store's active model once it has one (the rules until then); "rules"
exploration = 0.1           # the share of decisions that pick a random allowed plan (propensities are logged)
margin = 0.3                # the store's gross margin on an order
margin_floor = 0.1          # no discount takes the margin below this
clv_weight = 0.0            # the share of a shopper's expected future spend that a won-back order also wins
incentives = [0, 5, 10, 15] # percent-off levels the policy may offer (the guardrails' maximum still applies)
cadences = ["1h", "1h,24h", "1h,24h,72h"]
channels = ["email", "sms", "push"]
discount_weight = 1.0       # what a unit of discount given costs, in units of discount: 1 is its face value
caution = 0.0               # plans ranked by their value this many standard deviations below the estimate
incentive_budget = 0        # expected discount per budget period, store currency (0: no budget)
budget_period = "30d"
send_time_window = "3h"     # follow-ups move up to this much toward the hour the shopper is most active
trial_share = 0.5           # a new model first decides for this share of shoppers, on trial (0: it goes live at once)
trial_days = 28             # a trial undecided after this many days of closed decisions goes to the better side

Each simple key can be set in the environment as CARTRECOVER_DECISIONS_<KEY> (e.g. CARTRECOVER_DECISIONS_POLICY).
`margin` and `channel_costs` (a table: email, sms, push, in major units) also apply to the report's profit view.

`discount_weight` above 1 makes the policy count every unit of discount it expects to give that many times when it
compares plans: for a store that counts what discounts cost beyond their face value (shoppers who learn to wait for
them) or wants to spend less on them. It is the even way to spend less: the discounts that go are those that buy the
least profit per unit given, wherever in the period the carts come, where `incentive_budget` stops every discount
once the period's budget is spent. The report's profit is still counted at face value.

`caution` above 0 makes the policy rank plans by a pessimistic value: each plan's effect that many standard
deviations (of the contact model's uncertainty, for this cart) below its estimate, and the share of orders using
its offer that many above. It keeps the policy from choosing plans the log has tried too rarely to know, whose
estimates are high by chance. 0 ranks by the estimates; a model trained before the uncertainty was kept serves as 0.

`trial_share` is how `cartrecover train` puts a new model to the test (unless its offline check found it worse): it decides
for that share of the treated shoppers (a hash of the shopper and the version, so a shopper stays on one side), the
running policy for the rest, and `cartrecover models trial` compares the profit the two sides really made per
decision. The offline check alone cannot tell the small differences that matter at a shop's volumes
(docs/benchmarks.md); the trial's comparison has no importance weights and keeps gathering evidence while it runs.
0 makes a model whose offline check beat the running policy go live for everyone at once, as before trials existed.

`trial_days` ends a trial the interval has not decided: once its closed decisions span that many days, the side
that made more per decision wins (the model goes live, or the running policy stays). The two are then within the
interval's width of each other, so either choice costs little, and the trial stops holding up the newer models
trained meanwhile (they wait while a trial runs). 0 lets a trial run until its interval decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any

from cartrecover.decide.actions import Plan, candidates
from cartrecover.decide.policy import Economics
from cartrecover.domain.journey import Channel
from cartrecover.errors import ConfigError

POLICIES = ("learned", "rules")


@dataclass(frozen=True)
class DecisionConfig:
    """`[decisions]`, parsed."""

    policy: str = "learned"
    exploration: float = 0.1
    margin: float = 0.3
    margin_floor: float = 0.1
    clv_weight: float = 0.0
    incentives: tuple[int, ...] = (0, 5, 10, 15)
    cadences: tuple[tuple[timedelta, ...], ...] = (
        (timedelta(hours=1),),
        (timedelta(hours=1), timedelta(hours=24)),
        (timedelta(hours=1), timedelta(hours=24), timedelta(hours=72)),
    )
    channels: tuple[Channel, ...] = (Channel.EMAIL, Channel.SMS, Channel.PUSH)
    channel_costs: Mapping[str, float] = field(default_factory=lambda: {"email": 0.001, "sms": 0.04, "push": 0.0005})
    discount_weight: float = 1.0
    caution: float = 0.0
    incentive_budget: float = 0.0
    budget_period: timedelta = timedelta(days=30)
    send_time_window: timedelta = timedelta(hours=3)
    trial_share: float = 0.5
    trial_days: int = 28

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"decisions.policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")
        for name in ("exploration", "margin", "margin_floor"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"decisions.{name} must be between 0 and 1")
        if not 0 <= self.trial_share < 1:
            raise ConfigError("decisions.trial_share must be at least 0 and below 1 (0: no trial, straight to live)")
        if not 0 <= self.trial_days <= 3650:
            raise ConfigError("decisions.trial_days must be between 0 and 3650 (0: until the interval decides)")
        if not 0 <= self.discount_weight <= 100:
            raise ConfigError(
                "decisions.discount_weight must be between 0 and 100 (1: a discount costs its face value)"
            )
        if not 0 <= self.caution <= 10:
            raise ConfigError("decisions.caution must be between 0 and 10 (standard deviations; 0: rank by estimates)")
        if any(not 0 <= p <= 100 for p in self.incentives) or not self.cadences or not self.channels:
            raise ConfigError("decisions: incentives are 0–100 %, and cadences and channels may not be empty")

    def plans(self) -> tuple[Plan, ...]:
        """Every candidate plan, no contact first."""
        return candidates(self.channels, self.cadences, self.incentives)

    def economics(self, max_discount_percent: int) -> Economics:
        """What the policy weighs, with the guardrails' maximum discount."""
        return Economics(
            self.margin,
            self.margin_floor,
            max_discount_percent,
            self.clv_weight,
            self.channel_costs,
            self.discount_weight,
            self.caution,
        )


def parse_decisions(
    raw: dict[str, Any], duration: Callable[[Any], timedelta], env: Mapping[str, str]
) -> DecisionConfig:
    """`[decisions]` from the config file, then CARTRECOVER_DECISIONS_* from the environment."""
    known = {f.name for f in fields(DecisionConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown [decisions] settings: {', '.join(sorted(unknown))}")
    merged: dict[str, Any] = dict(raw)
    for name in known:
        value = env.get(f"CARTRECOVER_DECISIONS_{name.upper()}")
        if value is not None:
            merged[name] = value.split(",") if name in ("incentives", "channels") else value
    values: dict[str, Any] = {}
    for name, value in merged.items():
        try:
            values[name] = _parsed(name, value, duration)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[decisions] {name} = {value!r}: {exc}") from exc
    return replace(DecisionConfig(), **values)


def _parsed(name: str, value: Any, duration: Callable[[Any], timedelta]) -> Any:
    """One `[decisions]` setting from its TOML or environment form."""
    if name in (
        "exploration",
        "margin",
        "margin_floor",
        "clv_weight",
        "incentive_budget",
        "discount_weight",
        "caution",
        "trial_share",
    ):
        return float(value)
    if name == "trial_days":
        days = float(value)
        if not days.is_integer():
            raise ValueError("a whole number of days")
        return int(days)
    if name == "incentives":
        return tuple(int(v) for v in value)
    if name == "channels":
        return tuple(Channel(str(v).strip()) for v in value)
    if name == "cadences":
        return tuple(tuple(duration(d.strip()) for d in str(c).split(",")) for c in value)
    if name in ("budget_period", "send_time_window"):
        return duration(value)
    if name == "channel_costs":
        return {Channel(k).value: float(v) for k, v in dict(value).items()}
    return str(value)
