"""Isotonic calibration as serving applies it: a monotone piecewise-linear map from score to probability."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

__all__ = ["Isotonic"]


@dataclass(frozen=True, slots=True)
class Isotonic:
    """A fitted isotonic map: `values[i]` at `thresholds[i]`, linear between them, flat beyond the ends."""

    thresholds: tuple[float, ...]
    values: tuple[float, ...]
    _x: np.ndarray = field(init=False, repr=False, compare=False)
    _y: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.thresholds or len(self.thresholds) != len(self.values):
            raise ValueError("an isotonic map needs as many values as thresholds, and at least one")
        if any(b < a for a, b in zip(self.thresholds, self.thresholds[1:], strict=False)):
            raise ValueError("isotonic thresholds must be sorted")
        if any(b < a for a, b in zip(self.values, self.values[1:], strict=False)):
            raise ValueError("isotonic values must not decrease")
        # Arrays once, not a tuple conversion on every call.
        object.__setattr__(self, "_x", np.asarray(self.thresholds, dtype=np.float64))
        object.__setattr__(self, "_y", np.asarray(self.values, dtype=np.float64))

    @classmethod
    def identity(cls) -> Isotonic:
        """The map that changes nothing on [0, 1]."""
        return cls((0.0, 1.0), (0.0, 1.0))

    @overload
    def apply(self, p: float) -> float: ...
    @overload
    def apply(self, p: np.ndarray) -> np.ndarray: ...
    def apply(self, p: float | np.ndarray) -> float | np.ndarray:
        """Calibrated probabilities for raw ones (a float for a float, an array for an array)."""
        out = np.interp(p, self._x, self._y)
        return float(out) if np.ndim(out) == 0 else out

    def to_dict(self) -> dict[str, list[float]]:
        """A JSON-able form, read back by `from_dict`."""
        return {"thresholds": list(self.thresholds), "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Isotonic:
        """The map written by `to_dict`."""
        return cls(tuple(float(t) for t in data["thresholds"]), tuple(float(v) for v in data["values"]))
