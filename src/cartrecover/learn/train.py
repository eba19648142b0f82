"""`cartrecover train`: a store's decision log and outcomes in, a model bundle out.

Examples are the logged decisions whose recovery window has closed, each labelled with whether the cart was
ordered inside the window. The split is by time: the models learn on the older 80 % and are checked on the
newest 20 %, so the metrics say how they do on carts they have not seen, in the order they come.

- No contact: LightGBM on the holdout and the "no contact" decisions, the only carts nobody touched, calibrated
  by isotonic regression on out-of-fold scores (`learn/propensity.fit_propensity`, split by time).
- Contact: a penalised logistic regression of every treated decision's outcome on products of plan terms and
  cart terms (models/effects.py), offset by the no-contact log-odds, with a fixed L2 penalty (`PENALTY`).
  A treated cart that no channel could reach was never contacted: it joins the untouched ones. Rows are not
  weighted by their propensities: the model conditions on everything the logging policy saw, so the plans'
  effects are identified without weights, which would only add variance. The coefficients' covariance is kept
  too (Laplace: the inverse of the penalised log loss's Hessian at the fit), for `[decisions] caution`.
- Discount share: among the orders of plans with an incentive, whether the order used one of our codes, on
  the same products without an offset: a late offer is used by fewer orders than an early one.
- Lifetime value: BG/NBD and Gamma-Gamma on the store's purchase histories, when enough shoppers bought again.
- Send time: the store's pattern of local hours at which shoppers order and click.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from scipy import linalg, optimize

from cartrecover.decide import features
from cartrecover.decide.actions import ACTION_NAMES
from cartrecover.domain.cart import Cart, CartStatus
from cartrecover.learn import metrics
from cartrecover.learn.propensity import fit_propensity
from cartrecover.models import effects as contact_terms
from cartrecover.models.bundle import Bundle
from cartrecover.models.calibration import Isotonic
from cartrecover.models.clv import Clv
from cartrecover.models.effects import Effects
from cartrecover.models.sendtime import SendTime, store_pattern
from cartrecover.models.trees import Trees
from cartrecover.ports.decisions import DecisionRecord
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.unit_of_work import UnitOfWork

MIN_CONTROL = 100  # untouched carts the no-contact model needs, and ...
MIN_CONTROL_ORDERS = 10  # ... orders among them
MIN_TREATED = 200
MIN_REPEAT_BUYERS = 30  # for a lifetime-value fit
# The contact model's L2 penalty on the summed log loss: a Gaussian prior of variance 1/10 on each effect (a
# standard deviation of 0.3 in log-odds), which the data outweighs as it grows. On the simulated stores' logs it
# beat 1, 30 and 100 (docs/benchmarks.md); choosing it by log loss on the newest part picked 100 and lost, as
# the log loss is mostly the baseline's.
PENALTY = 10.0
# How a plan's shape works (its number of touches, first channel, SMS touches, last delay) may vary from cart to
# cart only under a prior a hundred times tighter (a standard deviation of 0.03): whether to contact and what an
# incentive does keep `PENALTY`. Free to vary, the shape's products with the cart terms fitted the noise of thin
# cells: on the electronics store the model had extra reminders lower P(order) for dear carts of returning
# customers, and chose one email where three earn more (docs/benchmarks.md, "The contact model's shape"). How an
# offer fades (`tens_off_faded`) is part of the shape: who an offer moves varies from cart to cart through the pull
# it keeps (`tens_off_kept`), so an offer at 72 h varies as much as it has kept, an eighth, not as one at 1 h.
SHAPE_PENALTY = 1000.0
VARYING = ("contact", "tens_off_kept")  # the plan terms whose effect varies with the cart at PENALTY


def penalties() -> np.ndarray:
    """The contact model's penalty per coefficient, plan-major as `contact_terms.design` lays them out: `PENALTY`
    on each plan term's product with the constant and on every product of a `VARYING` term, `SHAPE_PENALTY` on
    the other plan terms' products with the cart terms."""
    grid = np.full((len(contact_terms.PLAN_TERMS), len(contact_terms.CONTEXT_TERMS)), PENALTY)
    for row, name in enumerate(contact_terms.PLAN_TERMS):
        if name not in VARYING:
            grid[row, 1:] = SHAPE_PENALTY
    return grid.ravel()


MIN_DISCOUNTED_ORDERS = 50  # orders of plans with an incentive, to learn which share uses it
# Decisions whose carts `examples` reads in one call: on PostgreSQL a round trip per page instead of per cart.
PAGE = 1000


