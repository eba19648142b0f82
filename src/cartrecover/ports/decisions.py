"""Decisions as logged, for training, off-policy evaluation and explanations; and the fitted models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass
class DecisionRecord:
    """One decision at a cart's abandonment: what was known, what was chosen, with which probability, and why.

    `features` are the row the models saw (decide.features, version `feature_version`); `action` describes the
    chosen plan (decide.actions.ACTION_NAMES); `propensity` is the probability the plan had of being chosen
    (None when it was not random: the holdout, or a rule-based journey without exploration); `greedy` describes the
    plan the deciding policy would have chosen had it not explored (the action itself when it did not), so that a
    new policy can be compared offline with the running one on the same decisions (None in older logs).
    While a model is on trial (`Models.trial`), `trial` is its version and `arm` says which policy decided:
    "candidate" (the model on trial) or "running" (the active model, or the rules); both None otherwise.
    """

    store_id: int
    cart_id: str
    shopper_id: str
    at: datetime
    group: str
    policy: str
    plan: str
    action: list[float]
    features: list[float]
    feature_version: str
    propensity: float | None = None
    explored: bool = False
    model_version: int | None = None
    incentive: float = 0.0  # the expected cost of the plan's incentive, for the budget (major units)
    scores: dict[str, Any] = field(default_factory=dict)  # chosen and runner-up values, P(order), uplift
    contributions: list[tuple[str, float]] = field(default_factory=list)  # the top features, TreeSHAP
    greedy: list[float] | None = None
    trial: int | None = None
    arm: str | None = None


class Decisions(Protocol):
    """The decision log; every method is scoped to one store."""

    def add(self, record: DecisionRecord) -> None:
        """Log a decision (a cart abandoned twice has two)."""
        ...

    def between(self, store_id: int, since: datetime, until: datetime) -> list[DecisionRecord]:
        """Decisions taken in [since, until), oldest first."""
        ...

    def for_cart(self, store_id: int, cart_id: str) -> list[DecisionRecord]:
        """A cart's decisions, oldest first."""
        ...

    def incentive_committed(self, store_id: int, since: datetime) -> float:
        """The expected incentive cost of the decisions taken since `since` (for the budget)."""
        ...


@dataclass(frozen=True)
class ModelVersion:
    """One trained model bundle in the registry."""

    store_id: int
    version: int
    trained_at: datetime
    active: bool
    metrics: dict[str, Any]
    trial_share: float | None = None  # on trial: the share of treated shoppers it decides for


class Models(Protocol):
    """The model registry: every bundle trained for a store, one of them active; older ones kept for rollback.

    At most one other bundle may be on trial: it decides for a share of the treated shoppers, the active one (or the
    rules) for the rest, until the trial is judged (`cartrecover models trial`), stopped, or a version is activated.
    """

    def add(self, store_id: int, trained_at: datetime, metrics: dict[str, Any], body: bytes, activate: bool) -> int:
        """Store a bundle; returns its version (1, 2, …)."""
        ...

    def active(self, store_id: int) -> tuple[int, bytes] | None:
        """(version, body) of the store's active bundle."""
        ...

    def active_version(self, store_id: int) -> int | None:
        """The number of the store's active bundle (cheap: for a cache to check it is current)."""
        ...

    def body(self, store_id: int, version: int) -> bytes:
        """One bundle, active or not (KeyError if there is no such version)."""
        ...

    def versions(self, store_id: int) -> list[ModelVersion]:
        """Every bundle of the store, newest first."""
        ...

    def activate(self, store_id: int, version: int | None) -> bool:
        """Make `version` the active one (None: none, back to the rules) and end any trial; False if there is no
        such version (nothing changes then)."""
        ...

    def trial(self, store_id: int) -> tuple[int, float] | None:
        """(version, share) of the bundle on trial, or None (cheap: read on every decision's model lookup)."""
        ...

    def start_trial(self, store_id: int, version: int, share: float) -> bool:
        """Put `version` on trial for `share` (0 < share < 1) of the treated shoppers, ending any other trial; False
        if there is no such version or it is the active one (nothing changes then)."""
        ...

    def end_trial(self, store_id: int) -> int | None:
        """End the store's trial; the version that was on trial, or None if there was none."""
        ...
