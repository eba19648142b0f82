"""Fitting customer lifetime value: BG/NBD and Gamma-Gamma by maximum likelihood, from a store's orders.

`summarise` turns (customer, time, amount) rows into the per-customer summary both models read; `fit_bgnbd` and
`fit_gamma_gamma` maximise their log-likelihoods (Fader, Hardie & Lee 2005; Fader & Hardie 2013) over the
logarithms of the parameters, with analytic gradients, and return the serving models of `cartrecover.models.clv`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from cartrecover.models.clv import BgNbd, GammaGamma

__all__ = [
    "Summary",
    "bgnbd_log_likelihood",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
    "summarise",
]

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Summary:
    """Per customer: repeat purchases `x`, age of the last `t_x`, age now `T` (in periods), mean repeat spend."""

    customers: tuple[Hashable, ...]
    x: Floats
    t_x: Floats
    T: Floats
    mean_spend: Floats


def summarise(
    transactions: Iterable[tuple[Hashable, date, float]], *, calibration_end: date, period_days: float = 7
) -> Summary:
    """The BG/NBD summary of every customer whose first purchase is on or before `calibration_end` (inclusive).

    A day's purchases by one customer count as one transaction worth their sum (as Fader & Hardie treat CDNOW); days
    are the calendar days of the given times, so convert them to the store's time zone first. The first purchase
    is not a repeat: it starts the customer's clock and stays out of `x` and of the mean spend (0 when x = 0).
    Purchases after `calibration_end` are ignored.
    """
    end = _day(calibration_end)
    days: dict[Hashable, dict[date, float]] = {}
    for customer, when, amount in transactions:
        day = _day(when)
        if day <= end:
            per_day = days.setdefault(customer, {})
            per_day[day] = per_day.get(day, 0.0) + float(amount)
    customers = tuple(days)
    x, t_x, age, spend = (np.zeros(len(customers)) for _ in range(4))
    for i, customer in enumerate(customers):
        ordered = sorted(days[customer])
        first, repeats = ordered[0], ordered[1:]
        x[i] = len(repeats)
        t_x[i] = (ordered[-1] - first).days / period_days
        age[i] = (end - first).days / period_days
        spend[i] = sum(days[customer][d] for d in repeats) / len(repeats) if repeats else 0.0
    return Summary(customers, x, t_x, age, spend)


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> BgNbd:
    """BG/NBD by maximum likelihood on per-customer repeat purchases, recency and age (periods)."""
    data = _bgnbd_data(x, t_x, T)
    start = np.log([1.0, max(float(np.mean(data[2])), 1e-3), 1.0, 1.0])

    def objective(theta: Floats) -> tuple[float, Floats]:
        value, gradient = _bgnbd_terms(np.exp(theta), *data)
        return -value / len(data[0]), -gradient * np.exp(theta) / len(data[0])

    result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15})
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BgNbd(r, alpha, a, b)


def bgnbd_log_likelihood(model: BgNbd, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> float:
    """The BG/NBD log-likelihood of the data under `model` (the figure papers report, e.g. −9582.4 on CDNOW)."""
    params = np.array([model.r, model.alpha, model.a, model.b])
    return _bgnbd_terms(params, *_bgnbd_data(x, t_x, T))[0]


def fit_gamma_gamma(x: ArrayLike, mean_spend: ArrayLike) -> GammaGamma:
    """Gamma-Gamma by maximum likelihood on the repeat buyers (x > 0) and their mean repeat spend.

    ValueError when fewer than 3 repeat buyers, or when the fit has q ≤ 1 (no finite mean spend).
    """
    count, mean = _spend_data(x, mean_spend)

    def objective(theta: Floats) -> tuple[float, Floats]:
        value, gradient = _gamma_gamma_terms(np.exp(theta), count, mean)
        return -value / len(count), -gradient * np.exp(theta) / len(count)

    start = np.log([1.0, 2.0, float(np.mean(mean))])
    result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15})
    p, q, v = (float(value) for value in np.exp(result.x))
    if q <= 1:
        raise ValueError(f"Gamma-Gamma fit has q = {q:.3g} ≤ 1: the data give no finite mean spend")
    return GammaGamma(p, q, v)


def gamma_gamma_log_likelihood(model: GammaGamma, x: ArrayLike, mean_spend: ArrayLike) -> float:
    """The Gamma-Gamma log-likelihood of the repeat buyers' mean spend under `model`."""
    return _gamma_gamma_terms(np.array([model.p, model.q, model.v]), *_spend_data(x, mean_spend))[0]


