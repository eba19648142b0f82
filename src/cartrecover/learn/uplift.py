"""Multi-action uplift: treated trees boosted from the no-contact model's log-odds.

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from cartrecover.learn.propensity import PropensityFit, boost, refit
from cartrecover.models.trees import Trees
from cartrecover.models.uplift import Uplift

__all__ = ["fit_control", "fit_uplift"]


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


def _validation(y: np.ndarray, seed: int) -> np.ndarray:
    """A stratified fifth of the rows, drawn with `seed`."""
    mask = np.zeros(len(y), dtype=bool)
    _, held = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
    mask[held] = True
    return mask
