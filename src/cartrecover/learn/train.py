"""`cartrecover train`: a store's decision log and outcomes in, a model bundle out.

Examples are the logged decisions whose recovery window has closed, each labelled with whether the cart was
ordered inside the window. The split is by time: the models learn on the older 80 % and are checked on the
newest 20 %, so the metrics say how they do on carts they have not seen, in the order they come.

- No contact: LightGBM on the holdout and the "no contact" decisions, the only carts nobody touched;
  calibrated by isotonic regression on the newest part.
- Contact: LightGBM on every treated decision, features next to the plan's description, boosted from the
  no-contact log-odds, each row weighted by 1 / its logged propensity (exploring decisions teach without bias).
- Lifetime value: BG/NBD and Gamma-Gamma on the store's purchase histories, when enough shoppers bought again.
- Send time: the store's pattern of local hours at which shoppers order and click.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression

from cartrecover.decide import features
from cartrecover.decide.actions import ACTION_NAMES
from cartrecover.domain.cart import CartStatus
from cartrecover.learn import metrics
from cartrecover.models.bundle import Bundle
from cartrecover.models.calibration import Isotonic
from cartrecover.models.clv import Clv
from cartrecover.models.outcome import Outcome
from cartrecover.models.sendtime import SendTime, store_pattern
from cartrecover.models.trees import Trees
from cartrecover.ports.decisions import DecisionRecord
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.unit_of_work import UnitOfWork

MIN_CONTROL = 100  # untouched carts the no-contact model needs, and ...
MIN_CONTROL_ORDERS = 10  # ... orders among them
MIN_TREATED = 200
MIN_REPEAT_BUYERS = 30  # for a lifetime-value fit
MAX_WEIGHT = 50.0  # inverse propensities are clipped here: one lucky draw must not own the model
PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 2,
    "verbose": -1,
    "seed": 7,
}
ROUNDS = 400


class NotEnoughData(Exception):
    """The log cannot support a model yet; the rules keep running (and exploring)."""


@dataclass(frozen=True)
class Example:
    """One logged decision with its outcome."""

    record: DecisionRecord
    ordered: bool
    value: float  # the order's value (or the cart's, without an order), major units


@dataclass
class Trained:
    """A bundle and what training measured."""

    bundle: Bundle
    metrics: dict[str, Any] = field(default_factory=dict)


def examples(uow: UnitOfWork, store_id: int, until: datetime, window: timedelta) -> list[Example]:
    """Every decision whose window closed before `until`, labelled from its cart (oldest first)."""
    found = []
    epoch = datetime.fromtimestamp(0, until.tzinfo)
    for record in uow.decisions.between(store_id, epoch, until - window):
        cart = uow.carts.get(store_id, record.cart_id)
        if cart is None or record.feature_version != features.VERSION:
            continue
        closed = cart.closed_at
        ordered = (
            cart.status in (CartStatus.RECOVERED, CartStatus.CONVERTED)
            and closed is not None
            and record.at <= closed <= record.at + window
        )
        value = (cart.order_value if ordered and cart.order_value else cart.value) / 100
        found.append(Example(record, ordered, value))
    return found


def train(
    found: Sequence[Example],
    purchasers: Sequence[Shopper],
    *,
    timezone: str = "UTC",
    progress: Callable[[str], None] = lambda _: None,
) -> Trained:
    """Fit every model of a bundle on `found` (oldest first); raises NotEnoughData when the log is too thin."""
    control = [e for e in found if e.record.group == "holdout" or not e.record.action[0]]
    treated = [e for e in found if e.record.group != "holdout" and e.record.action[0]]
    control_orders = sum(e.ordered for e in control)
    if len(control) < MIN_CONTROL or control_orders < MIN_CONTROL_ORDERS or len(treated) < MIN_TREATED:
        raise NotEnoughData(
            f"{len(control)} untouched carts with {control_orders} orders and {len(treated)} treated carts; "
            f"a model needs {MIN_CONTROL}, {MIN_CONTROL_ORDERS} and {MIN_TREATED}"
        )
    progress("no-contact model")
    propensity, calibration, found_metrics = _no_contact(control)
    progress("contact model")
    outcome, contact_metrics = _contact(treated, propensity)
    progress("lifetime value")
    clv, clv_metrics = _lifetime_value(purchasers)
    progress("send time")
    hours = [h for s in purchasers for h, n in s.active_hours.items() for _ in range(n)]
    send_time = SendTime(store_pattern(hours))
    measured = {
        "examples": len(found),
        "control": len(control),
        "treated": len(treated),
        "explored": sum(e.record.explored for e in found),
        **found_metrics,
        **contact_metrics,
        **clv_metrics,
    }
    bundle = Bundle(
        feature_version=features.VERSION,
        feature_names=features.NAMES,
        action_names=ACTION_NAMES,
        propensity=propensity,
        calibration=calibration,
        outcome=outcome,
        clv=clv,
        send_time=send_time,
        metrics=measured,
    )
    return Trained(bundle, measured)


def _split(count: int) -> int:
    """Where the newest 20 % begins."""
    return max(int(count * 0.8), 1)


def _matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64)


def _fit(x: np.ndarray, y: np.ndarray, cut: int, names: Sequence[str], **extra: np.ndarray | None) -> lgb.Booster:
    """LightGBM with early stopping on the newest part; the best iteration is kept."""
    weight, init = extra.get("weight"), extra.get("init_score")
    train_set = lgb.Dataset(
        x[:cut], y[:cut], feature_name=list(names), free_raw_data=False,
        weight=None if weight is None else weight[:cut], init_score=None if init is None else init[:cut],
    )  # fmt: skip
    valid_set = lgb.Dataset(
        x[cut:], y[cut:], reference=train_set,
        weight=None if weight is None else weight[cut:], init_score=None if init is None else init[cut:],
    )  # fmt: skip
    return lgb.train(
        PARAMS, train_set, ROUNDS, valid_sets=[valid_set], callbacks=[lgb.early_stopping(30, verbose=False)]
    )


def _no_contact(control: Sequence[Example]) -> tuple[Trees, Isotonic, dict[str, float]]:
    x = _matrix([e.record.features for e in control])
    y = np.asarray([e.ordered for e in control], dtype=np.float64)
    cut = _split(len(control))
    trees = Trees.from_booster(_fit(x, y, cut, features.NAMES))
    raw = trees.probability(x[cut:])
    isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y[cut:])
    calibration = Isotonic(
        tuple(float(t) for t in isotonic.X_thresholds_), tuple(float(v) for v in isotonic.y_thresholds_)
    )
    calibrated = calibration.apply(raw)
    return (
        trees,
        calibration,
        {
            "no_contact_auc": _auc(y[cut:], raw),
            "no_contact_brier": metrics.brier(y[cut:], calibrated),
            "no_contact_rate": float(y.mean()),
            "no_contact_trees": float(trees.text.count("Tree=")),
        },
    )


def _contact(treated: Sequence[Example], propensity: Trees) -> tuple[Outcome, dict[str, float]]:
    x = _matrix([e.record.features for e in treated])
    actions = _matrix([e.record.action for e in treated])
    y = np.asarray([e.ordered for e in treated], dtype=np.float64)
    logged = np.asarray([e.record.propensity or 1.0 for e in treated], dtype=np.float64)
    weight = np.minimum(1.0 / np.maximum(logged, 1e-6), MAX_WEIGHT)
    weight = weight / weight.mean()
    init = propensity.raw(x)
    cut = _split(len(treated))
    booster = _fit(np.hstack([x, actions]), y, cut, (*features.NAMES, *ACTION_NAMES), weight=weight, init_score=init)
    outcome = Outcome(Trees.from_booster(booster))
    newest = np.hstack([x[cut:], actions[cut:]])
    predicted = 1 / (1 + np.exp(-(init[cut:] + outcome.treated.raw(newest))))  # as Outcome.outcomes, all rows at once
    base = 1 / (1 + np.exp(-init[cut:]))
    return outcome, {
        "contact_auc": _auc(y[cut:], predicted),
        "contact_log_loss": metrics.log_loss(y[cut:], predicted),
        "contact_log_loss_without_plan": metrics.log_loss(y[cut:], base),
        "contact_rate": float(y.mean()),
    }


def _lifetime_value(purchasers: Sequence[Shopper]) -> tuple[Clv | None, dict[str, float]]:
    buyers = [s for s in purchasers if s.orders and s.first_order_at and s.last_order_at]
    repeat = [s for s in buyers if s.orders > 1]
    if len(repeat) < MIN_REPEAT_BUYERS:
        return None, {"clv_buyers": float(len(buyers)), "clv_repeat_buyers": float(len(repeat))}
    now = max(s.last_order_at for s in buyers if s.last_order_at)
    week = timedelta(days=7)
    x = np.asarray([s.orders - 1 for s in buyers], dtype=np.float64)
    t_x = np.asarray(
        [(s.last_order_at - s.first_order_at) / week for s in buyers if s.last_order_at and s.first_order_at]
    )
    age = np.asarray([(now - s.first_order_at) / week for s in buyers if s.first_order_at])
    spend = np.asarray([s.spend / 100 / s.orders for s in buyers])
    from cartrecover.learn import clv as clv_fit

    bgnbd = clv_fit.fit_bgnbd(x, t_x, np.maximum(age, t_x))
    repeaters = x > 0
    gamma = clv_fit.fit_gamma_gamma(x[repeaters], spend[repeaters])
    return Clv(bgnbd, gamma), {"clv_buyers": float(len(buyers)), "clv_repeat_buyers": float(len(repeat))}


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    if y.min() == y.max():
        return math.nan
    return float(metrics.roc_auc(y, score))
