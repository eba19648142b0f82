"""Uplift learners that build on the no-contact model's log-odds: boosted trees (`fit_uplift`) or a penalised
logistic regression of one contact's effect on terms of the row (`fit_linear_uplift`).

`fit_uplift`, multi-action, treated trees boosted from the no-contact log-odds:

1. the control model gives every row its no-contact log-odds; it is the propensity model when one is given,
   else trees fitted here on the control rows;
2. the treated rows (features x next to the action's features a) are boosted from those log-odds, LightGBM's
   `init_score`: the trees start at "contact changes nothing" and grow only where the treated outcomes
   depart from it, for whom and for which action; the tree shape and number of rounds are chosen on a
   validation fifth of the treated rows (log loss), then the trees are refitted on all of them.

Why this learner: on Hillstrom (`bench/uplift_hillstrom.py`, figures in docs/benchmarks.md) it ties the same
trees fitted as two independent models and scikit-uplift's SoloModel, and beats scikit-uplift's TwoModels and
ClassTransformation; among those that tie, it is the one that serves every action in one LightGBM call on top
of the propensity model a decision computes anyway, and whose regularisation (few rounds, small leaves)
shrinks an action's uplift toward "no effect" when that action has few logged rows.

Rows of logged, randomised decisions carry `weight` = 1 / the logged propensity of the action taken, so the
treated fit is unbiased for the mix of actions explored.

`fit_linear_uplift`, one contact, the form of the product's contact model (models/effects.py, learn/train.py):
the treated rows' outcomes regressed on terms of the row, offset by the no-contact trees' log-odds, with an L2
penalty on the coefficients. Two things differ from learn/train.py's fit: the no-contact trees are
`fit_control`'s (every control row, categorical features declared) unless given, and the penalty is chosen from
`PENALTIES` by the Qini of folds held out of the given rows. Measured on Hillstrom beside `fit_uplift` in
bench/uplift_hillstrom.py (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from cartrecover.learn.metrics import qini_coefficient
from cartrecover.learn.propensity import PropensityFit, boost, refit
from cartrecover.models.trees import Trees
from cartrecover.models.uplift import LinearUplift, Uplift

__all__ = ["PENALTIES", "choose_penalty", "fit_control", "fit_linear_uplift", "fit_uplift", "penalised_logistic"]

PENALTIES: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
"""The L2 penalties (on the summed log loss) `fit_linear_uplift` chooses from."""


def fit_uplift(
    X: np.ndarray,
    A: np.ndarray,
    y: np.ndarray,
    treated: np.ndarray,
    *,
    names: Sequence[str],
    action_names: Sequence[str],
    weight: np.ndarray | None = None,
    control: PropensityFit | Trees | None = None,
    categorical: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Uplift:
    """Fit the serving uplift model from features `X` (n × d), action features `A` (n × k) and outcomes `y`.

    `treated` marks the rows that were contacted (their row of `A` describes the action); the others are
    control rows, whose `A` is ignored. `control` is a fitted no-contact model to build on (its calibration,
    if any, is kept for serving); without it one is fitted on the control rows.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    treated = np.asarray(treated, dtype=bool)
    if isinstance(control, PropensityFit):
        control_trees, calibration = control.trees, control.calibration
    elif isinstance(control, Trees):
        control_trees, calibration = control, None
    else:
        control_trees = fit_control(
            X[~treated],
            y[~treated],
            names=names,
            weight=None if weight is None else weight[~treated],
            categorical=categorical,
            params=params,
            seed=seed,
        )
        calibration = None
    rows = np.ascontiguousarray(np.hstack([X[treated], np.asarray(A, dtype=np.float64)[treated]]))
    outcomes = y[treated]
    base = control_trees.raw(X[treated])
    row_weight = None if weight is None else np.asarray(weight, dtype=np.float64)[treated]
    columns = [*names, *action_names]
    best = boost(
        rows,
        outcomes,
        valid=_validation(outcomes, seed),
        names=columns,
        categorical=categorical,
        weight=row_weight,
        init=base,
        params=params,
        seed=seed,
    )
    booster = refit(best, rows, outcomes, names=columns, weight=row_weight, init=base)
    return Uplift(control_trees, Trees.from_booster(booster), calibration)


