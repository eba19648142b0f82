"""Serving trees and calibration: LightGBM's own numbers through the fast path, and lossless round trips."""

from __future__ import annotations

import gc
import json
import pickle
import threading
import weakref

import lightgbm as lgb
import numpy as np
import pytest

from cartrecover.models.calibration import Isotonic
from cartrecover.models.trees import LightGBMError, Trees

NAMES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def booster() -> lgb.Booster:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(3000, 4))
    y = (X[:, 0] - 0.5 * X[:, 1] * X[:, 2] + rng.normal(size=3000) > 0).astype(float)
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1, "seed": 1}
    return lgb.train(params, lgb.Dataset(X, y, feature_name=NAMES), num_boost_round=40)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(8).normal(size=(50, 4))


def test_raw_scores_are_lightgbms_for_one_row_and_for_many(booster: lgb.Booster, rows: np.ndarray) -> None:
    trees = Trees.from_booster(booster)
    assert np.array_equal(trees.raw(rows), booster.predict(rows, raw_score=True))
    for row in rows[:5]:
        assert np.array_equal(trees.raw(row.reshape(1, -1)), booster.predict(row.reshape(1, -1), raw_score=True))
    # the single-row predictor and the many-rows one agree on every row
    one_at_a_time = np.concatenate([trees.raw(row.reshape(1, -1)) for row in rows])
    assert np.array_equal(one_at_a_time, trees.raw(rows))


def test_probability_is_the_logistic_of_the_raw_score(booster: lgb.Booster, rows: np.ndarray) -> None:
    trees = Trees.from_booster(booster)
    np.testing.assert_allclose(trees.probability(rows), booster.predict(rows), rtol=1e-12)


def test_contributions_add_up_to_the_raw_score_and_match_lightgbm(booster: lgb.Booster, rows: np.ndarray) -> None:
    trees = Trees.from_booster(booster)
    for row in rows[:10]:
        contributions = trees.contributions(row)
        assert contributions.shape == (len(NAMES) + 1,)
        assert contributions.sum() == pytest.approx(trees.raw(row.reshape(1, -1))[0], abs=1e-9)
    every = np.array([trees.contributions(row) for row in rows])
    assert np.array_equal(every, booster.predict(rows, pred_contrib=True))
    # the last entry is the model's expected value, the same for every row
    assert trees.contributions(rows[0])[-1] == trees.contributions(rows[1])[-1]


def test_the_text_round_trip_gives_identical_predictions(booster: lgb.Booster, rows: np.ndarray) -> None:
    trees = Trees.from_booster(booster)
    again = Trees.from_text(trees.text)
    assert again.names == tuple(NAMES)
    assert np.array_equal(again.raw(rows), trees.raw(rows))
    assert np.array_equal(pickle.loads(pickle.dumps(trees)).raw(rows), trees.raw(rows))


def test_a_booster_stopped_early_keeps_only_its_best_iteration(rows: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2000, 4))
    y = (X[:, 0] + rng.normal(size=2000) > 0).astype(float)
    train, valid = lgb.Dataset(X[:1500], y[:1500]), lgb.Dataset(X[1500:], y[1500:])
    params = {"objective": "binary", "learning_rate": 0.3, "verbose": -1, "num_threads": 1, "seed": 1}
    stop = [lgb.early_stopping(5, verbose=False)]
    # keep_training_booster: the booster keeps the trees after its best iteration (train would drop them)
    booster = lgb.train(params, train, 300, valid_sets=[valid], callbacks=stop, keep_training_booster=True)
    assert 0 < booster.best_iteration < booster.current_iteration()
    trees = Trees.from_booster(booster)
    assert repr(trees) == f"Trees(4 features, {booster.best_iteration} trees)"
    assert np.array_equal(trees.raw(rows), booster.predict(rows, raw_score=True))  # predict reads the best too


