"""Serving reads LightGBM's library, not its Python package: loading and scoring a bundle imports no training
library (`import lightgbm` alone would bring scikit-learn, pandas and SciPy when they are installed).

The import-linter contract forbids direct imports; this test runs a fresh interpreter, so it also sees what
the libraries a module imports import in turn.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np

from cartrecover.decide import features
from cartrecover.decide.actions import ACTION_NAMES
from cartrecover.models.bundle import Bundle
from cartrecover.models.calibration import Isotonic
from cartrecover.models.effects import CONTEXT_TERMS, PLAN_TERMS, Effects
from cartrecover.models.trees import Trees

TRAINING_ONLY = ("lightgbm", "sklearn", "pandas")

# What a decision does with a bundle from the registry, in a fresh interpreter: load it from bytes, score a
# row, explain it; then report the results and which training-only modules got imported on the way.
SERVE = """
import json
import sys
from pathlib import Path

import numpy as np

from cartrecover.models.bundle import Bundle

bundle = Bundle.from_bytes(Path(sys.argv[1]).read_bytes(), version=1)
rows = np.asarray(json.loads(Path(sys.argv[2]).read_text()), dtype=np.float64)
found = {
    "raw": [float(bundle.propensity.raw(row.reshape(1, -1))[0]) for row in rows],
    "raw_together": bundle.propensity.raw(rows).tolist(),
    "contributions": [bundle.propensity.contributions(row).tolist() for row in rows],
    "no_contact": bundle.no_contact(rows[0]),
    "explain": bundle.explain(rows[0], 3),
    "imported": sorted({name.partition(".")[0] for name in sys.modules} & {training_only}),
}
print(json.dumps(found))
"""


def small_bundle() -> tuple[Bundle, lgb.Booster, np.ndarray]:
    """A bundle whose no-contact trees are trained here on random rows, the booster, and rows to score."""
    rng = np.random.default_rng(11)
    width = len(features.NAMES)
    X = rng.normal(size=(2000, width))
    y = (X[:, 0] - 0.7 * X[:, 1] * X[:, 2] + rng.normal(size=2000) > 0).astype(float)
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(X, y, feature_name=list(features.NAMES)), num_boost_round=20)
    bundle = Bundle(
        feature_version=features.VERSION,
        feature_names=features.NAMES,
        action_names=ACTION_NAMES,
        propensity=Trees.from_booster(booster),
        calibration=Isotonic((0.0, 1.0), (0.0, 1.0)),
        effects=Effects(np.zeros(len(PLAN_TERMS) * len(CONTEXT_TERMS))),
    )
    return bundle, booster, rng.normal(size=(5, width))


def test_loading_and_scoring_a_bundle_imports_no_training_library(tmp_path: Path) -> None:
    bundle, booster, rows = small_bundle()
    (tmp_path / "bundle.json").write_bytes(bundle.to_bytes())
    (tmp_path / "rows.json").write_text(json.dumps(rows.tolist()))  # floats survive JSON exactly
    script = SERVE.replace("{training_only}", repr(set(TRAINING_ONLY)))
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "bundle.json"), str(tmp_path / "rows.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)  # nothing else on stdout: LightGBM's library said nothing either
    assert found["imported"] == []
    # and the numbers are LightGBM's own, bit for bit
    raw = booster.predict(rows, raw_score=True)
    assert found["raw"] == raw.tolist()
    assert found["raw_together"] == raw.tolist()
    assert found["contributions"] == booster.predict(rows, pred_contrib=True).tolist()
    assert found["no_contact"] == bundle.no_contact(rows[0])
    assert [tuple(pair) for pair in found["explain"]] == bundle.explain(rows[0], 3)
    assert len(found["explain"]) == 3
