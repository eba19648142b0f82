"""Per-call latency of the serving models (`Trees`, `Uplift`), beside LightGBM's own `Booster.predict`.

Models as a decision would load them:

- propensity: `fit_propensity` on Online Shoppers Intention (17 columns as numbers), calibrated;
- uplift: `fit_uplift` on 60,000 synthetic logged decisions (24 cart features, 3 action features: channel,
  delay, incentive; a heterogeneous effect), with that size of model.

Each call scores a different row (rows cycle through 1,000 real ones) so the processor cannot learn one path
through the trees. One thread, in process; p50 / p99 over `--calls` calls after a warm-up, in wall time and in
the calling thread's CPU time (on a shared machine the wall p99 includes waiting for a core).

    .venv/bin/python bench/models_latency.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from cartrecover.learn.propensity import fit_propensity
from cartrecover.learn.uplift import fit_uplift
from cartrecover.models.trees import Trees
from cartrecover.models.uplift import Uplift

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_shoppers" / "online_shoppers_intention.csv"
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
ACTIONS = 30
FEATURES = 24


def shoppers() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Online Shoppers Intention's 17 columns as numbers, and Revenue."""
    data = pd.read_csv(DATA)
    data["Month"] = data["Month"].map({month: number for number, month in enumerate(MONTHS)})
    data["VisitorType"] = data["VisitorType"].map({"Returning_Visitor": 0, "New_Visitor": 1, "Other": 2})
    data["Weekend"] = data["Weekend"].astype(int)
    y = data.pop("Revenue").to_numpy(dtype=np.float64)
    return data.to_numpy(dtype=np.float64), y, list(data.columns)


def candidates() -> np.ndarray:
    """30 actions: 2 channels × 5 delays × 3 incentive levels."""
    grid = np.array([[c, d, i] for c in (0, 1) for d in (1, 4, 24, 48, 72) for i in (0, 5, 10)], dtype=np.float64)
    assert len(grid) == ACTIONS
    return grid


def uplift_model(seed: int = 0) -> tuple[Uplift, np.ndarray]:
    """An uplift model fitted on synthetic logged decisions, and rows of cart features to score."""
    rng = np.random.default_rng(seed)
    count = 60_000
    X = rng.normal(size=(count, FEATURES))
    treated = rng.random(count) < 0.8
    A = candidates()[rng.integers(0, ACTIONS, size=count)]
    base = -2.0 + 0.8 * X[:, 0] - 0.5 * X[:, 1] + 0.3 * X[:, 2] * X[:, 3]
    lift = 0.2 + 0.05 * A[:, 2] * (X[:, 4] > 0) - 0.004 * A[:, 1] + 0.2 * A[:, 0] * (X[:, 5] > 0.5)
    y = (rng.random(count) < 1 / (1 + np.exp(-(base + treated * lift)))).astype(np.float64)
    names = [f"x{i}" for i in range(FEATURES)]
    model = fit_uplift(X, A, y, treated, names=names, action_names=["channel", "delay", "incentive"], seed=seed)
    return model, X[:1000].copy()


def timed(call: Callable[[int], object], calls: int) -> tuple[float, float, float, float]:
    """Wall p50, p99 and this thread's CPU p50, p99 in µs of `call(i)` for i in range(calls), after a warm-up."""
    for i in range(200):
        call(i)
    wall = np.empty(calls, dtype=np.float64)
    cpu = np.empty(calls, dtype=np.float64)
    clock, thread = time.perf_counter_ns, time.thread_time_ns
    for i in range(calls):
        start, start_cpu = clock(), thread()
        call(i)
        cpu[i] = thread() - start_cpu
        wall[i] = clock() - start
    w50, w99 = np.percentile(wall, [50, 99]) / 1000
    c50, c99 = np.percentile(cpu, [50, 99]) / 1000
    return float(w50), float(w99), float(c50), float(c99)


def describe(trees: Trees) -> str:
    booster = lgb.Booster(model_str=trees.text)
    leaves = sum(int(line.split("=")[1]) for line in trees.text.splitlines() if line.startswith("num_leaves="))
    return f"{booster.num_trees()} trees, {leaves} leaves, {len(trees.names)} features"


def main() -> None:
    """Fit the two models, then time each call of the serving path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    X, y, names = shoppers()
    propensity = fit_propensity(X, y, names, holdout=0.0)
    uplift, carts = uplift_model()
    booster = lgb.Booster(model_str=propensity.trees.text)
    treated = lgb.Booster(model_str=uplift.treated.text)
    print(f"propensity: {describe(propensity.trees)}; uplift treated trees: {describe(uplift.treated)}")
    print(f"uplift control trees: {describe(uplift.control)}")
    sessions = X[:1000].copy()
    one = [sessions[i : i + 1] for i in range(1000)]
    many = [np.ascontiguousarray(np.resize(sessions[i:], (32, sessions.shape[1]))) for i in range(1000)]
    actions = candidates()
    batches = [np.hstack([np.tile(cart, (ACTIONS, 1)), actions]) for cart in carts]
    batches32 = [np.ascontiguousarray(np.resize(batch, (32, batch.shape[1]))) for batch in batches]
    trees = propensity.trees

    def decision(i: int) -> None:
        row = one[i % 1000]
        propensity.calibration.apply(trees.probability(row)[0])
        cart = carts[i % 1000]
        uplift.score(cart, actions, base=uplift.base(cart))
        trees.contributions(row[0])

    rows: list[tuple[str, Callable[[int], object]]] = [
        ("propensity Trees.raw, 1 row", lambda i: trees.raw(one[i % 1000])),
        (
            "  Booster.predict(raw_score), 1 row",
            lambda i: booster.predict(one[i % 1000], raw_score=True, num_threads=1),
        ),
        ("propensity Trees.raw, 32 rows", lambda i: trees.raw(many[i % 1000])),
        (
            "  Booster.predict(raw_score), 32 rows",
            lambda i: booster.predict(many[i % 1000], raw_score=True, num_threads=1),
        ),
        ("propensity Trees.contributions, 1 row", lambda i: trees.contributions(one[i % 1000][0])),
        (
            "  Booster.predict(pred_contrib), 1 row",
            lambda i: booster.predict(one[i % 1000], pred_contrib=True, num_threads=1),
        ),
        ("uplift treated Trees.raw, 1 row", lambda i: uplift.treated.raw(batches[i % 1000][:1])),
        ("uplift treated Trees.raw, 32 rows", lambda i: uplift.treated.raw(batches32[i % 1000])),
        (
            "  Booster.predict(raw_score), 30 rows",
            lambda i: treated.predict(batches[i % 1000], raw_score=True, num_threads=1),
        ),
        (f"Uplift.score, {ACTIONS} actions (its own base call)", lambda i: uplift.score(carts[i % 1000], actions)),
        (
            f"all models of a decision: calibrated propensity + Uplift.score ({ACTIONS} actions) + contributions",
            decision,
        ),
    ]
    gc.freeze()  # the models and rows above live as long as a server's; the collector need not walk them
    print(f"\n{'call':<100} {'wall p50':>9} {'p99':>7} {'CPU p50':>8} {'p99':>7}  (µs)")
    for label, call in rows:
        w50, w99, c50, c99 = timed(call, args.calls)
        print(f"{label:<100} {w50:9.1f} {w99:7.1f} {c50:8.1f} {c99:7.1f}", flush=True)


if __name__ == "__main__":
    main()
