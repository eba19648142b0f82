"""Propensity fitting and the offline metrics, on synthetic data whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from cartrecover.learn import metrics
from cartrecover.learn.propensity import fit_propensity

NAMES = ["x0", "x1", "x2", "noise"]
FAST = {"learning_rate": 0.1, "num_threads": 1}  # fewer rounds; one thread on a shared machine


def synthetic(count: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, their true P(order) (a known logistic model) and outcomes drawn from it."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(count, 4))
    logit = -1.5 + 1.2 * X[:, 0] - 0.8 * X[:, 1] + 0.6 * (X[:, 2] > 0.5) + shift
    p = 1 / (1 + np.exp(-logit))
    return X, p, (rng.random(count) < p).astype(float)


def test_a_fit_ranks_close_to_the_truth_and_is_calibrated_on_held_out_rows() -> None:
    X, p, y = synthetic(6000, seed=1)
    fit = fit_propensity(X, y, NAMES, params=FAST, seed=0)
    truth_auc = metrics.roc_auc(y, p)
    assert fit.metrics["rows"] == 1200
    assert fit.metrics["roc_auc"] > 0.75
    X_new, p_new, y_new = synthetic(20000, seed=2)
    score = fit.score(X_new)
    assert metrics.roc_auc(y_new, score) > metrics.roc_auc(y_new, p_new) - 0.03
    assert metrics.expected_calibration_error(y_new, score) < 0.03
    assert np.mean(np.abs(score - p_new)) < 0.05
    assert truth_auc > 0.75


def test_held_out_rows_are_the_latest_when_an_order_is_given() -> None:
    early_X, _, early_y = synthetic(3000, seed=3, shift=-1.0)
    late_X, _, late_y = synthetic(1000, seed=4, shift=1.5)
    X, y = np.vstack([late_X, early_X]), np.r_[late_y, early_y]
    order = np.r_[np.arange(3000, 4000), np.arange(3000)]  # the late rows come first in the arrays
    fit = fit_propensity(X, y, NAMES, order=order, holdout=0.25, params=FAST)
    assert fit.metrics["rows"] == 1000
    assert fit.metrics["positive_rate"] == pytest.approx(late_y.mean())


def test_no_metrics_without_held_out_rows() -> None:
    X, _, y = synthetic(2000, seed=5)
    assert fit_propensity(X, y, NAMES, holdout=0.0, params=FAST).metrics == {}


def test_the_calibration_keeps_the_trees_ranking_without_ties() -> None:
    X, _, y = synthetic(3000, seed=6)
    fit = fit_propensity(X, y, NAMES, params=FAST)
    raw = fit.trees.probability(X[:500])
    calibrated = fit.score(X[:500])
    order = np.argsort(raw)
    apart = np.diff(raw[order]) > 1e-9
    assert np.all(np.diff(calibrated[order])[apart] > 0)
    assert metrics.roc_auc(y[:500], calibrated) == metrics.roc_auc(y[:500], raw)


def test_roc_auc_counts_ties_as_half() -> None:
    assert metrics.roc_auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.5, 0.5])) == pytest.approx(0.875)
    assert metrics.roc_auc(np.array([1, 0]), np.array([0.2, 0.8])) == 0.0


def test_expected_calibration_error_sees_a_constant_bias() -> None:
    rng = np.random.default_rng(8)
    p = rng.uniform(0.2, 0.6, size=200_000)
    y = (rng.random(p.size) < p).astype(float)
    assert metrics.expected_calibration_error(y, p) < 0.01
    assert metrics.expected_calibration_error(y, p + 0.1) == pytest.approx(0.1, abs=0.01)


def test_brier_and_log_loss_of_known_cases() -> None:
    y = np.array([1.0, 0.0])
    assert metrics.brier(y, np.array([0.8, 0.4])) == pytest.approx((0.04 + 0.16) / 2)
    assert metrics.log_loss(y, np.array([0.5, 0.5])) == pytest.approx(np.log(2))


def test_qini_is_one_for_the_perfect_ranking_about_zero_at_random_and_negative_reversed() -> None:
    rng = np.random.default_rng(9)
    treated = rng.random(20_000) < 0.5
    effect = rng.random(treated.size) < 0.5  # half the rows respond only when treated
    y = (treated & effect).astype(float)
    perfect = y * treated - y * ~treated
    assert metrics.qini_coefficient(y, perfect, treated) == pytest.approx(1.0)
    assert metrics.qini_coefficient(y, effect.astype(float), treated) > 0.5
    assert abs(metrics.qini_coefficient(y, rng.random(y.size), treated)) < 0.05
    assert metrics.qini_coefficient(y, -effect.astype(float), treated) < -0.5


def test_the_qini_curve_groups_ties_and_starts_at_the_origin() -> None:
    y = np.array([1.0, 0.0, 1.0, 0.0])
    treated = np.array([1.0, 0.0, 1.0, 0.0])
    x, q = metrics.qini_curve(y, np.array([0.5, 0.5, 0.1, 0.1]), treated)
    assert list(x) == [0.0, 2.0, 4.0]
    assert list(q) == [0.0, 1.0, 2.0]
