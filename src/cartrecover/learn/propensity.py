"""Conversion propensity: P(order | no contact) from a cart's features, boosted trees then isotonic calibration.

How a fit uses its rows (`order` given: splits follow time, earlier rows train and later rows judge; else
they are stratified by outcome and drawn with `seed`):

1. the last `holdout` share is set aside and only scored at the end, for `metrics`;
2. of the rest, the last fifth picks the tree shape from a small grid and the number of rounds (early
   stopping on log loss);
3. with that shape and number of rounds, `folds` out-of-fold predictions over the rest fit the isotonic
   calibration, so no prediction it learns from was made by trees that saw its row;
4. the trees that ship are refitted on all of the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold, train_test_split

from cartrecover.learn import metrics
from cartrecover.models.calibration import Isotonic
from cartrecover.models.trees import Trees

__all__ = ["BASE_PARAMS", "SHAPES", "PropensityFit", "boost", "fit_propensity"]

BASE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    # 0.1 rather than a smaller rate: on both benchmarks it scored the same in a third of the trees, and every
    # tree is paid for again on each decision (bench/models_latency.py).
    "learning_rate": 0.1,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "num_threads": 1,  # on a shared 2-core machine a second thread mostly waits; raise it on a quiet one
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}
"""What every fit starts from; `params` of a fit override it."""

SHAPES: tuple[dict[str, Any], ...] = (
    {"num_leaves": 3, "min_data_in_leaf": 1 / 100},
    {"num_leaves": 7, "min_data_in_leaf": 1 / 50},
    {"num_leaves": 15, "min_data_in_leaf": 1 / 25},
)
"""The tree shapes a fit chooses from; a fractional `min_data_in_leaf` is a share of the training rows."""

_MAX_ROUNDS = 1000
_TILT = 1e-3
_PATIENCE = 100


@dataclass(frozen=True)
class PropensityFit:
    """Fitted trees, their calibration and the held-out metrics."""

    trees: Trees
    calibration: Isotonic
    metrics: dict[str, float] = field(default_factory=dict)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Calibrated P(order) for each row."""
        return self.calibration.apply(self.trees.probability(X))


@dataclass(frozen=True)
class Boosted:
    """One trained booster with the shape and number of rounds chosen for it."""

    booster: lgb.Booster
    params: dict[str, Any]
    categorical: tuple[str, ...]
    rounds: int
    validation_loss: float