class NotEnoughData(Exception):
    """The log cannot support a model yet; the rules keep running (and exploring)."""


@dataclass(frozen=True)
class Example:
    """One logged decision with its outcome."""

    record: DecisionRecord
    ordered: bool
    value: float  # the order's value (or the cart's, without an order), major units
    discounted: bool = False  # the order used a code one of our messages gave


@dataclass
class Trained:
    """A bundle and what training measured."""

    bundle: Bundle
    metrics: dict[str, Any] = field(default_factory=dict)


def examples(uow: UnitOfWork, store_id: int, until: datetime, window: timedelta) -> list[Example]:
    """Every decision whose window closed before `until`, labelled from its cart (oldest first)."""
    found: list[Example] = []
    epoch = datetime.fromtimestamp(0, until.tzinfo)
    records = uow.decisions.between(store_id, epoch, until - window)
    for start in range(0, len(records), PAGE):
        page = records[start : start + PAGE]
        carts = uow.carts.get_many(store_id, {record.cart_id for record in page})
        labelled = (_labelled(uow, record, carts.get(record.cart_id), window) for record in page)
        found += [example for example in labelled if example is not None]
    return found


def _labelled(uow: UnitOfWork, record: DecisionRecord, cart: Cart | None, window: timedelta) -> Example | None:
    """The decision with its outcome, or None without its cart or with features of another version."""
    if cart is None or record.feature_version != features.VERSION:
        return None
    closed = cart.closed_at
    ordered = (
        cart.status in (CartStatus.RECOVERED, CartStatus.CONVERTED)
        and closed is not None
        and record.at <= closed <= record.at + window
    )
    value = (cart.order_value if ordered and cart.order_value else cart.value) / 100
    return Example(record, ordered, value, ordered and _used_our_code(uow, cart))


def _used_our_code(uow: UnitOfWork, cart: Cart) -> bool:
    """Whether the cart's order used a coupon code one of its messages carried."""
    order = uow.orders.get(cart.store_id, cart.order_id) if cart.order_id else None
    if order is None or not order.coupons:
        return False
    used = {code.strip().upper() for code in order.coupons}
    return any(step.coupon and step.coupon.upper() in used for step in uow.outbox.for_cart(cart.store_id, cart.cart_id))


def train(
    found: Sequence[Example],
    purchasers: Sequence[Shopper],
    *,
    timezone: str = "UTC",
    progress: Callable[[str], None] = lambda _: None,
) -> Trained:
    """Fit every model of a bundle on `found` (oldest first); raises NotEnoughData when the log is too thin."""
    control = [e for e in found if _untouched(e.record)]
    treated = [e for e in found if not _untouched(e.record)]
    control_orders = sum(e.ordered for e in control)
    if len(control) < MIN_CONTROL or control_orders < MIN_CONTROL_ORDERS or len(treated) < MIN_TREATED:
        raise NotEnoughData(
            f"{len(control)} untouched carts with {control_orders} orders and {len(treated)} treated carts; "
            f"a model needs {MIN_CONTROL}, {MIN_CONTROL_ORDERS} and {MIN_TREATED}"
        )
    progress("no-contact model")
    propensity, calibration, found_metrics = _no_contact(control)
    progress("contact model")
    effects, contact_metrics = _contact(treated, propensity)
    discount, discount_metrics = _discount_share(treated)
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
        **discount_metrics,
        **clv_metrics,
    }
    bundle = Bundle(
        feature_version=features.VERSION,
        feature_names=features.NAMES,
        action_names=ACTION_NAMES,
        propensity=propensity,
        calibration=calibration,
        effects=effects,
        clv=clv,
        send_time=send_time,
        discount=discount,
        metrics=measured,
    )
    return Trained(bundle, measured)


def _split(count: int) -> int:
    """Where the newest 20 % begins."""
    return max(int(count * 0.8), 1)


def _matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64)


def _no_contact(control: Sequence[Example]) -> tuple[Trees, Isotonic, dict[str, float]]:
    """The calibrated propensity trees of `learn/propensity.py` (the ones bench/propensity_osi.py measures), split by
    time: the newest 20 % only scores them; of the rest, the newest fifth picks the tree shape and rounds, and
    out-of-fold scores over consecutive stretches of time fit the isotonic calibration."""
    x = _matrix([e.record.features for e in control])
    y = np.asarray([e.ordered for e in control], dtype=np.float64)
    fit = fit_propensity(x, y, features.NAMES, order=np.arange(len(y)), holdout=1 - _split(len(y)) / len(y))
    return (
        fit.trees,
        fit.calibration,
        {
            "no_contact_auc": fit.metrics.get("roc_auc", math.nan),
            "no_contact_brier": fit.metrics.get("brier", math.nan),
            "no_contact_ece": fit.metrics.get("ece", math.nan),
            "no_contact_rate": float(y.mean()),
            "no_contact_trees": float(fit.trees.text.count("Tree=")),
        },
    )


