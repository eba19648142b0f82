"""P(order | plan) for every candidate plan in one call: the no-contact log-odds plus what the plan adds, for whom.

The contact model is a penalised logistic regression whose offset is the no-contact model's log-odds, on the
products of a few terms describing the plan (`plan_terms`: contact, touches, first channel, SMS touches, percent
off and how late it comes, the last touch's delay) with a few terms describing the cart (`context_terms`: its
value, device, traffic source, coupon tries, session depth, purchase history, checkout, reachability). So every
coefficient is an effect of contact, and each says for whom it is larger: "10 % off moves deal traffic most" is
one coefficient, learned from every randomised decision with an incentive rather than from a tree's leaf.

Why not boosted trees here (docs/benchmarks.md, "Learning loop"): on simulated logs with known truth, a LightGBM
S-learner boosted from the same offset stopped early on the noisy validation set and halved the incentive effects
(+0.057 predicted against +0.131 true for 15 % off within the hour on 12,000 decisions); this model was within a
fifth of them. The baseline, where trees do shine, stays LightGBM (the offset).

Each model also keeps its coefficients' covariance (the Laplace approximation of the penalised fit, learn/train.py),
so the policy can score a plan by a bound of its effect rather than its mean (`[decisions] caution`): a plan few
logged decisions tried is not preferred for an estimate that only its noise made large. A model stored before
the covariance was kept loads without it and serves its means.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cartrecover.decide.actions import ACTION_NAMES
from cartrecover.decide.features import NAMES

CONTEXT_TERMS: tuple[str, ...] = (
    "always",
    "log_value",
    "mobile",
    "desktop",
    "organic",
    "paid",
    "email_traffic",
    "social",
    "deals",
    "coupon_tried",
    "log_page_views",
    "log_dwell",
    "customer",
    "checkout",
    "clicked_before",
    "log_messages_30d",
    "email_ok",
    "sms_ok",
)
PLAN_TERMS: tuple[str, ...] = (
    "contact",
    "touches",
    "first_email",
    "first_sms",
    "sms_touches",
    "tens_off_kept",  # percent off / 10 × kept(hours until the incentive): the offer's pull still there by then
    "tens_off_faded",  # percent off / 10 × faded(hours until the incentive)
    "last_faded",  # faded(hours until the last touch)
)
# How late a touch comes enters as the share of its pull that has faded by then, faded(h) = 1 − 0.5 ^ (h /
# FADE_HOURS), or is kept, 1 − faded(h): a shopper's intent cools by the hour after they leave, so an offer at 72 h
# does far less than one at 24 h. The earlier form, log(1 + hours) / 4, made the two nearly alike (1.07 against
# 0.80): on simulated logs the model then gave an offer at 72 h most of the lift of one at 24 h and chose it for a
# third of the carts, where the truth gave it a quarter (docs/benchmarks.md, "What the model gets wrong"). The
# coefficients still scale the fading, so the half-life is a prior on its shape, not a fixed lift.
#
# An offer enters as the pull it keeps (`tens_off_kept`, whose effect varies from cart to cart: who an offer moves)
# and a correction for how much faster or slower than that it fades (`tens_off_faded`, one effect for every cart,
# learn/train.VARYING). A penalised coefficient is drawn toward zero, so where late offers were seldom tried the
# model falls back on "an offer fades as intent cools". With an offer's undelayed size as the term instead (the
# terms of models stored before, `FADED_TERMS`), the fallback was "an offer does not fade", and the model gave an
# offer at 72 h three times its true lift (docs/benchmarks.md, "An offer fades as intent cools").
FADE_HOURS = 24.0
# The terms of models stored before (read and served as they were fitted; new ones are fitted on PLAN_TERMS).
FADED_TERMS: tuple[str, ...] = (*PLAN_TERMS[:5], "tens_off", *PLAN_TERMS[6:])
LOG_DELAY_TERMS: tuple[str, ...] = (*PLAN_TERMS[:5], "tens_off", "tens_off_late", "log_last_delay")
KNOWN_TERMS = (PLAN_TERMS, FADED_TERMS, LOG_DELAY_TERMS)
_F = {name: i for i, name in enumerate(NAMES)}
_A = {name: i for i, name in enumerate(ACTION_NAMES)}


def context_terms(rows: np.ndarray) -> np.ndarray:
    """The cart's side of the products, one row per feature row (features.NAMES order); missing values count 0."""
    x = np.nan_to_num(np.atleast_2d(rows))

    def column(name: str) -> np.ndarray:
        values: np.ndarray = x[:, _F[name]]
        return values

    device, traffic = column("device"), column("traffic")
    terms = [
        np.ones(len(x)),
        np.log1p(np.maximum(column("cart_value"), 0.0)) - 4.0,
        device == 1,
        device == 3,
        *(traffic == code for code in (1, 2, 3, 4, 5)),
        column("coupon_attempts") > 0,
        np.log1p(column("page_views")) - 1.0,
        np.log1p(np.maximum(column("dwell_minutes"), 0.0)) - 1.0,
        column("prior_orders") > 0,
        column("checkout_started"),
        column("clicks") > 0,
        np.log1p(column("messages_30d")),
        column("email_ok"),
        column("sms_ok"),
    ]
    return np.column_stack(terms).astype(np.float64)