def fit_control(
    X: np.ndarray,
    y: np.ndarray,
    *,
    names: Sequence[str],
    weight: np.ndarray | None = None,
    categorical: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Trees:
    """No-contact trees from control rows: shape and rounds chosen on a validation fifth, then refitted on all."""
    best = boost(
        X,
        y,
        valid=_validation(y, seed),
        names=names,
        categorical=categorical,
        weight=weight,
        params=params,
        seed=seed,
    )
    return Trees.from_booster(refit(best, X, y, names=names, weight=weight))


def fit_linear_uplift(
    X: np.ndarray,
    terms: np.ndarray,
    y: np.ndarray,
    treated: np.ndarray,
    *,
    names: Sequence[str],
    term_names: Sequence[str],
    control: PropensityFit | Trees | None = None,
    categorical: Sequence[str] = (),
    penalties: Sequence[float] = PENALTIES,
    folds: int = 5,
    seed: int = 0,
) -> LinearUplift:
    """Fit the effect of contact on the log-odds as coefficients of `terms` (n × k, one row per row of `X`).

    `control` is a fitted no-contact model to build on (its trees' log-odds are the offset); without it one is
    fitted on the control rows. With several `penalties`, the one of highest Qini on `folds` held-out folds.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    terms = np.asarray(terms, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    treated = np.asarray(treated, dtype=bool)
    if isinstance(control, PropensityFit):
        control = control.trees
    if control is None:
        control = fit_control(X[~treated], y[~treated], names=names, categorical=categorical, seed=seed)
    base = control.raw(X)
    penalty = (
        penalties[0]
        if len(penalties) == 1
        else choose_penalty(terms, y, treated, base, penalties=penalties, folds=folds, seed=seed)
    )
    coefficients = penalised_logistic(terms[treated], y[treated], base[treated], penalty)
    return LinearUplift(control, tuple(term_names), coefficients, float(penalty))


def choose_penalty(
    terms: np.ndarray,
    y: np.ndarray,
    treated: np.ndarray,
    base: np.ndarray,
    *,
    penalties: Sequence[float] = PENALTIES,
    folds: int = 5,
    seed: int = 0,
) -> float:
    """The penalty whose fits, on the treated rows of the other folds, rank each fold's rows best (Qini summed).

    Folds are stratified by treatment × outcome; ties go to the smaller penalty. The offset `base` is taken as
    given: the no-contact trees saw the control rows of every fold (refitting them per fold costs five fits),
    which moves the offsets of held-out control rows a little, the same for every penalty.
    """
    split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(terms, 2 * treated + y)
    found = np.zeros(len(penalties))
    for rest, held in split:
        fit = rest[treated[rest]]
        for i, penalty in enumerate(penalties):
            coefficients = penalised_logistic(terms[fit], y[fit], base[fit], penalty)
            lifted = _sigmoid(base[held] + terms[held] @ coefficients) - _sigmoid(base[held])
            found[i] += qini_coefficient(y[held], lifted, treated[held])
    return float(penalties[int(np.argmax(found))])


def penalised_logistic(terms: np.ndarray, y: np.ndarray, offset: np.ndarray, penalty: float) -> np.ndarray:
    """Coefficients minimising the summed log loss + penalty/2 · ‖β‖², offset fixed: Newton steps, halved if the
    loss would rise (the objective of learn/train.py's `_logistic_fit`, solved to 1e-10 in a few steps)."""

    def loss(beta: np.ndarray) -> float:
        eta = offset + terms @ beta
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta)) + 0.5 * penalty * float(beta @ beta)

    beta = np.zeros(terms.shape[1])
    current = loss(beta)
    for _ in range(50):
        p = _sigmoid(offset + terms @ beta)
        gradient = terms.T @ (p - y) + penalty * beta
        hessian = (terms * (p * (1 - p))[:, None]).T @ terms + penalty * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while (after := loss(beta - size * step)) > current and size > 1e-6:
            size /= 2
        beta, current = beta - size * step, after
        if np.max(np.abs(size * step)) < 1e-10:
            break
    return beta


def _sigmoid(z: np.ndarray) -> np.ndarray:
    result: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return result


def _validation(y: np.ndarray, seed: int) -> np.ndarray:
    """A stratified fifth of the rows, drawn with `seed`."""
    mask = np.zeros(len(y), dtype=bool)
    _, held = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
    mask[held] = True
    return mask
