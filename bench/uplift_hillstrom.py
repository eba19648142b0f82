"""Qini of cartrecover's uplift learners on Hillstrom (Womens E-Mail vs No E-Mail, outcome visit), beside scikit-uplift.

Every learner sees the same repeated stratified splits (by treatment × visit, 70 % train / 30 % test) and is
scored by the same function: `cartrecover.learn.metrics.qini_coefficient`, checked equal to scikit-uplift's
`qini_auc_score` on every prediction. Nothing is tuned on the test rows: our learners choose their trees and
penalty on rows drawn from the training rows; scikit-uplift's learners use LightGBM's default parameters.

Our learners: `fit_linear_uplift` (learn/uplift.py); the product's contact model as `cartrecover train` fits it
(learn/train.py: no-contact trees from `fit_propensity` as `_no_contact` calls it, then its `_logistic_fit` with
`PENALTY` on the treated rows, offset by those trees' log-odds), with Hillstrom's columns as the cart terms and
the e-mail as the one plan term (models/effects.py's terms are a cart's, so they are rebuilt here in the same
form); `fit_uplift`; and `fit_uplift`'s trees as two independent models.

    .venv/bin/python bench/uplift_hillstrom.py [--splits 20] [--seed 2026] [--arm "Womens E-Mail"]

`--arm "Mens E-Mail"` and other seeds are where settings were chosen (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedShuffleSplit
from sklift.metrics import qini_auc_score
from sklift.models import ClassTransformation, SoloModel, TwoModels
from threadpoolctl import threadpool_limits

from cartrecover.learn.metrics import qini_coefficient
from cartrecover.learn.propensity import fit_propensity
from cartrecover.learn.train import PENALTY, _logistic_fit, _split
from cartrecover.learn.uplift import fit_control, fit_linear_uplift, fit_uplift
from cartrecover.models.uplift import LinearUplift

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hillstrom" / "hillstrom.csv"
NAMES = ["recency", "history", "mens", "womens", "newbie", "zip_code", "channel"]
CATEGORIES = {"zip_code": ["Rural", "Surburban", "Urban"], "channel": ["Multichannel", "Phone", "Web"]}
CATEGORICAL = list(CATEGORIES)
TERMS = ("always", "recency", "log_history", "mens", "womens", "newbie", "rural", "surburban", "phone", "web")

Learner = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]
penalties: list[float] = []  # what fit_linear_uplift chose on each split


def load(arm: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, treatment (the `arm`'s e-mail) and visit of the `arm`'s and the No E-Mail customers."""
    data = pd.read_csv(DATA)
    data = data[data["segment"].isin([arm, "No E-Mail"])].reset_index(drop=True)
    for column, values in CATEGORIES.items():
        data[column] = pd.Categorical(data[column], categories=values).codes
    treated = (data["segment"] == arm).to_numpy()
    return data[NAMES].to_numpy(dtype=np.float64), treated, data["visit"].to_numpy(dtype=np.float64)


def terms(X: np.ndarray) -> np.ndarray:
    """The customer's side of the contact model's products, centred roughly as models/effects.py's cart terms."""
    zip_code, channel = X[:, 5], X[:, 6]
    columns = [
        np.ones(len(X)),
        (X[:, 0] - 6) / 4,  # recency, months
        np.log1p(X[:, 1]) - 5,  # history, dollars
        X[:, 2],
        X[:, 3],
        X[:, 4],
        zip_code == 0,
        zip_code == 1,
        channel == 1,
        channel == 2,
    ]
    return np.column_stack(columns).astype(np.float64)


