"""P(order | plan) for every candidate plan in one call: the no-contact log-odds plus what the plan adds.

The treated model is boosted from the no-contact model's log-odds (its `init_score` in training), on the cart's
features next to the plan's description; so its trees learn only what contact changes, and for whom. The
uplift of a plan is its probability minus the no-contact one; both come from the same log-odds, so the
calibration of the no-contact model carries over as a shift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cartrecover.models.trees import Trees


@dataclass(frozen=True)
class Outcome:
    """The treated model; it needs the no-contact model's raw score for the same row."""

    treated: Trees

    def outcomes(self, base_logit: float, row: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Uncalibrated P(order | plan) for each row of `actions`, one LightGBM call for all of them."""
        rows = np.empty((actions.shape[0], row.shape[0] + actions.shape[1]), dtype=np.float64)
        rows[:, : row.shape[0]] = row
        rows[:, row.shape[0] :] = actions
        logits: np.ndarray = base_logit + self.treated.raw(rows)
        probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
        return probabilities

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the registry."""
        return {"treated": self.treated.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """The inverse of `to_dict`."""
        return cls(Trees.from_text(data["treated"]))
