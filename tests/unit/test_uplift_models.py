"""Multi-action uplift: learned from data with a known heterogeneous effect, served in one call."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cartrecover.learn import metrics
from cartrecover.learn.propensity import fit_propensity
from cartrecover.learn.uplift import fit_control, fit_uplift
from cartrecover.models.calibration import Isotonic
from cartrecover.models.uplift import Uplift

NAMES = ["value", "visits", "noise"]
ACTIONS = ["discount", "sms"]
# Candidate actions as their features: e-mail reminder, e-mail with discount, SMS reminder.
FAST = {"learning_rate": 0.1, "num_threads": 1}  # fewer rounds; one thread on a shared machine
CANDIDATES = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


def true_logits(X: np.ndarray, A: np.ndarray, treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """No-contact log-odds, and the log-odds with the row's action when treated."""
    base = -1.2 + 0.8 * X[:, 1]
    # A reminder helps a little; a discount helps high-value carts a lot and the others not at all; SMS adds.
    lift = 0.3 + 1.5 * A[:, 0] * (X[:, 0] > 0) + 0.4 * A[:, 1]
    return base, base + treated * lift


def logged(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Randomised decisions: a third no contact, the rest one of the candidates uniformly."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(count, 3))
    treated = rng.random(count) < 2 / 3
    A = CANDIDATES[rng.integers(0, len(CANDIDATES), size=count)] * treated[:, None]
    _, logit = true_logits(X, A, treated)
    y = (rng.random(count) < 1 / (1 + np.exp(-logit))).astype(float)
    return X, A, y, treated


def true_uplift(X: np.ndarray, action: np.ndarray) -> np.ndarray:
    A = np.tile(action, (len(X), 1))
    base, lifted = true_logits(X, A, np.ones(len(X)))
    return 1 / (1 + np.exp(-lifted)) - 1 / (1 + np.exp(-base))


@pytest.fixture(scope="module")
def model() -> Uplift:
    X, A, y, treated = logged(12000, seed=1)
    return fit_uplift(X, A, y, treated, names=NAMES, action_names=ACTIONS, params=FAST, seed=0)


def test_predicted_uplift_follows_the_true_effect(model: Uplift) -> None:
    X = np.random.default_rng(2).normal(size=(600, 3))
    predicted = np.array([model.score(row, CANDIDATES).uplift for row in X])
    truth = np.stack([true_uplift(X, action) for action in CANDIDATES], axis=1)
    assert np.corrcoef(predicted.ravel(), truth.ravel())[0, 1] > 0.8
    discount = predicted[:, 1]
    assert discount[X[:, 0] > 0].mean() > discount[X[:, 0] <= 0].mean() + 0.1
    assert np.mean(np.abs(predicted - truth)) < 0.05


def test_uplift_ranks_new_randomised_rows_better_than_chance(model: Uplift) -> None:
    X, A, y, treated = logged(6000, seed=3)
    discount = CANDIDATES[1]
    offered = treated & (A[:, 0] == 1)
    rows = offered | ~treated
    uplift = np.array([model.score(row, discount[None, :]).uplift[0] for row in X[rows]])
    assert metrics.qini_coefficient(y[rows], uplift, offered[rows]) > 0.1


def test_one_call_scores_every_action_from_the_no_contact_log_odds(model: Uplift) -> None:
    row = np.array([0.5, -0.2, 1.0])
    scores = model.score(row, CANDIDATES)
    base = model.base(row)
    rows = np.hstack([np.tile(row, (3, 1)), CANDIDATES])
    expected = 1 / (1 + np.exp(-(base + model.treated.raw(rows))))
    np.testing.assert_allclose(scores.outcome, expected)
    assert scores.no_contact == pytest.approx(1 / (1 + np.exp(-base)))
    np.testing.assert_allclose(scores.uplift, expected - scores.no_contact)
    assert np.array_equal(model.score(row, CANDIDATES, base=base).outcome, scores.outcome)
    assert model.action_names == tuple(ACTIONS)


def test_the_json_round_trip_gives_identical_scores(model: Uplift) -> None:
    again = Uplift.from_dict(json.loads(json.dumps(model.to_dict())))
    for row in np.random.default_rng(4).normal(size=(20, 3)):
        first, second = model.score(row, CANDIDATES), again.score(row, CANDIDATES)
        assert first.no_contact == second.no_contact
        assert np.array_equal(first.outcome, second.outcome)


def test_a_calibration_moves_the_probabilities_not_the_uplift(model: Uplift) -> None:
    halved = Isotonic((0.0, 1.0), (0.0, 0.5))
    calibrated = Uplift(model.control, model.treated, halved)
    row = np.array([1.0, 0.0, 0.0])
    plain, moved = model.score(row, CANDIDATES), calibrated.score(row, CANDIDATES)
    assert moved.no_contact == pytest.approx(plain.no_contact / 2)
    np.testing.assert_allclose(moved.uplift, plain.uplift)
    np.testing.assert_allclose(moved.outcome - moved.no_contact, plain.uplift)
    assert Uplift.from_dict(json.loads(json.dumps(calibrated.to_dict()))).calibration == halved


def test_a_given_propensity_model_is_the_baseline_with_its_calibration() -> None:
    X, A, y, treated = logged(6000, seed=5)
    control = fit_propensity(X[~treated], y[~treated], NAMES, holdout=0.0, params=FAST)
    fitted = fit_uplift(X, A, y, treated, names=NAMES, action_names=ACTIONS, control=control, params=FAST)
    assert fitted.control is control.trees
    assert fitted.calibration == control.calibration


def test_weights_of_a_skewed_exploration_recover_the_effect_of_the_rare_action() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(12000, 3))
    # Discounts were explored mostly on low-value carts (where they do nothing): 10 % of high-value carts.
    share = np.where(X[:, 0] > 0, 0.1, 0.6)
    discount = rng.random(len(X)) < share
    treated = np.ones(len(X), dtype=bool)
    treated[rng.random(len(X)) < 0.3] = False
    discount &= treated
    A = np.c_[discount, np.zeros(len(X))].astype(float)
    _, logit = true_logits(X, A, treated)
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(float)
    propensity = np.where(discount, share, 1 - share)
    control = fit_control(X[~treated], y[~treated], names=NAMES, params=FAST)
    fitted = fit_uplift(
        X, A, y, treated, names=NAMES, action_names=ACTIONS, weight=1 / propensity, control=control, params=FAST
    )
    high = np.array([1.0, 0.0, 0.0])
    gain = fitted.score(high, CANDIDATES[1:2]).uplift[0] - fitted.score(high, CANDIDATES[0:1]).uplift[0]
    expected = true_uplift(high[None, :], CANDIDATES[1])[0] - true_uplift(high[None, :], CANDIDATES[0])[0]
    assert gain == pytest.approx(expected, abs=0.1)


def test_treated_trees_must_read_the_control_features_first(model: Uplift) -> None:
    with pytest.raises(ValueError, match="control features first"):
        Uplift(model.treated, model.control)