def linear(X: np.ndarray, y: np.ndarray, t: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """cartrecover.learn.uplift.fit_linear_uplift: fit_control's log-odds, penalty by 5-fold Qini."""
    model = fit_linear_uplift(X, terms(X), y, t, names=NAMES, term_names=TERMS, categorical=CATEGORICAL, seed=seed)
    penalties.append(model.penalty)
    return np.asarray([model.score(row, row_terms).uplift[0] for row, row_terms in zip(test, terms(test), strict=True)])


def product(X: np.ndarray, y: np.ndarray, t: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """learn/train.py's contact model: its no-contact trees and penalised logistic fit, on these rows and terms."""
    control = ~t
    count = int(control.sum())
    # as train._no_contact: the newest 20 % of the control rows only measure (here the rows are in random order)
    trees = fit_propensity(X[control], y[control], NAMES, order=np.arange(count), holdout=1 - _split(count) / count)
    coefficients = _logistic_fit(terms(X[t]), y[t], trees.trees.raw(X[t]), PENALTY)
    return LinearUplift(trees.trees, TERMS, coefficients, PENALTY).uplift(test, terms(test))


def ours(X: np.ndarray, y: np.ndarray, t: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """cartrecover.learn.uplift.fit_uplift: treated trees boosted from the control trees' log-odds."""
    actions = t.astype(np.float64).reshape(-1, 1)  # one action: the e-mail
    model = fit_uplift(X, actions, y, t, names=NAMES, action_names=["email"], categorical=CATEGORICAL, seed=seed)
    email = np.ones((1, 1))
    return np.asarray([model.score(row, email).uplift[0] for row in test])  # the serving path, row by row


def ours_two_models(X: np.ndarray, y: np.ndarray, t: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """The same trees and choice of shape, treated trees fitted on their own (no log-odds to start from)."""
    control = fit_control(X[~t], y[~t], names=NAMES, categorical=CATEGORICAL, seed=seed)
    treated = fit_control(X[t], y[t], names=NAMES, categorical=CATEGORICAL, seed=seed)
    return np.asarray(treated.probability(test) - control.probability(test))


def _lightgbm(seed: int) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(n_jobs=2, random_state=seed, verbose=-1)


def sklift_two_models(X: np.ndarray, y: np.ndarray, t: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """scikit-uplift TwoModels (vanilla), LightGBM classifiers with default parameters."""
    model = TwoModels(estimator_trmnt=_lightgbm(seed), estimator_ctrl=_lightgbm(seed), method="vanilla")
    return np.asarray(model.fit(X, y, t.astype(int)).predict(test))


def sklift_solo(X: np.ndarray, y: np.ndarray, t: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """scikit-uplift SoloModel (treatment as a feature), LightGBM classifier with default parameters."""
    return np.asarray(SoloModel(estimator=_lightgbm(seed)).fit(X, y, t.astype(int)).predict(test))


def sklift_class_transformation(X: np.ndarray, y: np.ndarray, t: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """scikit-uplift ClassTransformation, LightGBM classifier with default parameters."""
    return np.asarray(ClassTransformation(estimator=_lightgbm(seed)).fit(X, y, t.astype(int)).predict(test))


LEARNERS: dict[str, Learner] = {
    "cartrecover fit_linear_uplift (penalty by Qini CV)": linear,
    "learn/train.py contact model (PENALTY 10)": product,
    "cartrecover fit_uplift (treated boosted from control log-odds)": ours,
    "cartrecover trees, two independent models": ours_two_models,
    "sklift TwoModels, LightGBM defaults (anchor)": sklift_two_models,
    "sklift SoloModel, LightGBM defaults": sklift_solo,
    "sklift ClassTransformation, LightGBM defaults": sklift_class_transformation,
}


def main() -> None:
    """Run every learner on the same splits and print Qini mean ± sd."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--arm", default="Womens E-Mail", choices=["Womens E-Mail", "Mens E-Mail"])
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's notices inside scikit-uplift
    threadpool_limits(1)  # BLAS threads on a shared 2-core machine made the logistic fits 40 times slower
    X, t, y = load(args.arm)
    print(f"Hillstrom {args.arm} vs No E-Mail: {len(y)} customers, visit {y[t].mean():.4f} vs {y[~t].mean():.4f}")
    splitter = StratifiedShuffleSplit(n_splits=args.splits, test_size=0.3, random_state=args.seed)
    found: dict[str, list[float]] = {name: [] for name in LEARNERS}
    seconds: dict[str, float] = dict.fromkeys(LEARNERS, 0.0)
    for number, (train, test) in enumerate(splitter.split(X, 2 * t + y)):
        for name, learner in LEARNERS.items():
            started = time.perf_counter()
            uplift = learner(X[train], y[train], t[train], X[test], args.seed + number)
            seconds[name] += time.perf_counter() - started
            qini = qini_coefficient(y[test], uplift, t[test])
            reference = qini_auc_score(y[test], uplift, t[test].astype(int))
            assert abs(qini - reference) < 1e-9, (name, qini, reference)
            found[name].append(qini)
        print(f"split {number}: " + "  ".join(f"{values[-1]:.4f}" for values in found.values()), flush=True)
    print(f"\nQini (scikit-uplift's qini_auc_score definition), {args.splits} splits 70/30, seed {args.seed}")
    print(f"{'learner':<66} {'mean':>7} {'sd':>7} {'min':>7} {'max':>7} {'s/fit':>6}")
    for name, values in found.items():
        q = np.asarray(values)
        print(
            f"{name:<66} {q.mean():7.4f} {q.std(ddof=1):7.4f} {q.min():7.4f} {q.max():7.4f}"
            f" {seconds[name] / args.splits:6.1f}"
        )
    print(f"penalties fit_linear_uplift chose: {sorted(penalties)}")
    names = list(found)
    for first in names[:2]:
        print(f"\npaired, {first} − each other learner (mean ± sd over splits, splits where the first is ahead):")
        for other in names:
            gap = np.asarray(found[first]) - np.asarray(found[other])
            if other != first:
                print(f"  − {other}: {gap.mean():+.4f} ± {gap.std(ddof=1):.4f}, ahead {int((gap > 0).sum())}")


if __name__ == "__main__":
    main()