def test_long_feature_names_come_back_whole() -> None:
    names = [f"{'x' * 300}{i}" for i in range(4)]  # longer than the first buffers LightGBM is given
    X = np.random.default_rng(4).normal(size=(300, 4))
    booster = lgb.train({"verbose": -1, "num_threads": 1}, lgb.Dataset(X, X[:, 0], feature_name=names), 3)
    assert Trees.from_booster(booster).names == tuple(names)


def test_text_lightgbm_cannot_read_raises_its_message() -> None:
    with pytest.raises(LightGBMError, match="number of classes"):
        Trees.from_text("not a model")


def test_threads_share_one_model(booster: lgb.Booster, rows: np.ndarray) -> None:
    trees = Trees.from_booster(booster)
    raw, contributions = booster.predict(rows, raw_score=True), booster.predict(rows, pred_contrib=True)
    wrong: list[int] = []

    def score() -> None:
        for _ in range(20):
            for i, row in enumerate(rows):
                if trees.raw(row.reshape(1, -1))[0] != raw[i] or not np.array_equal(
                    trees.contributions(row), contributions[i]
                ):
                    wrong.append(i)
            if not np.array_equal(trees.raw(rows), raw):
                wrong.append(-1)

    threads = [threading.Thread(target=score) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_model_no_one_holds_is_collected(booster: lgb.Booster, rows: np.ndarray) -> None:
    trees = Trees.from_booster(booster)
    trees.contributions(rows[0])
    parts = [weakref.ref(trees._booster), weakref.ref(trees._raw_row), weakref.ref(trees._contrib_row)]
    del trees
    gc.collect()
    assert [part() for part in parts] == [None, None, None]  # so their finalizers have freed LightGBM's objects


def test_a_row_of_the_wrong_width_is_refused(booster: lgb.Booster) -> None:
    trees = Trees.from_booster(booster)
    with pytest.raises(ValueError, match="rows must be"):
        trees.raw(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="rows must be"):
        trees.contributions(np.zeros(5))


def test_non_contiguous_and_integer_rows_score_like_their_float_copies(booster: lgb.Booster, rows: np.ndarray) -> None:
    trees = Trees.from_booster(booster)
    wide = np.repeat(rows, 2, axis=1)[:, ::2]  # a strided view
    assert np.array_equal(trees.raw(wide), trees.raw(np.ascontiguousarray(wide)))
    whole = np.round(rows).astype(np.int64)
    assert np.array_equal(trees.raw(whole), trees.raw(whole.astype(np.float64)))


def test_a_regression_model_has_raw_scores_but_no_probability() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 2))
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, X[:, 0]), num_boost_round=5
    )
    trees = Trees.from_booster(booster)
    np.testing.assert_allclose(trees.raw(X[:3]), booster.predict(X[:3]))
    with pytest.raises(ValueError, match="binary"):
        trees.probability(X[:3])


def test_isotonic_interpolates_between_thresholds_and_is_flat_beyond_them() -> None:
    isotonic = Isotonic((0.1, 0.5, 0.9), (0.0, 0.2, 1.0))
    assert isotonic.apply(0.3) == pytest.approx(0.1)
    assert isinstance(isotonic.apply(0.3), float)
    np.testing.assert_allclose(isotonic.apply(np.array([0.0, 0.7, 1.0])), [0.0, 0.6, 1.0])


def test_isotonic_survives_json() -> None:
    isotonic = Isotonic((0.1, 0.5, 0.9), (0.0, 0.2, 1.0))
    again = Isotonic.from_dict(json.loads(json.dumps(isotonic.to_dict())))
    assert again == isotonic
    probabilities = np.linspace(0, 1, 11)
    assert np.array_equal(again.apply(probabilities), isotonic.apply(probabilities))


def test_isotonic_refuses_a_decreasing_map() -> None:
    with pytest.raises(ValueError, match="decrease"):
        Isotonic((0.1, 0.5), (0.5, 0.2))