def boost(
    X: np.ndarray,
    y: np.ndarray,
    *,
    valid: np.ndarray,
    names: Sequence[str],
    categorical: Sequence[str] = (),
    weight: np.ndarray | None = None,
    init: np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Boosted:
    """Train one booster per shape of `SHAPES`, early-stopped on the rows where `valid` is true; keep the best.

    `init` is a raw score each row starts from (LightGBM's `init_score`), `weight` a weight per row,
    `categorical` the names of the features whose values are categories rather than quantities.
    """
    fit, check = ~valid, valid
    best: Boosted | None = None
    for shape in SHAPES:
        chosen = _params(shape, params, int(fit.sum()), seed)
        train = _dataset(X[fit], y[fit], names, categorical=categorical, weight=weight, init=init, rows=fit)
        held = _dataset(
            X[check], y[check], names, categorical=categorical, weight=weight, init=init, rows=check, reference=train
        )
        booster = lgb.train(
            chosen,
            train,
            num_boost_round=_MAX_ROUNDS,
            valid_sets=[held],
            callbacks=[lgb.early_stopping(_PATIENCE, verbose=False)],
        )
        loss = float(booster.best_score["valid_0"]["binary_logloss"])
        if best is None or loss < best.validation_loss:
            best = Boosted(booster, chosen, tuple(categorical), max(booster.best_iteration, 1), loss)
    assert best is not None
    return best


def refit(
    best: Boosted,
    X: np.ndarray,
    y: np.ndarray,
    *,
    names: Sequence[str],
    weight: np.ndarray | None = None,
    init: np.ndarray | None = None,
) -> lgb.Booster:
    """The chosen shape trained again on every given row, for the chosen number of rounds."""
    rows = np.ones(len(y), dtype=bool)
    train = _dataset(X, y, names, categorical=best.categorical, weight=weight, init=init, rows=rows)
    return lgb.train(best.params, train, num_boost_round=best.rounds)


def _params(shape: Mapping[str, Any], params: Mapping[str, Any] | None, rows: int, seed: int) -> dict[str, Any]:
    chosen = {**BASE_PARAMS, **shape, **(params or {}), "seed": seed}
    leaf = chosen["min_data_in_leaf"]
    if isinstance(leaf, float) and leaf < 1:
        chosen["min_data_in_leaf"] = max(5, round(leaf * rows))
    return chosen


def _dataset(
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    categorical: Sequence[str],
    weight: np.ndarray | None,
    init: np.ndarray | None,
    rows: np.ndarray,
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    return lgb.Dataset(
        X,
        y,
        weight=None if weight is None else weight[rows],
        init_score=None if init is None else init[rows],
        feature_name=list(names),
        categorical_feature=list(categorical),
        reference=reference,
        free_raw_data=True,
    )


def _later(count: int, share: float, order: np.ndarray | None, y: np.ndarray, seed: int) -> np.ndarray:
    """A mask of the rows set aside: the latest `share` by `order`, or a stratified random draw."""
    mask = np.zeros(count, dtype=bool)
    size = round(count * share)
    if size == 0:
        return mask
    if order is not None:
        mask[np.argsort(order, kind="stable")[count - size :]] = True
        return mask
    _, held = train_test_split(np.arange(count), test_size=size, stratify=y, random_state=seed)
    mask[held] = True
    return mask


def fit_propensity(
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    categorical: Sequence[str] = (),
    order: np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    holdout: float = 0.2,
    folds: int = 4,
) -> PropensityFit:
    """Fit calibrated propensity trees (see the module for how the rows are used).

    `metrics` holds roc_auc, brier, log_loss and ece (10 equal-width bins) of the calibrated score on the
    held-out rows, with their count and positive rate; it is empty when `holdout` is 0.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    held = _later(len(y), holdout, order, y, seed)
    rest = ~held
    X_rest, y_rest = X[rest], y[rest]
    order_rest = None if order is None else np.asarray(order)[rest]
    valid = _later(len(y_rest), 0.2, order_rest, y_rest, seed)
    best = boost(X_rest, y_rest, valid=valid, names=names, categorical=categorical, params=params, seed=seed)
    raw = _out_of_fold(best, X_rest, y_rest, names, _folds(y_rest, folds, order_rest, seed))
    calibration = _calibration(raw, y_rest)
    trees = Trees.from_booster(refit(best, X_rest, y_rest, names=names))
    fitted = PropensityFit(trees, calibration)
    if not held.any():
        return fitted
    return PropensityFit(trees, calibration, evaluate(y[held], fitted.score(X[held])))


def _calibration(raw: np.ndarray, y: np.ndarray) -> Isotonic:
    """Isotonic regression of outcomes on out-of-fold probabilities, made strictly increasing on [0, 1].

    Isotonic regression is flat over stretches of scores, and a flat step ties rows the trees had ordered (it
    cost 0.0005 of ROC-AUC on Online Shoppers Intention). A share `_TILT` of the probability itself, added
    on [0, 1] with end points at 0 and 1, keeps the trees' order everywhere and moves no value by more than
    `_TILT`.
    """
    isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
    x, v = isotonic.X_thresholds_, isotonic.y_thresholds_
    if x[0] > 0.0:
        x, v = np.concatenate(([0.0], x)), np.concatenate(([v[0]], v))
    if x[-1] < 1.0:
        x, v = np.concatenate((x, [1.0])), np.concatenate((v, [v[-1]]))
    tilted = (1 - _TILT) * v + _TILT * x
    return Isotonic(tuple(float(t) for t in x), tuple(float(value) for value in tilted))


def _folds(y: np.ndarray, folds: int, order: np.ndarray | None, seed: int) -> list[np.ndarray]:
    """Row indices of each fold: consecutive stretches of time when `order` is given, else stratified draws."""
    if order is not None:
        return list(np.array_split(np.argsort(order, kind="stable"), folds))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(y)), y)]


def _out_of_fold(
    best: Boosted, X: np.ndarray, y: np.ndarray, names: Sequence[str], folds: list[np.ndarray]
) -> np.ndarray:
    """Uncalibrated probabilities of each row from trees fitted without it."""
    out = np.empty(len(y), dtype=np.float64)
    for test in folds:
        train = np.ones(len(y), dtype=bool)
        train[test] = False
        booster = refit(best, X[train], y[train], names=names)
        out[test] = booster.predict(X[test], num_threads=1)
    return out


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, Brier score, log loss and expected calibration error of probabilities `p` for outcomes `y`."""
    return {
        "roc_auc": metrics.roc_auc(y, p),
        "brier": metrics.brier(y, p),
        "log_loss": metrics.log_loss(y, p),
        "ece": metrics.expected_calibration_error(y, p),
        "rows": float(len(y)),
        "positive_rate": float(np.mean(y)),
    }
