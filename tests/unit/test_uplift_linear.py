"""One contact's uplift as a penalised logistic regression on the no-contact log-odds: learned, chosen, served."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cartrecover.learn import metrics
from cartrecover.learn.uplift import choose_penalty, fit_control, fit_linear_uplift, penalised_logistic
from cartrecover.models.uplift import LinearUplift

NAMES = ["value", "visits", "noise"]
TERM_NAMES = ("always", "value", "visits")
FAST = {"learning_rate": 0.1, "num_threads": 1}


def terms(X: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(X)), X[:, 0], X[:, 1]])


def logged(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half contacted at random; contact adds 0.4 + 0.8 · value to the log-odds, whatever the visits."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(count, 3))
    treated = rng.random(count) < 0.5
    logit = -1.0 + 0.7 * X[:, 1] + treated * (0.4 + 0.8 * X[:, 0])
    y = (rng.random(count) < 1 / (1 + np.exp(-logit))).astype(float)
    return X, treated, y


@pytest.fixture(scope="module")
def model() -> LinearUplift:
    X, treated, y = logged(12000, seed=1)
    control = fit_control(X[~treated], y[~treated], names=NAMES, params=FAST)
    return fit_linear_uplift(X, terms(X), y, treated, names=NAMES, term_names=TERM_NAMES, control=control)


def test_the_coefficients_are_the_effect_of_contact_on_the_log_odds(model: LinearUplift) -> None:
    np.testing.assert_allclose(model.coefficients, [0.4, 0.8, 0.0], atol=0.15)


def test_uplift_ranks_new_randomised_rows_better_than_chance(model: LinearUplift) -> None:
    X, treated, y = logged(6000, seed=3)
    assert metrics.qini_coefficient(y, model.uplift(X, terms(X)), treated) > 0.1


def test_one_row_scores_as_the_many_rows_form(model: LinearUplift) -> None:
    X = np.random.default_rng(4).normal(size=(20, 3))
    one = np.array([model.score(row, row_terms).uplift[0] for row, row_terms in zip(X, terms(X), strict=True)])
    np.testing.assert_allclose(one, model.uplift(X, terms(X)))
    scores = model.score(X[0], terms(X[:1])[0])
    assert scores.outcome[0] - scores.no_contact == pytest.approx(scores.uplift[0])


def test_the_json_round_trip_gives_identical_scores(model: LinearUplift) -> None:
    again = LinearUplift.from_dict(json.loads(json.dumps(model.to_dict())))
    X = np.random.default_rng(5).normal(size=(20, 3))
    assert np.array_equal(again.uplift(X, terms(X)), model.uplift(X, terms(X)))
    assert (again.term_names, again.penalty) == (model.term_names, model.penalty)


def test_a_coefficient_per_term_is_required(model: LinearUplift) -> None:
    with pytest.raises(ValueError, match="coefficients for 2 terms"):
        LinearUplift(model.control, ("always", "value"), model.coefficients, 1.0)


def test_the_fit_is_the_minimum_of_the_penalised_log_loss() -> None:
    rng = np.random.default_rng(6)
    design = np.column_stack([np.ones(3000), rng.normal(size=(3000, 2))])
    offset = rng.normal(size=3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-(offset + design @ [0.5, -1.0, 2.0])))).astype(float)
    for penalty in (0.3, 10.0, 3000.0):
        beta = penalised_logistic(design, y, offset, penalty)
        gradient = design.T @ (1 / (1 + np.exp(-(offset + design @ beta))) - y) + penalty * beta
        assert np.max(np.abs(gradient)) < 1e-6
    light, heavy = penalised_logistic(design, y, offset, 0.3), penalised_logistic(design, y, offset, 3000.0)
    assert np.linalg.norm(heavy) < np.linalg.norm(light) / 2
    np.testing.assert_allclose(light, [0.5, -1.0, 2.0], atol=0.2)


def test_a_clear_effect_keeps_a_light_penalty_and_one_given_penalty_is_used() -> None:
    X, treated, y = logged(6000, seed=7)
    control = fit_control(X[~treated], y[~treated], names=NAMES, params=FAST)
    chosen = choose_penalty(terms(X), y, treated, control.raw(X), penalties=(1.0, 3000.0, 100000.0))
    assert chosen == 1.0
    fixed = fit_linear_uplift(
        X, terms(X), y, treated, names=NAMES, term_names=TERM_NAMES, control=control, penalties=(30.0,)
    )
    assert fixed.penalty == 30.0