def _day(value: date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _bgnbd_data(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[Floats, Floats, Floats]:
    arrays = tuple(np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    frequency, recency, age = arrays
    if frequency.ndim != 1 or not (frequency.shape == recency.shape == age.shape) or frequency.size == 0:
        raise ValueError("x, t_x and T must be non-empty one-dimensional arrays of the same length")
    if not all(np.isfinite(v).all() for v in arrays):
        raise ValueError("x, t_x and T must be finite")
    if (frequency < 0).any() or (recency < 0).any() or (recency > age).any():
        raise ValueError("need x ≥ 0 and 0 ≤ t_x ≤ T for every customer")
    return frequency, recency, age


def _bgnbd_terms(params: Floats, x: Floats, t_x: Floats, T: Floats) -> tuple[float, Floats]:
    """Log-likelihood (Fader, Hardie & Lee 2005, eq. 6, in logs) and its gradient in (r, α, a, b)."""
    r, alpha, a, b = params
    repeat = x > 0
    b_x1 = np.where(repeat, b + x - 1, 1.0)  # only read where x > 0
    first = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + gammaln(a + b) + gammaln(b + x)
    first -= gammaln(b) + gammaln(a + b + x)
    alive = -(r + x) * np.log(alpha + T)
    dropped = np.where(repeat, np.log(a) - np.log(b_x1) - (r + x) * np.log(alpha + t_x), -np.inf)
    mixture = np.logaddexp(alive, dropped)
    w = np.exp(dropped - mixture)  # the share of the "dropped out after the last purchase" branch
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - (1 - w) * np.log(alpha + T) - w * np.log(alpha + t_x)
    d_alpha = r / alpha - (r + x) * ((1 - w) / (alpha + T) + w / (alpha + t_x))
    shared = digamma(a + b) - digamma(a + b + x)
    d_a = shared + w / a
    d_b = shared + digamma(b + x) - digamma(b) - w / b_x1
    gradient = np.array([d.sum() for d in (d_r, d_alpha, d_a, d_b)])
    return float((first + mixture).sum()), gradient


def _spend_data(x: ArrayLike, mean_spend: ArrayLike) -> tuple[Floats, Floats]:
    count = np.asarray(x, dtype=np.float64)
    mean = np.asarray(mean_spend, dtype=np.float64)
    if count.shape != mean.shape or count.ndim != 1:
        raise ValueError("x and mean_spend must be one-dimensional arrays of the same length")
    buyers = (count > 0) & (mean > 0)
    if buyers.sum() < 3:
        raise ValueError(f"Gamma-Gamma needs at least 3 repeat buyers with a positive mean spend, got {buyers.sum()}")
    return count[buyers], mean[buyers]


def _gamma_gamma_terms(params: Floats, x: Floats, m: Floats) -> tuple[float, Floats]:
    """Log-likelihood of the mean spends (Fader & Hardie 2013, eq. 5) and its gradient in (p, q, v)."""
    p, q, v = params
    px = p * x
    log_vxm = np.log(v + x * m)
    terms = gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1) * np.log(m) + px * np.log(x)
    terms -= (px + q) * log_vxm
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_vxm)
    d_q = digamma(px + q) - digamma(q) + np.log(v) - log_vxm
    d_v = q / v - (px + q) / (v + x * m)
    return float(terms.sum()), np.array([d_p.sum(), d_q.sum(), d_v.sum()])