def _contact(treated: Sequence[Example], propensity: Trees) -> tuple[Effects, dict[str, float]]:
    x = _matrix([e.record.features for e in treated])
    actions = _matrix([e.record.action for e in treated])
    y = np.asarray([e.ordered for e in treated], dtype=np.float64)
    init = propensity.raw(x)
    products = contact_terms.design(x, actions)
    cut = _split(len(treated))  # measured on the newest part, then refitted on everything
    penalty = penalties()
    newest = _sigmoid(init[cut:] + products[cut:] @ _logistic_fit(products[:cut], y[:cut], init[:cut], penalty))
    base = _sigmoid(init[cut:])
    coefficients = _logistic_fit(products, y, init, penalty)
    effects = Effects(coefficients, _laplace_covariance(products, init, coefficients, penalty))
    return effects, {
        "contact_auc": _auc(y[cut:], newest),
        "contact_log_loss": metrics.log_loss(y[cut:], newest),
        "contact_log_loss_without_plan": metrics.log_loss(y[cut:], base),
        "contact_rate": float(y.mean()),
    }


def _discount_share(treated: Sequence[Example]) -> tuple[Effects | None, dict[str, float]]:
    """Among the orders of plans with an incentive, which used it: the same products, without an offset."""
    offered = [e for e in treated if e.ordered and e.record.action[ACTION_NAMES.index("percent_off")] > 0]
    used = sum(e.discounted for e in offered)
    if len(offered) < MIN_DISCOUNTED_ORDERS or used in (0, len(offered)):
        return None, {"discount_orders": float(len(offered))}
    x = _matrix([e.record.features for e in offered])
    products = contact_terms.design(x, _matrix([e.record.action for e in offered]))
    y = np.asarray([e.discounted for e in offered], dtype=np.float64)
    offset = np.zeros(len(y))
    penalty = penalties()
    coefficients = _logistic_fit(products, y, offset, penalty)
    covariance = _laplace_covariance(products, offset, coefficients, penalty)
    return Effects(coefficients, covariance), {
        "discount_orders": float(len(offered)),
        "discount_used_rate": float(y.mean()),
    }


def _logistic_fit(products: np.ndarray, y: np.ndarray, offset: np.ndarray, penalty: float | np.ndarray) -> np.ndarray:
    """Coefficients minimising the log loss (summed) + ½ Σ penalty·β², with the offset fixed (L-BFGS); `penalty` is
    one number for every coefficient or one per coefficient."""

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = offset + products @ beta
        value = float(np.sum(np.logaddexp(0.0, eta) - y * eta)) + 0.5 * float(beta @ (penalty * beta))
        return value, products.T @ (_sigmoid(eta) - y) + penalty * beta

    start = np.zeros(products.shape[1])
    found = optimize.minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    coefficients: np.ndarray = found.x
    return coefficients


def _laplace_covariance(
    products: np.ndarray, offset: np.ndarray, beta: np.ndarray, penalty: float | np.ndarray
) -> np.ndarray:
    """The posterior covariance of a `_logistic_fit` by the Laplace approximation: the inverse of its objective's
    Hessian at `beta`, (Xᵀ W X + penalty · I)⁻¹ with W = p (1 − p). The penalty keeps it positive definite."""
    p = _sigmoid(offset + products @ beta)
    hessian = (products * (p * (1 - p))[:, None]).T @ products + np.diag(np.broadcast_to(penalty, len(beta)))
    factor = linalg.cho_factor(hessian)
    inverse: np.ndarray = linalg.cho_solve(factor, np.eye(len(hessian)))
    covariance: np.ndarray = (inverse + inverse.T) / 2
    return covariance


def _sigmoid(z: np.ndarray) -> np.ndarray:
    result: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return result


def _untouched(record: DecisionRecord) -> bool:
    """Held out, decided "no contact", or reachable on no channel (so nothing could be sent)."""
    reachable = any(record.features[features.NAMES.index(name)] == 1 for name in ("email_ok", "sms_ok", "push_ok"))
    return record.group == "holdout" or not record.action[0] or not reachable


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
