"""Offline metrics of the propensity and uplift models: discrimination, calibration and the Qini coefficient.

The Qini coefficient is the normalised one of Radcliffe (2007) as scikit-uplift's `qini_auc_score` computes it
(with `negative_effect=True`), so that our learners and that library's are scored by the same number:

- sort by predicted uplift, highest first; ties form one step (the curve has a point only where the score
  changes);
- at each point, with the top `n` rows holding `n_t` treated and `n_c` control rows of which `y_t` and `y_c`
  responded, the Qini curve is `q(n) = y_t − y_c · n_t / n_c` (0 while `n_c` is 0), starting at (0, 0);
- the random line joins (0, 0) to the curve's last point, and the perfect curve is the Qini curve of the
  score `y · treated − y · (1 − treated)` (treated responders first, control responders last);
- the coefficient is (area under the curve − area under the random line) / (area under the perfect curve −
  area under the random line), areas by the trapezoidal rule. 0 is random, 1 is perfect.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "brier",
    "expected_calibration_error",
    "log_loss",
    "qini_coefficient",
    "qini_curve",
    "roc_auc",
]


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outranks a random negative (ties count ½)."""
    y = np.asarray(y, dtype=bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("ROC-AUC needs both classes")
    ranks = _average_ranks(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], values.size]
    average = (starts + ends + 1) / 2.0  # 1-based mean rank of each run of ties
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between the predicted probability and the 0/1 outcome."""
    return float(np.mean((np.asarray(p, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of the 0/1 outcomes, probabilities clipped to [eps, 1 − eps]."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over `bins` equal-width bins of [0, 1].

    The mean over rows of |observed rate − mean predicted probability| of the row's bin (bins weighted by
    their number of rows); a probability of exactly 1 falls in the last bin.
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gaps = np.abs(np.bincount(which, weights=y, minlength=bins) - np.bincount(which, weights=p, minlength=bins))
    return float(gaps.sum() / counts.sum())


def qini_curve(y: np.ndarray, uplift: np.ndarray, treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (rows targeted, Qini gain) of the Qini curve, highest predicted uplift first (see the module)."""
    y = np.asarray(y, dtype=np.float64)
    treated = np.asarray(treated, dtype=np.float64)
    uplift = np.asarray(uplift, dtype=np.float64)
    order = np.argsort(uplift, kind="mergesort")[::-1]
    y, treated, uplift = y[order], treated[order], uplift[order]
    last = np.r_[np.flatnonzero(np.diff(uplift)), uplift.size - 1]  # the last row of each run of ties
    n_treated = np.cumsum(treated)[last]
    y_treated = np.cumsum(y * treated)[last]
    y_control = np.cumsum(y * (1 - treated))[last]
    n_all = (last + 1).astype(np.float64)
    n_control = n_all - n_treated
    ratio = np.divide(n_treated, n_control, out=np.zeros_like(n_treated), where=n_control != 0)
    gain = y_treated - y_control * ratio
    return np.r_[0.0, n_all], np.r_[0.0, gain]


def qini_coefficient(y: np.ndarray, uplift: np.ndarray, treated: np.ndarray) -> float:
    """The normalised Qini coefficient (scikit-uplift's `qini_auc_score`, see the module): 0 random, 1 perfect."""
    y = np.asarray(y, dtype=np.float64)
    treated = np.asarray(treated, dtype=np.float64)
    x_model, q_model = qini_curve(y, uplift, treated)
    x_best, q_best = qini_curve(y, y * treated - y * (1 - treated), treated)
    random_area = x_best[-1] * q_best[-1] / 2
    return float((_area(x_model, q_model) - random_area) / (_area(x_best, q_best) - random_area))


def _area(x: np.ndarray, y: np.ndarray) -> float:
    """Area under a polyline by the trapezoidal rule."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))
