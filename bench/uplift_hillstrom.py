"""Qini of cartrecover's uplift learner on Hillstrom (Womens E-Mail vs No E-Mail, outcome visit), beside scikit-uplift.

Every learner sees the same repeated stratified splits (by treatment × visit, 70 % train / 30 % test) and is
scored by the same function: `cartrecover.learn.metrics.qini_coefficient`, checked equal to scikit-uplift's
`qini_auc_score` on every prediction. Nothing is tuned on the test rows: our learner chooses its trees on
validation rows drawn from the training rows; scikit-uplift's learners use LightGBM's default parameters.

    .venv/bin/python bench/uplift_hillstrom.py [--splits 20] [--seed 2026]
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

from cartrecover.learn.metrics import qini_coefficient
from cartrecover.learn.uplift import fit_control, fit_uplift

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hillstrom" / "hillstrom.csv"
NAMES = ["recency", "history", "mens", "womens", "newbie", "zip_code", "channel"]
CATEGORICAL = ["zip_code", "channel"]

Learner = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, treatment (Womens E-Mail) and visit of the Womens E-Mail and No E-Mail customers."""
    data = pd.read_csv(DATA)
    data = data[data["segment"].isin(["Womens E-Mail", "No E-Mail"])].reset_index(drop=True)
    for column in CATEGORICAL:
        data[column] = data[column].astype("category").cat.codes
    treated = (data["segment"] == "Womens E-Mail").to_numpy()
    return data[NAMES].to_numpy(dtype=np.float64), treated, data["visit"].to_numpy(dtype=np.float64)


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
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's notices inside scikit-uplift
    X, t, y = load()
    print(f"Hillstrom Womens E-Mail vs No E-Mail: {len(y)} customers, visit {y[t].mean():.4f} vs {y[~t].mean():.4f}")
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
    names = list(found)
    for other in names[1:]:
        gap = np.asarray(found[names[0]]) - np.asarray(found[other])
        print(
            f"ours − {other}: {gap.mean():+.4f} ± {gap.std(ddof=1):.4f} (paired), ours ahead in {int((gap > 0).sum())}"
        )


if __name__ == "__main__":
    main()
