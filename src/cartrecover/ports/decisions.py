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


class Models(Protocol):
    """The model registry: every bundle trained for a store, one of them active; older ones kept for rollback."""

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
        """Make `version` the active one (None: none, back to the rules); False if there is no such version."""
        ...
