"""A store's fitted models as one versioned bundle: what the registry stores and a decision loads.

The bundle is JSON (LightGBM models as their own text inside it), so a registry in any database can keep it and
a person can read it. It scores one decision: P(order | no contact), P(order | plan) for every candidate plan,
the lifetime value, the send time, and the TreeSHAP contributions that explain the no-contact score.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cartrecover.models.calibration import Isotonic
from cartrecover.models.clv import Clv
from cartrecover.models.effects import Effects, context_of
from cartrecover.models.sendtime import SendTime
from cartrecover.models.trees import Trees

FORMAT = 2  # 2: the contact model is models.effects (1 had boosted trees for it)


@dataclass
class Bundle:
    """The models of one training run for one store."""

    feature_version: str
    feature_names: tuple[str, ...]
    action_names: tuple[str, ...]
    propensity: Trees
    calibration: Isotonic
    effects: Effects
    clv: Clv | None = None
    send_time: SendTime | None = None
    discount: Effects | None = None  # the share of a plan's orders that use its incentive (log-odds, no offset)
    metrics: dict[str, Any] = field(default_factory=dict)
    version: int = 0  # the registry's number, set when loaded from it
    _last: tuple[bytes, float] = field(default=(b"", 0.0), repr=False, compare=False)
    _terms_key: bytes = field(default=b"", repr=False, compare=False)
    _terms_value: tuple[np.ndarray, np.ndarray] = field(default=(np.empty(0), np.empty(0)), repr=False, compare=False)

    def no_contact(self, row: np.ndarray) -> float:
        """P(order | no contact), calibrated."""
        return float(self.calibration.apply(_logistic(self._base(row))))

    def outcomes(self, row: np.ndarray, actions: np.ndarray, caution: float = 0.0) -> np.ndarray:
        """P(order | plan) for each row of `actions`: the calibrated no-contact probability plus each uplift; with
        `caution` κ, each plan's effect taken κ standard deviations below its mean (a lower bound)."""
        base = self._base(row)
        uncalibrated = _logistic(base)
        shift = float(self.calibration.apply(uncalibrated)) - uncalibrated
        context, plans = self._terms(row, actions)
        treated: np.ndarray = np.clip(self.effects.from_terms(base, context, plans, -caution) + shift, 0.0, 1.0)
        return treated

    def discount_shares(self, row: np.ndarray, actions: np.ndarray, caution: float = 0.0) -> np.ndarray:
        """For each plan, the share of its orders that would use its incentive; 1 without a model for it; with
        `caution` κ, its log-odds κ standard deviations above the mean (an upper bound: more discount charged)."""
        if self.discount is None:
            return np.ones(len(actions))
        context, plans = self._terms(row, actions)
        return self.discount.from_terms(0.0, context, plans, caution)

    def _terms(self, row: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The contact models' terms for a decision, computed once for both (a one-entry cache)."""
        key = row.tobytes() + actions.tobytes()
        if key != self._terms_key:
            self._terms_key, self._terms_value = key, (context_of(row), self.effects.plan_terms(actions))
        return self._terms_value

    def _base(self, row: np.ndarray) -> float:
        """The no-contact model's log-odds, computed once per decision (a one-entry cache on the row's bytes)."""
        key = row.tobytes()
        if key != self._last[0]:
            self._last = (key, float(self.propensity.raw(row.reshape(1, -1))[0]))
        return self._last[1]

    def explain(self, row: np.ndarray, top: int) -> list[tuple[str, float]]:
        """The `top` features by the size of their TreeSHAP contribution to the no-contact log-odds."""
        values = self.propensity.contributions(row)[:-1]
        order = np.argsort(-np.abs(values))[:top]
        return [(self.feature_names[i], round(float(values[i]), 4)) for i in order if values[i] != 0]

    def to_bytes(self) -> bytes:
        """The registry's form."""
        body = {
            "format": FORMAT,
            "feature_version": self.feature_version,
            "feature_names": list(self.feature_names),
            "action_names": list(self.action_names),
            "propensity": self.propensity.text,
            "calibration": self.calibration.to_dict(),
            "effects": self.effects.to_dict(),
            "clv": self.clv.to_dict() if self.clv else None,
            "send_time": self.send_time.to_dict() if self.send_time else None,
            "discount": self.discount.to_dict() if self.discount else None,
            "metrics": self.metrics,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, body: bytes, version: int = 0) -> Bundle:
        """Load a bundle from the registry; a format this code does not know is an error, not a guess."""
        data = json.loads(body)
        if data.get("format") != FORMAT:
            raise ValueError(f"model bundle format {data.get('format')!r}; this version reads {FORMAT}: train again")
        return cls(
            feature_version=data["feature_version"],
            feature_names=tuple(data["feature_names"]),
            action_names=tuple(data["action_names"]),
            propensity=Trees.from_text(data["propensity"]),
            calibration=Isotonic.from_dict(data["calibration"]),
            effects=Effects.from_dict(data["effects"]),
            clv=Clv.from_dict(data["clv"]) if data.get("clv") else None,
            send_time=SendTime.from_dict(data["send_time"]) if data.get("send_time") else None,
            discount=Effects.from_dict(data["discount"]) if data.get("discount") else None,
            metrics=data.get("metrics", {}),
            version=version,
        )


def _logistic(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))