def context_of(row: np.ndarray) -> np.ndarray:
    """`context_terms` of one row, in plain Python: a decision's hot path (a dozen NumPy calls cost more)."""
    values = [0.0 if math.isnan(v) else float(v) for v in row.tolist()]

    def get(name: str) -> float:
        return values[_F[name]]

    device, traffic = get("device"), get("traffic")
    terms = [
        1.0,
        math.log1p(max(get("cart_value"), 0.0)) - 4.0,
        float(device == 1),
        float(device == 3),
        *(float(traffic == code) for code in (1, 2, 3, 4, 5)),
        float(get("coupon_attempts") > 0),
        math.log1p(get("page_views")) - 1.0,
        math.log1p(max(get("dwell_minutes"), 0.0)) - 1.0,
        float(get("prior_orders") > 0),
        get("checkout_started"),
        float(get("clicks") > 0),
        math.log1p(get("messages_30d")),
        get("email_ok"),
        get("sms_ok"),
    ]
    return np.asarray(terms, dtype=np.float64)


def plan_terms(actions: np.ndarray, names: tuple[str, ...] = PLAN_TERMS) -> np.ndarray:
    """The plan's side of the products, one row per plan description (actions.ACTION_NAMES order); `names` is
    PLAN_TERMS, or the terms a stored model was fitted on (`KNOWN_TERMS`)."""
    a = np.atleast_2d(actions)
    return np.column_stack([_PLAN_COLUMNS[name](a) for name in names]).astype(np.float64)


def _tens(a: np.ndarray) -> np.ndarray:
    tens: np.ndarray = a[:, _A["percent_off"]] / 10
    return tens


def _column(name: str) -> Callable[[np.ndarray], np.ndarray]:
    def column(a: np.ndarray) -> np.ndarray:
        values: np.ndarray = a[:, _A[name]]
        return values

    return column


_INCENTIVE, _LAST = _A["incentive_delay_hours"], _A["last_delay_hours"]
# Every plan term any known model uses, from the matrix of plan descriptions.
_PLAN_COLUMNS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "contact": lambda a: a[:, _A["touches"]] > 0,
    **{name: _column(name) for name in ("touches", "first_email", "first_sms", "sms_touches")},
    "tens_off": _tens,
    "tens_off_kept": lambda a: _tens(a) * (1 - _faded(a[:, _INCENTIVE])),
    "tens_off_faded": lambda a: _tens(a) * _faded(a[:, _INCENTIVE]),
    "last_faded": lambda a: _faded(a[:, _LAST]),
    "tens_off_late": lambda a: _tens(a) * np.log1p(a[:, _INCENTIVE]) / 4,
    "log_last_delay": lambda a: np.log1p(a[:, _LAST]) / 4,
}


def _faded(hours: np.ndarray) -> np.ndarray:
    faded: np.ndarray = 1 - 0.5 ** (np.maximum(hours, 0.0) / FADE_HOURS)
    return faded


