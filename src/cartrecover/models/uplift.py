"""Uplift as a decision reads it: P(order | x, a) for every candidate action and what each adds over no contact.

`Uplift`: two sets of trees, both on the log-odds scale:

- `control` scores the shopper's features x alone: the log-odds of an order without contact;
- `treated` scores x next to an action's features a, and was boosted from `control`'s log-odds (its
  `init_score` in training), so its trees hold only what contact changes, and for whom.

So P(order | x, a) = σ(control(x) + treated(x, a)) and the uplift is that minus σ(control(x)): one LightGBM
call scores all K actions. When a `calibration` of the no-contact probability is given, it moves the
no-contact probability and every action's probability by the same amount (clipped to [0, 1]), which leaves
the uplifts as the trees say: the isotonic map is fitted on no-contact rows and says nothing about contact.

`LinearUplift`: one contact's effect as a penalised logistic regression on the same no-contact log-odds,
P(order | x, contact) = σ(control(x) + t · β), where t are terms of the row (named, computed by the caller from
the same features), the form of models/effects.py for one contact: every coefficient is an effect of contact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from cartrecover.models.calibration import Isotonic
from cartrecover.models.trees import Trees

__all__ = ["LinearUplift", "Scores", "Uplift"]


class Scores(NamedTuple):
    """What one shopper's decision reads: the no-contact probability, and per action its probability and uplift."""

    no_contact: float
    outcome: np.ndarray
    uplift: np.ndarray


@dataclass(frozen=True)
class Uplift:
    """The control and treated trees of a multi-action uplift model, with the no-contact calibration if any."""

    control: Trees
    treated: Trees
    calibration: Isotonic | None = None

    def __post_init__(self) -> None:
        width = len(self.control.names)
        if self.treated.names[:width] != self.control.names:
            raise ValueError("the treated trees must read the control features first, then the action features")

    @property
    def action_names(self) -> tuple[str, ...]:
        """Names of the action features, in the order `actions` columns must follow."""
        return self.treated.names[len(self.control.names) :]

    def base(self, x: np.ndarray) -> float:
        """The no-contact log-odds of one shopper's feature row (pass it to `score` to save a call)."""
        return float(self.control.raw(x.reshape(1, -1))[0])

    def score(self, x: np.ndarray, actions: np.ndarray, *, base: float | None = None) -> Scores:
        """Scores of K candidate actions (rows of `actions`, K × action features) for the feature row `x`."""
        if base is None:
            base = self.base(x)
        rows = np.empty((actions.shape[0], x.shape[0] + actions.shape[1]), dtype=np.float64)
        rows[:, : x.shape[0]] = x
        rows[:, x.shape[0] :] = actions
        outcome = _logistic(base + self.treated.raw(rows))
        no_contact = float(_logistic(np.float64(base)))
        uplift = outcome - no_contact
        if self.calibration is not None:
            shift = self.calibration.apply(no_contact) - no_contact
            no_contact += shift
            outcome = np.clip(outcome + shift, 0.0, 1.0)
        return Scores(no_contact, outcome, uplift)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (the trees as LightGBM's model text), read back by `from_dict`."""
        return {
            "control": self.control.text,
            "treated": self.treated.text,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Uplift:
        """The model written by `to_dict`."""
        calibration = data.get("calibration")
        return cls(
            Trees.from_text(data["control"]),
            Trees.from_text(data["treated"]),
            None if calibration is None else Isotonic.from_dict(calibration),
        )


@dataclass(frozen=True)
class LinearUplift:
    """The no-contact trees and one coefficient per term of what contact adds to their log-odds."""

    control: Trees
    term_names: tuple[str, ...]
    coefficients: np.ndarray
    penalty: float  # the L2 penalty the fit used, for the record

    def __post_init__(self) -> None:
        if self.coefficients.shape != (len(self.term_names),):
            raise ValueError(f"{self.coefficients.shape} coefficients for {len(self.term_names)} terms")

    def uplift(self, X: np.ndarray, terms: np.ndarray) -> np.ndarray:
        """P(order | contact) − P(order | no contact) of each row of features `X`, with its row of `terms`."""
        base = self.control.raw(X)
        lifted: np.ndarray = _logistic(base + terms @ self.coefficients) - _logistic(base)
        return lifted

    def score(self, x: np.ndarray, terms: np.ndarray, *, base: float | None = None) -> Scores:
        """Scores of contact for one feature row `x` and its `terms` (one action: arrays of length 1)."""
        if base is None:
            base = float(self.control.raw(x.reshape(1, -1))[0])
        no_contact = float(_logistic(np.float64(base)))
        outcome = float(_logistic(np.float64(base + float(terms @ self.coefficients))))
        return Scores(no_contact, np.array([outcome]), np.array([outcome - no_contact]))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, read back by `from_dict`."""
        return {
            "control": self.control.text,
            "term_names": list(self.term_names),
            "coefficients": self.coefficients.tolist(),
            "penalty": self.penalty,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinearUplift:
        """The model written by `to_dict`."""
        return cls(
            Trees.from_text(data["control"]),
            tuple(data["term_names"]),
            np.asarray(data["coefficients"], dtype=np.float64),
            float(data["penalty"]),
        )


def _logistic(z: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-z))
