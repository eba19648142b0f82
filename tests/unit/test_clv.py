"""Customer lifetime value: fits recover known parameters, serving equals independent numeric references."""

from __future__ import annotations

import json
import math
from datetime import date, datetime

import numpy as np
import pytest
from scipy import integrate, special, stats

from cartrecover.learn.clv import (
    bgnbd_log_likelihood,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    summarise,
)
from cartrecover.models.clv import BgNbd, Clv, GammaGamma

CDNOW = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426)


def simulate_bgnbd(model: BgNbd, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histories drawn from the BG/NBD story: Poisson purchases at rate λ, drop-out with probability p after each
    repeat purchase, observed for T periods after the first purchase."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(model.r, 1 / model.alpha, n)
    dropouts = rng.beta(model.a, model.b, n)
    ages = rng.uniform(10, 40, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        now = 0.0
        while True:
            now += rng.exponential(1 / rates[i])
            if now > ages[i]:
                break
            x[i] += 1
            t_x[i] = now
            if rng.random() < dropouts[i]:
                break
    return x, t_x, ages


def conditional_by_integral(model: BgNbd, t: float, x: int, t_x: float, T: float) -> float:
    """E[Y(t) | x, t_x, T] from its derivation, without 2F1: P(alive) · E[(1 − (1 + p·u)^−(r+x)) / p] over the
    posterior p ~ Beta(a, b + x), u = t / (α + T), integrated by QUADPACK with the Beta weight."""
    u = t / (model.alpha + T)
    m = model.r + x

    def body(p: float) -> float:
        return -math.expm1(-m * math.log1p(p * u)) / p if p > 0 else m * u

    weight = (model.a - 1, model.b + x - 1)
    value, _ = integrate.quad(body, 0, 1, weight="alg", wvar=weight, epsabs=0, epsrel=1e-12, limit=200)
    return value / math.exp(special.betaln(model.a, model.b + x)) * p_alive_reference(model, x, t_x, T)


def conditional_by_hyp2f1(model: BgNbd, t: float, x: int, t_x: float, T: float) -> float:
    """Fader, Hardie & Lee 2005, eq. 10, as printed, with SciPy's 2F1."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    return (a + b + x - 1) / (a - 1) * bracket * p_alive_reference(model, x, t_x, T)


def p_alive_reference(model: BgNbd, x: int, t_x: float, T: float) -> float:
    if x == 0:
        return 1.0
    ratio = ((model.alpha + T) / (model.alpha + t_x)) ** (model.r + x)
    return 1 / (1 + model.a / (model.b + x - 1) * ratio)


@pytest.mark.parametrize("seed", [1, 2])
def test_fitting_recovers_the_parameters_of_simulated_histories(seed: int) -> None:
    truth = BgNbd(r=0.5, alpha=5.0, a=0.8, b=2.5)
    x, t_x, T = simulate_bgnbd(truth, 8_000, seed)

    fitted = fit_bgnbd(x, t_x, T)

    # The truth is inside the likelihood-ratio 99.9 % confidence region of the fit, and the fit is no worse than it.
    gap = 2 * (bgnbd_log_likelihood(fitted, x, t_x, T) - bgnbd_log_likelihood(truth, x, t_x, T))
    assert 0 <= gap < stats.chi2.ppf(0.999, df=4)
    assert fitted.r == pytest.approx(truth.r, rel=0.15)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.2)
    assert fitted.a == pytest.approx(truth.a, rel=0.3)
    assert fitted.b == pytest.approx(truth.b, rel=0.4)


def test_gamma_gamma_fit_recovers_the_parameters_of_simulated_spend() -> None:
    rng = np.random.default_rng(7)
    truth = GammaGamma(p=6.0, q=4.0, v=15.0)
    x = rng.integers(1, 8, 6_000).astype(float)
    scale = rng.gamma(truth.q, 1 / truth.v, x.size)  # ν ~ Gamma(q, rate γ); each spend ~ Gamma(p, rate ν)
    mean_spend = np.array([rng.gamma(truth.p, 1 / s, int(n)).mean() for s, n in zip(scale, x, strict=True)])

    fitted = fit_gamma_gamma(x, mean_spend)

    gap = 2 * (gamma_gamma_log_likelihood(fitted, x, mean_spend) - gamma_gamma_log_likelihood(truth, x, mean_spend))
    assert 0 <= gap < stats.chi2.ppf(0.999, df=3)
    assert fitted.expected_spend(0, 0) == pytest.approx(truth.expected_spend(0, 0), rel=0.05)


@pytest.mark.parametrize("model", [CDNOW, BgNbd(1.3, 2.0, 2.5, 4.0), BgNbd(0.4, 10.0, 0.3, 0.5)])
@pytest.mark.parametrize(
    ("x", "t_x", "T"), [(0, 0.0, 0.5), (0, 0.0, 39.0), (1, 2.0, 30.0), (4, 25.0, 38.0), (12, 9.0, 39.0)]
)
@pytest.mark.parametrize("t", [0.3, 5.0, 39.0, 52.0, 400.0])
def test_expected_purchases_equal_eq_10_with_scipys_hypergeometric_function(
    model: BgNbd, x: int, t_x: float, T: float, t: float
) -> None:
    assert model.expected_purchases(t, x, t_x, T) == pytest.approx(conditional_by_hyp2f1(model, t, x, t_x, T), rel=1e-9)


@pytest.mark.parametrize(
    "model",
    [
        CDNOW,
        BgNbd(1.0, 3.0, 1.0, 2.0),  # a = 1: the closed form is 0/0
        BgNbd(2.0, 10.0, 3.0, 5.0),  # r − a an integer: the connection formula's gamma functions have poles
        BgNbd(1.3, 2.0, 0.3, 0.7),  # a + b = 1 as well as r − a an integer
        BgNbd(0.8, 1.0, 1.8, 0.2),
    ],
)
@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 1.0), (2, 3.0, 20.0), (60, 35.0, 39.0), (400, 38.0, 39.0)])
@pytest.mark.parametrize("t", [1.0, 52.0, 1_000.0])
def test_expected_purchases_equal_the_integral_they_come_from_even_for_large_x_and_singular_parameters(
    model: BgNbd, x: int, t_x: float, T: float, t: float
) -> None:
    assert model.expected_purchases(t, x, t_x, T) == pytest.approx(
        conditional_by_integral(model, t, x, t_x, T), rel=1e-8
    )


def test_unconditional_expectation_is_the_conditional_one_of_a_customer_just_acquired() -> None:
    for t in (0.5, 10.0, 78.0):
        expected = (CDNOW.a + CDNOW.b - 1) / (CDNOW.a - 1)
        expected *= 1 - (CDNOW.alpha / (CDNOW.alpha + t)) ** CDNOW.r * special.hyp2f1(
            CDNOW.r, CDNOW.b, CDNOW.a + CDNOW.b - 1, t / (CDNOW.alpha + t)
        )
        assert CDNOW.expected_unconditional(t) == pytest.approx(expected, rel=1e-10)
        assert CDNOW.expected_unconditional(t) == pytest.approx(CDNOW.expected_purchases(t, 0, 0.0, 0.0), rel=1e-12)
    assert CDNOW.expected_unconditional(0) == 0


def test_a_customer_without_repeat_purchases_is_alive_and_one_who_went_quiet_is_less_so() -> None:
    assert CDNOW.p_alive(0, 0.0, 30.0) == 1.0
    assert CDNOW.p_alive(3, 30.0, 30.0) > CDNOW.p_alive(3, 10.0, 30.0) > CDNOW.p_alive(3, 1.0, 30.0)
    for x, t_x, T in [(1, 1.0, 39.0), (5, 20.0, 38.0), (60, 30.0, 39.0)]:
        assert CDNOW.p_alive(x, t_x, T) == pytest.approx(p_alive_reference(CDNOW, x, t_x, T), rel=1e-12)
    assert CDNOW.p_alive(500, 1.0, 39.0) == 0.0  # the power in the textbook form overflows; the log form does not


def test_expected_spend_shrinks_a_customers_mean_toward_the_population_mean() -> None:
    spend = GammaGamma(p=6.25, q=3.74, v=15.45)
    population = 6.25 * 15.45 / 2.74
    assert spend.expected_spend(0, 99.0) == pytest.approx(population)
    one, many = spend.expected_spend(1, 100.0), spend.expected_spend(50, 100.0)
    assert population < one < many < 100.0
    assert one == pytest.approx(6.25 * (15.45 + 100.0) / (6.25 + 2.74))


def test_value_is_expected_purchases_over_the_horizon_times_expected_spend() -> None:
    spend = GammaGamma(p=6.25, q=3.74, v=15.45)
    model = Clv(CDNOW, spend, period_days=7, horizon_periods=52)
    expected = CDNOW.expected_purchases(52, 2, 30.0, 38.0) * spend.expected_spend(2, 40.0)
    assert model.value(2, 30.0, 38.0, 40.0) == pytest.approx(expected, rel=1e-12)


def test_a_model_survives_a_round_trip_through_json() -> None:
    model = Clv(CDNOW, GammaGamma(6.25, 3.74, 15.45), period_days=1, horizon_periods=365)
    assert Clv.from_dict(json.loads(json.dumps(model.to_dict()))) == model


@pytest.mark.parametrize(
    "data",
    [{"kind": "tree"}, {"kind": "bgnbd-gamma-gamma", "bgnbd": {"r": 1, "alpha": 1, "a": 1}}, {}],
)
def test_a_foreign_or_incomplete_model_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="model"):
        Clv.from_dict(data)


def test_impossible_parameters_and_histories_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        BgNbd(0.2, -1.0, 0.5, 2.0)
    with pytest.raises(ValueError, match="q must be > 1"):
        GammaGamma(6.0, 0.9, 10.0)
    with pytest.raises(ValueError, match="t_x ≤ T"):
        CDNOW.expected_purchases(10, 2, 40.0, 30.0)
    with pytest.raises(ValueError, match="non-empty"):
        fit_bgnbd([], [], [])


def test_summarise_counts_one_purchase_a_day_and_leaves_out_the_first_and_anything_after_the_end() -> None:
    rows = [
        ("ann", datetime(2024, 1, 1, 9), 10.0),  # first purchase: starts the clock
        ("ann", datetime(2024, 1, 8, 9), 20.0),
        ("ann", datetime(2024, 1, 8, 18), 5.0),  # same day: one transaction worth 25
        ("ann", datetime(2024, 1, 15, 12), 35.0),
        ("ann", datetime(2024, 2, 1, 12), 99.0),  # after the calibration end
        ("bob", date(2024, 1, 22), 7.0),
        ("cat", date(2024, 2, 2), 7.0),  # first purchase after the end: not a customer yet
    ]

    summary = summarise(rows, calibration_end=date(2024, 1, 29), period_days=7)

    assert summary.customers == ("ann", "bob")
    assert summary.x.tolist() == [2, 0]
    assert summary.t_x.tolist() == [2.0, 0.0]
    assert summary.T.tolist() == [4.0, 1.0]
    assert summary.mean_spend.tolist() == [30.0, 0.0]