def design(rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Every plan term times every context term, for paired rows of features and plans (what training fits)."""
    return _products(context_terms(rows), plan_terms(actions))


def _products(context: np.ndarray, plan: np.ndarray) -> np.ndarray:
    products: np.ndarray = (plan[:, :, None] * context[:, None, :]).reshape(len(context), -1)
    return products


@dataclass(frozen=True)
class Effects:
    """The contact model: one coefficient per (plan term, context term), on top of the no-contact log-odds."""

    coefficients: np.ndarray  # len(PLAN_TERMS) × len(CONTEXT_TERMS), flattened plan-major
    covariance: np.ndarray | None = None  # the coefficients' posterior covariance; None: fitted before it was kept
    terms: tuple[str, ...] = PLAN_TERMS  # for a model stored with older terms, those (`KNOWN_TERMS`)

    def __post_init__(self) -> None:
        size = len(PLAN_TERMS) * len(CONTEXT_TERMS)
        if self.coefficients.shape != (size,):
            raise ValueError(f"the contact model has {self.coefficients.shape} coefficients; this version reads "
                             f"{len(PLAN_TERMS)} × {len(CONTEXT_TERMS)}")  # fmt: skip
        if self.covariance is not None and self.covariance.shape != (size, size):
            raise ValueError(f"the contact model's covariance is {self.covariance.shape}, not {size} × {size}")

    def outcomes(self, base_logit: float, row: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Uncalibrated P(order | plan) for each row of `actions`, for one cart."""
        return self.from_terms(base_logit, context_of(row), self.plan_terms(actions))

    def plan_terms(self, actions: np.ndarray) -> np.ndarray:
        """`plan_terms` as this model was fitted on them."""
        return plan_terms(actions, self.terms)

    def from_terms(self, base_logit: float, context: np.ndarray, plans: np.ndarray, moved: float = 0.0) -> np.ndarray:
        """`outcomes` from terms already computed (`context_of` the row, `plan_terms` of the actions); with `moved`,
        each plan's log-odds moved by that many standard deviations of its effect (−1: one below the mean)."""
        per_term = self.coefficients.reshape(len(PLAN_TERMS), len(CONTEXT_TERMS)) @ context
        logits = base_logit + plans @ per_term
        if moved:
            logits = logits + moved * self.spread(context, plans)
        probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
        return probabilities

    def spread(self, context: np.ndarray, plans: np.ndarray) -> np.ndarray:
        """The standard deviation of each plan's effect on the log-odds, for one cart (0 without a covariance)."""
        if self.covariance is None:
            return np.zeros(len(plans))
        p, c = len(PLAN_TERMS), len(CONTEXT_TERMS)
        # A plan's design row is plan ⊗ context, so its variance is plan · M · plan, with M (p × p) the covariance
        # contracted with the context on both of its context axes: three small products for every plan at once.
        half: np.ndarray = (self.covariance.reshape(p * c * p, c) @ context).reshape(p, c, p)
        inner = half.transpose(0, 2, 1) @ context
        variance: np.ndarray = ((plans @ inner) * plans).sum(axis=1)
        spread: np.ndarray = np.sqrt(np.maximum(variance, 0.0))
        return spread

    def log_odds(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """What each plan adds to the log-odds of its own row (training's and evaluation's many-rows form)."""
        added: np.ndarray = _products(context_terms(rows), self.plan_terms(actions)) @ self.coefficients
        return added

    def largest(self, top: int) -> list[tuple[str, float]]:
        """The `top` coefficients by size, named "plan term × context term" (for `cartrecover models list`)."""
        order = np.argsort(-np.abs(self.coefficients))[:top]
        width = len(CONTEXT_TERMS)
        return [
            (f"{self.terms[i // width]} × {CONTEXT_TERMS[i % width]}", round(float(self.coefficients[i]), 4))
            for i in order
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the registry."""
        body: dict[str, Any] = {"plan_terms": list(self.terms), "context_terms": list(CONTEXT_TERMS), "coefficients": self.coefficients.tolist()}  # fmt: skip
        if self.covariance is not None:  # its upper triangle as float32 in base64: 56 KB, where JSON numbers took 400
            upper = self.covariance[np.triu_indices(len(self.covariance))].astype("<f4")
            body["covariance"] = base64.b64encode(upper.tobytes()).decode("ascii")
        return body

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Effects:
        """The inverse of `to_dict`; terms this version does not know are an error, not a guess."""
        terms = tuple(data["plan_terms"])
        if terms not in KNOWN_TERMS or tuple(data["context_terms"]) != CONTEXT_TERMS:
            raise ValueError("the contact model was fitted on other terms than this version computes")
        size = len(PLAN_TERMS) * len(CONTEXT_TERMS)
        stored = data.get("covariance")  # absent in models stored before it was kept: they serve their means
        covariance = None
        if isinstance(stored, str):  # the upper triangle, float32, base64
            rows, columns = np.triu_indices(size)
            try:
                raw = base64.b64decode(stored, validate=True)
            except ValueError as exc:
                raise ValueError(f"the contact model's covariance is not base64: {exc}") from None
            if len(raw) != 4 * len(rows):
                raise ValueError(f"the contact model's covariance has {len(raw)} bytes, not {4 * len(rows)}")
            upper = np.frombuffer(raw, dtype="<f4").astype(np.float64)
            covariance = np.zeros((size, size))
            covariance[rows, columns] = upper
            covariance[columns, rows] = upper
        elif stored is not None:  # the whole matrix as JSON numbers (bundles of e60330e to this change)
            covariance = np.asarray(stored, dtype=np.float64).reshape(size, size)
        return cls(np.asarray(data["coefficients"], dtype=np.float64), covariance, terms)
